"""The auxiliary models' optional logit offset from a learner's p(x) (``offset``): its forms on hand-computed
cases, that it carries no gradient, that it never makes the main model a part of the auxiliary model, and
that the protocol wires it (and refuses it without its source)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from recsci.core.errors import ConfigError
from recsci.delayed.auxiliary import AuxiliaryModel, product_logit
from recsci.delayed.data import ClickLog
from recsci.delayed.methods import Vanilla
from recsci.delayed.models import FieldMLP
from recsci.delayed.module import DelayedFeedbackModule
from recsci.delayed.protocols import StreamingProtocol
from recsci.delayed.runner import Runner, served_logits
from recsci.delayed.simulator import DelayedFeedbackSimulator
from recsci.delayed.streams import Records, auxiliary_examples
from tests.delayed.test_runs import run_small

FLIP = dict(target="flip", signals="all", use_elapsed=True, cut="random", max_cut_hours=12.0)


@pytest.fixture(scope="module")
def log() -> ClickLog:
    return DelayedFeedbackSimulator(num_clicks=2000, days=4.0, attribution_hours=24.0, seed=5).load()


def flip_records(log: ClickLog) -> Records:
    return auxiliary_examples(
        log, "flip", 0.0, 72.0, 24.0, 0.25, "random", 2, 0.05, 12.0, np.random.default_rng(0)
    )


def zero_network(aux: AuxiliaryModel) -> None:
    """Make r(x, e, g) = 0 everywhere: the last layer's weights and bias at zero."""
    last = aux.net.mlp[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()


def test_a_zero_ratio_gives_z_equal_to_the_offsets_probability(log: ClickLog) -> None:
    aux = AuxiliaryModel(**FLIP, offset="main")
    aux.build(log)
    zero_network(aux)
    records = flip_records(log)
    offset = torch.linspace(-3.0, 2.0, len(records))
    aux.set_offset(lambda x: offset[: x.size(0)])
    torch.testing.assert_close(aux.predict_records(log, records), torch.sigmoid(offset))


def test_the_flip_offset_adds_to_the_network_logit(log: ClickLog) -> None:
    aux = AuxiliaryModel(**FLIP, offset="main")
    aux.build(log)
    aux.set_offset(lambda x: torch.full((x.size(0),), 1.5))
    inputs = aux.inputs(log, flip_records(log))
    plain = aux.net(inputs["x"], inputs["extra"])
    torch.testing.assert_close(aux(inputs["x"], inputs["extra"]), plain + 1.5)


def test_the_delayed_positive_offset_is_a_product_of_probabilities() -> None:
    a = torch.tensor([-20.0, -3.0, 0.0, 2.0, 0.0, 8.0])
    b = torch.tensor([-5.0, 1.0, 0.0, 4.0, 30.0, 8.0])
    expected = torch.tensor(
        [2.0611e-9 * 6.6929e-3, 0.047426 * 0.731059, 0.25, 0.880797 * 0.982014, 0.5, 0.99932]
    )
    torch.testing.assert_close(torch.sigmoid(product_logit(a, b)), expected, rtol=1e-4, atol=1e-12)
    # r -> +inf: every converter's delay exceeds the wait, so p_dp -> p(x).
    assert torch.sigmoid(product_logit(torch.tensor([0.7]), torch.tensor([40.0]))).item() == pytest.approx(
        torch.sigmoid(torch.tensor(0.7)).item(), rel=1e-6
    )
    a.requires_grad_(True)
    product_logit(a, b).sum().backward()
    assert torch.isfinite(a.grad).all()


def test_the_offset_carries_no_gradient_and_is_not_a_submodule(log: ClickLog) -> None:
    torch.manual_seed(0)
    main = FieldMLP(log.cardinalities, 4, (8,))
    aux = AuxiliaryModel(**FLIP, offset="main")
    aux.build(log)
    aux.set_offset(main)
    assert not any(p is q for p in aux.parameters() for q in main.parameters())
    aux.freeze()
    assert all(p.requires_grad for p in main.parameters())  # freezing the flip model leaves the main model
    aux.unfreeze()
    records = flip_records(log)
    columns = aux.inputs(log, records)
    assert not aux.offset_logits(columns["x"]).requires_grad
    columns["label"] = torch.from_numpy(records.label)
    before = [p.detach().clone() for p in main.parameters()]
    aux.update(columns, batch_size=64, max_steps=4, rng=np.random.default_rng(0))
    assert all(p.grad is None for p in main.parameters())
    assert all(torch.equal(p, q) for p, q in zip(main.parameters(), before, strict=True))
    assert "offset_fn" not in str(list(aux.state_dict()))


def test_an_offset_needs_a_source_and_a_target_with_a_p_factor(log: ClickLog) -> None:
    aux = AuxiliaryModel(**FLIP, offset="vanilla")
    aux.build(log)
    with pytest.raises(RuntimeError, match="set_offset"):
        aux.predict_records(log, flip_records(log))
    with pytest.raises(ValueError, match="observed_given_positive"):
        AuxiliaryModel(target="observed_given_positive", offset="main")


def test_the_served_logit_is_the_learners_probability(log: ClickLog) -> None:
    torch.manual_seed(0)
    learner = DelayedFeedbackModule(lambda cardinalities: FieldMLP(cardinalities, 4, (8,)), Vanilla())
    learner.build(log)
    x = torch.from_numpy(log.features[:100])
    torch.testing.assert_close(served_logits(learner)(x), learner(x).detach(), rtol=1e-4, atol=1e-4)
    assert learner.training  # read in eval mode, left as it was


def test_the_runner_follows_each_source(log: ClickLog) -> None:
    torch.manual_seed(0)
    main, vanilla = (
        DelayedFeedbackModule(lambda cardinalities: FieldMLP(cardinalities, 4, (8,)), Vanilla()) for _ in "ab"
    )
    for learner in (main, vanilla):
        learner.build(log)
    runner = Runner(StreamingProtocol(), SimpleNamespace(datamodule=None, module=main))
    auxiliaries = {"flip": AuxiliaryModel(**FLIP, offset="vanilla"), "dp": AuxiliaryModel("delayed_positive")}
    runner.attach_offsets(auxiliaries, {"main": main, "vanilla": vanilla})
    x = torch.from_numpy(log.features[:50])
    torch.testing.assert_close(auxiliaries["flip"].offset_fn(x), vanilla(x).detach(), rtol=1e-4, atol=1e-4)
    assert auxiliaries["dp"].offset_fn is None
    # A Vanilla method is its own Vanilla reference (the protocol builds none beside it).
    runner.module = vanilla
    runner.attach_offsets(auxiliaries, {"main": main, "vanilla": None})
    torch.testing.assert_close(auxiliaries["flip"].offset_fn(x), vanilla(x).detach(), rtol=1e-4, atol=1e-4)


def test_offsets_run_end_to_end_and_refuse_a_missing_source(tmp_path: Path) -> None:
    offsets = ["model.method.flip.offset=main", "model.method.dp.offset=main"]
    results = run_small(tmp_path, "model=delayed_engagement_is", *offsets, name="main")
    metrics = results["metrics"]
    assert results["status"] == "completed"
    assert 0.5 < metrics["test/auc"] <= 1.0 and 0.5 < metrics["test/flip/auc"] <= 1.0
    with pytest.raises(ConfigError, match="model.method.flip.offset"):
        run_small(
            tmp_path,
            "model=delayed_engagement_is",
            "model.method.flip.offset=vanilla",
            "protocol.references=[pretrained]",
            name="no_vanilla",
        )
    with pytest.raises(ConfigError, match="offset"):
        run_small(tmp_path, "model=delayed_engagement_is", "model.method.flip.offset=fresh", name="bad")
