"""The GPU machine's scripts (experiments/gpu/), run here on the CPU: they only run on the device in a session
lent one, so these keep them from rotting in between (a CUDA device is not needed for what they do around
the GPU runs: installing, resuming a table under a deadline, packing and merging its runs)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from recsci.core.report.cli import table_main
from recsci.core.report.runs import collect_runs
from tests.conftest import REPO_ROOT
from tests.core.tables import two_sweep_table

GPU_DIR = REPO_ROOT / "experiments" / "gpu"


def _script(name: str, *args: str, out: Path, **env: str) -> subprocess.CompletedProcess:
    """Run a script from the repository root with this interpreter's environment first on PATH (it has
    what the device gets from the carried wheels, so nothing is installed)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    environ = {**os.environ, "PATH": path, "OUT": str(out), "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(
        ["bash", str(GPU_DIR / name), *args], cwd=REPO_ROOT, env=environ, capture_output=True, text=True
    )


@pytest.mark.slow
def test_a_table_chunk_runs_what_is_missing_packs_it_and_merges_back(tmp_path: Path) -> None:
    definition, ours = two_sweep_table(tmp_path, "tests/gpu_chunk"), tmp_path / "sweep"
    assert table_main([str(definition), "--sweep-dir", str(ours), "--no-wandb"]) == 0
    device = tmp_path / "device_copy"
    subprocess.run(["cp", "-r", str(ours), str(device)], check=True)
    for gone in (ours / "sage" / "2", ours / "gcn", device / "sage" / "2", device / "gcn"):
        subprocess.run(["rm", "-r", str(gone)], check=True)

    done = _script("table_chunk.sh", str(definition), str(device), "300", "2", out=tmp_path / "out",
                   TRAINER="default")  # fmt: skip
    assert done.returncode == 0, done.stderr + (tmp_path / "out" / "table_chunk.log").read_text()[-3000:]
    assert "2 completed run(s)" in done.stdout
    with tarfile.open(tmp_path / "out" / "runs.tgz") as packed:
        names = packed.getnames()
        assert {"./sage/2/metrics.json", "./gcn/0/metrics.json", "./gcn/multirun.yaml"} <= set(names)
        assert "./sage/0/metrics.json" not in names  # completed before the chunk: not packed again
        assert not any("checkpoints" in n for n in names)
        packed.extractall(tmp_path / "chunk", filter="data")

    merge = [str(definition), "--merge-from", str(tmp_path / "chunk"), "--sweep-dir", str(ours), "--no-wandb"]
    assert table_main(merge) == 0
    runs = collect_runs(ours)
    assert len(runs) == 4 and all(r.completed for r in runs)


@pytest.mark.slow
def test_a_table_chunk_stops_the_table_at_its_deadline(tmp_path: Path) -> None:
    definition, device = two_sweep_table(tmp_path, "tests/gpu_chunk"), tmp_path / "device_copy"
    device.mkdir()  # a sweep dir whose sweeps never started: the chunk starts them
    done = _script("table_chunk.sh", str(definition), str(device), "2", "1", out=tmp_path / "out",
                   TRAINER="default")  # fmt: skip
    assert done.returncode == 0
    log = (tmp_path / "out" / "table_chunk.log").read_text()
    assert "table exited with 143 (deadline 2s)" in log  # SIGTERM: the table and its job were stopped
    assert "completed run(s)" in done.stdout and (tmp_path / "out" / "runs.tgz").is_file()


def test_the_gpu_check_runs_where_no_gpu_is_visible(tmp_path: Path) -> None:
    # Collects tests/test_gpu.py with the environment the script sets up; every test skips without CUDA.
    done = _script("check.sh", "-p", "no:xdist", out=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "torch" in (tmp_path / "environment.txt").read_text()
    assert "skipped" in (tmp_path / "test_gpu.log").read_text()
    assert (tmp_path / "test_gpu.xml").is_file()


def test_a_table_chunk_says_how_to_call_it(tmp_path: Path) -> None:
    done = _script("table_chunk.sh", "only-one-argument", out=tmp_path)
    assert done.returncode == 2 and "DEFINITION SWEEP_DIR SECONDS" in done.stderr
