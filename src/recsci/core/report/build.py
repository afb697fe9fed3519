"""Build a report: collect runs, group and aggregate, draw plots, write Markdown and HTML (and W&B)."""

from __future__ import annotations

import datetime as dt
import difflib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsci.core.report.aggregate import (
    Layout,
    TableModel,
    column_values,
    default_metrics,
    display_scales,
    group_runs,
    results_table,
)
from recsci.core.report.anchors import Anchors, add_anchor_rows
from recsci.core.report.paired import Comparison, paired_table
from recsci.core.report.plots import ReportData, render_plots
from recsci.core.report.render import Report, to_html, to_markdown
from recsci.core.report.runs import RunRecord, collect_runs, value_of

log = logging.getLogger(__name__)

REPORT_DIR = "report"


@dataclass
class ReportFiles:
    report: Report
    runs: list[RunRecord]
    markdown: Path
    html: Path
    wandb_dir: Path | None = None


def build_report(
    root: Path,
    layout: Layout,
    *,
    title: str | None = None,
    anchors: Anchors | None = None,
    plots: Sequence[str | dict[str, Any]] = ("metric_bars",),
    out_dir: Path | None = None,
    facts: Sequence[tuple[str, str]] = (),
    wandb: bool | None = None,
    wandb_group: str | None = None,
    planned: Sequence[Sequence[str]] = (),
    comparisons: Sequence[Comparison] = (),
    check_keys: bool = False,
) -> ReportFiles:
    """Write ``report.md``, ``report.html`` and ``plots/`` into ``out_dir`` (default ``<root>/report``).

    ``wandb``: True logs the plots and tables to a W&B run; None does so when the runs used the W&B logger.
    ``planned``: jobs known from elsewhere (see :func:`collect_runs`); those that never ran are listed.
    ``comparisons``: pairs of rows to difference run by run (:mod:`recsci.core.report.paired`).
    ``check_keys``: refuse row keys and metrics no completed run has (:func:`check_layout_keys`), before
    anything is written.
    """
    root = root.resolve()
    runs = collect_runs(root, planned, layout.over)
    if check_keys:
        check_layout_keys(runs, layout)
    out_dir = (out_dir or root / REPORT_DIR).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    if not layout.metrics:
        layout.metrics = default_metrics(runs)
    groups = group_runs(runs, layout.by, layout.order)
    data = ReportData(root=root, runs=runs, groups=groups, layout=layout)
    # One scale per column for our rows and the published ones: a column is a fraction or it is not.
    published = [anchor.metrics for anchor in anchors.rows] if anchors is not None else []
    scales = display_scales(layout, column_values(groups, layout), published)
    results = results_table(groups, layout, scales)
    if anchors is not None:
        add_anchor_rows(results, anchors, layout, scales)
    paired = paired_table(runs, layout, comparisons, scales) if comparisons else None
    outcome = render_plots(plots, data, out_dir / "plots")
    report = Report(
        title=title or f"Report: {root.name}",
        root=root,
        generated=dt.datetime.now().isoformat(timespec="seconds"),
        results=results,
        paired=paired,
        runs=runs_table(runs, root, layout),
        problems=problems_table(runs, root, layout),
        plots=outcome.saved,
        skipped_plots=outcome.skipped,
        facts=[*facts, *_facts(runs, layout, anchors)],
        notes=_notes(layout, anchors, scales),
        paired_notes=_paired_notes(layout) if paired is not None else [],
    )
    markdown, html_path = out_dir / "report.md", out_dir / "report.html"
    markdown.write_text(to_markdown(report, out_dir))
    html_path.write_text(to_html(report))
    files = ReportFiles(report, runs, markdown, html_path)
    settings = wandb_settings(runs)
    if wandb or (wandb is None and settings is not None):
        from recsci.core.report.wandb_log import log_report

        files.wandb_dir = log_report(report, out_dir, settings or {}, group=wandb_group)
    log.info("Report: %s", html_path)
    return files


def check_layout_keys(runs: Sequence[RunRecord], layout: Layout) -> None:
    """Refuse a row key, aggregated-over key or metric that no completed run has: a typo would otherwise
    give a table of '-' cells (or one row of everything) that looks like a result. For keys a user typed
    (``recsci report``); a table definition's keys are fixed files, and a partly run table may have no
    completed run of the rows that record a metric yet. Nothing is checked while no run has completed."""
    completed = [r for r in runs if r.completed]
    if not completed:
        return
    for option, keys in (("by", layout.by), ("over", layout.over)):
        for key in keys:
            if all(value_of(r, key) == "-" for r in completed):
                known = _config_keys(completed[0])
                raise ValueError(
                    f"{option} key {key!r}: none of the {len(completed)} completed runs has it (a config "
                    "group such as model, data or sampler, or a dotted key of the resolved config such as "
                    f"model.lr){_did_you_mean(key, known)}"
                )
    if layout.pivot is None:  # a pivot's metrics are parts of key patterns, checked by their cells
        recorded = sorted(set().union(*(r.metrics for r in completed)))
        for spec in layout.metrics:
            if spec.key not in recorded:
                raise ValueError(
                    f"metric {spec.key!r}: no completed run recorded it{_did_you_mean(spec.key, recorded)}"
                )


