"""`recsci table --jobs N`: a table's sweeps run N jobs at a time through Hydra's joblib launcher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from recsci.core.report import table
from recsci.core.report.cli import table_main
from recsci.core.report.table import ParallelLauncherMissing, job_environment, launcher_overrides
from tests.conftest import FAST
from tests.core.tables import write_tiny_table


def test_one_job_at_a_time_keeps_hydras_basic_launcher() -> None:
    assert launcher_overrides(1) == []


def test_parallel_jobs_use_the_joblib_launcher() -> None:
    assert launcher_overrides(3) == ["hydra/launcher=joblib", "hydra.launcher.n_jobs=3"]
    with pytest.raises(ValueError, match="at least 1"):
        launcher_overrides(0)


def test_each_parallel_job_gets_a_share_of_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table.os, "cpu_count", lambda: 16)
    assert job_environment(4, {})["OMP_NUM_THREADS"] == "4"
    assert job_environment(32, {})["OMP_NUM_THREADS"] == "1"
    assert job_environment(4, {"OMP_NUM_THREADS": "2"})["OMP_NUM_THREADS"] == "2"  # the user's setting wins
    assert "OMP_NUM_THREADS" not in job_environment(1, {})


def test_a_missing_launcher_plugin_is_named_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(table, "JOBLIB_PLUGIN", "hydra_plugins.no_such_launcher")
    with pytest.raises(ParallelLauncherMissing, match="pip install hydra-joblib-launcher"):
        launcher_overrides(2)
    sweep_dir = tmp_path / "sweep"
    definition = _tiny_definition(tmp_path)
    assert table_main([str(definition), "--jobs", "2", "--sweep-dir", str(sweep_dir)]) == 2
    assert "hydra-joblib-launcher" in capsys.readouterr().err
    assert not sweep_dir.exists()


def test_jobs_must_be_positive(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        table_main([str(_tiny_definition(tmp_path)), "--jobs", "0"])
    assert "at least 1" in capsys.readouterr().err


def test_dry_run_shows_the_launcher(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert table_main([str(_tiny_definition(tmp_path)), "--jobs", "2", "--dry-run"]) == 0
    assert "hydra/launcher=joblib hydra.launcher.n_jobs=2" in capsys.readouterr().out


@pytest.mark.slow
def test_a_table_runs_its_jobs_in_parallel_and_reports_them(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    definition = _tiny_definition(tmp_path)
    assert table_main([str(definition), "--jobs", "2", "--sweep-dir", str(sweep_dir)]) == 0

    results = [json.loads((sweep_dir / "sage" / str(i) / "metrics.json").read_text()) for i in (0, 1)]
    assert [r["status"] for r in results] == ["completed", "completed"]
    assert sorted(r["seed"] for r in results) == [0, 1]
    recorded = yaml.safe_load((sweep_dir / "sage" / "multirun.yaml").read_text())["hydra"]
    assert recorded["launcher"]["_target_"].endswith("JoblibLauncher") and recorded["launcher"]["n_jobs"] == 2
    # How the jobs ran is not a setting of the runs: the README section lists no extra overrides.
    readme = (tmp_path / "README.md").read_text()
    assert "| graphsage | 2 | 0, 1 |" in readme and "Extra overrides" not in readme


def _tiny_definition(tmp_path: Path) -> Path:
    overrides = ["seed=0,1", "logger=none", "trainer.max_epochs=1", *FAST[1:]]
    return write_tiny_table(tmp_path, "tests/tiny_parallel", {"sage": overrides})
