"""Table definitions: one YAML per paper table that reruns its multiruns and rebuilds its report.

A definition (``experiments/<problem>/<table>.yaml``; paths inside are relative to it)::

    name: blade/existence_cora_ml          # W&B group and experiment_name of every run
    title: Link existence on Cora-ML
    problem: graph
    needs_data: true                       # refuse to start without RECSCI_DATA (or paths.data_dir=...)
    tags: [graph, dirlinkbench]            # + the data and model options, added per run
    sweeps:                                # each one `recsci -m <overrides>`, into <sweep dir>/<name>/
      - name: blade
        overrides: [experiment=graph/dirlinkbench_cora_ml, model=blade, "data.split_source.split_index=range(10)"]
    by: [model]                            # row keys (config keys or group names, see runs.value_of)
    over: [data.split_source.split_index]  # aggregated over (shown as a column)
    order: {model: [blade, digae]}         # optional row order
    metrics: [{key: test/auc, label: AUC}, test/mrr, {key: test/rec_queries, unit: value}]
    display: percent                       # percent | fraction (default): percent scales fractions only
                                           # (unit: fraction | value per metric; default: values in [0, 1])
    digits: 2
    pivot: {pattern: "test/{rule}/{metric}@p{bound}", rows: [bound, rule]}   # optional
    anchors: anchors/dirlinkbench_cora_ml.yaml
    compare:                               # optional: row A - row B, split by split (report.paired)
      - {a: {model: blade_relatedness}, b: {model: blade}, label: relatedness term}
    plots: [metric_bars, {_target_: recsci.graph.plots.hits_by_degree_bucket}]
    readme: README.md                      # its marked section gets the latest table
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from recsci.core.report.aggregate import Layout, MetricSpec, Pivot
from recsci.core.report.anchors import Anchors
from recsci.core.report.build import ReportFiles, build_report
from recsci.core.report.paired import Comparison, check_comparisons
from recsci.core.report.render import markdown_table
from recsci.core.report.runs import expand_jobs, split_override
from recsci.core.validation import check_keys, did_you_mean

TABLES_DIR = Path("outputs") / "tables"


# Every key a definition may hold (see the module docstring); any other is a typo and is refused.
DEFINITION_KEYS = (
    "name", "title", "problem", "needs_data", "tags", "sweeps", "by", "over", "order", "metrics",
    "display", "digits", "pivot", "anchors", "compare", "plots", "readme",
)  # fmt: skip
SWEEP_KEYS = ("name", "overrides")


@dataclass(frozen=True)
class Sweep:
    name: str
    overrides: tuple[str, ...]


@dataclass
class TableDefinition:
    path: Path
    name: str
    title: str
    problem: str
    sweeps: list[Sweep]
    layout: Layout
    anchors: Anchors | None = None
    plots: list[Any] = field(default_factory=lambda: ["metric_bars"])
    readme: Path | None = None
    tags: list[str] = field(default_factory=list)
    needs_data: bool = False
    comparisons: list[Comparison] = field(default_factory=list)
    # The whole table's sweeps when ``sweeps`` is a selection (:meth:`only`): their runs still say which
    # extra overrides the table was launched with.
    table_sweeps: list[Sweep] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> TableDefinition:
        if not path.is_file():
            raise ValueError(f"{path}: no such table definition (they live in experiments/<problem>/*.yaml)")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML: {err}") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: a table definition is a mapping of keys, got {type(raw).__name__}")
        check_keys(path, "", raw, DEFINITION_KEYS, "a table definition")
        missing = [k for k in ("name", "sweeps", "by") if k not in raw]
        if missing:
            raise ValueError(f"{path}: missing required keys {missing} (see recsci.core.report.table)")
        if not isinstance(raw["sweeps"], list) or not raw["sweeps"]:
            raise ValueError(f"{path}: sweeps must be a non-empty list of {{name, overrides}}")
        for i, sweep in enumerate(raw["sweeps"]):
            if not isinstance(sweep, dict) or not {"name", "overrides"} <= set(sweep):
                raise ValueError(f"{path}: sweeps[{i}] needs a name and a list of overrides, got {sweep!r}")
            check_keys(path, f"sweeps[{i}].", sweep, SWEEP_KEYS, "a sweep")
        here = path.parent
        display = str(raw.get("display", "fraction"))
        if display not in ("fraction", "percent"):
            raise ValueError(f"{path}: display must be 'fraction' or 'percent', got {display!r}")
        pivot = raw.get("pivot")
        try:
            metrics = [MetricSpec.parse(m) for m in raw.get("metrics") or []]
        except ValueError as err:
            raise ValueError(f"{path}: metrics: {err}") from None
        layout = Layout(
            by=[str(k) for k in raw["by"]],
            over=[str(k) for k in raw.get("over", ["seed"])],
            metrics=metrics,
            pivot=Pivot(str(pivot["pattern"]), tuple(pivot.get("rows", []))) if pivot else None,
            scale=100.0 if display == "percent" else 1.0,
            digits=int(raw.get("digits", 2 if display == "percent" else 4)),
            order={str(k): [str(v) for v in vs] for k, vs in (raw.get("order") or {}).items()},
        )
        try:
            comparisons = [Comparison.parse(c) for c in raw.get("compare") or []]
            check_comparisons(comparisons, layout)
        except ValueError as err:
            raise ValueError(f"{path}: compare: {err}") from None
        return cls(
            path=path,
            name=str(raw["name"]),
            title=str(raw.get("title", raw["name"])),
            problem=str(raw.get("problem", "")),
            sweeps=[Sweep(str(s["name"]), tuple(str(o) for o in s["overrides"])) for s in raw["sweeps"]],
            layout=layout,
            anchors=Anchors.load(here / raw["anchors"]) if raw.get("anchors") else None,
            plots=list(raw.get("plots", ["metric_bars"])),
            readme=here / raw["readme"] if raw.get("readme") else None,
            tags=[str(t) for t in raw.get("tags", [])],
            needs_data=bool(raw.get("needs_data", False)),
            comparisons=comparisons,
        )

    def only(self, names: list[str]) -> TableDefinition:
        """This table with only the sweeps ``names``, in that order (what ``--sweeps`` runs; the report and
        README still cover the whole table)."""
        by_name = {sweep.name: sweep for sweep in self.sweeps}
        for name in names:
            if name not in by_name:
                raise ValueError(
                    f"{self.path}: no sweep named {name!r}.{did_you_mean(name, by_name)} "
                    f"Its sweeps: {', '.join(by_name)}"
                )
        return replace(
            self,
            sweeps=[by_name[name] for name in dict.fromkeys(names)],
            table_sweeps=self.table_sweeps or self.sweeps,
        )

    def command(self, sweep: Sweep, sweep_dir: Path, extra: list[str]) -> list[str]:
        """The multirun of one sweep: all its jobs in ``<sweep_dir>/<sweep name>/<job number>``."""
        # Data and model options as tags, resolved per job: W&B can filter the group by dataset and model.
        tags = [*self.tags, "${hydra:runtime.choices.data}", "${hydra:runtime.choices.model}"]
        return [
            sys.executable,
            "-m",
            "recsci",
            "-m",
            *sweep.overrides,
            f"experiment_name={self.name}",
            f"tags=[{','.join(tags)}]",
            f"hydra.sweep.dir={sweep_dir / sweep.name}",
            "hydra.sweep.subdir=${hydra.job.num}",
            *extra,
        ]


def planned_job_count(overrides: list[str]) -> int:
    """How many jobs ``recsci -m <overrides>`` starts."""
    return len(expand_jobs(overrides))


def new_sweep_dir(definition: TableDefinition) -> Path:
    return TABLES_DIR / definition.name / dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def latest_sweep_dir(definition: TableDefinition) -> Path | None:
    """The table's most recently started sweep dir under ``outputs/tables/<name>/``: by the time its
    ``table.yaml`` was written (a run's start), else the dir's own; not by name, since ``--sweep-dir``
    names (a commit, say) need not sort by time."""
    root = TABLES_DIR / definition.name
    dirs = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []

    def started(path: Path) -> tuple[float, str]:
        marker = path / "table.yaml"
        return ((marker if marker.is_file() else path).stat().st_mtime, path.name)

    return max(dirs, key=started) if dirs else None


def data_available(extra: list[str]) -> bool:
    return bool(os.environ.get("RECSCI_DATA")) or any(o.startswith("paths.data_dir=") for o in extra)


JOBLIB_PLUGIN = "hydra_plugins.hydra_joblib_launcher"


class ParallelLauncherMissing(RuntimeError):
    """``jobs > 1`` asks for Hydra's joblib launcher, which is an optional install."""


def launcher_overrides(jobs: int) -> list[str]:
    """Hydra overrides that run ``jobs`` jobs of each sweep at a time (none for 1: Hydra's basic launcher).

    Parallel jobs go through Hydra's joblib launcher (one process per job). They are Hydra overrides, not
    task overrides: they change how the jobs run, not what they compute, so reports and README sections do
    not list them as settings of the runs.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if jobs == 1:
        return []
    if importlib.util.find_spec(JOBLIB_PLUGIN) is None:
        raise ParallelLauncherMissing(
            f"running {jobs} jobs at a time needs Hydra's joblib launcher: "
            "pip install hydra-joblib-launcher (or the package's [parallel] extra)"
        )
    return ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}"]


def job_environment(jobs: int, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The sweeps' environment: with parallel jobs, each gets an equal share of the cores for its torch and
    BLAS threads (unless OMP_NUM_THREADS is set already), so N jobs do not each start one thread per core."""
    env = dict(os.environ if environ is None else environ)
    if jobs > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return env


def run_sweeps(
    definition: TableDefinition, sweep_dir: Path, extra: list[str], jobs: int = 1
) -> list[tuple[str, int]]:
    """Run every sweep, ``jobs`` of its jobs at a time (a failing sweep does not stop the others); return
    (sweep, exit code) pairs."""
    launcher = launcher_overrides(jobs)  # before anything is written: a missing plugin loses nothing
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with sweep_lock(sweep_dir):
        (sweep_dir / "table.yaml").write_text(definition.path.read_text())
        return launch_sweeps(definition, definition.sweeps, sweep_dir, [*extra, *launcher], jobs)


def launch_sweeps(
    definition: TableDefinition, sweeps: Sequence[Sweep], sweep_dir: Path, overrides: list[str], jobs: int
) -> list[tuple[str, int]]:
    """Run ``sweeps`` one after another as multiruns with ``overrides`` added; stop at the first one a
    signal ended (Ctrl-C, a kill). Returns (sweep, exit code) pairs of those that ran."""
    outcomes = []
    for sweep in sweeps:
        command = definition.command(sweep, sweep_dir, overrides)
        print(f"[recsci table] {shlex.join(command)}", flush=True)
        code = subprocess.run(command, check=False, env=job_environment(jobs)).returncode
        outcomes.append((sweep.name, code))
        if interrupted(code):
            stop_message(sweeps[len(outcomes) :])
            break
    return outcomes


def interrupted(code: int) -> bool:
    """Whether a job's exit code says it was stopped by Ctrl-C or a kill (SIGINT, SIGTERM), as Python
    (``-signal``) or a shell (``128 + signal``) reports it: the table then starts nothing further."""
    return code in {-signal.SIGINT, -signal.SIGTERM, 128 + signal.SIGINT, 128 + signal.SIGTERM}


def stop_message(skipped: Sequence[Any]) -> None:
    if skipped:
        print(
            f"[recsci table] interrupted: {len(skipped)} more not started; finish with --resume",
            file=sys.stderr,
            flush=True,
        )


LOCK_FILE = ".recsci-table.lock"


class SweepDirBusy(RuntimeError):
    """Another ``recsci table`` process is running jobs in this sweep dir."""


@contextmanager
def sweep_lock(sweep_dir: Path) -> Iterator[None]:
    """Mark ``sweep_dir`` as being run by this process for the duration (``.recsci-table.lock``: pid, host,
    start time), so that a resume elsewhere does not take this process's running jobs for crashed ones.

    Raises :class:`SweepDirBusy` when a live process holds it already. A lock left by a process that has
    ended (on this host) is stale and taken over; one from another host cannot be checked and is honoured.
    """
    path = sweep_dir / LOCK_FILE
    holder = _read_lock(path)
    if holder is not None and _alive(holder):
        raise SweepDirBusy(
            f"{sweep_dir} is being run by another `recsci table` (pid {holder.get('pid')} on "
            f"{holder.get('host')}, since {holder.get('started')}): wait for it to end, or delete {path} "
            "if that process is gone"
        )
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": dt.datetime.now().isoformat()}
    path.write_text(json.dumps(mine))
    try:
        yield
    finally:
        if _read_lock(path) == mine:
            path.unlink()


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # no lock, or an unreadable one (nothing to honour)
    return holder if isinstance(holder, dict) else None


def _alive(holder: dict[str, Any]) -> bool:
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except (KeyError, TypeError, ValueError):
        return False  # not a lock this module wrote
    except PermissionError:
        return True  # someone else's live process
    return True


def recorded_overrides(sweep_dir: Path, sweep: Sweep) -> list[str] | None:
    """The task overrides a sweep actually ran with (its ``multirun.yaml``), None if it never started."""
    path = sweep_dir / sweep.name / "multirun.yaml"
    if not path.is_file():
        return None
    task = ((yaml.safe_load(path.read_text()) or {}).get("hydra", {}).get("overrides") or {}).get("task")
    return [str(t) for t in task or []]


def extra_overrides(
    definition: TableDefinition, sweep_dir: Path, extra: list[str], every_value: bool = False
) -> list[str]:
    """Overrides the runs used beyond the definition's: given now, or recorded by an earlier run for a
    key not given now (``trainer=default`` now wins over a recorded ``trainer=gpu``: what a resumed or
    never-started sweep runs with). ``every_value``: every distinct one instead, for the record (sweeps of
    one table that ran on different machines list both trainers)."""
    found = list(extra)
    keys = {split_override(o)[0] for o in found}
    for sweep in definition.table_sweeps or definition.sweeps:
        own = set(definition.command(sweep, sweep_dir, [])[4:])
        for override in recorded_overrides(sweep_dir, sweep) or []:
            key = split_override(override)[0]
            if override not in own and override not in found and (every_value or key not in keys):
                found.append(override)
                keys.add(key)
    return found


def build_table_report(
    definition: TableDefinition, sweep_dir: Path, extra: list[str], wandb: bool | None
) -> ReportFiles:
    commands = []
    for sweep in definition.sweeps:
        # Show what actually ran (a --report-only rebuild may not know the extra overrides of the run).
        recorded = recorded_overrides(sweep_dir, sweep)
        command = (
            ["recsci", "-m", *recorded]
            if recorded is not None
            else definition.command(sweep, sweep_dir, extra)[2:]
        )
        label = "command" if recorded is not None else "command (never started)"
        commands.append((label, shlex.join(["recsci", *command[1:]])))
    return build_report(
        sweep_dir,
        definition.layout,
        title=definition.title,
        anchors=definition.anchors,
        plots=definition.plots,
        facts=[("table", f"recsci table {definition.path}"), *commands],
        wandb=wandb,
        wandb_group=definition.name,
        planned=unplanned_jobs(definition, sweep_dir, extra),
        comparisons=definition.comparisons,
    )


def unplanned_jobs(definition: TableDefinition, sweep_dir: Path, extra: list[str]) -> list[list[str]]:
    """The jobs of every sweep that left no ``multirun.yaml`` (never started, or its jobs were launched one
    by one, e.g. as a job array): the report lists those with no run as not started, instead of a table
    that counts only the runs it finds."""
    return [
        job
        for sweep in definition.sweeps
        if not (sweep_dir / sweep.name / "multirun.yaml").is_file()
        for job in expand_jobs([*sweep.overrides, *extra])
    ]


def update_readme(definition: TableDefinition, files: ReportFiles, extra: list[str]) -> Path | None:
    """Replace (or append) the table's marked section of its README with the latest numbers."""
    if definition.readme is None:
        return None
    start, end = f"<!-- recsci-table: {definition.name} -->", f"<!-- /recsci-table: {definition.name} -->"
    section = "\n".join([start, readme_section(definition, files, extra), end])
    path = definition.readme
    text = path.read_text() if path.is_file() else f"# {definition.problem or 'recsci'} tables\n"
    if start in text and end in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
    return path


def readme_section(definition: TableDefinition, files: ReportFiles, extra: list[str]) -> str:
    facts = dict(files.report.facts)
    # A key the sweeps set to different values (a table finished on two machines: trainer=default and
    # trainer=gpu) is not part of the rerun command (Hydra takes one value) but is said below.
    keys = [split_override(o)[0] for o in extra]
    varied = [o for o, key in zip(extra, keys, strict=True) if keys.count(key) > 1]
    extra = [o for o in extra if o not in varied]
    rerun = f"recsci table {definition.path}" + (" -- " + shlex.join(extra) if extra else "")
    lines = [
        f"### {definition.title}",
        "",
        "```bash",
        rerun,
        "```",
        "",
        f"Latest: {files.report.generated}; {facts.get('runs', '')} runs; seeds {facts.get('seeds', '-')}; "
        f"commit {facts.get('commits', '-')}.",
    ]
    if extra:
        lines.append(f"**Extra overrides:** `{' '.join(extra)}` (not the table's own settings).")
    if varied:
        lines.append(f"**Runs differ in:** `{' '.join(varied)}` (each run's own overrides say which).")
    if "published rows" in facts:
        lines.append(f"Published rows: {facts['published rows']}.")
    lines += ["", markdown_table(files.report.results), ""]
    lines += [line for note in files.report.notes for line in (note, "")]
    if files.report.paired is not None:
        lines += ["Paired differences:", "", markdown_table(files.report.paired), ""]
        lines += [line for note in files.report.paired_notes for line in (note, "")]
    return "\n".join(lines)
