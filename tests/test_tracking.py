"""Tracking: W&B offline runs hold the config and the final metrics; TensorBoard works."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsci.core.run import run
from tests.wandb_offline import offline_run_summary


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline must be the default, not inherited
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))


def offline_run_dir(output_dir: Path) -> Path:
    (run_dir,) = (output_dir / "wandb").glob("offline-run-*")
    return run_dir


def test_wandb_offline_run_has_config_summary_and_tags(make_config, tmp_path: Path) -> None:
    cfg = make_config(
        "logger=wandb", "experiment_name=wandb_check", "tags=[graph,unit]", "trainer.max_epochs=1"
    )
    run(cfg)
    (run_file,) = offline_run_dir(tmp_path / "run").glob("run-*.wandb")
    recorded = offline_run_summary(run_file)
    final = json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]
    assert recorded["summary"]["test/auc"] == pytest.approx(final["test/auc"])
    assert recorded["summary"]["val/auc"] == pytest.approx(final["val/auc"])
    assert recorded["group"] == "wandb_check" and recorded["job_type"] == "graph"
    # Configured tags, then the dataset and model options chosen.
    assert recorded["tags"] == ["graph", "unit", "synthetic_products", "graphsage"]
    # The resolved Hydra config is the run config.
    assert recorded["config"]["model"]["lr"] == 0.01
    assert recorded["config"]["experiment_name"] == "wandb_check"
    # CSV logs are kept alongside whichever tracker is added.
    assert (tmp_path / "run" / "csv" / "version_0" / "metrics.csv").is_file()


def test_consecutive_jobs_get_their_own_wandb_runs(make_config, tmp_path: Path) -> None:
    # In a multirun all jobs share the process: each must finish its run so the next starts a new one.
    run(make_config("logger=wandb", "seed=0", "trainer.max_epochs=1", name="job0"))
    run(make_config("logger=wandb", "seed=1", "trainer.max_epochs=1", name="job1"))
    first, second = offline_run_dir(tmp_path / "job0"), offline_run_dir(tmp_path / "job1")
    assert first.name.split("-")[-1] != second.name.split("-")[-1]
    import wandb

    assert wandb.run is None


def test_tensorboard_logger_writes_events(make_config, tmp_path: Path) -> None:
    run(make_config("logger=tensorboard", "trainer.max_epochs=1"))
    assert list((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"))
