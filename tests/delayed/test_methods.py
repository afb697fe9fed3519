"""Each method's weights on hand-computed cases, and unbiasedness of each weighted loss in expectation.

For one x with P(IP) = p_ip (converts within the waiting window), P(FN) = p_fn (converts after it) and
P(RN) = p_rn, the expected weighted loss over the method's stream is ``a * l1 + b * l0``; it is minimised
at ``sigmoid(f) = a / (a + b)``, which must be the true p = p_ip + p_fn.
"""

from __future__ import annotations

import inspect
import math
from types import SimpleNamespace

import pytest
import torch

from recsci.delayed.auxiliary import AuxiliaryModel
from recsci.delayed.methods import (
    DEFUSE,
    DFM,
    ESDFM,
    FNC,
    EngagementIS,
    defer_weights,
    defuse_weights,
    dfm_nll,
    esdfm_weights,
    fnw_weights,
    fsiw_weights,
    label_correction_weights,
    split_positive_weights,
    weighted_bce,
)
from recsci.delayed.models import ConversionModel, FieldMLP
from recsci.delayed.protocols import StreamingProtocol
from recsci.delayed.runner import Runner
from recsci.delayed.streams import DELAYED_POSITIVE, FINAL, FIRST

T = torch.tensor
P_IP, P_FN, P_RN = 0.1, 0.15, 0.75
P = P_IP + P_FN
Z = P_FN / (P_FN + P_RN)  # P(FN | observed negative)


def _approx(tensor: torch.Tensor, values: list[float]) -> None:
    assert tensor.tolist() == pytest.approx(values, abs=1e-6)


# --- hand-computed cases ----------------------------------------------------------------------------


def test_esdfm_weights_by_hand() -> None:
    w_pos, w_neg = esdfm_weights(T([1.0, 0.0]), p_dp=T([0.2, 0.2]), p_rn=T([0.9, 0.9]))
    _approx(w_pos, [1.2, 0.0])  # 1 + p_dp
    _approx(w_neg, [0.0, 1.08])  # (1 + p_dp) * p_rn = 1.2 * 0.9


def test_fnw_weights_by_hand() -> None:
    w_pos, w_neg = fnw_weights(T([1.0, 0.0]), p=T([0.25, 0.25]))
    _approx(w_pos, [1.25, 0.0])
    _approx(w_neg, [0.0, 0.9375])  # (1 - 0.25)(1 + 0.25)


def test_defer_weights_by_hand_and_not_the_precedence_bug() -> None:
    w_pos, w_neg = defer_weights(T([1.0, 0.0]), p=T([0.3, 0.3]), p_dp=T([0.2, 0.2]))
    _approx(w_pos, [1.5, 0.0])  # 0.3 / (0.3 - 0.1)
    _approx(w_neg, [0.0, 0.875])  # 0.7 / (0.7 + 0.1)
    assert w_pos[0].item() != pytest.approx(0.3 / 0.3 - 0.5 * 0.2)  # `p / p - 0.5 * p_dp` = 0.9


def test_fsiw_weights_by_hand() -> None:
    w_pos, w_neg = fsiw_weights(T([1.0, 0.0]), T([0.5, 0.5]), p_rn=T([0.8, 0.8]))
    _approx(w_pos, [2.0, 0.0])
    _approx(w_neg, [0.0, 0.8])


def test_defuse_weights_by_hand() -> None:
    label, kind = T([1.0, 1.0, 0.0]), T([FIRST, DELAYED_POSITIVE, FIRST])
    w_pos, w_neg = defuse_weights(label, kind, z=T([0.3] * 3), p_dp=T([0.2] * 3))
    _approx(w_pos, [1.2, 1.0, 0.06])  # IP 1 + p_dp; DP 1; negative z * p_dp
    _approx(w_neg, [0.0, 0.0, 0.84])  # (1 - z)(1 + p_dp)


def test_label_correction_weights_by_hand() -> None:
    label, kind = T([1.0, 1.0, 0.0]), T([FIRST, DELAYED_POSITIVE, FIRST])
    w_pos, w_neg = label_correction_weights(label, kind, z=T([0.3] * 3), p_dp=T([0.2] * 3))
    _approx(w_pos, [1.2, 0.0, 0.36])
    _approx(w_neg, [0.0, 0.0, 0.84])


def test_split_positive_weights_by_hand() -> None:
    label, kind = T([1.0, 1.0, 0.0]), T([FIRST, DELAYED_POSITIVE, FIRST])
    w_pos, w_neg = split_positive_weights(
        label, kind, z=T([0.3] * 3), scale=T([1.2] * 3), soft_share=T([0.25] * 3)
    )
    _approx(w_pos, [1.2, 0.9, 0.09])  # IP c; DP (1 - s) c = 0.75 * 1.2; negative s c z = 0.25 * 1.2 * 0.3
    _approx(w_neg, [0.0, 0.0, 0.84])  # (1 - z) c


