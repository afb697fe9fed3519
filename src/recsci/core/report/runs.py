"""Find the runs under an outputs or multirun dir and read what each recorded.

A run dir is any folder holding ``metrics.json`` or Hydra's ``.hydra/`` (Hydra writes ``.hydra/`` when a
job starts, so a job that crashed before ``metrics.json`` is still found). Jobs a multirun planned but
never started have no folder at all: they are recovered from the sweep's ``multirun.yaml``.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recsci.core.results import METRICS_FILE

# Where `recsci table --resume` moves the dirs of runs it reruns (failed or unfinished): kept, not reported.
SUPERSEDED_DIR = ".superseded"
# Folders that never hold a run to report: inside a run dir (checkpoints can be large to walk), or the
# superseded runs of a resumed table.
_NOT_RUNS = {".hydra", "checkpoints", "csv", "wandb", "tensorboard", "plots", "rules", "report", ".cache"}
_NOT_RUNS.add(SUPERSEDED_DIR)

COMPLETED = "completed"
MISSING = "missing"  # a run dir without metrics.json: crashed before writing it, or still starting
NOT_STARTED = "not started"  # planned by a multirun, no run dir at all
UNREADABLE = "unreadable"


@dataclass
class RunRecord:
    """One run (or planned job) and what it recorded; ``config`` is the resolved config when available."""

    path: Path | None
    status: str
    results: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    choices: dict[str, Any] = field(default_factory=dict)  # Hydra's group -> option, e.g. model -> blade
    overrides: list[str] = field(default_factory=list)
    error: str | None = None
    # A never-started job has no config: the runs of its row (same overrides but the aggregated-over keys)
    # lend it the values they all share (e.g. a default that its overrides do not name).
    siblings: list[RunRecord] = field(default_factory=list, repr=False, compare=False)

    @property
    def metrics(self) -> dict[str, float]:
        return {k: _as_float(v) for k, v in (self.results.get("metrics") or {}).items()}

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED

    @property
    def seed(self) -> Any:
        return self.results.get("seed", self.config.get("seed"))

    @property
    def commit(self) -> str | None:
        return self.results.get("git_commit")

    def label(self, root: Path) -> str:
        """The run's path relative to the report root, or its overrides when it never started."""
        if self.path is None:
            return "(not started) " + " ".join(self.overrides)
        try:
            return str(self.path.relative_to(root)) or "."
        except ValueError:
            return str(self.path)


def _as_float(value: Any) -> float:
    # metrics.json stores non-finite values as strings ("nan", "inf"): read them back as floats.
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def find_run_dirs(root: Path) -> list[Path]:
    """Every run dir under ``root`` (``root`` itself when it is one), in path order."""
    if _is_run_dir(root):
        return [root]
    found: list[Path] = []
    for child in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in _NOT_RUNS):
        found.extend(find_run_dirs(child))
    return sorted(found, key=_natural_path_key)


def _is_run_dir(path: Path) -> bool:
    return (path / METRICS_FILE).is_file() or (path / ".hydra").is_dir()


