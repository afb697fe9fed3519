"""Log a report to Weights & Biases: its plots as images and its tables as W&B tables.

The report gets its own W&B run in the runs' group (``job_type="report"``), so the group page shows the
per-run summaries (logged by each run) next to the aggregated table and plots. Offline unless the runs'
logger config or ``WANDB_MODE`` says online; sync later with ``wandb sync <report dir>/wandb/offline-run-*``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from recsci.core.report.aggregate import TableModel
from recsci.core.report.render import Report


def log_report(report: Report, out_dir: Path, settings: dict[str, Any], group: str | None = None) -> Path:
    """Log plots, the results table, the paired differences (if any) and the per-run table; return the
    W&B run dir."""
    import wandb

    mode = settings.get("mode") or os.environ.get("WANDB_MODE") or "offline"
    mode = "offline" if mode == "dryrun" else mode  # wandb's old name for offline
    group = group or settings.get("group") or report.root.name
    tags = [t for t in [settings.get("job_type"), "report"] if t]
    run = wandb.init(
        project=settings.get("project") or "recsci",
        entity=settings.get("entity"),
        group=str(group),
        job_type="report",
        name=f"report {group}",
        tags=[str(t) for t in tags],
        dir=str(out_dir),
        mode=mode,
        config={"report_root": str(report.root), "facts": dict(report.facts)},
    )
    try:
        media: dict[str, Any] = {
            f"plots/{plot.name}": wandb.Image(str(plot.path), caption=plot.title) for plot in report.plots
        }
        media["tables/results"] = _wandb_table(wandb, report.results)
        media["tables/runs"] = _wandb_table(wandb, report.runs)
        if report.paired is not None:
            media["tables/paired"] = _wandb_table(wandb, report.paired)
        run.log(media)
        run_dir = Path(run.dir).parent
    finally:
        run.finish()
    return run_dir


def _wandb_table(wandb: Any, table: TableModel) -> Any:
    # W&B tables need unique column names; a report's are unique except when a by key repeats.
    columns = [
        f"{name} ({i})" if table.header.count(name) > 1 else name for i, name in enumerate(table.header)
    ]
    return wandb.Table(columns=columns, data=[list(row) for row in table.rows])
