"""`recsci table --resume`: finish an interrupted table by rerunning only the jobs without a completed run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from recsci.core.report import resume, table
from recsci.core.report.cli import table_main
from recsci.core.report.resume import pending_jobs
from recsci.core.report.runs import NOT_STARTED, collect_runs
from recsci.core.report.table import LOCK_FILE, SweepDirBusy, TableDefinition, latest_sweep_dir, sweep_lock
from tests.conftest import FAST
from tests.core.tables import two_sweep_table

NAME = "tests/tiny_resume"


def _definition(tmp_path: Path) -> Path:
    return two_sweep_table(tmp_path, NAME)


def _metrics(job_dir: Path) -> dict:
    return json.loads((job_dir / "metrics.json").read_text())


@pytest.mark.slow
def test_resume_reruns_only_the_jobs_without_a_completed_run(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    definition, sweep_dir = _definition(tmp_path), tmp_path / "sweep"
    launched_with = "trainer.log_every_n_steps=1"
    assert table_main([str(definition), "--sweep-dir", str(sweep_dir), "--no-wandb", launched_with]) == 0
    sage = sweep_dir / "sage"
    kept = (sage / "0" / "metrics.json").read_bytes()
    # Job 1 crashed before writing its metrics (its dir and log stay), job 2 never started, nor did the
    # second sweep.
    (sage / "1" / "metrics.json").unlink()
    (sage / "1" / "note.txt").write_text("written by the crashed run")
    for gone in (sage / "2", sweep_dir / "gcn"):
        for path in sorted(gone.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        gone.rmdir()
    capsys.readouterr()

    assert table_main([str(definition), "--resume", "--dry-run", "--sweep-dir", str(sweep_dir)]) == 0
    dry = capsys.readouterr().out
    assert "# sage/1" in dry and "# sage/2" in dry and "# sage/0" not in dry
    assert f"# gcn: never started, 1 jobs, with {launched_with}" in dry
    assert "2 job(s) to rerun" in dry and not (sage / "2").exists()  # a dry run runs and moves nothing

    # An extra setting the sweep did not plan is allowed; the report still matches the jobs to their runs.
    extra = "trainer.num_sanity_val_steps=0"
    assert table_main([str(definition), "--resume", "--sweep-dir", str(sweep_dir), "--no-wandb", extra]) == 0
    assert (sage / "0" / "metrics.json").read_bytes() == kept  # the completed run is untouched
    assert [_metrics(sage / n)["status"] for n in ("1", "2")] == ["completed", "completed"]
    assert _metrics(sweep_dir / "gcn" / "0")["status"] == "completed"
    assert [_metrics(sage / n)["seed"] for n in ("1", "2")] == [1, 2]
    (superseded,) = (sage / ".superseded").iterdir()  # the crashed run's dir is kept aside, not lost
    assert superseded.name.startswith("1-") and (superseded / "note.txt").is_file()
    for rerun in (sage / "1", sweep_dir / "gcn" / "0"):  # the launch's extras, and the resume's
        recorded = yaml.safe_load((rerun / ".hydra" / "overrides.yaml").read_text())
        assert extra in recorded and launched_with in recorded

    runs = collect_runs(sweep_dir)
    assert len(runs) == 4 and all(r.completed for r in runs)  # superseded and planned jobs not counted again
    assert pending_jobs(TableDefinition.load(definition), sweep_dir) == ([], [])
    readme = (tmp_path / "README.md").read_text()
    assert "| graphsage | 3 | 0-2 |" in readme and "4 completed of 4 runs" in readme

    # Nothing left to do: a second resume runs nothing and keeps every run.
    assert table_main([str(definition), "--resume", "--sweep-dir", str(sweep_dir), "--no-wandb"]) == 0
    assert "0 job(s) to rerun" in capsys.readouterr().out
    assert len(list((sage / ".superseded").iterdir())) == 1
    assert not (sweep_dir / LOCK_FILE).exists()  # released by every run


def test_resume_refuses_an_override_that_changes_a_planned_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    definition, sweep_dir = _definition(tmp_path), tmp_path / "sweep"
    job_dir = _planned_but_crashed(sweep_dir)
    assert (
        table_main([str(definition), "--resume", "--sweep-dir", str(sweep_dir), "trainer.max_epochs=5"]) == 2
    )
    err = capsys.readouterr().err
    assert "trainer.max_epochs=5" in err and "trainer.max_epochs=1" in err and "sage" in err
    assert (job_dir / "note.txt").is_file()  # refused before anything was moved


def test_a_sweep_started_on_a_gpu_machine_resumes_here_on_the_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # The sweep was planned with trainer=gpu (a chunk on a GPU machine, merged back); its job 0 then
    # completed here with trainer=default. The machine is not part of the job: job 0 is done, jobs 1-2
    # rerun with the machine picked now, and the sweep that never started takes it too.
    definition, sweep_dir = _definition(tmp_path), tmp_path / "sweep"
    job_dir = _planned_but_crashed(sweep_dir, "trainer=gpu")
    (job_dir / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump(
            [
                "seed=0",
                "logger=none",
                "trainer.max_epochs=1",
                *FAST[1:],
                f"experiment_name={NAME}",
                "trainer=default",
            ]
        )  # fmt: skip
    )
    (job_dir / "metrics.json").write_text(json.dumps({"status": "completed", "metrics": {}}))
    pending, _ = pending_jobs(TableDefinition.load(definition), sweep_dir)
    assert [p.number for p in pending] == [1, 2]
    runs = collect_runs(sweep_dir)  # the report agrees: only jobs 1 and 2 never ran
    assert sorted(r.overrides[0] for r in runs if r.status == NOT_STARTED) == ["seed=1", "seed=2"]

    assert (
        table_main(
            [str(definition), "--resume", "--dry-run", "--sweep-dir", str(sweep_dir), "trainer=default"]
        )
        == 0
    )
    dry = capsys.readouterr().out
    assert "trainer=gpu" not in dry and dry.count("trainer=default") == 3  # jobs 1, 2 and the gcn sweep

    started = _record_commands(monkeypatch)
    resume.resume_sweeps(TableDefinition.load(definition), sweep_dir, ["trainer=default"], jobs=1)
    assert len(started) == 3
    for command in started:
        assert "trainer=gpu" not in command and command.count("trainer=default") == 1
    # Jobs inherit one trainer; the README's record of the extras names both machines.
    loaded = TableDefinition.load(definition)
    assert "trainer=gpu" not in table.extra_overrides(loaded, sweep_dir, ["trainer=default"])
    recorded = table.extra_overrides(loaded, sweep_dir, ["trainer=default"], every_value=True)
    assert "trainer=gpu" in recorded and "trainer=default" in recorded
    # Any other planned setting still cannot change.
    with pytest.raises(ValueError, match="trainer.max_epochs=3 changes the planned trainer.max_epochs=1"):
        resume.check_resume_overrides(pending, ["trainer=default", "trainer.max_epochs=3"])


def test_sweeps_option_runs_the_named_sweeps_in_that_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    definition, sweep_dir = _definition(tmp_path), tmp_path / "sweep"
    assert (
        table_main([str(definition), "--dry-run", "--sweeps", "gcn,sage", "--sweep-dir", str(sweep_dir)]) == 0
    )
    dry = capsys.readouterr().out
    assert dry.index("# gcn: 1 jobs") < dry.index("# sage: 3 jobs") and "4 jobs in all" in dry

    assert table_main([str(definition), "--sweeps", "sgae", "--sweep-dir", str(sweep_dir)]) == 2
    err = capsys.readouterr().err
    assert "no sweep named 'sgae'. Did you mean 'sage'? Its sweeps: sage, gcn" in err
    assert not sweep_dir.exists()  # refused before anything ran

    # Resuming one sweep: the never-started 'gcn' inherits the extras 'sage' was launched with, although
    # 'sage' is not among the sweeps run now; 'sage's own jobs stay pending.
    _planned_but_crashed(sweep_dir, "trainer.log_every_n_steps=1")
    started = _record_commands(monkeypatch)
    table_main([str(definition), "--resume", "--sweeps", "gcn", "--sweep-dir", str(sweep_dir), "--no-wandb"])
    (command,) = started
    assert "model=gcn" in command and "trainer.log_every_n_steps=1" in command
    pending, unstarted = pending_jobs(TableDefinition.load(definition), sweep_dir)
    assert [p.number for p in pending] == [0, 1, 2] and [s.name for s in unstarted] == ["gcn"]


def test_resume_needs_runs_to_resume(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    definition = _definition(tmp_path)
    assert table_main([str(definition), "--resume", "--sweep-dir", str(tmp_path / "nothing")]) == 2
    assert "no runs of tests/tiny_resume yet; run without --resume" in capsys.readouterr().err
    assert table_main([str(definition), "--resume", "--report-only"]) == 2
    assert "pick one" in capsys.readouterr().err


def test_pending_jobs_are_read_from_what_the_sweep_planned(tmp_path: Path) -> None:
    definition, sweep_dir = _definition(tmp_path), tmp_path / "sweep"
    _planned_but_crashed(sweep_dir)
    pending, unstarted = pending_jobs(TableDefinition.load(definition), sweep_dir)
    assert [(p.sweep, p.number) for p in pending] == [("sage", 0), ("sage", 1), ("sage", 2)]
    assert "seed=1" in pending[1].overrides and f"experiment_name={NAME}" in pending[1].overrides
    assert [s.name for s in unstarted] == ["gcn"]


def _record_commands(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Job and sweep commands are recorded (and 'succeed') instead of running; returns the record."""
    started: list[list[str]] = []

    def record(command: list[str], **_: object) -> subprocess.CompletedProcess:
        started.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(resume.subprocess, "run", record)
    monkeypatch.setattr(table.subprocess, "run", record)
    return started


