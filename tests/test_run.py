"""End-to-end runs of the default experiment: outputs, determinism, resume, non-finite loss."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from recsci.core.errors import ConfigError, NonFiniteLossError
from recsci.core.run import run
from recsci.graph.module import LinkPredictionModule


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_default_run_writes_everything_and_returns_objective(make_config, tmp_path: Path) -> None:
    objective = run(make_config())
    run_dir = tmp_path / "run"
    results = read_metrics(run_dir)
    assert results["status"] == "completed"
    assert results["seed"] == 0
    assert results["wall_time_s"] > 0
    assert "git_commit" in results
    assert objective == results["metrics"]["val/auc"] == results["objective"]
    for split in ("val", "test"):
        for name in ("auc", "ap", "mrr", "hits@20", "direction_auc", "direction_acc"):
            assert 0.0 <= results["metrics"][f"{split}/{name}"] <= 1.0
    # A symmetric encoder with a dot-product decoder cannot tell u -> v from v -> u.
    assert results["metrics"]["test/direction_auc"] == pytest.approx(0.5)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert len(list((run_dir / "checkpoints").glob("epoch_*.ckpt"))) == 1
    assert (run_dir / "csv" / "version_0" / "metrics.csv").is_file()
    assert (run_dir / "config_resolved.yaml").is_file()


def test_the_model_learns_something(make_config) -> None:
    # Guards against a silently broken pipeline: a trained link predictor must beat chance clearly.
    objective = run(make_config("trainer.max_epochs=10", "data.dataset.num_nodes=600"))
    assert objective > 0.75


def test_same_seed_same_metrics(make_config, tmp_path: Path) -> None:
    run(make_config("seed=0", name="a"))
    run(make_config("seed=0", name="b"))
    first, second = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert first["metrics"] == second["metrics"]


def test_different_seed_different_metrics(make_config, tmp_path: Path) -> None:
    run(make_config("seed=0", name="a"))
    run(make_config("seed=1", name="b"))
    assert read_metrics(tmp_path / "a")["metrics"] != read_metrics(tmp_path / "b")["metrics"]


def test_null_seed_is_drawn_and_recorded(make_config, tmp_path: Path) -> None:
    run(make_config("seed=null", "trainer.max_epochs=1"))
    assert isinstance(read_metrics(tmp_path / "run")["seed"], int)


def test_sampled_minibatch_run(make_config, tmp_path: Path) -> None:
    objective = run(make_config("experiment=graph/synthetic_sage_sampled", "trainer.max_epochs=2"))
    assert 0.0 <= objective <= 1.0


def test_resume_continues_from_last_checkpoint(make_config, tmp_path: Path) -> None:
    run(make_config("trainer.max_epochs=2", "callbacks.early_stopping=null", name="first"))
    first = read_metrics(tmp_path / "first")
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    run(make_config("trainer.max_epochs=4", f"ckpt_path={last}", name="second"))
    second = read_metrics(tmp_path / "second")
    assert second["resumed_from"] == str(last)
    assert second["global_step"] == 2 * first["global_step"]


def test_resume_true_finds_the_interrupted_sibling_run(make_config, tmp_path: Path) -> None:
    run(make_config("trainer.max_epochs=1", name="interrupted"))
    interrupted = tmp_path / "interrupted"
    results = read_metrics(interrupted)
    results["status"] = "running"  # as a killed run leaves it
    (interrupted / "metrics.json").write_text(json.dumps(results))
    run(make_config("trainer.max_epochs=2", "resume=true", name="resumed"))
    assert read_metrics(tmp_path / "resumed")["resumed_from"] == str(
        interrupted / "checkpoints" / "last.ckpt"
    )


def test_resume_true_without_interrupted_run_is_a_clear_error(make_config) -> None:
    with pytest.raises(ConfigError, match="resume=true: no interrupted run"):
        run(make_config("resume=true"))


def test_missing_ckpt_path_is_a_clear_error(make_config, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ckpt_path=.*no such checkpoint"):
        run(make_config(f"ckpt_path={tmp_path / 'nope.ckpt'}"))


def test_nan_loss_stops_training_and_keeps_checkpoints(make_config, tmp_path: Path, monkeypatch) -> None:
    run(make_config("trainer.max_epochs=2", name="healthy"))
    checkpoints = tmp_path / "healthy" / "checkpoints"
    before = {p.name: p.read_bytes() for p in checkpoints.iterdir()}

    def nan_step(self, batch, batch_idx):
        return self.encoder(batch.x, batch.edge_index).source.sum() * torch.tensor(float("nan"))

    monkeypatch.setattr(LinkPredictionModule, "training_step", nan_step)
    resume_cfg = make_config("trainer.max_epochs=4", "resume=true", name="healthy")
    with pytest.raises(NonFiniteLossError, match="loss became nan.*intact"):
        run(resume_cfg)
    assert {p.name: p.read_bytes() for p in checkpoints.iterdir()} == before
    failed = read_metrics(tmp_path / "healthy")
    assert failed["status"] == "failed" and "NonFiniteLossError" in failed["error"]


def test_a_failed_evaluation_keeps_the_trained_model_and_says_how_to_evaluate_it(
    make_config, tmp_path: Path, monkeypatch
) -> None:
    # An evaluation that fails after a long fit (found on a GPU: the final validation crashed after 100
    # epochs) must not leave a record without the trained model: metrics.json names the best checkpoint
    # and the overrides that evaluate it without training again.
    import lightning.pytorch as pl

    original_validate = pl.Trainer.validate
    monkeypatch.setattr(
        pl.Trainer, "validate", lambda *args, **kwargs: (_ for _ in ()).throw(RuntimeError("boom"))
    )
    with pytest.raises(RuntimeError, match="boom"):
        run(make_config("trainer.max_epochs=2", name="broken"))
    failed = read_metrics(tmp_path / "broken")
    assert failed["status"] == "failed" and failed["epochs_completed"] == 2
    assert Path(failed["best_checkpoint"]).is_file()
    assert failed["evaluate_again"] == f"train=false ckpt_path={failed['best_checkpoint']}"

    monkeypatch.setattr(pl.Trainer, "validate", original_validate)
    run(make_config(*failed["evaluate_again"].split(), name="evaluated"))
    evaluated = read_metrics(tmp_path / "evaluated")
    assert evaluated["status"] == "completed" and 0.0 <= evaluated["metrics"]["test/auc"] <= 1.0


def test_unknown_optimized_metric_names_the_available_ones(make_config) -> None:
    with pytest.raises(ConfigError, match="optimized_metric='val/nope'.*val/auc"):
        run(make_config("optimized_metric=val/nope", "trainer.max_epochs=1"))


def test_a_run_stopped_by_sigterm_is_failed_and_exits_nonzero(
    make_config, tmp_path: Path, monkeypatch
) -> None:
    # Lightning turns SIGTERM into SystemExit() (status 0) at the next step; the run must record the failure
    # and exit 143 (128 + SIGTERM) so schedulers and shell loops see that it did not finish.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # never let a stray SIGTERM end pytest
    original_step = LinkPredictionModule.training_step

    def step_then_sigterm(self, batch, batch_idx):
        os.kill(os.getpid(), signal.SIGTERM)
        return original_step(self, batch, batch_idx)

    monkeypatch.setattr(LinkPredictionModule, "training_step", step_then_sigterm)
    try:
        with pytest.raises(SystemExit) as stopped:
            run(make_config("trainer.max_epochs=3", name="killed"))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.value.code == 128 + signal.SIGTERM
    failed = read_metrics(tmp_path / "killed")
    assert failed["status"] == "failed" and "SIGTERMException" in failed["error"]