@pytest.mark.parametrize(
    ("share", "weights"),
    [(0.0, "esdfm"), (0.2 / 1.2, defuse_weights), (1.0, label_correction_weights)],
)
def test_the_three_forms_are_members_of_the_split_family(share: float, weights) -> None:
    label, kind = T([1.0, 1.0, 0.0, 0.0]), T([FIRST, DELAYED_POSITIVE, FIRST, FIRST])
    z, p_dp = T([0.3, 0.3, 0.3, 0.6]), T([0.2] * 4)
    split = split_positive_weights(label, kind, z, 1.0 + p_dp, torch.full_like(z, share))
    expected = esdfm_weights(label, p_dp, 1.0 - z) if weights == "esdfm" else weights(label, kind, z, p_dp)
    for got, want in zip(split, expected, strict=True):
        _approx(got, want.tolist())


def test_weighted_bce_by_hand() -> None:
    loss = weighted_bce(T([0.0, 0.0]), T([2.0, 0.0]), T([0.0, 1.0]))
    assert loss.item() == pytest.approx((2 * math.log(2) + math.log(2)) / 2)


def test_dfm_nll_by_hand() -> None:
    # p = 0.5, lambda = 0.5; converted after d = 2 h; not converted after e = 2 h.
    logits, log_rate = T([0.0, 0.0]), T([math.log(0.5)] * 2)
    pos = dfm_nll(logits[:1], log_rate[:1], T([1.0]), elapsed=T([2.0]), delay=T([2.0]))
    neg = dfm_nll(logits[1:], log_rate[1:], T([0.0]), elapsed=T([2.0]), delay=T([0.0]))
    assert pos.item() == pytest.approx(-(math.log(0.5) + math.log(0.5) - 1.0))
    assert neg.item() == pytest.approx(-math.log(0.5 + 0.5 * math.exp(-1.0)))


def test_fnc_serves_b_over_one_minus_b() -> None:
    b = 0.2
    served = FNC().probability(torch.logit(T([b])))
    assert served.item() == pytest.approx(b / (1 - b))


# --- unbiasedness in expectation --------------------------------------------------------------------


def _optimum(w_pos: torch.Tensor, w_neg: torch.Tensor, mass: torch.Tensor) -> float:
    a, b = (mass * w_pos).sum(), (mass * w_neg).sum()
    return float(a / (a + b))


def _waiting_stream() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # Records per click: IP (label 1), FN's first record (label 0) + its DP (label 1), RN (label 0).
    label = T([1.0, 0.0, 1.0, 0.0])
    kind = T([FIRST, FIRST, DELAYED_POSITIVE, FIRST])
    mass = T([P_IP, P_FN, P_FN, P_RN])
    return label, kind, mass


def test_esdfm_is_unbiased_with_exact_auxiliaries() -> None:
    label, _, mass = _waiting_stream()
    w_pos, w_neg = esdfm_weights(label, torch.full_like(label, P_FN), torch.full_like(label, 1 - Z))
    assert _optimum(w_pos, w_neg, mass) == pytest.approx(P)


@pytest.mark.parametrize("weights", [defuse_weights, label_correction_weights])
def test_defuse_and_label_correction_are_unbiased(weights) -> None:
    label, kind, mass = _waiting_stream()
    w_pos, w_neg = weights(label, kind, torch.full_like(label, Z), torch.full_like(label, P_FN))
    assert _optimum(w_pos, w_neg, mass) == pytest.approx(P)