def _natural_path_key(path: Path) -> list[Any]:
    # Job 10 after job 9, not after job 1.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def read_run(path: Path) -> RunRecord:
    """Read one run dir; a missing or corrupt ``metrics.json`` gives a record that says so."""
    record = RunRecord(path=path, status=MISSING, error="no metrics.json (crashed before writing it?)")
    record.config = _read_yaml(path / "config_resolved.yaml") or _read_yaml(path / ".hydra" / "config.yaml")
    hydra_cfg = _read_yaml(path / ".hydra" / "hydra.yaml").get("hydra", {})
    record.choices = dict(hydra_cfg.get("runtime", {}).get("choices", {}) or {})
    overrides = _read_yaml_any(path / ".hydra" / "overrides.yaml")
    record.overrides = [str(o) for o in overrides] if isinstance(overrides, list) else []
    metrics_path = path / METRICS_FILE
    if metrics_path.is_file():
        try:
            record.results = json.loads(metrics_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            record.status, record.error = UNREADABLE, f"metrics.json is not valid JSON: {err}"
            return record
        record.status = str(record.results.get("status", "unknown"))
        record.error = record.results.get("error")
        if record.results.get("evaluate_again"):  # it failed after training: say how to get its metrics
            record.error = (
                f"{record.error}; trained model kept, evaluate it with {record.results['evaluate_again']}"
            )
    return record


def _read_yaml_any(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return None


def _read_yaml(path: Path) -> dict[str, Any]:
    loaded = _read_yaml_any(path)
    return loaded if isinstance(loaded, dict) else {}


def collect_runs(
    root: Path, planned: Sequence[Sequence[str]] = (), over: Sequence[str] = ()
) -> list[RunRecord]:
    """All runs under ``root``, plus one ``not started`` record per job a multirun planned but never ran.

    ``planned``: override lists of jobs known from elsewhere (a table definition whose jobs were launched
    one by one, e.g. as a job array, and so left no ``multirun.yaml``); each one that no run's overrides
    contain is listed as not started too. ``over``: the keys a row aggregates over (e.g. the split seed);
    a not-started job's ``siblings`` are the started runs whose overrides differ from its own only there.
    """
    runs = [read_run(p) for p in find_run_dirs(root)]
    for sweep_file in sorted(root.rglob("multirun.yaml")):
        runs.extend(_never_started(sweep_file, runs))
    # Compared as Hydra parses them: a job planned as `flag=false` and run as `flag=False` is the same job.
    known = [job_identity(r.overrides) for r in runs if r.overrides]  # started, or planned
    for job in planned:
        if not any(job_identity(job) <= overrides for overrides in known):
            runs.append(
                RunRecord(path=None, status=NOT_STARTED, overrides=list(job), error="planned, never started")
            )
    started = [r for r in runs if r.config and r.overrides]
    for record in runs:
        if record.status == NOT_STARTED:
            record.siblings = [r for r in started if _same_but(record.overrides, r.overrides, over)]
    return runs


def _same_but(job: Sequence[str], run: Sequence[str], keys: Sequence[str]) -> bool:
    """Whether a run set every override of ``job`` to the same value, except possibly ``keys`` (the run may
    carry more, e.g. the ``experiment_name`` a table adds)."""
    wanted = dict(split_override(o) for o in canonical_overrides(job))
    done = dict(split_override(o) for o in canonical_overrides(run))
    return all(k in done and (k in keys or done[k] == v) for k, v in wanted.items())


def _never_started(sweep_file: Path, runs: list[RunRecord]) -> list[RunRecord]:
    """Jobs of a basic-sweeper multirun that have no run dir under the sweep dir."""
    planned = planned_jobs(sweep_file)
    sweep_dir = sweep_file.parent
    inside = [r for r in runs if r.path is not None and sweep_dir in r.path.parents]
    # A run may carry more overrides than its planned job (a resumed table can add some, e.g. trainer=gpu).
    started = [job_identity(r.overrides) for r in inside if r.overrides]
    # A dir without .hydra/overrides.yaml is matched by Hydra's default subdir name: the job number.
    numbered = {int(r.path.name) for r in inside if not r.overrides and r.path and r.path.name.isdigit()}
    missing = []
    for number, overrides in enumerate(planned):
        wanted = job_identity(overrides)
        match = next((i for i, done in enumerate(started) if wanted <= done), None)
        if match is not None:
            del started[match]
        elif number not in numbered:
            missing.append(
                RunRecord(path=None, status=NOT_STARTED, overrides=overrides, error="planned, never started")
            )
    return missing


def planned_jobs(sweep_file: Path) -> list[list[str]]:
    """The override lists of every job a multirun planned (Cartesian product of its sweep overrides).

    Only Hydra's basic sweeper plans its jobs up front; for other sweepers (Optuna) the list is empty.
    """
    hydra_cfg = _read_yaml(sweep_file).get("hydra", {})
    sweeper = str((hydra_cfg.get("sweeper") or {}).get("_target_", ""))
    task = (hydra_cfg.get("overrides") or {}).get("task") or []
    if not sweeper.endswith("BasicSweeper"):
        return []
    try:
        return expand_jobs([str(t) for t in task])
    except Exception:  # an unparsable sweep is reported by its runs, not by crashing the report
        return []


def expand_jobs(overrides: list[str]) -> list[list[str]]:
    """The override list of each job ``recsci -m <overrides>`` starts (basic sweeper: the Cartesian
    product, expanded by Hydra itself, so list values such as ``fanouts=[10,5]`` stay whole)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def canonical_overrides(overrides: Sequence[str]) -> list[str]:
    """``overrides`` as Hydra's basic sweeper writes a job's: each value parsed and printed back, so
    spellings of one value (``false`` / ``False``, ``1e-3`` / ``0.001``) compare equal.

    Overrides Hydra cannot parse as one job's (a sweep, a typo) are returned as they are, and so still
    compare by their text.
    """
    return list(_canonical(tuple(overrides)))


@functools.lru_cache(maxsize=4096)  # a report compares every never-started job with every run
def _canonical(overrides: tuple[str, ...]) -> tuple[str, ...]:
    try:
        (job,) = expand_jobs(list(overrides))
    except Exception:
        return overrides
    return tuple(job)


# -- reading config values -------------------------------------------------------------------------


def lookup(config: dict[str, Any], dotted: str) -> Any:
    """``config["a"]["b"][0]`` for ``"a.b.0"``; None when any part is absent."""
    node: Any = config
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def value_of(run: RunRecord, key: str) -> str:
    """A run's value for a ``--by``/``--over`` key, as display text ("-" when the run has none).

    Resolution order: a Hydra config group name (``model``, ``data``, ``sampler``, ``experiment``...)
    gives the option the run chose (``model`` -> ``blade``); ``model`` without Hydra's record falls back to
    the encoder's or the module's class name; anything else is a dotted key of the resolved config
    (``data.split_source.split_index``, ``model.lr``, ``seed``). Lists (``tags``) are joined with commas.
    A run with none of these records (a planned job that never started) falls back to its own override
    of the key, then to the value shared by all its ``siblings`` (started runs whose overrides differ from
    its own only in the row's aggregated-over keys, e.g. another split), so it is counted in its row as
    not completed.
    """
    if key in run.choices and run.choices[key] is not None:
        return str(run.choices[key])
    value = lookup(run.config, key)
    if key == "model" and (value is None or isinstance(value, dict)):
        target = lookup(run.config, "model.encoder._target_") or lookup(run.config, "model._target_")
        value = _class_name(target)
    elif isinstance(value, dict):
        value = _class_name(value.get("_target_")) or "{...}"  # a config node: name it by its class
    if value is None and key == "seed":
        value = run.seed
    if value is None:
        value = dict(split_override(o) for o in run.overrides).get(key)
    if value is None and run.siblings:
        lent = {value_of(sibling, key) for sibling in run.siblings}
        value = lent.pop() if len(lent) == 1 and "-" not in lent else None
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def default_by(root: Path, runs: list[RunRecord], over: list[str]) -> list[str]:
    """Row keys when none are given: what the multiruns swept (plus the experiment when several ran).

    The keys swept by a multirun (``model=a,b``) are read from its ``multirun.yaml``; without one, every
    override key whose value differs between runs. Keys in ``over`` are aggregated, not grouped by.
    """
    swept: list[str] = []
    for sweep_file in sorted(root.rglob("multirun.yaml")):
        swept += [k for k in sweep_keys(sweep_file) if k not in swept]
    varying = varying_override_keys(runs)
    keys = [k for k in swept if k in varying] if swept else varying
    if len({value_of(r, "experiment_name") for r in runs}) > 1 and "experiment_name" not in keys:
        keys.insert(0, "experiment_name")
    return [k for k in keys if k not in over]


def sweep_keys(sweep_file: Path) -> list[str]:
    """Keys a multirun swept over (overrides with several values), from its ``multirun.yaml``."""
    task = ((_read_yaml(sweep_file).get("hydra") or {}).get("overrides") or {}).get("task") or []
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides([str(t) for t in task])
    except Exception:  # unparsable: fall back to comparing the runs' overrides
        return []
    return [o.key_or_group for o in parsed if o.is_sweep_override()]


def _class_name(target: Any) -> str | None:
    return str(target).rsplit(".", 1)[-1] if target else None


def varying_override_keys(runs: list[RunRecord]) -> list[str]:
    """Override keys (``model``, ``seed``...) whose value differs between runs, in first-seen order."""
    per_run = [dict(split_override(o) for o in run.overrides) for run in runs]
    keys = list(dict.fromkeys(key for values in per_run for key in values))
    return [
        key
        for key in keys
        if not key.startswith("hydra.") and len({values.get(key, "<default>") for values in per_run}) > 1
    ]


def split_override(item: str) -> tuple[str, str]:
    """``key=value`` (Hydra's ``+``/``++``/``~`` prefixes dropped from the key) as (key, value)."""
    key, _, value = item.lstrip("+~").partition("=")
    return key, value


# Where a job runs, not what it is: a sweep planned on a GPU machine (`trainer=gpu`) may be finished on
# this CPU (`trainer=default`) and the other way round: the same job up to float rounding and the device's
# random stream (tests/test_gpu.py compares the two).
MACHINE_KEYS = frozenset({"trainer"})


def job_identity(overrides: Sequence[str]) -> set[str]:
    """What makes a run the job its overrides plan, whatever machine it ran on (:data:`MACHINE_KEYS`)."""
    return {o for o in canonical_overrides(overrides) if split_override(o)[0] not in MACHINE_KEYS}