def _planned_but_crashed(sweep_dir: Path, *launched_with: str) -> Path:
    """A sweep dir whose 'sage' sweep planned seeds 0-2 (as `recsci table` launched it, with extra
    overrides ``launched_with``) and whose job 0 crashed before writing metrics; returns that job's dir."""
    sage = sweep_dir / "sage"
    sage.mkdir(parents=True)
    task = [
        "seed=0,1,2",
        "logger=none",
        "trainer.max_epochs=1",
        *FAST[1:],
        f"experiment_name={NAME}",
        *launched_with,
    ]
    sweeper = {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"}
    (sage / "multirun.yaml").write_text(
        yaml.safe_dump({"hydra": {"sweeper": sweeper, "overrides": {"task": task}}})
    )
    job_dir = sage / "0"
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / "note.txt").write_text("written by the crashed run")
    return job_dir


def test_resume_waits_for_a_table_still_running_in_the_sweep_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    definition, sweep_dir = _definition(tmp_path), tmp_path / "sweep"
    job_dir = _planned_but_crashed(sweep_dir)
    # This test's own process stands for the `recsci table` that is still running the sweep.
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": "2026-11-28T01:00:00"}
    (sweep_dir / LOCK_FILE).write_text(json.dumps(holder))
    assert table_main([str(definition), "--resume", "--sweep-dir", str(sweep_dir)]) == 2
    err = capsys.readouterr().err
    assert f"pid {os.getpid()}" in err and LOCK_FILE in err
    assert (job_dir / "note.txt").is_file()  # its 'crashed' job, still running, was left alone
    assert json.loads((sweep_dir / LOCK_FILE).read_text()) == holder
    assert table_main([str(definition), "--sweep-dir", str(sweep_dir)]) == 2  # nor is a fresh run started


