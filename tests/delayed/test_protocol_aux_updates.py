"""Streaming updates of the auxiliary models: what they may see, how much they train, how they are configured."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from recsci.core.errors import ConfigError
from recsci.delayed import runner as runner_module
from recsci.delayed.auxiliary import AuxiliaryModel
from recsci.delayed.data import ClickLog
from recsci.delayed.models import FieldMLP
from recsci.delayed.protocols import StreamingProtocol
from recsci.delayed.runner import Runner
from recsci.delayed.simulator import DelayedFeedbackSimulator
from tests.delayed.test_runs import run_small

MATURITY, PRETRAIN_END = 12.0, 48.0
AUXILIARIES = {
    "dp": dict(target="delayed_positive"),
    "flip": dict(target="flip", signals="all", use_elapsed=True, cut="random", max_cut_hours=12.0),
    # With a logit offset from a main model (a fixed network here: the offset path must add no label).
    "dp_offset": dict(target="delayed_positive", offset="main"),
    "flip_offset": dict(
        target="flip", signals="all", use_elapsed=True, cut="random", max_cut_hours=12.0, offset="main"
    ),
    # With the label's horizon as an input (read from the update time: it must add no label either).
    "dp_horizon": dict(target="delayed_positive", label_horizon=True),
    "flip_horizon": dict(
        target="flip", signals="all", use_elapsed=True, cut="random", max_cut_hours=12.0, label_horizon=True
    ),
}


@pytest.fixture(scope="module")
def log() -> ClickLog:
    return DelayedFeedbackSimulator(num_clicks=4000, days=6.0, attribution_hours=24.0, seed=3).load()


def known_at(log: ClickLog, time: float) -> ClickLog:
    """The log as known at ``time``: later conversions and engagement are erased (inf)."""
    copy_ = log.subset(np.arange(len(log)))
    copy_.conv_ts = np.where(log.conv_ts <= time, log.conv_ts, np.inf)
    copy_.engagement_ts = np.where(log.engagement_ts <= time, log.engagement_ts, np.inf)
    return copy_


def runner_for(log: ClickLog, **protocol: object) -> Runner:
    """A runner positioned after pretraining on [0, 48) h, auxiliary clicks used up to 48 - maturity."""
    settings = dict(pretrain_hours=PRETRAIN_END, interval_hours=12.0, aux_maturity_hours=MATURITY)
    runner = Runner(
        StreamingProtocol(**{**settings, **protocol}), SimpleNamespace(datamodule=None, module=None)
    )
    runner.log, runner.pretrain_end = log, PRETRAIN_END
    runner.aux_matured_until = PRETRAIN_END - MATURITY
    return runner


def fresh_auxiliary(log: ClickLog, name: str) -> AuxiliaryModel:
    torch.manual_seed(0)
    aux = AuxiliaryModel(**AUXILIARIES[name])
    aux.build(log)
    if aux.offset != "none":
        aux.set_offset(FieldMLP(log.cardinalities, 4, (8,)).requires_grad_(False))
    return aux


def parameters(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def updated(log: ClickLog, aux: AuxiliaryModel, observe: float) -> torch.Tensor:
    """Parameters of a copy of ``aux`` after one update at ``observe`` on ``log`` (fixed seeds)."""
    aux = copy.deepcopy(aux)
    runner_for(log, aux_update_steps=None, aux_update_batch_size=64).update_auxiliaries(
        {"aux": aux}, 0.25, np.random.default_rng(0), observe
    )
    return parameters(aux)


@pytest.mark.parametrize("name", sorted(AUXILIARIES))
def test_an_aux_update_sees_no_label_from_the_future(log: ClickLog, name: str) -> None:
    # Fails if an update at time t reads any conversion or engagement after t: erasing everything after t
    # must leave the updated model unchanged.
    aux, observe = fresh_auxiliary(log, name), 72.0
    before = parameters(aux)
    after = updated(log, aux, observe)
    assert not torch.equal(after, before)
    torch.testing.assert_close(updated(known_at(log, observe), aux, observe), after, rtol=0, atol=0)
    # The control: labels that were observable by t do shape the update (erasing them changes it).
    assert not torch.equal(updated(known_at(log, observe - 6.0), aux, observe), after)


def test_each_update_uses_the_clicks_matured_since_the_last(log: ClickLog, monkeypatch) -> None:
    spans = []

    def spy(log_, target, first, observe, maturity, *args):
        spans.append((first, observe - maturity))
        return original(log_, target, first, observe, maturity, *args)

    original = runner_module.auxiliary_examples
    monkeypatch.setattr(runner_module, "auxiliary_examples", spy)
    runner, aux = runner_for(log), fresh_auxiliary(log, "dp")
    for observe in (60.0, 72.0, 96.0):
        runner.update_auxiliaries({"dp": aux}, 0.25, np.random.default_rng(0), observe)
    assert spans == [(36.0, 48.0), (48.0, 60.0), (60.0, 84.0)]


def test_the_update_step_budget_and_the_optimiser_carry_over(log: ClickLog) -> None:
    aux = fresh_auxiliary(log, "flip")
    optimizer = aux.configure_optimizers()
    calls = []
    aux.net.register_forward_hook(lambda module, inputs, output: calls.append(output.size(0)))
    columns = runner_for(log).auxiliary_columns(aux, 0.25, np.random.default_rng(0), 0.0, 72.0)
    rows = columns["label"].size(0)
    assert rows > 200
    aux.update(columns, batch_size=50, max_steps=3, rng=np.random.default_rng(0))
    assert calls == [50, 50, 50]
    assert aux.configure_optimizers() is optimizer
    steps = {float(state["step"]) for state in optimizer.state.values()}
    assert steps == {3.0}
    calls.clear()
    aux.update(columns, batch_size=50, max_steps=None, rng=np.random.default_rng(1))
    assert sum(calls) == rows and len(calls) == -(-rows // 50)
    assert {float(state["step"]) for state in optimizer.state.values()} == {3.0 + len(calls)}


def test_updates_follow_the_cadence(tmp_path: Path, monkeypatch) -> None:
    observed = []
    original = Runner.update_auxiliaries

    def spy(self, auxiliaries, wait, rng, observe):
        observed.append(observe)
        return original(self, auxiliaries, wait, rng, observe)

    monkeypatch.setattr(Runner, "update_auxiliaries", spy)
    common = ["model=delayed_esdfm", "protocol.references=[]", "protocol.flip_diagnostics=false"]
    run_small(tmp_path, *common, "protocol.num_intervals=3", name="every")
    assert observed == [72.0, 96.0, 120.0]  # the end of each 24 h training window after 48 h of pretraining
    observed.clear()
    run_small(tmp_path, *common, "protocol.num_intervals=3", "protocol.aux_update_every=2", name="second")
    assert observed == [96.0]
    observed.clear()
    run_small(tmp_path, *common, "protocol.num_intervals=3", "protocol.aux_updates=false", name="frozen")
    assert observed == []


@pytest.mark.parametrize("key", ["aux_update_every", "aux_update_steps", "aux_update_batch_size"])
def test_update_settings_are_checked_at_start_up(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError, match=f"protocol.{key}"):
        run_small(tmp_path, f"protocol.{key}=0")


def test_the_label_horizon_is_the_labels_age_in_training_and_the_window_in_predictions(log: ClickLog) -> None:
    aux = fresh_auxiliary(log, "flip_horizon")
    observe = 72.0
    rng = np.random.default_rng(0)
    records = runner_module.auxiliary_examples(
        log, "flip", 0.0, observe, MATURITY, 0.25, "random", 2, 0.05, 12.0, rng
    )
    columns = runner_for(log).auxiliary_columns(aux, 0.25, np.random.default_rng(0), 0.0, observe)
    age = observe - log.click_ts[records.index]
    # Clicks of [0, 60) h read at 72 h are 12-72 h old; the last extra input is that age, capped at the
    # attribution window (24 h in this log).
    assert columns["extra"].size(1) == 1 + 2 + 1  # elapsed, two signals, horizon
    np.testing.assert_allclose(columns["extra"][:, -1].numpy(), np.log1p(np.minimum(age, 24.0)), rtol=1e-6)
    assert age.max() > 24.0  # some clicks are older than the window: capped there
    predicted = aux.inputs(log, records)["extra"][:, -1].numpy()
    np.testing.assert_allclose(predicted, np.log1p(24.0), rtol=1e-6)
    # Without the flag nothing is added.
    plain = fresh_auxiliary(log, "flip")
    assert plain.inputs(log, records)["extra"].size(1) == 3


def test_the_label_horizon_needs_a_censored_label() -> None:
    with pytest.raises(ValueError, match="label_horizon"):
        AuxiliaryModel(target="observed_given_positive", use_elapsed=True, cut="random", label_horizon=True)
