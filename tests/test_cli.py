"""The `recsci` command behaves as Hydra users expect (subprocesses, as a user would run it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FAST, REPO_ROOT


def recsci(*args: str, cwd: Path, module: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "recsci"] if module else [str(Path(sys.executable).parent / "recsci")]
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_help_lists_groups_and_options(tmp_path: Path) -> None:
    result = recsci("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for expected in (
        "data:",
        "model:",
        "sampler:",
        "trainer:",
        "logger:",
        "callbacks:",
        "graphsage",
        "uniform",
    ):
        assert expected in result.stdout


def test_cfg_job_prints_the_composed_config(tmp_path: Path) -> None:
    result = recsci("--cfg", "job", "model=gcn", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "recsci.graph.models.GCN" in result.stdout and "optimized_metric: val/auc" in result.stdout


def test_unknown_option_fails_with_the_list(tmp_path: Path) -> None:
    result = recsci("model=nope", cwd=tmp_path)
    assert result.returncode != 0
    assert "Available options in 'model'" in result.stderr and "graphsage" in result.stderr


@pytest.mark.slow
def test_python_dash_m_runs_an_experiment(tmp_path: Path) -> None:
    result = recsci("experiment=graph/synthetic_sage", *FAST, module=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "graph" / "synthetic_sage" / "runs").iterdir()
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"
    assert "test" in result.stdout and "auc" in result.stdout  # the final metrics table


@pytest.mark.slow
def test_multirun_runs_each_job_in_its_own_dir(tmp_path: Path) -> None:
    result = recsci("-m", "seed=0,1", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "outputs" / "default" / "multiruns").iterdir()
    seeds = sorted(json.loads((sweep_dir / str(i) / "metrics.json").read_text())["seed"] for i in (0, 1))
    assert seeds == [0, 1]


def test_config_dir_is_the_repo_conf() -> None:
    from recsci.cli import config_dir

    assert Path(config_dir()) == REPO_ROOT / "conf"


def test_a_missing_config_tree_says_how_to_get_one(tmp_path: Path) -> None:
    # What a plain `pip install .` (no conf/ beside the installed package) or a wrong RECSCI_CONFIG_DIR
    # gets: one line naming the folder and the fix, not Hydra's bare "config directory not found".
    env = {**os.environ, "RECSCI_CONFIG_DIR": str(tmp_path / "nowhere")}
    result = subprocess.run(
        [sys.executable, "-m", "recsci", "model=gcn"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert result.returncode == 2
    assert f"no config.yaml in {tmp_path / 'nowhere'} (from RECSCI_CONFIG_DIR)" in result.stderr
    assert "pip install -e ." in result.stderr and "Traceback" not in result.stderr


def test_apply_rule_subcommand_is_wired(tmp_path: Path) -> None:
    result = recsci(
        "apply-rule", "--rule", "missing.json", "--input", "in.csv", "--output", "out.csv", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "missing.json" in result.stderr
