"""Turn a finished Hydra job (a ``JobReturn``) into an Optuna trial outcome."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from optuna.trial import TrialState

OBJECTIVE_KEY = "hydra.sweeper.objective"
DIRECTION_KEY = "hydra.sweeper.direction"
METRICS_FILE = "metrics.json"


class ObjectiveError(ValueError):
    """The job's return value cannot be used as the objective value(s)."""


@dataclass
class TrialOutcome:
    state: TrialState
    values: list[float] | None = None
    error: str | None = None
    exception: BaseException | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    output_dir: str | None = None


def interpret_job(
    job: JobReturn, n_objectives: int, objective_keys: Sequence[str] | None, pruned_by_callback: bool
) -> TrialOutcome:
    """Decide the trial state and values; ``pruned_by_callback`` wins over any return value."""
    output_dir = _output_dir(job)
    metrics = read_metrics_file(output_dir)
    if job.status != JobStatus.COMPLETED:
        error = _job_exception(job)
        if pruned_by_callback or isinstance(error, optuna.TrialPruned):
            return TrialOutcome(TrialState.PRUNED, metrics=metrics, output_dir=output_dir)
        message = f"{type(error).__name__}: {error}" if error is not None else "job did not complete"
        return TrialOutcome(
            TrialState.FAIL, error=message, exception=error, metrics=metrics, output_dir=output_dir
        )
    if pruned_by_callback:
        return TrialOutcome(TrialState.PRUNED, metrics=metrics, output_dir=output_dir)
    value = job.return_value
    if isinstance(value, Mapping):
        metrics = {**metrics, **jsonable_metrics(value)}
    try:
        values = objective_values(value, n_objectives, objective_keys)
    except ObjectiveError as error:
        return TrialOutcome(
            TrialState.FAIL, error=str(error), exception=error, metrics=metrics, output_dir=output_dir
        )
    return TrialOutcome(TrialState.COMPLETE, values=values, metrics=metrics, output_dir=output_dir)


def objective_values(value: Any, n_objectives: int, objective_keys: Sequence[str] | None) -> list[float]:
    """The objective value(s) in a task's return value, checked against the number of directions."""
    if value is None:
        raise ObjectiveError(
            "the task function returned None; for a sweep it must return the optimized metric "
            "(the value named by `optimized_metric`) as a float"
            + (f", or a sequence of {n_objectives} floats, one per direction" if n_objectives > 1 else "")
        )
    raw = _raw_values(value, objective_keys)
    if len(raw) != n_objectives:
        raise ObjectiveError(
            f"the task function returned {len(raw)} value(s) but {DIRECTION_KEY} "
            f"has {n_objectives} direction(s)"
        )
    values = [_as_float(item) for item in raw]
    if any(math.isnan(v) for v in values):
        raise ObjectiveError("the task function returned NaN")
    return values


def _raw_values(value: Any, objective_keys: Sequence[str] | None) -> list[Any]:
    if isinstance(value, Mapping):
        if not objective_keys:
            raise ObjectiveError(
                f"the task function returned a dict (keys {sorted(map(str, value))}); set "
                f"{OBJECTIVE_KEY} to the key (or list of keys) to optimize"
            )
        missing = [key for key in objective_keys if key not in value]
        if missing:
            raise ObjectiveError(
                f"{OBJECTIVE_KEY} names {missing}, not in the task's returned keys {sorted(map(str, value))}"
            )
        return [value[key] for key in objective_keys]
    if hasattr(value, "tolist") and not isinstance(value, (int, float)):
        value = value.tolist()  # numpy arrays/scalars, torch tensors
    if isinstance(value, (str, bytes)):
        raise ObjectiveError(f"the task function returned a string ({value!r}), not a number")
    if isinstance(value, Sequence):
        return list(value)
    return [value]


def _as_float(item: Any) -> float:
    if isinstance(item, bool):
        raise ObjectiveError(f"the task function returned a boolean ({item!r}), not a number")
    try:
        return float(item)
    except (TypeError, ValueError):
        raise ObjectiveError(f"the task function returned {item!r}, which is not a number") from None


def read_metrics_file(output_dir: str | None) -> dict[str, Any]:
    """The ``metrics`` dict of ``<output_dir>/metrics.json`` if the job wrote one, else ``{}``."""
    if not output_dir:
        return {}
    path = Path(output_dir) / METRICS_FILE
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    metrics = content.get("metrics") if isinstance(content, dict) else None
    return jsonable_metrics(metrics) if isinstance(metrics, Mapping) else {}


def jsonable_metrics(metrics: Mapping[Any, Any]) -> dict[str, Any]:
    """Metrics as JSON-friendly values (storages serialize user attrs as JSON)."""
    result: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, (str, bool, int)) or value is None:
            result[str(key)] = value
        else:
            try:
                number = float(value)
                result[str(key)] = number if math.isfinite(number) else str(number)
            except (TypeError, ValueError):
                result[str(key)] = str(value)
    return result


def _output_dir(job: JobReturn) -> str | None:
    hydra_cfg = getattr(job, "hydra_cfg", None)
    try:
        return str(hydra_cfg.hydra.runtime.output_dir) if hydra_cfg is not None else None
    except Exception:
        return None


def _job_exception(job: JobReturn) -> BaseException | None:
    # JobReturn.return_value re-raises the job's exception for a failed job: the public way to get it.
    try:
        _ = job.return_value
    except BaseException as error:
        return error
    return None
