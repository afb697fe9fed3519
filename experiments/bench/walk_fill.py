"""Benchmark BLADE's random-walk fill (``WalkFill.fill``) on the frontiers a training batch hands it.

Usage::

    RECSCI_DATA=/path/to/data python experiments/bench/walk_fill.py --baseline 87150ab    # Photo, ~1 min
    python experiments/bench/walk_fill.py --graph synthetic --baseline 87150ab           # no data needed

The frontier of every timed call is what one BLADE training batch seeds on Amazon Photo with the
table's settings: the distinct endpoints of ``--positives`` random edges, as many uniform random pairs
and the positives' reversals (on Photo ~6.3 k of its 7.7 k nodes). Each node's budget is the
``adaptive`` sampler's hop-0 fan-out (``DegreePowerFanout(c=20, gamma=-0.5, k_min=3, k_max=25)`` of its
degree on the side), ``WalkFill(3, 4)`` as in ``conf/sampler/adaptive.yaml``. Both sides are timed
(``in``: a node's target role; ``out``: its source role). ``--baseline REV`` times the fill as it was at
git revision ``REV`` on the same frontiers, interleaved batch by batch (see ``sampler.py``), and
compares what the two keep: virtual neighbours per batch and their total weight, which must agree up
to sampling noise (the versions draw different walks).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sampler import load_baseline, load_graph, timed_pair  # noqa: E402  (the sampler bench's helpers)

import recsci.graph.sampling as current  # noqa: E402


def batch_frontier(
    edge_index: torch.Tensor, num_nodes: int, positives: int, g: torch.Generator
) -> torch.Tensor:
    """Distinct nodes of one training batch: positives, as many random pairs, the reversed positives."""
    pos = edge_index[:, torch.randint(0, edge_index.size(1), (positives,), generator=g)]
    neg = torch.randint(0, num_nodes, (2, positives), generator=g)
    return torch.unique(torch.cat([pos, neg, pos.flip(0)], dim=1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--graph", default="photo", choices=["photo", "synthetic"])
    parser.add_argument("--num-nodes", type=int, default=100_000, help="synthetic graph")
    parser.add_argument("--num-edges", type=int, default=1_000_000, help="synthetic graph")
    parser.add_argument("--alpha", type=float, default=2.1, help="synthetic degree power-law exponent")
    parser.add_argument("--positives", type=int, default=4096, help="positive edges per batch")
    parser.add_argument("--repeats", type=int, default=20, help="timed batches per side")
    parser.add_argument("--baseline", default=None, help="git revision whose fill to time alongside")
    parser.add_argument("--blocked", action="store_true", help="time each version's batches in one block")
    args = parser.parse_args()
    torch.set_num_threads(1)

    edge_index, num_nodes, description = load_graph(args.graph, args)
    versions = {"after": current}
    if args.baseline:
        versions = {"before": load_baseline(args.baseline), **versions}
    graphs = {
        name: module.DirectedCSR.from_edge_index(edge_index, num_nodes) for name, module in versions.items()
    }
    fills = {name: module.WalkFill(3, 4) for name, module in versions.items()}
    schedule = current.DegreePowerFanout(c=20.0, gamma=-0.5, k_min=3, k_max=25)
    g = torch.Generator().manual_seed(0)
    frontiers = [batch_frontier(edge_index, num_nodes, args.positives, g) for _ in range(args.repeats + 3)]
    print(
        f"{description}: {num_nodes:,} nodes, {edge_index.size(1):,} edges; frontier of a batch "
        f"~{statistics.mean(f.numel() for f in frontiers):,.0f} nodes ({args.positives} positives)"
    )
    print(
        f"torch {torch.__version__}, {platform.machine()}, 1 thread, load {os.getloadavg()[0]:.2f}, "
        f"{'blocked' if args.blocked else 'interleaved'}"
    )
    print(
        "| side | version | ms / call (median wall) | ms (median CPU) | missing slots | virtual neighbours | weight sum |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for side in ("in", "out"):
        kept: dict[str, list[tuple[int, float, int]]] = {name: [] for name in versions}

        def call(name: str, b: int, side: str = side, kept: dict = kept) -> int:
            nodes = frontiers[b]  # warm-up calls use negative indices: the last frontiers
            graph = graphs[name]
            budget = schedule(0, graph.side(side).degree.index_select(0, nodes))
            row, _, weight = fills[name].fill(graph, nodes, side, budget, torch.Generator().manual_seed(b))
            if b >= 0:
                deficit = (budget - graph.side(side).degree.index_select(0, nodes)).clamp_min(0)
                kept[name].append((row.numel(), float(weight.sum()), int(deficit.sum())))
            return row.numel()

        measures = timed_pair(
            {name: lambda b, n=name: call(n, b) for name in versions}, args.repeats, blocked=args.blocked
        )
        for name, m in measures.items():
            rows = kept[name]
            print(
                f"| {side} | {name} | {m.ms:.2f} | {statistics.median(m.cpu) * 1e3:.2f} | "
                f"{statistics.mean(r[2] for r in rows):,.0f} | {statistics.mean(r[0] for r in rows):,.0f} | "
                f"{statistics.mean(r[1] for r in rows):,.1f} |"
            )


if __name__ == "__main__":
    main()