def _config_keys(run: RunRecord) -> list[str]:
    """The keys a run can be grouped by: its config groups, ``seed`` and the dotted keys of its config."""
    keys = [*run.choices, "seed"]

    def walk(node: Any, prefix: str) -> None:
        for name, value in node.items() if isinstance(node, dict) else ():
            keys.append(prefix + str(name))
            walk(value, f"{prefix}{name}.")

    walk(run.config, "")
    return keys


def _did_you_mean(key: str, known: Sequence[str]) -> str:
    """Up to three known keys close to ``key``, whole or by their last part (``split`` finds
    ``data.split_source.split_index``)."""
    by_last_part: dict[str, list[str]] = {}
    for name in known:
        by_last_part.setdefault(name.rsplit(".", 1)[-1], []).append(name)
    close = difflib.get_close_matches(key, list(dict.fromkeys(known)), n=3)
    close += [
        name
        for part in difflib.get_close_matches(key, list(by_last_part), n=3)
        for name in by_last_part[part]
    ]
    close = list(dict.fromkeys(close))[:3]
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def runs_table(runs: Sequence[RunRecord], root: Path, layout: Layout) -> TableModel:
    """One row per run (completed or not): where, status, keys, seed, commit, time, metrics."""
    metric_keys = ["objective"] if layout.pivot else [m.key for m in layout.metrics]
    keys = [*layout.by, *layout.over]
    seed = [] if "seed" in keys else ["seed"]  # no second seed column when seeds are a key already
    table = TableModel(["run", "status", *keys, *seed, "commit", "wall s", *metric_keys])
    for run in runs:
        metrics = run.metrics
        values = [
            _number(run.results.get("objective")) if key == "objective" else _number(metrics.get(key))
            for key in metric_keys
        ]
        wall = run.results.get("wall_time_s")
        table.add(
            [
                run.label(root),
                run.status,
                *[value_of(run, k) for k in keys],
                *[str(run.seed if run.seed is not None else "-") for _ in seed],
                (run.commit or "-")[:12] + ("+dirty" if (run.commit or "").endswith("+dirty") else ""),
                f"{wall:.1f}" if isinstance(wall, (int, float)) else "-",
                *values,
            ],
            kind="ours" if run.completed else "failed",
        )
    return table


def problems_table(runs: Sequence[RunRecord], root: Path, layout: Layout) -> TableModel:
    """The runs that did not complete, with why: they are listed, never silently dropped."""
    table = TableModel(["run", "status", *layout.by, *layout.over, "error"])
    for run in runs:
        if not run.completed:
            keys = [value_of(run, k) for k in [*layout.by, *layout.over]]
            table.add([run.label(root), run.status, *keys, run.error or "-"], kind="failed")
    return table


def _number(value: Any) -> str:
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return "-"


def _facts(runs: Sequence[RunRecord], layout: Layout, anchors: Anchors | None) -> list[tuple[str, str]]:
    completed = [r for r in runs if r.completed]
    commits = sorted({r.commit for r in completed if r.commit})
    seeds = sorted({str(r.seed) for r in completed if r.seed is not None}, key=lambda s: (len(s), s))
    facts = [
        ("runs", f"{len(completed)} completed of {len(runs)}"),
        ("grouped by", ", ".join(layout.by) or "(nothing: one group)"),
        ("aggregated over", ", ".join(layout.over) or "(nothing)"),
        ("seeds", ", ".join(seeds) or "-"),
        ("commits", ", ".join(commits) or "-"),
    ]
    if anchors is not None:
        facts.append(("published rows", anchors.source))
    return facts


def _notes(layout: Layout, anchors: Anchors | None, scales: dict[str, float]) -> list[str]:
    notes = ["Cells are mean ± sample standard deviation over the completed runs of each row (n)."]
    if layout.scale == 100:
        notes.append("Values are percentages (our fractions x 100).")
    unscaled = [m.label for m in layout.metrics if scales.get(m.key) != layout.scale]
    if unscaled:
        notes.append(
            f"Not fractions, shown as recorded: {', '.join(unscaled)} "
            "(values outside [0, 1], or declared `unit: value`)."
        )
    if anchors is not None:
        notes.append(
            "Italic rows marked 'published' are numbers from the paper, not runs of ours "
            "(converted to the same unit as ours)."
        )
    return notes


def _paired_notes(layout: Layout) -> list[str]:
    over = ", ".join(layout.over) or "run"
    notes = [
        f"Each cell: mean of the differences A - B over the pairs (runs with the same {over}), "
        "(k/n: A higher on k of the n pairs, t: paired t statistic, mean / (sd / sqrt(n)))."
    ]
    if layout.scale == 100:
        notes.append("Differences of fractions are in percentage points.")
    return notes


def wandb_settings(runs: Sequence[RunRecord]) -> dict[str, Any] | None:
    """The W&B logger config the runs used (project, group, entity, mode), or None if none used W&B."""
    for run in runs:
        logger = run.config.get("logger") or {}
        if isinstance(logger, dict) and isinstance(logger.get("wandb"), dict):
            wandb_cfg = dict(logger["wandb"])
            wandb_cfg.setdefault("job_type", run.config.get("problem"))
            return wandb_cfg
    return None
