"""End-to-end sweeps of the tiny app (tests/sweeper/app) through `hydra/sweeper=optuna`."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

RunApp = Callable[..., subprocess.CompletedProcess[str]]
StartApp = Callable[..., subprocess.Popen[bytes]]
SPACE = ("x=interval(-5,5)", "y=range(-3,3)", "choice=a,b,c")


def load_results(sweep_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())


def states(study: optuna.Study) -> dict[str, int]:
    counts = {state.name: 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] += 1
    return counts


def load_study(storage: str | optuna.storages.BaseStorage, name: str = "my_app") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


def journal(path: Path) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def test_in_memory_sweep_runs_exactly_n_trials_and_best_overrides_rerun(
    run_app: RunApp, tmp_path: Path, app_dir: Path, app_env: dict[str, str]
) -> None:
    run_app(*SPACE, "hydra.sweeper.n_trials=6", "hydra.sweeper.n_jobs=2", "hydra.sweeper.sampler.seed=1")
    sweep_dir = tmp_path / "sweep"
    results = load_results(sweep_dir)
    assert results["trial_counts"]["COMPLETE"] == 6
    assert sum(results["trial_counts"].values()) == 6
    job_dirs = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())
    assert job_dirs == ["0", "1", "2", "3", "4", "5"]  # one output dir per trial, named by trial number

    # best_overrides.txt reruns the best trial: a plain (non-sweep) run of the app with those
    # overrides reproduces best_value (the app writes it to metrics.json in its run dir).
    best_overrides = shlex.split((sweep_dir / "best_overrides.txt").read_text())
    assert sorted(o.split("=")[0] for o in best_overrides) == ["choice", "x", "y"]
    rerun_dir = tmp_path / "rerun"
    subprocess.run(
        [sys.executable, str(app_dir / "my_app.py"), f"hydra.run.dir={rerun_dir}", *best_overrides],
        cwd=tmp_path,
        env=app_env,
        check=True,
        capture_output=True,
    )
    rerun_loss = json.loads((rerun_dir / "metrics.json").read_text())["metrics"]["loss"]
    assert rerun_loss == pytest.approx(results["best_value"])


@pytest.mark.parametrize("reuse", [True, False])
def test_repeated_proposals_reuse_the_complete_twin(run_app: RunApp, tmp_path: Path, reuse: bool) -> None:
    # Two categorical values, six trials: the sampler must repeat itself at least four times.
    run_app(
        "choice=a,b",
        "y=range(0,1)",
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.n_jobs=1",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=0",
        f"hydra.sweeper.reuse_duplicates={str(reuse).lower()}",
        "hydra.sweeper.storage=study.log",
    )
    study = load_study(journal(tmp_path / "study.log"))
    assert states(study)["COMPLETE"] == 6
    job_dirs = [p for p in (tmp_path / "sweep").iterdir() if p.is_dir()]
    twins = [trial for trial in study.trials if "duplicate_of" in trial.user_attrs]
    if not reuse:
        assert len(job_dirs) == 6 and not twins
        return
    # One job per distinct (choice, y), every other trial closed with its twin's value and output dir.
    distinct = {tuple(sorted(trial.params.items())) for trial in study.trials}
    assert len(job_dirs) == len(distinct) <= 4
    assert len(twins) == 6 - len(distinct) >= 2
    for trial in twins:
        original = study.trials[trial.user_attrs["duplicate_of"]]
        assert original.number < trial.number and "duplicate_of" not in original.user_attrs
        assert original.params == trial.params
        assert trial.value == original.value
        assert trial.user_attrs["output_dir"] == original.user_attrs["output_dir"]


def test_sqlite_resume_continues_to_the_total_budget(run_app: RunApp, tmp_path: Path) -> None:
    storage = "sqlite:///study.db"  # relative: resolved against the launch directory (tmp_path)
    run_app(*SPACE, f"hydra.sweeper.storage={storage}", "hydra.sweeper.n_trials=4", sweep_dir=tmp_path / "s1")
    run_app(*SPACE, f"hydra.sweeper.storage={storage}", "hydra.sweeper.n_trials=6", sweep_dir=tmp_path / "s2")

    study = load_study(f"sqlite:///{tmp_path / 'study.db'}")
    assert states(study)["COMPLETE"] == 6
    assert len(study.trials) == 6
    for trial in study.trials:
        attrs = trial.user_attrs
        assert Path(attrs["output_dir"]).is_dir()
        assert Path(attrs["output_dir"]).name == str(trial.number)
        assert sorted(o.split("=")[0] for o in attrs["overrides"]) == ["choice", "x", "y"]
        # the app writes metrics.json {"metrics": {...}} into its output dir
        assert attrs["metrics"]["loss"] == pytest.approx(trial.value)
        assert attrs["metrics"]["double_loss"] == pytest.approx(2 * trial.value)
    assert load_results(tmp_path / "s2")["trial_counts"]["COMPLETE"] == 6


def test_journal_storage(run_app: RunApp, tmp_path: Path) -> None:
    run_app(*SPACE, "hydra.sweeper.storage=journal:runs/study.txt", "hydra.sweeper.n_trials=3")
    study = load_study(journal(tmp_path / "runs" / "study.txt"))
    assert states(study)["COMPLETE"] == 3


def test_multi_objective_writes_the_pareto_front(run_app: RunApp, tmp_path: Path) -> None:
    run_app(
        *SPACE,
        "mode=multi",
        "hydra.sweeper.direction=[minimize,maximize]",
        "hydra.sweeper.n_trials=6",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=3",
    )
    results = load_results(tmp_path / "sweep")
    assert results["directions"] == ["minimize", "maximize"]
    front = results["pareto_front"]
    assert 1 <= len(front) <= 6
    assert all(len(solution["values"]) == 2 for solution in front)
    lines = (tmp_path / "sweep" / "best_overrides.txt").read_text().splitlines()
    assert lines == [solution["overrides"] for solution in front]


def test_dict_return_uses_the_objective_key_and_records_metrics(run_app: RunApp, tmp_path: Path) -> None:
    run_app(
        *SPACE,
        "mode=dict",
        "hydra.sweeper.objective=loss",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.storage=study.log",
    )
    study = load_study(journal(tmp_path / "study.log"))
    assert states(study)["COMPLETE"] == 2
    for trial in study.trials:
        assert trial.user_attrs["metrics"]["loss"] == pytest.approx(trial.value)
        assert trial.user_attrs["metrics"]["x"] == pytest.approx(trial.params["x"])


def test_failed_trials_are_recorded_and_retried_with_the_same_params(run_app: RunApp, tmp_path: Path) -> None:
    # flaky mode: the first attempt for each x raises; the retry (same params) succeeds.
    run_app(
        "x=interval(-5,5)",
        "mode=flaky",
        f"marker_dir={tmp_path / 'markers'}",
        "hydra.sweeper.storage=sqlite:///study.db",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.max_retries_failed=1",
    )
    study = load_study(f"sqlite:///{tmp_path / 'study.db'}")
    failed = study.get_trials(states=(TrialState.FAIL,))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3
    assert len(failed) == 3
    for trial in failed:
        assert "flaky failure" in trial.user_attrs["error"]
        retries = [t for t in complete if t.system_attrs.get("failed_trial") == trial.number]
        assert len(retries) == 1 and retries[0].params == trial.params
        assert "error" not in retries[0].user_attrs


@pytest.mark.parametrize(
    ("overrides", "expected", "runs_trials"),
    [
        (
            ("hydra.sweeper.sampler._target_=optuna.samplers.NopeSampler",),
            ["hydra.sweeper.sampler._target_", "optuna.samplers.NopeSampler", "optuna.samplers.TPESampler"],
            False,
        ),
        (
            ("+hydra.sweeper.pruner._target_=optuna.pruners.Nope",),
            ["hydra.sweeper.pruner._target_", "optuna.pruners.MedianPruner"],
            False,
        ),
        (("+hydra.sweeper.params.w='tag(log, interval(0, 1))'",), ["hydra.sweeper.params.w"], False),
        (("+hydra.sweeper.params.w='interval(0.1'",), ["hydra.sweeper.params.w", "cannot parse"], False),
        (
            ("hydra.sweeper.storage=postgresql://recsci:hunter2@127.0.0.1:1/nodb",),
            ["hydra.sweeper.storage", "postgresql://recsci:***@127.0.0.1:1/nodb"],
            False,
        ),
        (("hydra.sweeper.direction=upward",), ["hydra.sweeper.direction"], False),
        (("mode=none",), ["must return the optimized metric"], True),
        (("mode=multi",), ["returned 2 value(s)", "hydra.sweeper.direction"], True),
    ],
    ids=["sampler", "pruner", "log-of-zero", "unparsable", "storage", "direction", "none-return", "arity"],
)
def test_bad_input_fails_with_an_error_naming_the_key(
    run_app: RunApp, tmp_path: Path, overrides: tuple[str, ...], expected: list[str], runs_trials: bool
) -> None:
    process = run_app(*SPACE, *overrides, "hydra.sweeper.n_trials=4", check=False)
    output = process.stdout + process.stderr
    assert process.returncode != 0
    for fragment in expected:
        assert fragment in output, output
    assert "hunter2" not in output
    job_dirs = (
        [p for p in (tmp_path / "sweep").glob("*") if p.is_dir()] if (tmp_path / "sweep").exists() else []
    )
    # start-up errors come before any trial; result errors stop after the first batch (n_jobs=2)
    assert len(job_dirs) == (2 if runs_trials else 0)


def wait_for_running_trial(load: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if load().get_trials(states=(TrialState.RUNNING,)):
                return
        except Exception:  # the study may not exist yet
            pass
        time.sleep(0.2)
    raise AssertionError("no trial started running")


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_killed_worker_trial_is_failed_then_retried_on_rerun(
    run_app: RunApp, start_app: StartApp, tmp_path: Path, kind: str
) -> None:
    if kind == "sqlite":
        storage_override = "hydra.sweeper.storage=sqlite:///study.db"

        def load() -> optuna.Study:
            return load_study(f"sqlite:///{tmp_path / 'study.db'}")
    else:
        storage_override = "hydra.sweeper.storage=study.journal"

        def load() -> optuna.Study:
            return load_study(journal(tmp_path / "study.journal"))

    common = (
        "x=interval(-5,5)",
        storage_override,
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=1",
        "hydra.sweeper.heartbeat_interval=1",
        "hydra.sweeper.grace_period=2",
    )
    worker = start_app(*common, "mode=sleepy", "sleep_s=120", sweep_dir=tmp_path / "killed")
    try:
        wait_for_running_trial(load)
        time.sleep(0.5)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    killed = load().get_trials(states=(TrialState.RUNNING,))
    assert len(killed) == 1

    run_app(*common, "mode=quadratic", sweep_dir=tmp_path / "rerun")

    study = load()
    assert states(study)["COMPLETE"] == 2
    assert states(study)["RUNNING"] == 0
    stale = study.trials[killed[0].number]
    assert stale.state == TrialState.FAIL
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == stale.number]
    assert len(retried) == 1
    assert retried[0].state == TrialState.COMPLETE
    assert retried[0].params == stale.params


def test_pruning_with_a_lightning_model_marks_trials_pruned(run_app: RunApp, tmp_path: Path) -> None:
    run_app(
        "mode=lightning",
        "epochs=4",
        "x=range(1,7)",
        "hydra/sweeper/sampler=bruteforce",
        "hydra.sweeper.sampler.seed=0",
        "+hydra.sweeper.pruner._target_=optuna.pruners.MedianPruner",
        "+hydra.sweeper.pruner.n_startup_trials=1",
        "+hydra.sweeper.pruner.n_warmup_steps=0",
        "hydra.sweeper.storage=sqlite:///study.db",
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.n_jobs=1",
        timeout=240,
    )
    study = load_study(f"sqlite:///{tmp_path / 'study.db'}")
    counts = states(study)
    assert counts["COMPLETE"] + counts["PRUNED"] == 6
    assert counts["FAIL"] == 0
    assert counts["PRUNED"] >= 1
    assert counts["COMPLETE"] >= 1
    best_complete_x = min(t.params["x"] for t in study.get_trials(states=(TrialState.COMPLETE,)))
    for trial in study.get_trials(states=(TrialState.PRUNED,)):
        step = trial.user_attrs["pruned_at_step"]
        assert step in trial.intermediate_values  # reported by the callback, then pruned there
        # val_loss grows with x at every epoch, so only trials worse than a finished one get pruned
        assert trial.params["x"] > best_complete_x
    assert load_results(tmp_path / "sweep")["trial_counts"]["PRUNED"] == counts["PRUNED"]
