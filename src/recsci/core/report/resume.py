"""``recsci table --resume``: finish a table's sweep dir by running only what it lacks.

A long table (the Photo one takes hours on a CPU) may stop part-way: a crash, a killed job, a machine
taken back. Resuming reruns each job of a started sweep that has no completed run, with the overrides the
sweep planned (its ``multirun.yaml``), into the job's own dir, so the report and README treat the result
as one sweep; sweeps that never started run whole. Nothing already written is lost: a failed or
unfinished run's dir is moved under ``<sweep>/.superseded/`` (which reports skip) before its job reruns.
"""

from __future__ import annotations

import datetime as dt
import shlex
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from recsci.core.report.runs import (
    MACHINE_KEYS,
    SUPERSEDED_DIR,
    canonical_overrides,
    find_run_dirs,
    job_identity,
    planned_jobs,
    read_run,
    split_override,
)
from recsci.core.report.table import (
    Sweep,
    TableDefinition,
    extra_overrides,
    interrupted,
    job_environment,
    launch_sweeps,
    launcher_overrides,
    stop_message,
    sweep_lock,
)


@dataclass(frozen=True)
class PendingJob:
    """A job of a started sweep that has no completed run: it reruns as ``<sweep>/<number>``."""

    sweep: str
    number: int  # Hydra's job number in the sweep (its subdir)
    overrides: list[str]  # as the sweep planned it (multirun.yaml), before any extra overrides


def pending_jobs(definition: TableDefinition, sweep_dir: Path) -> tuple[list[PendingJob], list[Sweep]]:
    """What a resumed table still has to run in ``sweep_dir``: the jobs of started sweeps that have no
    completed run (their overrides as first planned, from the sweep's ``multirun.yaml``), and the sweeps
    that never started (they run whole)."""
    pending: list[PendingJob] = []
    unstarted: list[Sweep] = []
    for sweep in definition.sweeps:
        sweep_file = sweep_dir / sweep.name / "multirun.yaml"
        if not sweep_file.is_file():
            unstarted.append(sweep)
            continue
        runs = [read_run(path) for path in find_run_dirs(sweep_file.parent)]
        done = [job_identity(r.overrides) for r in runs if r.completed and r.overrides]
        for number, job in enumerate(planned_jobs(sweep_file)):
            wanted = job_identity(job)
            match = next((i for i, overrides in enumerate(done) if wanted <= overrides), None)
            if match is None:
                pending.append(PendingJob(sweep.name, number, job))
            else:
                del done[match]
    return pending, unstarted


def check_resume_overrides(pending: list[PendingJob], extra: list[str]) -> None:
    """Extra overrides may add settings to the rerun jobs (``trainer.num_sanity_val_steps=0``) or pick
    the machine (``trainer=gpu``, ``trainer=default``: :data:`MACHINE_KEYS`), but not change a setting
    the sweep planned: the rerun runs would then not be the jobs of the table."""
    for job in pending[:1]:
        planned = dict(split_override(o) for o in canonical_overrides(job.overrides))
        for key, value in (split_override(o) for o in canonical_overrides(extra)):
            if key in planned and planned[key] != value and key not in MACHINE_KEYS:
                raise ValueError(
                    f"--resume: the override {key}={value} changes the planned {key}={planned[key]} of "
                    f"sweep {job.sweep!r}; resumed jobs run as first planned (drop it, or start a new "
                    "sweep dir without --resume)"
                )


def rerun_overrides(planned: list[str], extra: list[str]) -> list[str]:
    """A pending job's overrides: as planned, then ``extra``; a machine the extras pick replaces the
    planned one (Hydra refuses two values for one key)."""
    picked = {split_override(o)[0] for o in extra} & MACHINE_KEYS
    return [o for o in planned if split_override(o)[0] not in picked] + list(extra)


def resume_sweeps(
    definition: TableDefinition, sweep_dir: Path, extra: list[str], jobs: int = 1
) -> list[tuple[str, int]]:
    """Run what ``sweep_dir`` lacks: every job of a started sweep without a completed run, ``jobs`` at a
    time, each into its own job dir (a failed or unfinished run there is moved to
    ``<sweep>/.superseded/<number>-<time>`` first, so nothing is lost), and every sweep that never
    started, whole. Returns (sweep, exit code) pairs, one per sweep that ran anything.

    Refused (:class:`~recsci.core.report.table.SweepDirBusy`) while another ``recsci table`` runs jobs in
    ``sweep_dir``: its running jobs would look like crashed ones.
    """
    with sweep_lock(sweep_dir):
        return _resume(definition, sweep_dir, extra, jobs)


