"""Lightning DDP inside one run: CPU ddp_spawn with two processes (trainer=ddp)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FAST
from tests.test_cli import recsci


@pytest.mark.slow
def test_ddp_spawn_two_cpu_processes(tmp_path: Path) -> None:
    result = recsci("trainer=ddp", *FAST, "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert results["status"] == "completed"
    assert 0.0 <= results["metrics"]["test/auc"] <= 1.0
    assert (
        "world_size=2" in result.stderr + result.stdout
        or "distributed_backend=gloo" in result.stderr + result.stdout
    )
    # Logs written by the spawned fit survive the spawned validate/test that follow.
    rows = (tmp_path / "run" / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
    assert len(rows) >= 1 + 2 + 2  # header, two validation epochs, final validate and test rows
