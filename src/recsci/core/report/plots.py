"""Report plots: a registry of plot functions, resolved from table definitions by name or dotted path.

A plot function takes the report's data (runs, groups, layout) plus keyword options from the table
definition and returns :class:`Plot` objects: a matplotlib ``Figure`` it drew, or the path of a PNG a run
already wrote (the uncertainty package saves its own plots into each run dir). When the runs lack what
it needs it raises :class:`PlotDataMissing`; the report lists the plot as skipped with that reason.

Problem packages provide their plots as plain functions (``recsci.graph.plots.hits_by_degree_bucket``),
so the core never imports them: a definition names them as a dotted path, or as
``{_target_: <dotted path>, <option>: <value>}``.
"""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from recsci.core.report.aggregate import Group, Layout
from recsci.core.report.runs import RunRecord


@dataclass
class ReportData:
    """What a plot function sees."""

    root: Path
    runs: list[RunRecord]
    groups: list[Group]
    layout: Layout


@dataclass
class Plot:
    """A figure to save, or an existing PNG to copy into the report."""

    name: str
    title: str
    figure: Figure | None = None
    path: Path | None = None
    caption: str = ""


@dataclass
class SavedPlot:
    name: str
    title: str
    path: Path  # inside the report dir
    caption: str = ""


@dataclass
class PlotOutcome:
    saved: list[SavedPlot] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "<plot>: <reason>"


class PlotDataMissing(Exception):
    """The runs do not record what this plot needs (the message says which keys)."""


PlotFunction = Callable[..., Sequence[Plot]]
PLOTS: dict[str, PlotFunction] = {}


def register_plot(name: str) -> Callable[[PlotFunction], PlotFunction]:
    """Make a plot function available under a short name as well as its dotted path."""

    def decorate(function: PlotFunction) -> PlotFunction:
        PLOTS[name] = function
        return function

    return decorate


def resolve_plot(spec: str | dict[str, Any]) -> tuple[str, PlotFunction, dict[str, Any]]:
    """``"name"``, ``"pkg.module.function"`` or ``{_target_: ..., **options}`` -> (name, function, options)."""
    options: dict[str, Any] = {}
    if isinstance(spec, dict):
        options = {k: v for k, v in spec.items() if k != "_target_"}
        if "_target_" not in spec:
            raise ValueError(f"plot spec {spec!r} needs a _target_ (a plot function's dotted path)")
        spec = str(spec["_target_"])
    if spec in PLOTS:
        return spec, PLOTS[spec], options
    module_name, _, attribute = spec.rpartition(".")
    if not module_name:
        raise ValueError(
            f"unknown plot {spec!r}: registered plots are {sorted(PLOTS)}; or give a dotted path"
        )
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot import plot {spec!r}: {err}") from None
    return spec, function, options


def render_plots(specs: Sequence[str | dict[str, Any]], data: ReportData, out_dir: Path) -> PlotOutcome:
    """Run every plot function and save its PNGs under ``out_dir``; a failing plot is listed, not fatal."""
    outcome, taken = PlotOutcome(), set[str]()
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.png"):  # a rebuilt report must not show plots it no longer draws
        stale.unlink()
    for spec in specs:
        try:
            name, function, options = resolve_plot(spec)
            plots = list(function(data, **options))
        except PlotDataMissing as err:
            outcome.skipped.append(f"{_spec_name(spec)}: {err}")
            continue
        except Exception as err:  # a broken plot must not cost the tables: report it and go on
            outcome.skipped.append(f"{_spec_name(spec)}: failed ({type(err).__name__}: {err})")
            continue
        if not plots:
            outcome.skipped.append(f"{name}: produced no plot")
        for plot in plots:
            outcome.saved.append(_save(plot, out_dir, taken))
    return outcome


def _spec_name(spec: str | dict[str, Any]) -> str:
    return str(spec.get("_target_", spec)) if isinstance(spec, dict) else spec


def _save(plot: Plot, out_dir: Path, taken: set[str]) -> SavedPlot:
    # The same plot function may appear twice with different options: never overwrite a sibling.
    name, suffix = _safe(plot.name), 2
    while name in taken:
        name, suffix = f"{_safe(plot.name)}_{suffix}", suffix + 1
    taken.add(name)
    target = out_dir / f"{name}.png"
    if plot.figure is not None:
        plot.figure.savefig(target, dpi=110, bbox_inches="tight")
    elif plot.path is not None:
        shutil.copyfile(plot.path, target)
    else:
        raise ValueError(f"plot {plot.name!r} has neither a figure nor a path")
    return SavedPlot(name, plot.title, target, plot.caption)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def new_figure(width: float = 6.0, height: float = 4.0) -> Figure:
    """A pyplot-free figure: no global state, no GUI backend, nothing to close."""
    return Figure(figsize=(width, height), layout="constrained")


# -- generic plots -----------------------------------------------------------------------------------


@register_plot("metric_bars")
def metric_bars(data: ReportData, metrics: Sequence[str] | None = None) -> list[Plot]:
    """Mean +- std of each metric per group, as grouped bars (the table at a glance)."""
    if data.layout.pivot is not None and metrics is None:
        raise PlotDataMissing("pivoted tables need explicit `metrics` (full metric names) for metric_bars")
    keys = list(metrics) if metrics else [m.key for m in data.layout.metrics]
    groups = [g for g in data.groups if g.completed]
    keys = [k for k in keys if any(g.values(k) for g in groups)]
    if not keys or not groups:
        raise PlotDataMissing("no completed run records the table's metrics")
    fig = new_figure(max(6.0, 0.6 * len(keys) * len(groups) ** 0.5 + 3), 4.0)
    ax = fig.subplots()
    width = 0.8 / len(groups)
    for i, group in enumerate(groups):
        stats = [group.stat(k) for k in keys]
        xs = [j + (i - (len(groups) - 1) / 2) * width for j in range(len(keys))]
        means = [s.mean if s else 0.0 for s in stats]
        errors = [(s.std or 0.0) if s else 0.0 for s in stats]
        label = _shorten(group.label, 40) + f" (n={len(group.completed)})"
        ax.bar(xs, means, width, yerr=errors, capsize=2, label=label)
    ax.set_xticks(range(len(keys)), keys, rotation=30, ha="right")
    ax.set_ylabel("mean ± std over " + (", ".join(data.layout.over) or "runs"))
    ax.legend(fontsize="small")
    return [
        Plot("metric_bars", "Metrics per group", figure=fig, caption="Error bars: one standard deviation.")
    ]
