"""How a job reaches its trial: the reconnect path used when the launcher runs jobs elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from hydra.conf import HydraConf
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict, read_write

from hydra_plugins.recsci_optuna_sweeper._context import (
    STUDY_ENV,
    TRIAL_ID_ENV,
    TrialContextError,
    current_trial,
    live_study,
)


@pytest.fixture
def hydra_config(tmp_path: Path) -> Iterator[None]:
    """A minimal job-side Hydra config: what run_job sets in a launcher's worker process."""
    previous = HydraConfig.instance().cfg
    hydra_node = OmegaConf.structured(HydraConf)
    hydra_node.runtime.cwd = str(tmp_path)
    hydra_node.sweeper = {
        "storage": "sqlite:///study.db",  # relative to hydra.runtime.cwd
        "pruner": {"_target_": "optuna.pruners.ThresholdPruner", "upper": 1.0},
    }
    HydraConfig.instance().set_config(OmegaConf.create({"hydra": hydra_node}))
    yield
    HydraConfig.instance().cfg = previous


def test_outside_a_sweep_there_is_no_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STUDY_ENV, raising=False)
    monkeypatch.delenv(TRIAL_ID_ENV, raising=False)
    assert current_trial() is None


def test_job_in_another_process_reconnects_through_the_configured_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hydra_config: None
) -> None:
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}")
    asked = study.ask()
    monkeypatch.setenv(STUDY_ENV, "s")
    monkeypatch.setenv(TRIAL_ID_ENV, str(asked._trial_id))

    trial = current_trial()
    assert trial is not None and trial.number == asked.number
    trial.report(0.5, step=0)
    assert not trial.should_prune()  # the pruner comes from hydra.sweeper.pruner: threshold 1.0
    trial.report(2.0, step=1)
    assert trial.should_prune()
    assert study.trials[asked.number].intermediate_values == {0: 0.5, 1: 2.0}


def test_in_process_job_uses_the_live_study(monkeypatch: pytest.MonkeyPatch) -> None:
    study = optuna.create_study(study_name="mem")  # in-memory: only reachable in-process
    asked = study.ask()
    monkeypatch.setenv(STUDY_ENV, "mem")
    monkeypatch.setenv(TRIAL_ID_ENV, str(asked._trial_id))
    with live_study(study):
        trial = current_trial()
        assert trial is not None
        trial.report(1.0, step=0)
    assert study.trials[0].intermediate_values == {0: 1.0}


def test_in_memory_study_out_of_process_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, hydra_config: None
) -> None:
    with open_dict(HydraConfig.get()), read_write(HydraConfig.get()):
        HydraConfig.get().sweeper.storage = None
    monkeypatch.setenv(STUDY_ENV, "elsewhere")
    monkeypatch.setenv(TRIAL_ID_ENV, "0")
    with pytest.raises(TrialContextError, match=r"persistent hydra\.sweeper\.storage"):
        current_trial()
