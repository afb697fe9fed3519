r"""Training objectives for delayed feedback: which records each method trains on, and how it weights them.

Notation: f(x) the main model's logit, p = sigmoid(f), l1 = -log p, l0 = -log(1 - p). Every method but
DFM is a weighted cross-entropy ``mean(w_pos * l1 + w_neg * l0)`` over its records (weights are
constants: computed without gradient from auxiliary models or from a detached p).

Waiting-window stream (see :mod:`recsci.delayed.streams`), per click: immediate positive (IP, converts
within w), fake negative (FN, converts after w; re-ingested later as a delayed positive DP), real
negative (RN). p_dp(x) = P(FN | x), p_rn(x) = P(RN | observed negative, x), z = 1 - p_rn.
With q the stream's distribution, q(x) = p(x)(1 + p_dp) / Z, q(y=1|x) = p(y=1|x) / (1 + p_dp) and
q(y=0|x) = (p_rn' + p_dp) / (1 + p_dp) with p_rn' = P(RN | x), so (ES-DFM, Yang et al. 2021, eq. 7-9)

    p(y=1|x) / q(y=1|x) = 1 + p_dp,        p(y=0|x) / q(y=0|x) = (1 + p_dp) p_rn.

Each method below states its weights; ``tests/delayed/test_methods.py`` checks them on hand-computed
values and checks that each weighted loss, in expectation over the stream, equals the true loss.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn.functional import logsigmoid, softplus

from recsci.delayed.auxiliary import AuxiliaryModel
from recsci.delayed.data import ClickLog
from recsci.delayed.models import FieldMLP
from recsci.delayed.streams import DELAYED_POSITIVE, FIRST, Records, StreamKind

EPS = 1e-6
WeightClip = Annotated[float, Field(gt=0.0)] | None
WaitHours = Annotated[float, Field(ge=0.0)] | None


# --- weights, as pure functions of (label, kind, probabilities) -----------------------------------------


def esdfm_weights(label: Tensor, p_dp: Tensor, p_rn: Tensor) -> tuple[Tensor, Tensor]:
    """ES-DFM: observed positives (IP and DP) w+ = 1 + p_dp; observed negatives w- = (1 + p_dp) * p_rn."""
    positive = label > 0.5
    w_pos = torch.where(positive, 1.0 + p_dp, torch.zeros_like(p_dp))
    w_neg = torch.where(positive, torch.zeros_like(p_dp), (1.0 + p_dp) * p_rn)
    return w_pos, w_neg


def fnw_weights(label: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
    """FNW (Ktena et al. 2019), stream with w = 0: w+ = 1 + p, w- = (1 - p)(1 + p), p = detached f(x)."""
    positive = label > 0.5
    w_pos = torch.where(positive, 1.0 + p, torch.zeros_like(p))
    w_neg = torch.where(positive, torch.zeros_like(p), (1.0 - p) * (1.0 + p))
    return w_pos, w_neg


def defer_weights(label: Tensor, p: Tensor, p_dp: Tensor) -> tuple[Tensor, Tensor]:
    """DEFER (Gu et al. 2021): every click appears twice, so q(x) = p(x) and q(y=1|x) = p - p_dp / 2:

    w+ = p / (p - p_dp / 2),   w- = (1 - p) / (1 - p + p_dp / 2).

    (One public implementation writes the first as ``p / p - 0.5 * p_dp``: operator precedence makes
    that 1 - p_dp / 2.) Denominators are floored at EPS; p is the detached model prediction.
    """
    positive = label > 0.5
    w_pos = p / torch.clamp(p - 0.5 * p_dp, min=EPS)
    w_neg = (1.0 - p) / torch.clamp(1.0 - p + 0.5 * p_dp, min=EPS)
    return torch.where(positive, w_pos, torch.zeros_like(p)), torch.where(
        positive, torch.zeros_like(p), w_neg
    )


def fsiw_weights(label: Tensor, p_observed_given_positive: Tensor, p_rn: Tensor) -> tuple[Tensor, Tensor]:
    """FSIW (Yasui et al. 2020), labels observed at elapsed e: w+ = 1 / P(S=1 | y=1, x, e),
    w- = P(y=0 | S=0, x, e)."""
    positive = label > 0.5
    w_pos = 1.0 / torch.clamp(p_observed_given_positive, min=EPS)
    return torch.where(positive, w_pos, torch.zeros_like(w_pos)), torch.where(
        positive, torch.zeros_like(p_rn), p_rn
    )


def defuse_weights(label: Tensor, kind: Tensor, z: Tensor, p_dp: Tensor) -> tuple[Tensor, Tensor]:
    """DEFUSE (Chen et al. 2022): observed negatives are split into FN (prob. z) and RN (1 - z).

    The true loss per x is (1 + p_dp) [q_ip l1 + q_dp l1 + q_rn l0]; the FN/DP positive term is shared
    between the DP record and the soft FN term, with weights summing to 1 + p_dp:

        IP: (1 + p_dp) l1     DP: 1 * l1     observed negative: z p_dp l1 + (1 - z)(1 + p_dp) l0.

    Giving DP records 1 + p_dp as well (as if they were IP) counts the delayed-positive term twice.
    """
    positive = label > 0.5
    delayed = kind == DELAYED_POSITIVE
    w_pos = torch.where(positive, torch.where(delayed, torch.ones_like(p_dp), 1.0 + p_dp), z * p_dp)
    w_neg = torch.where(positive, torch.zeros_like(z), (1.0 - z) * (1.0 + p_dp))
    return w_pos, w_neg


def label_correction_weights(label: Tensor, kind: Tensor, z: Tensor, p_dp: Tensor) -> tuple[Tensor, Tensor]:
    """Label correction: an observed negative gets the soft target z, the DP duplicate is dropped:

    IP: (1 + p_dp) l1     DP: 0     observed negative: (1 + p_dp) [z l1 + (1 - z) l0].
    """
    positive = label > 0.5
    delayed = kind == DELAYED_POSITIVE
    scale = 1.0 + p_dp
    w_pos = torch.where(positive, torch.where(delayed, torch.zeros_like(z), scale), scale * z)
    w_neg = torch.where(positive, torch.zeros_like(z), scale * (1.0 - z))
    return w_pos, w_neg


def split_positive_weights(
    label: Tensor, kind: Tensor, z: Tensor, scale: Tensor, soft_share: Tensor
) -> tuple[Tensor, Tensor]:
    """The family the waiting-window weights belong to: per click, a fake negative's positive credit
    ``scale`` is split between the soft term of its observed negative (share s) and its later DP record
    (1 - s); real negatives keep ``scale`` through 1 - z:

        IP: c l1     DP: (1 - s) c l1     observed negative: s c z l1 + (1 - z) c l0,   c = ``scale``.

    In expectation over one x (observed negatives are FN with probability z) the positive weight is
    c (p_ip + (1 - s) p_fn + s p_fn) = c p and the negative weight c (1 - p): unbiased for every s and
    every per-x c. ES-DFM is s = 0, c = 1 + p_dp; DEFUSE s = p_dp / (1 + p_dp) (the DP record keeps 1);
    label correction s = 1. The s = 0 and s = 1 ends differ in *when* the credit arrives: the DP record
    is a hard label, but only once the conversion happens (median 6 h later on the simulator); the soft
    term arrives with the click, as fresh as the flip model (and its engagement inputs) makes it. c = 1
    is the full importance weight p(x, y) / q(x, y) (q(x) = p(x)(1 + p_dp) / Z), which ES-DFM's
    per-record weights approximate with q(x) = p(x); it needs no p_dp at all.
    """
    positive = label > 0.5
    delayed = kind == DELAYED_POSITIVE
    w_pos = torch.where(
        positive, torch.where(delayed, (1.0 - soft_share) * scale, scale), soft_share * scale * z
    )
    w_neg = torch.where(positive, torch.zeros_like(z), (1.0 - z) * scale)
    return w_pos, w_neg


def weighted_bce(logits: Tensor, w_pos: Tensor, w_neg: Tensor) -> Tensor:
    """``mean(w_pos * -log sigmoid(f) + w_neg * -log(1 - sigmoid(f)))``, numerically stable."""
    return (w_pos * softplus(-logits) + w_neg * softplus(logits)).mean()


def dfm_nll(logits: Tensor, log_rate: Tensor, label: Tensor, elapsed: Tensor, delay: Tensor) -> Tensor:
    """DFM (Chapelle 2014): p = sigmoid(f), delay ~ Exp(lambda = exp(h)).

    converted with delay d:     -[log p + log lambda - lambda d]
    not converted by elapsed e: -log(1 - p + p exp(-lambda e))
    """
    rate = torch.exp(log_rate)
    positive = label > 0.5
    pos = -(logsigmoid(logits) + log_rate - rate * delay)
    neg = -torch.logaddexp(logsigmoid(-logits), logsigmoid(logits) - rate * elapsed)
    return torch.where(positive, pos, neg).mean()


# --- methods ------------------------------------------------------------------------------------------


class Method(nn.Module):
    """One way to learn from a delayed stream: its stream kind, auxiliary models and loss.

    ``stream=None`` means the method does not train after pretraining. ``wait`` overrides the protocol's
    waiting window when the method defines its own (FNW/FNC ingest every click at once).
    """

    stream: StreamKind | None = "waiting"
    wait: float | None = None
    needs: tuple[str, ...] = ()  # batch fields beyond x/label/kind

    def __init__(self, weight_clip: WeightClip = None) -> None:
        super().__init__()
        self.weight_clip = weight_clip

    @property
    def name(self) -> str:
        return type(self).__name__.lower()

    def auxiliaries(self) -> dict[str, AuxiliaryModel]:
        return {k: m for k, m in self.named_children() if isinstance(m, AuxiliaryModel)}

    def build(self, log: ClickLog) -> None:
        """Create parameters that depend on the data (called after the main model is built)."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the main optimiser updates besides the backbone (not the auxiliary models)."""
        return []

    @torch.no_grad()
    def prepare(self, log: ClickLog, records: Records) -> dict[str, Tensor]:
        """Per-record constants for the loss (auxiliary predictions), computed once per window."""
        return {}

    def weights(self, logits: Tensor, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        label = batch["label"]
        return label, 1.0 - label

    def loss(self, logits: Tensor, batch: dict[str, Tensor]) -> Tensor:
        w_pos, w_neg = self.weights(logits, batch)
        if self.weight_clip is not None:
            w_pos, w_neg = w_pos.clamp(max=self.weight_clip), w_neg.clamp(max=self.weight_clip)
        return weighted_bce(logits, w_pos.detach(), w_neg.detach())

    def probability(self, logits: Tensor) -> Tensor:
        """The conversion probability the model serves (FNC undoes its bias here)."""
        return torch.sigmoid(logits)

    has_warmup = False

    def warmup_loss(self, logits: Tensor, batch: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError


class Pretrained(Method):
    """Pretrained only: the model fitted on the first window, never updated."""

    stream = None


class Vanilla(Method):
    """Observed labels, no correction. ``stream``: the waiting-window stream with delayed positives
    re-ingested (default: the same records as ES-DFM), or ``observed`` (labels at window end, no duplicates)."""

    def __init__(
        self, stream: Literal["waiting", "observed"] = "waiting", weight_clip: WeightClip = None
    ) -> None:
        super().__init__(weight_clip)
        self.stream = stream

    @property
    def name(self) -> str:
        return "vanilla"


class Oracle(Method):
    """True (eventual) labels at click time: the ceiling, not a deployable method."""

    stream = "oracle"


class FNW(Method):
    """Fake negative weighting (Ktena et al. 2019): every click enters at once as a negative."""

    wait = 0.0

    def weights(self, logits: Tensor, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        return fnw_weights(batch["label"], torch.sigmoid(logits.detach()))


class FNC(Method):
    """Fake negative calibration (Ktena et al. 2019): learn b = q(y=1|x) on the w=0 stream with plain
    cross-entropy; serve p = b / (1 - b) (since q(y=1|x) = p / (1 + p))."""

    wait = 0.0

    def probability(self, logits: Tensor) -> Tensor:
        b = torch.sigmoid(logits)
        return torch.clamp(b / torch.clamp(1.0 - b, min=EPS), EPS, 1.0 - EPS)


class DFM(Method):
    """Delayed feedback model (Chapelle 2014): conversion and exponential delay learnt jointly on
    labels observed at training time. The delay head h(x) = log lambda(x) is a second FieldMLP."""

    stream = "observed"
    has_warmup = True

    def __init__(
        self, delay_hidden: tuple[Annotated[int, Field(ge=1)], ...] = (), weight_clip: WeightClip = None
    ):
        super().__init__(weight_clip)
        self.delay_hidden = tuple(delay_hidden)
        self.delay_net: FieldMLP | None = None

    def build(self, log: ClickLog) -> None:
        self.delay_net = FieldMLP(log.cardinalities, embed_dim=4, hidden=self.delay_hidden)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.delay_net.parameters())

    def loss(self, logits: Tensor, batch: dict[str, Tensor]) -> Tensor:
        log_rate = self.delay_net(batch["x"])
        return dfm_nll(logits, log_rate, batch["label"], batch["elapsed"], batch["delay"])

    def warmup_loss(self, logits: Tensor, batch: dict[str, Tensor]) -> Tensor:
        # After pretraining: fit the delay head with the conversion model held fixed.
        return self.loss(logits.detach(), batch)

    needs = ("elapsed", "delay")


class FSIW(Method):
    """Feedback shift importance weighting (Yasui et al. 2020) on labels observed at elapsed time e."""

    stream = "observed"

    def __init__(
        self, observed: AuxiliaryModel, flip: AuxiliaryModel, weight_clip: WeightClip = 10.0
    ) -> None:
        super().__init__(weight_clip)
        self.observed, self.flip = observed, flip

    @torch.no_grad()
    def prepare(self, log: ClickLog, records: Records) -> dict[str, Tensor]:
        return {
            "p_obs": self.observed.predict_records(log, records),
            "z": self.flip.predict_records(log, records),
        }

    def weights(self, logits: Tensor, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        return fsiw_weights(batch["label"], batch["p_obs"], 1.0 - batch["z"])


class DelayAndFlipMethod(Method):
    """Base of the methods weighted by a delay model ``p_dp(x)`` and a flip model ``z``: it holds both
    auxiliary models and predicts both for every training record (constants for the weights).

    ``wait_hours``: this method's waiting window (None: the protocol's ``wait_hours``). It sets when a
    click enters the stream, and so the elapsed time its p_dp and z are fitted for and read at: engagement
    that has not happened by then cannot shape the weight.
    """

    def __init__(
        self,
        dp: AuxiliaryModel,
        flip: AuxiliaryModel,
        weight_clip: WeightClip = None,
        wait_hours: WaitHours = None,
    ) -> None:
        super().__init__(weight_clip)
        self.dp, self.flip = dp, flip
        self.wait = wait_hours

    @torch.no_grad()
    def prepare(self, log: ClickLog, records: Records) -> dict[str, Tensor]:
        return {"p_dp": self.dp.predict_records(log, records), "z": self.flip.predict_records(log, records)}


class ESDFM(DelayAndFlipMethod):
    """Elapsed-time sampling DFM (Yang et al. 2021): waiting window w, importance weights with p_dp(x)
    and p_rn(x) = 1 - z(x) from auxiliary models fitted on the pretraining window."""

    def weights(self, logits: Tensor, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        return esdfm_weights(batch["label"], batch["p_dp"], 1.0 - batch["z"])


class DEFER(Method):
    """DEFER (Gu et al. 2021): waiting window plus real negatives (and in-window positives) re-ingested
    at the end of the attribution window; p from the detached model, p_dp from an auxiliary model."""

    stream = "waiting_real_negatives"

    def __init__(self, dp: AuxiliaryModel, weight_clip: WeightClip = 10.0) -> None:
        super().__init__(weight_clip)
        self.dp = dp

    @torch.no_grad()
    def prepare(self, log: ClickLog, records: Records) -> dict[str, Tensor]:
        return {"p_dp": self.dp.predict_records(log, records)}

    def weights(self, logits: Tensor, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        return defer_weights(batch["label"], torch.sigmoid(logits.detach()), batch["p_dp"])


class DEFUSE(DelayAndFlipMethod):
    """DEFUSE (Chen et al. 2022): label correction of observed negatives with z = P(FN | observed neg, x)."""

    def weights(self, logits: Tensor, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        return defuse_weights(batch["label"], batch["kind"], batch["z"], batch["p_dp"])


class EngagementIS(DelayAndFlipMethod):
    """Engagement-aware importance sampling: ES-DFM's algebra with p_rn replaced by 1 - z(x, e, g), where
    z = P(eventually converts | not converted by elapsed e, x, engagement g seen by e), fitted on
    counterfactual cuts of the matured pretraining window.

    ``form``: ``importance`` (ES-DFM weights), ``soft_label`` (DEFUSE weights with this z) or
    ``label_correction`` (soft target z, DP duplicates dropped). e and g reach only these constant
    weights, never the main model. All three forms are linear in z, so engagement pays off only when it has
    had time to happen before the weight is read: ``wait_hours`` (the config's default is 2 h, chosen on
    the simulator's val/*; experiments/delayed/README.md).

    All three are members of :func:`split_positive_weights` (share s of a fake negative's positive credit
    on the soft term, per-click scale c). ``soft_share`` (form ``soft_label`` only; None: DEFUSE's
    s = p_dp / (1 + p_dp)) sets s directly; ``weight_scale``: ``one_plus_p_dp`` (ES-DFM's c = 1 + p_dp)
    or ``one`` (c = 1, the full importance weight; with it DEFUSE's rule "the DP record keeps 1" is s = 0).
    """

    def __init__(
        self,
        dp: AuxiliaryModel,
        flip: AuxiliaryModel,
        form: Literal["importance", "soft_label", "label_correction"] = "importance",
        weight_clip: WeightClip = None,
        wait_hours: WaitHours = None,
        soft_share: Annotated[float, Field(ge=0.0, le=1.0)] | None = None,
        weight_scale: Literal["one_plus_p_dp", "one"] = "one_plus_p_dp",
    ) -> None:
        super().__init__(dp, flip, weight_clip, wait_hours)
        if soft_share is not None and form != "soft_label":
            raise ValueError(
                f"model.method.soft_share={soft_share} splits the soft-label form's positive credit; "
                f"form={form!r} fixes its own share (importance: 0, label_correction: 1)"
            )
        self.form, self.soft_share, self.weight_scale = form, soft_share, weight_scale

    @property
    def uses_p_dp(self) -> bool:
        """Whether the weights read p_dp: not with c = 1 and a share that does not depend on it."""
        return self.weight_scale == "one_plus_p_dp" or (self.form == "soft_label" and self.soft_share is None)

    def auxiliaries(self) -> dict[str, AuxiliaryModel]:
        # Without p_dp in the weights, the delayed-positive model is neither fitted nor updated.
        models = super().auxiliaries()
        return models if self.uses_p_dp else {k: m for k, m in models.items() if k != "dp"}

    @torch.no_grad()
    def prepare(self, log: ClickLog, records: Records) -> dict[str, Tensor]:
        if self.uses_p_dp:
            return super().prepare(log, records)
        # p_dp is not read: skip the delayed-positive model's pass (and, with an offset, a main-model pass).
        z = self.flip.predict_records(log, records)
        return {"p_dp": torch.zeros_like(z), "z": z}

    @property
    def name(self) -> str:
        return f"engagement_is[{self.form}]"

    def weights(self, logits: Tensor, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        label, p_dp, z = batch["label"], batch["p_dp"], batch["z"]
        # The forms' own weights equal split_positive_weights' (tested), but DEFUSE's share goes through
        # (c - 1) / c there, which is not bit-exact: the named functions keep the tables' rows reproducible.
        if self.soft_share is None and self.weight_scale == "one_plus_p_dp":
            if self.form == "importance":
                return esdfm_weights(label, p_dp, 1.0 - z)
            if self.form == "soft_label":
                return defuse_weights(label, batch["kind"], z, p_dp)
            return label_correction_weights(label, batch["kind"], z, p_dp)
        scale = 1.0 + p_dp if self.weight_scale == "one_plus_p_dp" else torch.ones_like(z)
        if self.form == "importance":
            share = torch.zeros_like(z)
        elif self.form == "label_correction":
            share = torch.ones_like(z)
        elif self.soft_share is None:  # DEFUSE's rule: the DP record keeps weight 1
            share = (scale - 1.0) / scale
        else:
            share = torch.full_like(z, self.soft_share)
        return split_positive_weights(label, batch["kind"], z, scale, share)


__all__ = [
    "DEFER",
    "DEFUSE",
    "DFM",
    "ESDFM",
    "FIRST",
    "FNC",
    "FNW",
    "FSIW",
    "EngagementIS",
    "Method",
    "Oracle",
    "Pretrained",
    "Vanilla",
]