def test_a_lock_left_by_an_ended_process_is_taken_over_and_released(tmp_path: Path) -> None:
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": int(ended.stdout), "host": socket.gethostname()}))
    with sweep_lock(tmp_path):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
        with pytest.raises(SweepDirBusy, match="another `recsci table`"), sweep_lock(tmp_path):
            pass
    assert not (tmp_path / LOCK_FILE).exists()
    # A lock from another host cannot be checked: it is honoured.
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(SweepDirBusy, match="elsewhere"), sweep_lock(tmp_path):
        pass


def test_the_latest_sweep_dir_is_the_last_started_not_the_last_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    definition = TableDefinition.load(_definition(tmp_path))
    root = tmp_path / "outputs" / "tables" / NAME
    for name, started in (("zzz_old", 1_000), ("2026-11-28_01-00-00", 2_000), ("abc1234", 3_000)):
        (root / name).mkdir(parents=True)
        (root / name / "table.yaml").write_text("")
        os.utime(root / name / "table.yaml", (started, started))
    assert latest_sweep_dir(definition).name == "abc1234"


@pytest.mark.parametrize("code", [-signal.SIGINT, 128 + signal.SIGTERM])
def test_an_interrupted_job_stops_the_table_and_releases_its_lock(
    code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # Ctrl-C reaches the running job too: it exits by the signal, and the table must not go on to the
    # next job or sweep (the Hydra multirun of a plain run would otherwise start the next sweep).
    definition, sweep_dir = _definition(tmp_path), tmp_path / "sweep"
    _planned_but_crashed(sweep_dir)  # 3 jobs of 'sage' to rerun, and 'gcn' never started
    started: list[list[str]] = []

    def killed(command: list[str], **_: object) -> subprocess.CompletedProcess:
        started.append(command)
        return subprocess.CompletedProcess(command, code)

    monkeypatch.setattr(resume.subprocess, "run", killed)
    outcomes = resume.resume_sweeps(TableDefinition.load(definition), sweep_dir, [], jobs=1)
    assert len(started) == 1 and outcomes == [("sage", code)]
    assert "interrupted: 3 more not started; finish with --resume" in capsys.readouterr().err
    assert not (sweep_dir / LOCK_FILE).exists()

    started.clear()
    monkeypatch.setattr(table.subprocess, "run", killed)
    fresh = tmp_path / "fresh"
    assert table.run_sweeps(TableDefinition.load(definition), fresh, [], jobs=1) == [("sage", code)]
    assert len(started) == 1 and "interrupted: 1 more not started" in capsys.readouterr().err
    assert not (fresh / LOCK_FILE).exists()


@pytest.mark.slow
def test_runs_finished_elsewhere_merge_in_job_by_job(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # The table ran here; a copy of its sweep dir (a GPU machine's, say) holds runs this one lacks.
    definition, ours = _definition(tmp_path), tmp_path / "sweep"
    assert table_main([str(definition), "--sweep-dir", str(ours), "--no-wandb"]) == 0
    theirs = tmp_path / "elsewhere"
    shutil.copytree(ours, theirs)
    kept = (ours / "sage" / "0" / "metrics.json").read_bytes()
    (ours / "sage" / "1" / "metrics.json").unlink()  # crashed here
    shutil.rmtree(ours / "sage" / "2")  # never ran here
    shutil.rmtree(ours / "gcn")  # this sweep never started here
    shutil.copytree(theirs / "sage" / "2", theirs / "sage" / "7")  # no such job in the sweep
    (theirs / "sage" / "8").mkdir()  # an unfinished job dir
    (theirs / "sage" / "8" / ".hydra").mkdir()
    capsys.readouterr()

    assert (
        table_main([str(definition), "--merge-from", str(theirs), "--sweep-dir", str(ours), "--no-wandb"])
        == 0
    )
    out = capsys.readouterr().out
    assert "merged 3 run(s)" in out and "kept 1 completed run(s) already there" in out and "left out 2" in out
    assert "not a job dir of this sweep (3 jobs)" in out
    assert (ours / "sage" / "0" / "metrics.json").read_bytes() == kept
    assert (ours / "gcn" / "multirun.yaml").is_file()
    (superseded,) = (ours / "sage" / ".superseded").iterdir()
    assert superseded.name.startswith("1-") and not (superseded / "metrics.json").exists()
    assert (theirs / "sage" / "1" / "metrics.json").is_file()  # the source is only read
    runs = collect_runs(ours)
    assert len(runs) == 4 and all(r.completed for r in runs)
    assert "4 completed of 4 runs" in (tmp_path / "README.md").read_text()
    assert pending_jobs(TableDefinition.load(definition), ours) == ([], [])

    # A run whose overrides are not its job's (another table's run under the same number) stays out.
    shutil.rmtree(ours / "sage" / "2")
    overrides = theirs / "sage" / "2" / ".hydra" / "overrides.yaml"
    overrides.write_text(overrides.read_text().replace("seed=2", "seed=5"))
    outcome = resume.merge_runs(TableDefinition.load(definition), theirs, ours)
    assert not (ours / "sage" / "2").exists()
    assert [why for path, why in outcome.left_out if path.name == "2"] == [
        "its overrides are not those of job 2: "
        + " ".join(pending_jobs(TableDefinition.load(definition), ours)[0][0].overrides)
    ]
