"""Report plots for uncertainty-aware decisions (referenced from table definitions by dotted path).

The decision-rule protocol already draws, per run, ``plots/positive_rate_by_bucket.png`` (empirical
positive rate against score per uncertainty bucket) and ``plots/precision_recall.png`` (PR curves with
each rule's operating points): :func:`run_plots` embeds those of one run per group (the lowest seed) rather
than redrawing them. :func:`recall_at_bounds` is drawn from the ``test/<rule>/recall@p<bound>`` metrics,
aggregated over seeds.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from recsci.core.report.plots import Plot, PlotDataMissing, ReportData, new_figure

RUN_PLOTS = {
    "positive_rate_by_bucket": "Positive rate vs score per uncertainty bucket",
    "precision_recall": "Precision-recall curves and rule operating points",
}


def run_plots(data: ReportData, names: Sequence[str] = tuple(RUN_PLOTS)) -> list[Plot]:
    """The PNGs a run wrote under ``plots/``, for the lowest-seed completed run of each group."""
    plots = []
    for group in data.groups:
        runs = sorted(
            group.completed, key=lambda r: (r.seed is None, r.seed if isinstance(r.seed, int) else 0)
        )
        run = next((r for r in runs if r.path is not None and (r.path / "plots").is_dir()), None)
        if run is None or run.path is None:
            continue
        for name in names:
            path = run.path / "plots" / f"{name}.png"
            if path.is_file():
                title = f"{RUN_PLOTS.get(name, name)}: {group.label}"
                caption = f"From run {run.label(data.root)} (seed {run.seed}); hold-out fit, test evaluation."
                plots.append(Plot(f"{name}_{group.label}", title, path=path, caption=caption))
    if not plots:
        raise PlotDataMissing(
            "no completed run has plots/*.png (run the decision_rules protocol with plots=true)"
        )
    return plots


def recall_at_bounds(data: ReportData, split: str = "test", rules: Sequence[str] | None = None) -> list[Plot]:
    """Recall at each precision bound per rule (mean ± std over seeds), one panel per group."""
    pattern = re.compile(rf"^{re.escape(split)}/(?P<rule>[^/]+)/recall@p(?P<bound>[0-9.]+)$")
    panels = []
    for group in data.groups:
        points: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
        for run in group.completed:
            for key, value in run.metrics.items():
                match = pattern.match(key)
                if match and (rules is None or match["rule"] in rules):
                    points[match["rule"]][float(match["bound"])].append(value)
        if points:
            panels.append((group.label, points))
    if not panels:
        raise PlotDataMissing(f"no completed run records {split}/<rule>/recall@p<bound>")
    fig = new_figure(5.0 * min(len(panels), 3), 4.0)
    for ax, (label, points) in zip(
        fig.subplots(1, min(len(panels), 3), squeeze=False)[0], panels, strict=False
    ):
        for rule in sorted(points):
            bounds = sorted(points[rule])
            means = [float(np.nanmean(points[rule][b])) for b in bounds]
            stds = [
                float(np.nanstd(points[rule][b], ddof=1)) if len(points[rule][b]) > 1 else 0.0 for b in bounds
            ]
            style = "--" if rule == "single_threshold" else "-"
            ax.errorbar(bounds, means, yerr=stds, fmt=style + "o", markersize=3, capsize=2, label=rule)
        ax.set_xlabel("precision bound")
        ax.set_ylabel(f"{split} recall")
        ax.set_title(label, fontsize="small")
        ax.legend(fontsize="small")
    caption = (
        "Each rule fitted on the hold-out split at the bound; recall on test. Dashed: one global threshold."
    )
    return [
        Plot(
            f"recall_at_bounds_{split}",
            "Recall at each precision bound per rule",
            figure=fig,
            caption=caption,
        )
    ]
