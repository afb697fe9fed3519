"""Short end-to-end runs from the configs: one per estimator, determinism, artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsci.core.run import run
from recsci.uncertainty.apply_cli import main as apply_main

# Small and quick: 3,000 synthetic rows, 2 epochs, few bootstrap replicates and Optuna trials.
FAST = [
    "experiment=uncertainty/synthetic",
    "data.dataset.num_samples=3000",
    "trainer.max_epochs=2",
    "protocol.n_bootstrap=50",
    "protocol.rules.optuna_search.n_trials=10",
    "protocol.plots=false",
    "model.hidden=[16]",
    "data.batch_size=64",
    "protocol.primary_bound=0.4",
    "model.lr=0.02",
]


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.parametrize(
    "model",
    ["uncertainty_plain", "uncertainty_mc_dropout", "uncertainty_ensemble", "uncertainty_posterior_net"],
)
def test_each_estimator_runs_end_to_end(model: str, make_config, tmp_path: Path) -> None:
    extra = {"uncertainty_mc_dropout": ["model.mc_samples=5"], "uncertainty_ensemble": ["model.n_members=2"]}
    objective = run(make_config(*FAST, f"model={model}", *extra.get(model, []), fast=False))
    results = metrics(tmp_path / "run")
    assert results["status"] == "completed"
    m = results["metrics"]
    assert objective == m["val/exact_dp/recall@p0.6"]
    assert 0.5 < m["test/auc"] <= 1.0
    for rule in ("single_threshold", "reject_option", "mist", "ew_dpmt", "exact_dp", "optuna_search"):
        for bound in ("p0.4", "p0.5", "p0.6"):
            assert f"test/{rule}/recall@{bound}" in m and f"val/{rule}/recall@{bound}" in m
    if (
        model == "uncertainty_plain"
    ):  # no uncertainty: one bucket, every per-bucket rule is the single threshold
        assert m["test/exact_dp/recall@p0.5"] == m["test/single_threshold/recall@p0.5"]
    assert (tmp_path / "run" / "decision_rule.json").is_file()
    assert (tmp_path / "run" / "rule_table.md").is_file()


def test_same_seed_same_metrics_and_the_saved_rule_applies(make_config, tmp_path: Path) -> None:
    run(make_config(*FAST, "seed=3", name="a", fast=False))
    run(make_config(*FAST, "seed=3", "protocol.plots=true", name="b", fast=False))
    a, b = metrics(tmp_path / "a"), metrics(tmp_path / "b")
    assert a["metrics"] == b["metrics"]
    assert (tmp_path / "b" / "plots" / "positive_rate_by_bucket.png").is_file()
    assert (tmp_path / "b" / "plots" / "precision_recall.png").is_file()
    out = tmp_path / "decisions.csv"
    code = apply_main(
        [
            "--rule",
            str(tmp_path / "a" / "decision_rule.json"),
            "--input",
            str(tmp_path / "a" / "scored_test.csv"),
            "--output",
            str(out),
        ]
    )
    assert code == 0 and out.is_file()