@pytest.mark.parametrize("share", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("scale", [1.0, 1.0 + P_FN])
def test_every_split_of_the_positive_credit_is_unbiased(share: float, scale: float) -> None:
    label, kind, mass = _waiting_stream()
    w_pos, w_neg = split_positive_weights(
        label, kind, torch.full_like(label, Z), torch.full_like(label, scale), torch.full_like(label, share)
    )
    assert _optimum(w_pos, w_neg, mass) == pytest.approx(P)


def test_engagement_is_split_options() -> None:
    label, kind = T([1.0, 1.0, 0.0]), T([FIRST, DELAYED_POSITIVE, FIRST])
    batch = {"label": label, "kind": kind, "z": T([0.3] * 3), "p_dp": T([0.2] * 3)}
    method = EngagementIS(dp=None, flip=None, form="soft_label", soft_share=0.5, weight_scale="one")
    w_pos, w_neg = method.weights(torch.zeros(3), batch)
    _approx(w_pos, [1.0, 0.5, 0.15])
    _approx(w_neg, [0.0, 0.0, 0.7])
    assert not method.uses_p_dp
    # c = 1 with DEFUSE's rule (the DP record keeps 1) puts nothing on the soft term.
    plain = EngagementIS(dp=None, flip=None, form="soft_label", weight_scale="one")
    _approx(plain.weights(torch.zeros(3), batch)[0], [1.0, 1.0, 0.0])
    # The defaults are DEFUSE's weights, which read p_dp.
    default = EngagementIS(dp=None, flip=None, form="soft_label")
    _approx(default.weights(torch.zeros(3), batch)[0], [1.2, 1.0, 0.06])
    assert default.uses_p_dp
    with pytest.raises(ValueError, match="model.method.soft_share"):
        EngagementIS(dp=None, flip=None, form="importance", soft_share=0.5)


def test_the_delayed_positive_model_is_skipped_when_unused() -> None:
    dp, flip = AuxiliaryModel(target="delayed_positive"), AuxiliaryModel(target="flip")
    assert set(EngagementIS(dp, flip, form="soft_label").auxiliaries()) == {"dp", "flip"}
    assert set(EngagementIS(dp, flip, form="importance", weight_scale="one").auxiliaries()) == {"flip"}


def test_defuse_double_counting_is_biased() -> None:
    # Giving the DP duplicate 1 + p_dp (as if it were an IP) on top of the soft FN term overshoots.
    label, kind, mass = _waiting_stream()
    w_pos, w_neg = defuse_weights(
        label, T([FIRST] * 4), torch.full_like(label, Z), torch.full_like(label, P_FN)
    )
    assert _optimum(w_pos, w_neg, mass) > P + 0.005


def test_defer_is_unbiased_with_exact_p() -> None:
    # Every click twice: IP twice as positive; FN as negative then DP; RN as negative then FINAL negative.
    label = T([1.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    mass = T([P_IP, P_IP, P_FN, P_FN, P_RN, P_RN])
    w_pos, w_neg = defer_weights(label, torch.full_like(label, P), torch.full_like(label, P_FN))
    assert _optimum(w_pos, w_neg, mass) == pytest.approx(P)
    assert FINAL == 2


def test_fnw_is_unbiased_with_exact_p() -> None:
    # w = 0: every click enters as a negative; a converter comes back as a positive.
    label, mass = T([0.0, 1.0]), T([1.0, P])
    w_pos, w_neg = fnw_weights(label, torch.full_like(label, P))
    assert _optimum(w_pos, w_neg, mass) == pytest.approx(P)


def test_fsiw_is_unbiased_with_exact_auxiliaries() -> None:
    s = 0.4  # P(converted by e | converts)
    label, mass = T([1.0, 0.0]), T([P * s, 1 - P * s])
    p_rn = (1 - P) / (1 - P * s)
    w_pos, w_neg = fsiw_weights(label, torch.full_like(label, s), torch.full_like(label, p_rn))
    assert _optimum(w_pos, w_neg, mass) == pytest.approx(P)


# --- elapsed time and engagement never reach the main model --------------------------------------------


def test_main_model_takes_features_only() -> None:
    assert list(inspect.signature(ConversionModel.forward).parameters) == ["self", "x"]
    with pytest.raises(ValueError, match="features only"):
        ConversionModel(FieldMLP([3, 3], extra_dim=2))


def test_engagement_weights_carry_no_gradient() -> None:
    method = EngagementIS(dp=None, flip=None)  # the auxiliaries are not needed to compute the loss
    logits = torch.zeros(3, requires_grad=True)
    z = torch.full((3,), 0.3, requires_grad=True)
    p_dp = torch.full((3,), 0.2, requires_grad=True)
    batch = {"label": T([1.0, 0.0, 0.0]), "kind": T([FIRST] * 3), "z": z, "p_dp": p_dp}
    method.loss(logits, batch).backward()
    assert z.grad is None and p_dp.grad is None
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_dfm_has_its_own_delay_head_only_for_the_loss() -> None:
    method = DFM()
    assert method.stream == "observed" and method.has_warmup


# --- a method's own waiting window --------------------------------------------------------------------


def test_a_method_waiting_window_overrides_the_protocols() -> None:
    runner = SimpleNamespace(protocol=StreamingProtocol(wait_hours=0.25))
    assert Runner.wait_for(runner, EngagementIS(dp=None, flip=None)) == 0.25
    for method in (EngagementIS(None, None, wait_hours=1.5), ESDFM(None, None, wait_hours=1.5)):
        assert Runner.wait_for(runner, method) == 1.5
    assert Runner.wait_for(runner, DEFUSE(None, None, wait_hours=0.0)) == 0.0
