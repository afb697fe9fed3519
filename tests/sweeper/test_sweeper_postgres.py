"""Many workers on one PostgreSQL study. Needs a server: `.ci/start-postgres` starts one.

The server is taken from RECSCI_TEST_POSTGRES_URL
(default postgresql://postgres:postgres@127.0.0.1:5432/recsci_test); when it is not reachable the
tests are skipped, saying so.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from hydra_plugins.recsci_optuna_sweeper._storage import with_installed_driver

pytestmark = pytest.mark.postgres

RunApp = Callable[..., subprocess.CompletedProcess[str]]
StartApp = Callable[..., subprocess.Popen[bytes]]
DEFAULT_URL = "postgresql://postgres:postgres@127.0.0.1:5432/recsci_test"
POSTGRES_URL = os.environ.get("RECSCI_TEST_POSTGRES_URL", DEFAULT_URL)  # as a user writes it
DB_URL = with_installed_driver(POSTGRES_URL)  # what SQLAlchemy/optuna in this process get


def _unreachable_reason(url: str) -> str | None:
    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as error:  # driver missing, refused, bad credentials...
        return f"{type(error).__name__}: {str(getattr(error, 'orig', error)).strip().splitlines()[0]}"
    return None


_REASON = _unreachable_reason(DB_URL)
if _REASON is not None:
    pytest.skip(
        f"no PostgreSQL at RECSCI_TEST_POSTGRES_URL ({POSTGRES_URL.split('@')[-1]}): {_REASON}; "
        "run .ci/start-postgres to start one",
        allow_module_level=True,
    )


@pytest.fixture
def study_name() -> Iterator[str]:
    """A fresh study per test, deleted afterwards."""
    name = f"recsci-test-{uuid.uuid4().hex[:12]}"
    yield name
    with contextlib.suppress(KeyError):  # the test may have failed before creating it
        optuna.delete_study(study_name=name, storage=DB_URL)


def count(study: optuna.Study, state: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=(state,)))


def test_two_workers_share_the_budget_exactly(start_app: StartApp, tmp_path: Path, study_name: str) -> None:
    common = (
        "x=interval(-5,5)",
        "y=interval(-5,5)",
        "mode=sleepy",
        "sleep_s=0.3",  # long enough for the two workers' trials to interleave
        f"hydra.sweeper.storage={POSTGRES_URL}",
        f"hydra.sweeper.study_name={study_name}",
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.n_jobs=2",
    )
    workers = [start_app(*common, sweep_dir=tmp_path / f"worker{i}") for i in range(2)]
    outputs = [worker.communicate(timeout=180)[0].decode() for worker in workers]
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output

    study = optuna.load_study(study_name=study_name, storage=DB_URL)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 8
    unexpected_failures = [
        t for t in study.get_trials(states=(TrialState.FAIL,)) if not t.user_attrs.get("surplus")
    ]
    assert unexpected_failures == []
    assert count(study, TrialState.RUNNING) == 0
    params = {(t.params["x"], t.params["y"]) for t in complete}
    assert len(params) == 8  # all distinct
    assert len({t.number for t in complete}) == 8
    workers_seen = {t.user_attrs["worker"] for t in complete}
    assert len(workers_seen) == 2, workers_seen  # both workers ran trials of the shared study
    for t in complete:
        assert Path(t.user_attrs["output_dir"]).is_dir()


def test_killed_worker_trial_is_failed_then_retried(
    run_app: RunApp, start_app: StartApp, tmp_path: Path, study_name: str
) -> None:
    common = (
        "x=interval(-5,5)",
        f"hydra.sweeper.storage={POSTGRES_URL}",
        f"hydra.sweeper.study_name={study_name}",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.n_jobs=1",
        "hydra.sweeper.heartbeat_interval=1",
        "hydra.sweeper.grace_period=2",
    )
    worker = start_app(*common, "mode=sleepy", "sleep_s=120", sweep_dir=tmp_path / "killed")
    deadline = time.monotonic() + 60
    running: list[optuna.trial.FrozenTrial] = []
    while not running and time.monotonic() < deadline:
        time.sleep(0.3)
        try:
            study = optuna.load_study(study_name=study_name, storage=DB_URL)
            running = study.get_trials(states=(TrialState.RUNNING,))
        except KeyError:  # study not created yet
            continue
    assert running, "the worker never started a trial"
    time.sleep(0.5)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)

    run_app(*common, "mode=quadratic", sweep_dir=tmp_path / "rerun")

    study = optuna.load_study(study_name=study_name, storage=DB_URL)
    assert count(study, TrialState.COMPLETE) == 3
    assert count(study, TrialState.RUNNING) == 0
    killed = study.trials[running[0].number]
    assert killed.state == TrialState.FAIL
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert [t.state for t in retries] == [TrialState.COMPLETE]
    assert retries[0].params == killed.params