def _resume(
    definition: TableDefinition, sweep_dir: Path, extra: list[str], jobs: int
) -> list[tuple[str, int]]:
    pending, unstarted = pending_jobs(definition, sweep_dir)
    for sweep in definition.sweeps:
        check_resume_overrides([p for p in pending if p.sweep == sweep.name], extra)
    launcher = launcher_overrides(jobs)
    stamp = _stamp()
    commands = []
    for job in pending:
        job_dir = sweep_dir / job.sweep / str(job.number)
        if job_dir.exists():
            aside = _set_aside(job_dir, stamp)
            print(f"[recsci table] {job_dir} did not complete: moved to {aside}", flush=True)
        commands.append(
            (
                job.sweep,
                [
                    sys.executable,
                    "-m",
                    "recsci",
                    *rerun_overrides(job.overrides, extra),
                    f"hydra.run.dir={job_dir}",
                ],
            )
        )
    print(f"[recsci table] resuming {sweep_dir}: {len(pending)} job(s) to rerun", flush=True)

    # Ctrl-C (or a kill) stops the table: no further job starts once one was interrupted or the table
    # itself was (the running jobs get the signal themselves).
    stop = threading.Event()

    def run_one(sweep_and_command: tuple[str, list[str]]) -> tuple[str, int | None]:
        sweep, command = sweep_and_command
        if stop.is_set():
            return sweep, None
        print(f"[recsci table] {shlex.join(command)}", flush=True)
        code = subprocess.run(command, check=False, env=job_environment(jobs)).returncode
        if interrupted(code):
            stop.set()
        return sweep, code

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        codes = list(pool.map(run_one, commands))
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    # One exit code per sweep: its first failure's (negative for a signal), else 0.
    outcomes = [
        (name, next((c for s, c in codes if s == name and c), 0))
        for name in dict.fromkeys(s for s, _ in codes)
    ]
    if stop.is_set():
        stop_message([*(c for c in codes if c[1] is None), *unstarted])
        return outcomes
    # Sweeps that never started get the extra overrides the started ones were launched with, too.
    inherited = extra_overrides(definition, sweep_dir, extra)
    return outcomes + launch_sweeps(definition, unstarted, sweep_dir, [*inherited, *launcher], jobs)


@dataclass
class MergeOutcome:
    """What :func:`merge_runs` did, run dir by run dir (paths in the source)."""

    merged: list[Path] = field(default_factory=list)
    kept_local: list[Path] = field(default_factory=list)  # the sweep dir's own completed run was kept
    left_out: list[tuple[Path, str]] = field(default_factory=list)  # and why


def merge_runs(definition: TableDefinition, source: Path, sweep_dir: Path) -> MergeOutcome:
    """Copy the completed runs of ``source`` (laid out as a sweep dir: ``<sweep>/<job number>/``, e.g. the
    runs a GPU machine finished with ``--resume``) into ``sweep_dir``, job by job.

    A job the sweep dir has already completed keeps its own run; a failed or unfinished run there is moved
    to ``<sweep>/.superseded/`` first. A run is left out (and said why) when it did not complete, when it
    is not the job of that number (its overrides do not contain the job's planned ones: another table's
    run, say), or when neither side has the sweep's ``multirun.yaml`` (it plans the job numbers); a sweep
    the sweep dir never started takes the source's ``multirun.yaml``. ``source`` is only read.
    """
    outcome = MergeOutcome()
    stamp = _stamp()
    with sweep_lock(sweep_dir):
        for sweep in definition.sweeps:
            theirs, ours = source / sweep.name, sweep_dir / sweep.name
            if not theirs.is_dir():
                continue
            if not (ours / "multirun.yaml").is_file():
                if not (theirs / "multirun.yaml").is_file():
                    outcome.left_out.append((theirs, "no multirun.yaml on either side to number its jobs"))
                    continue
                ours.mkdir(parents=True, exist_ok=True)
                shutil.copy2(theirs / "multirun.yaml", ours / "multirun.yaml")
            planned = planned_jobs(ours / "multirun.yaml")
            for run_dir in find_run_dirs(theirs):
                why_not = _merge_one(run_dir, theirs, ours, planned, stamp)
                if why_not is None:
                    outcome.merged.append(run_dir)
                elif why_not is _KEPT_OURS:
                    outcome.kept_local.append(run_dir)
                else:
                    outcome.left_out.append((run_dir, why_not))
    return outcome


_KEPT_OURS = "the sweep dir's own run of this job completed"


def _merge_one(run_dir: Path, theirs: Path, ours: Path, planned: list[list[str]], stamp: str) -> str | None:
    """Copy one run in; None when merged, else why not (:data:`_KEPT_OURS` when ours completed)."""
    name = run_dir.relative_to(theirs)
    if len(name.parts) != 1 or not name.name.isdigit() or int(name.name) >= len(planned):
        return f"not a job dir of this sweep ({len(planned)} jobs)"
    run = read_run(run_dir)
    if not run.completed:
        return f"not completed ({run.status})"
    job = planned[int(name.name)]
    if not job_identity(job) <= job_identity(run.overrides):
        return f"its overrides are not those of job {name.name}: {' '.join(job)}"
    target = ours / name
    if target.exists():
        if read_run(target).completed:
            return _KEPT_OURS
        _set_aside(target, stamp)
    shutil.copytree(run_dir, target)
    return None


def _stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _set_aside(job_dir: Path, stamp: str) -> Path:
    """Move a job's failed or unfinished run to ``<sweep>/.superseded/<job>-<stamp>`` (kept, never
    reported) so that the job can run, or be merged, into its own dir again."""
    aside = job_dir.parent / SUPERSEDED_DIR / f"{job_dir.name}-{stamp}"
    aside.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(job_dir, aside)
    return aside
