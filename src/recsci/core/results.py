"""The one results format every run writes and every reader (report, sweeper) reads: ``metrics.json``."""

from __future__ import annotations

import json
import math
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.json"


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    """The commit of the source tree (``+dirty`` when it has uncommitted changes), or None outside git."""
    where = cwd or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, check=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}+dirty" if dirty else sha


def to_float_dict(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Plain floats (tensors and numpy scalars converted) so the file is valid, portable JSON."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        value = value.item() if hasattr(value, "item") else value
        out[str(key)] = float(value)
    return out


def write_results(output_dir: str | os.PathLike, results: Mapping[str, Any]) -> Path:
    """Write ``metrics.json`` atomically: a crash mid-write never leaves a truncated file behind."""
    path = Path(output_dir) / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_json_safe(results), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def read_results(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Read a run's ``metrics.json``; the error names the file when it is missing or corrupt."""
    path = Path(run_dir) / METRICS_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"No {METRICS_FILE} in '{run_dir}': the run never finished or failed early."
        ) from None
    except json.JSONDecodeError as err:
        raise ValueError(f"'{path}' is not valid JSON ({err}); rerun the job to rewrite it.") from None


def _json_safe(value: Any) -> Any:
    # JSON has no NaN/inf: write them as strings so the file stays parseable by strict readers.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
