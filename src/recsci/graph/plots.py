"""Report plots for directed-graph recommendation (referenced from table definitions by dotted path).

- :func:`hits_by_degree_bucket`: HitRate@K of each model by the query's degree bucket, from the
  ``test/rec_hits@10_low|mid|high`` metrics the link-prediction module writes.
- :func:`fanout_by_degree`: neighbours sampled per node against its degree for each fan-out schedule the
  runs used (BLADE's degree-adaptive schedule, the uniform ablation, full batch), from the runs' configs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from recsci.core.build import build
from recsci.core.report.plots import Plot, PlotDataMissing, ReportData, new_figure
from recsci.graph.evaluate import BUCKETS


def hits_by_degree_bucket(
    data: ReportData, metric: str = "test/rec_hits@10", buckets: Sequence[str] = BUCKETS
) -> list[Plot]:
    """Grouped bars: x = query-degree bucket, one bar per group (mean ± std over seeds/splits)."""
    groups = [g for g in data.groups if any(g.values(f"{metric}_{b}") for b in buckets)]
    if not groups:
        raise PlotDataMissing(f"no completed run records {metric}_<{'|'.join(buckets)}>")
    fig = new_figure(6.5, 4.0)
    ax = fig.subplots()
    width = 0.8 / len(groups)
    for i, group in enumerate(groups):
        stats = [group.stat(f"{metric}_{b}") for b in buckets]
        xs = np.arange(len(buckets)) + (i - (len(groups) - 1) / 2) * width
        means = [s.mean if s else np.nan for s in stats]
        errors = [(s.std or 0.0) if s else 0.0 for s in stats]
        ax.bar(xs, means, width, yerr=errors, capsize=2, label=group.label)
    ax.set_xticks(range(len(buckets)), [f"{b} degree" for b in buckets])
    ax.set_ylabel(f"{metric} (mean ± std)")
    ax.set_title("HitRate by query-degree bucket")
    ax.legend(fontsize="small", ncols=2)
    caption = (
        "Queries bucketed by their out-degree in the training graph (terciles of the evaluated queries"
        f"{_edges_text(data)}); low-degree queries are where degree-adaptive sampling should help."
    )
    return [Plot("hits_by_degree_bucket", "HitRate@K by query-degree bucket", figure=fig, caption=caption)]


def _edges_text(data: ReportData) -> str:
    """The bucket edges the runs recorded, e.g. ': low <= 1, mid <= 3, high > 3' (empty if unknown)."""
    low_mid = sorted({v for g in data.groups for v in g.values("test/rec_bucket_edge_low_mid")})
    mid_high = sorted({v for g in data.groups for v in g.values("test/rec_bucket_edge_mid_high")})
    if len(low_mid) != 1 or len(mid_high) != 1:
        return "" if not low_mid else " (edges differ between splits)"
    return f": low <= {low_mid[0]:g}, mid <= {mid_high[0]:g}, high > {mid_high[0]:g}"


def fanout_by_degree(data: ReportData, max_degree: int = 1000, hop: int = 0) -> list[Plot]:
    """Neighbours sampled per node (one direction, hop ``hop``) against the node's degree, per schedule."""
    schedules = _distinct_samplers(data)
    if not schedules:
        raise PlotDataMissing("no run config has a `sampler` entry")
    degrees = torch.unique(torch.logspace(0, np.log10(max_degree), 200).round().long())
    fig = new_figure(6.0, 4.0)
    ax = fig.subplots()
    for label, sampler in schedules.items():
        ax.plot(degrees.numpy(), _sampled(sampler, degrees, hop).numpy(), label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("node degree (in the sampled direction)")
    ax.set_ylabel(f"neighbours sampled at hop {hop}")
    ax.set_title("Sampled neighbourhood size vs degree")
    ax.legend(fontsize="small")
    caption = (
        "Per schedule: min(degree, fan-out(degree)); with walk fill, nodes below their budget are filled "
        "up to the fan-out by random walks. Full batch takes every neighbour."
    )
    return [
        Plot(
            "fanout_by_degree",
            "Neighbourhood size vs degree per fan-out schedule",
            figure=fig,
            caption=caption,
        )
    ]


def _distinct_samplers(data: ReportData) -> dict[str, dict[str, Any] | None]:
    """Sampler config per label (``<sampler option>: <models>``), one entry per distinct config."""
    found: dict[str, tuple[dict[str, Any] | None, list[str]]] = {}
    for run in data.runs:
        if not run.config or "sampler" not in run.config:
            continue
        sampler = run.config["sampler"]
        key = repr(sampler)
        option = str(run.choices.get("sampler") or ("full_batch" if sampler is None else "sampler"))
        model = str(run.choices.get("model") or "")
        entry = found.setdefault(key, (sampler, [option]))
        if model and model not in entry[1]:
            entry[1].append(model)
    return {
        f"{names[0]}" + (f" ({', '.join(names[1:])})" if names[1:] else ""): s for s, names in found.values()
    }


def _sampled(sampler: dict[str, Any] | None, degrees: torch.Tensor, hop: int) -> torch.Tensor:
    if sampler is None:
        return degrees.double()
    schedule = build(sampler["schedule"])
    budget = schedule(min(hop, (schedule.max_hops or hop + 1) - 1), degrees)
    filled = sampler.get("walk_fill") is not None
    return (budget if filled else torch.minimum(budget, degrees)).double()
