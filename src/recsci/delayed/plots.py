"""Report plots for delayed feedback (referenced from table definitions by dotted path).

Both read what the streaming/batch protocols record in ``metrics.json``: ``delayed.windows`` (one entry
per evaluated window, with the method's and the references' metrics) and ``flip_calibration``
(reliability bins of the flip model with and without engagement signals).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from recsci.core.report.plots import Plot, PlotDataMissing, ReportData, new_figure


def metric_per_interval(data: ReportData, metric: str = "auc", references: bool = True) -> list[Plot]:
    """``metric`` on each streaming interval, per method (group) averaged over seeds; references dashed."""
    fig = new_figure(7.0, 4.2)
    ax = fig.subplots()
    reference_points: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    drawn = 0
    for group in data.groups:
        points: dict[float, list[float]] = defaultdict(list)
        for run in group.completed:
            for window in _windows(run.results):
                if metric in window.get("method", {}):
                    points[float(window["start"])].append(float(window["method"][metric]))
                for name in ("vanilla", "oracle", "pretrained"):
                    if metric in window.get(name, {}):
                        reference_points[name][float(window["start"])].append(float(window[name][metric]))
        if points:
            _line(ax, points, group.label, "-o")
            drawn += 1
    if not drawn:
        raise PlotDataMissing(f"no completed run records delayed.windows[*].method.{metric}")
    if references:
        for name, points in reference_points.items():
            _line(ax, points, f"{name} (reference, all runs)", "--")
    ax.set_xlabel("interval start (hours)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per streaming interval")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    caption = "Each point: the model trained on the previous interval, tested on this one (eventual labels)."
    return [Plot(f"{metric}_per_interval", f"{metric} per streaming interval", figure=fig, caption=caption)]


def _windows(results: dict[str, Any]) -> list[dict[str, Any]]:
    return list((results.get("delayed") or {}).get("windows") or [])


def _line(ax: Any, points: dict[float, list[float]], label: str, style: str) -> None:
    xs = sorted(points)
    means = np.array([np.mean(points[x]) for x in xs])
    ax.plot(xs, means, style, label=label, markersize=3)


def flip_calibration(data: ReportData, split: str = "test", max_panels: int = 3) -> list[Plot]:
    """Reliability diagram of each group's flip model, pooled over its runs.

    Groups whose runs also fitted the same flip model without engagement (``flip_diagnostics``) come first
    and show both curves: that comparison is the point of the plot.
    """
    panels = []
    for group in data.groups:
        curves = {
            name: _pooled(group.completed, f"{split}/{name}") for name in ("flip", "flip_no_engagement")
        }
        if curves["flip"][0].size:
            panels.append((group.label, curves))
    if not panels:
        raise PlotDataMissing(f"no completed run records flip_calibration['{split}/flip']")
    panels.sort(key=lambda panel: panel[1]["flip_no_engagement"][0].size == 0)  # stable: comparisons first
    shown = panels[:max_panels]
    fig = new_figure(4.0 * len(shown), 4.0)
    for ax, (label, curves) in zip(fig.subplots(1, len(shown), squeeze=False)[0], shown, strict=True):
        compared = curves["flip_no_engagement"][0].size > 0
        ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect")
        for name, (pred, rate) in curves.items():
            if pred.size:
                legend = {"flip": "with engagement", "flip_no_engagement": "without engagement"}[name]
                ax.plot(pred, rate, "-o", markersize=3, label=legend if compared else "flip model")
        upper = max([0.05, *(float(max(p.max(), r.max())) for p, r in curves.values() if p.size)])
        ax.set_xlim(0, min(1.0, upper * 1.1))
        ax.set_ylim(0, min(1.0, upper * 1.1))
        ax.set_title(label, fontsize="small")
        ax.set_xlabel("predicted flip probability")
        ax.set_ylabel("observed flip rate")
        ax.legend(fontsize="small")
    caption = (
        f"Observed negatives of the {split} windows, labelled by whether they converted later; bins pooled over "
        "seeds (weighted by count)."
    )
    if len(panels) > len(shown):
        caption += f" Not drawn: {', '.join(label for label, _ in panels[len(shown) :])}."
    return [Plot(f"flip_calibration_{split}", "Flip-model calibration", figure=fig, caption=caption)]


def _pooled(runs: list[Any], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Count-weighted mean prediction and observed rate per bin over runs."""
    count: dict[float, float] = defaultdict(float)
    pred: dict[float, float] = defaultdict(float)
    rate: dict[float, float] = defaultdict(float)
    for run in runs:
        for row in (run.results.get("flip_calibration") or {}).get(key) or []:
            n = float(row["count"])
            count[row["bin"]] += n
            pred[row["bin"]] += n * float(row["mean_pred"])
            rate[row["bin"]] += n * float(row["rate"])
    bins = sorted(b for b in count if count[b] > 0)
    return np.array([pred[b] / count[b] for b in bins]), np.array([rate[b] / count[b] for b in bins])
