"""Helpers for the optuna-sweeper tests: run the tiny app under tests/sweeper/app in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = Path(__file__).resolve().parent / "app" / "my_app.py"
SRC = REPO_ROOT / "src"

RunApp = Callable[..., subprocess.CompletedProcess[str]]


def _app_env() -> dict[str, str]:
    """Environment for the app: our src/ importable even before the package is installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env["HYDRA_FULL_ERROR"] = "1"
    return env


def app_command(sweep_dir: Path, overrides: Sequence[str]) -> list[str]:
    return [
        sys.executable,
        str(APP),
        "--multirun",
        "hydra/sweeper=optuna",
        f"hydra.sweep.dir={sweep_dir}",
        *overrides,
    ]


@pytest.fixture
def run_app(tmp_path: Path) -> RunApp:
    """Run one sweep of the tiny app (cwd = tmp_path); returns the completed process."""

    def run(
        *overrides: str, sweep_dir: Path | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        target = sweep_dir or tmp_path / "sweep"
        process = subprocess.run(
            app_command(target, overrides),
            cwd=tmp_path,
            env=_app_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert process.returncode == 0, (
                f"sweep failed:\nSTDOUT:\n{process.stdout}\nSTDERR:\n{process.stderr}"
            )
        return process

    return run


StartApp = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def start_app(tmp_path: Path) -> Iterator[StartApp]:
    """Start a sweep worker in its own process group (so a test can SIGKILL the whole group)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*overrides: str, sweep_dir: Path) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            app_command(sweep_dir, overrides),
            cwd=tmp_path,
            env=_app_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:  # never leave a worker behind, whatever the test did
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@pytest.fixture
def app_dir() -> Path:
    return APP.parent


@pytest.fixture(name="app_env")
def app_env_fixture() -> dict[str, str]:
    """Environment in which the app (and our plugin under src/) can run."""
    return _app_env()
