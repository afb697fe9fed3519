"""End-to-end runs from the real config tree: every method, both protocols, seeding, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsci.core.errors import ConfigError
from recsci.core.run import run
from tests.conftest import CONFIG_DIR, compose_config

METHODS = sorted(p.stem for p in (CONFIG_DIR / "model").glob("delayed_*.yaml"))

# No loggers, progress bars or summaries: these runs are checked through metrics.json only.
QUIET = ["logger=none", "trainer.enable_progress_bar=false", "callbacks.model_summary=null"]

# A small simulated stream: 6.5 days, 2 of pretraining, 24-hour intervals (1 validation, 2 test).
SMALL = [
    "experiment=delayed/sim_streaming",
    "data.source.num_clicks=6000",
    "data.source.days=6.5",
    "protocol.pretrain_hours=48",
    "protocol.interval_hours=24",
    "protocol.val_intervals=1",
    "protocol.aux_maturity_hours=12",
    "protocol.pretrain_epochs=1",
    *QUIET,
]


def run_small(tmp_path: Path, *overrides: str, name: str = "run") -> dict:
    run(compose_config([*SMALL, *overrides], output_dir=tmp_path / name))
    return json.loads((tmp_path / name / "metrics.json").read_text())


def test_there_is_a_config_per_method() -> None:
    expected = {"vanilla", "oracle", "pretrained", "dfm", "fnw", "fnc", "fsiw", "esdfm", "defer", "defuse"}
    assert {f"delayed_{m}" for m in expected | {"engagement_is"}} <= set(METHODS)


@pytest.mark.parametrize("model", METHODS)
def test_each_method_runs_end_to_end(model: str, tmp_path: Path) -> None:
    results = run_small(tmp_path, f"model={model}", "protocol.references=[pretrained]")
    metrics = results["metrics"]
    assert results["status"] == "completed"
    for split in ("val", "test"):
        assert 0.5 < metrics[f"{split}/auc"] <= 1.0
        assert 0.0 < metrics[f"{split}/nll"] < 1.0
        assert 0.0 <= metrics[f"{split}/pr_auc"] <= 1.0
    assert results["objective"] == metrics["val/nll"]
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file() or model == "delayed_pretrained"


def test_references_ri_and_flip_calibration(tmp_path: Path) -> None:
    results = run_small(tmp_path, "model=delayed_engagement_is")
    metrics = results["metrics"]
    for key in (
        "test/vanilla/auc",
        "test/oracle/auc",
        "test/pretrained/auc",
        "test/truth/auc",
        "test/ri_auc",
    ):
        assert key in metrics
    assert metrics["test/ri_auc"] == pytest.approx(
        (metrics["test/auc"] - metrics["test/vanilla/auc"])
        / (metrics["test/oracle/auc"] - metrics["test/vanilla/auc"])
    )
    # The flip model with engagement, and its twin without, on the stream's observed negatives.
    assert metrics["test/flip/auc"] > metrics["test/flip_no_engagement/auc"]
    assert "test/flip" in results["flip_calibration"]


def test_same_seed_same_metrics(tmp_path: Path) -> None:
    first = run_small(tmp_path, "model=delayed_esdfm", "seed=3", "protocol.references=[]", name="a")
    second = run_small(tmp_path, "model=delayed_esdfm", "seed=3", "protocol.references=[]", name="b")
    assert first["metrics"] == second["metrics"]


def test_batch_protocol(tmp_path: Path) -> None:
    overrides = [o for o in SMALL if not o.startswith("protocol.")]
    run(
        compose_config(
            [
                *overrides,
                "protocol=delayed_batch",
                "protocol.pretrain_hours=48",
                "protocol.cut_hours=72",
                "protocol.val_hours=24",
                "protocol.test_hours=24",
                "protocol.epochs=1",
                "protocol.pretrain_epochs=1",
                "protocol.aux_maturity_hours=12",
                "model=delayed_defer",
            ],
            output_dir=tmp_path / "run",
        )
    )
    results = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.5 < results["metrics"]["test/auc"] <= 1.0 and results["metrics"]["test/clicks"] > 0


def test_shipped_batch_experiment_fits_its_simulated_log(tmp_path: Path) -> None:
    # experiment=delayed/sim_batch tests on days 9-10 of a 10-day log: its last click falls just short of
    # 240 h, and the window must still count as inside the log.
    run(
        compose_config(
            [
                "experiment=delayed/sim_batch",
                "data.source.num_clicks=6000",
                "protocol.epochs=1",
                "protocol.pretrain_epochs=1",
                "protocol.references=[]",
                *QUIET,
            ],
            output_dir=tmp_path / "run",
        )
    )
    results = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert results["status"] == "completed" and results["metrics"]["test/clicks"] > 0
    with pytest.raises(ConfigError, match="protocol.test_hours"):
        run(
            compose_config(
                ["experiment=delayed/sim_batch", "data.source.num_clicks=6000", "protocol.test_hours=49"],
                output_dir=tmp_path / "too_long",
            )
        )


def test_a_timeline_longer_than_the_data_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="streaming intervals"):
        run_small(tmp_path, "protocol.num_intervals=50")


def test_ranges_are_checked_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="protocol.wait_hours"):
        run_small(tmp_path, "protocol.wait_hours=-1")
    with pytest.raises(ConfigError, match="model.method.flip.cuts_per_example"):
        run_small(tmp_path, "model=delayed_engagement_is", "model.method.flip.cuts_per_example=0")


def test_protocol_needs_delayed_model_and_data(tmp_path: Path) -> None:
    cfg = compose_config(["protocol=streaming", "logger=none"], output_dir=tmp_path / "x")
    with pytest.raises(ConfigError, match="delayed-feedback model and data"):
        run(cfg)
