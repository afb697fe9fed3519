"""Which checkpoint a run resumes from: an explicit ``ckpt_path``, or ``resume=true``."""

from __future__ import annotations

import json
from pathlib import Path

from recsci.core.errors import ConfigError
from recsci.core.results import METRICS_FILE

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


def resolve_checkpoint(ckpt_path: str | None, resume: bool, output_dir: Path) -> str | None:
    """The checkpoint to resume from, or None to start fresh.

    ``resume=true`` takes ``last.ckpt`` of this output dir if it has one (a run restarted with the
    same ``hydra.run.dir``), else of the most recent interrupted run beside it: a sibling run dir of
    the same experiment whose ``metrics.json`` does not say ``completed``.
    """
    if ckpt_path:
        path = Path(ckpt_path)
        if not path.is_file():
            raise ConfigError(f"ckpt_path={ckpt_path!r}: no such checkpoint file.")
        return str(path)
    if not resume:
        return None
    own = output_dir / LAST_CHECKPOINT
    if own.is_file():
        return str(own)
    candidates = [
        run_dir / LAST_CHECKPOINT
        for run_dir in output_dir.parent.iterdir()
        if run_dir != output_dir and (run_dir / LAST_CHECKPOINT).is_file() and not _completed(run_dir)
    ]
    if not candidates:
        raise ConfigError(
            f"resume=true: no interrupted run with {LAST_CHECKPOINT} under '{output_dir.parent}'. "
            "Pass ckpt_path=<path to a .ckpt> instead."
        )
    return str(max(candidates, key=lambda p: p.stat().st_mtime))


def _completed(run_dir: Path) -> bool:
    try:
        return json.loads((run_dir / METRICS_FILE).read_text()).get("status") == "completed"
    except (OSError, ValueError):
        return False
