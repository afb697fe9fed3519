"""Benchmark the vectorised directed neighbour sampler against a per-node Python loop.

Usage::

    python experiments/bench/sampler.py                     # 100k nodes, 1M edges, batches of 1024 seeds
    python experiments/bench/sampler.py --num-nodes 10000 --num-edges 100000 --repeats 3   # quick

Prints a Markdown table: seeds/s and sampled edges/s (median over repeats) for uniform vs
degree-adaptive fan-out, with and without replacement, the rejection path on and off, and a naive
per-node loop that does the same sampling one node at a time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from recsci.graph.sampling import (
    DegreePowerFanout,
    DirectedCSR,
    FanoutSchedule,
    NeighborSampler,
    UniformFanout,
    powerlaw_exponent,
)


def powerlaw_digraph(num_nodes: int, num_edges: int, alpha: float, seed: int) -> torch.Tensor:
    """Directed graph whose in- and out-degrees follow power laws (Chung-Lu style, Pareto weights)."""
    g = torch.Generator().manual_seed(seed)

    def endpoints() -> torch.Tensor:
        # Pareto(alpha) weights -> expected degrees with tail exponent alpha; inverse-CDF draws.
        weight = (1.0 - torch.rand(num_nodes, generator=g, dtype=torch.float64)).pow(-1.0 / (alpha - 1.0))
        cdf = torch.cumsum(weight, 0)
        u = torch.rand(num_edges, generator=g, dtype=torch.float64) * cdf[-1]
        return torch.searchsorted(cdf, u).clamp_max_(num_nodes - 1)

    return torch.stack([endpoints(), endpoints()])


def naive_sample(
    graph: DirectedCSR,
    seeds: torch.Tensor,
    schedule: FanoutSchedule,
    num_hops: int,
    side: str,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: the same sampling (no replacement) with a Python loop over frontier nodes, torch ops."""
    adj = graph.side(side)
    ptr, nbr, eid = adj.ptr.tolist(), adj.neighbor, adj.edge_id
    local = {int(v): i for i, v in enumerate(seeds.tolist())}
    frontier, edge_ids = list(local), []
    for hop in range(num_hops):
        ks = schedule(hop, schedule.degree_of(graph, torch.tensor(frontier, dtype=torch.long), side)).tolist()
        new = []
        for v, k in zip(frontier, ks, strict=True):
            d = ptr[v + 1] - ptr[v]
            if d == 0:
                continue
            slots = torch.randperm(d, generator=generator)[:k] + ptr[v]
            edge_ids.append(eid[slots])
            for u in nbr[slots].tolist():
                if u not in local:
                    local[u] = len(local)
                    new.append(u)
        frontier = new
    return torch.tensor(list(local)), torch.cat(edge_ids) if edge_ids else torch.empty(0, dtype=torch.long)


def naive_sample_lists(
    graph: DirectedCSR,
    lists: tuple[list[int], list[int], list[int]],
    seeds: torch.Tensor,
    schedule: FanoutSchedule,
    num_hops: int,
    side: str,
    rng: random.Random,
) -> tuple[list[int], list[int]]:
    """Reference: the per-node loop in pure Python (``random.sample`` on adjacency lists converted once)."""
    ptr, nbr, eid = lists
    local = {int(v): i for i, v in enumerate(seeds.tolist())}
    frontier, edge_ids = list(local), []
    for hop in range(num_hops):
        ks = schedule(hop, schedule.degree_of(graph, torch.tensor(frontier, dtype=torch.long), side)).tolist()
        new = []
        for v, k in zip(frontier, ks, strict=True):
            lo, hi = ptr[v], ptr[v + 1]
            for slot in rng.sample(range(lo, hi), min(k, hi - lo)):
                edge_ids.append(eid[slot])
                u = nbr[slot]
                if u not in local:
                    local[u] = len(local)
                    new.append(u)
        frontier = new
    return list(local), edge_ids


@dataclass
class Row:
    name: str
    seed_kind: str
    seconds: float
    seeds: int
    edges: int
    nodes: int

    def markdown(self) -> str:
        return (
            f"| {self.name} | {self.seed_kind} | {self.seeds} | {self.seconds * 1e3:.1f} | {self.seeds / self.seconds:,.0f} | "
            f"{self.edges / self.seconds:,.0f} | {self.edges:,} | {self.nodes:,} |"
        )


def timed(fn: Callable[[int], tuple[int, int]], repeats: int) -> tuple[float, int, int]:
    """Median wall time of ``fn(repeat)`` and its (edges, nodes) from the last call, after warm-up calls."""
    for _ in range(3):
        fn(-1)
    times, out = [], (0, 0)
    for r in range(repeats):
        t0 = time.perf_counter()
        out = fn(r)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), *out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-nodes", type=int, default=100_000)
    parser.add_argument("--num-edges", type=int, default=1_000_000)
    parser.add_argument("--alpha", type=float, default=2.1, help="degree power-law exponent of the generator")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--naive-batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=15)
    # One thread by default: the sampler's tensors are small enough that intra-op threads barely help, and
    # on a shared 2-core box a second thread makes timings swing 10x whenever the other core is busy.
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    edge_index = powerlaw_digraph(args.num_nodes, args.num_edges, args.alpha, seed=0)
    graph = DirectedCSR.from_edge_index(edge_index, args.num_nodes)
    build_s = time.perf_counter() - t0
    deg = graph.in_degree
    print(
        f"graph: {args.num_nodes:,} nodes, {graph.num_edges:,} edges, max in/out degree "
        f"{int(deg.max()):,}/{int(graph.out_degree.max()):,}, in-degree alpha (d_min=10, discrete MLE) "
        f"{powerlaw_exponent(deg, d_min=10, discrete_correction=True):.2f}; generate + DirectedCSR "
        f"{build_s:.2f} s; torch threads {torch.get_num_threads()}\n"
    )

    uniform = UniformFanout([15, 10])
    adaptive = DegreePowerFanout(c=40.0, gamma=-0.5, k_min=3, k_max=40, hop_decay=0.67)
    configs: list[tuple[str, FanoutSchedule, str, bool, float | None]] = [
        ("uniform [15,10], in, no repl.", uniform, "in", False, 4.0),
        ("uniform [15,10], in, no repl., sort only", uniform, "in", False, None),
        ("uniform [15,10], in, repl.", uniform, "in", True, 4.0),
        ("adaptive, in, no repl.", adaptive, "in", False, 4.0),
        ("adaptive, in, no repl., sort only", adaptive, "in", False, None),
        ("adaptive, in, repl.", adaptive, "in", True, 4.0),
        ("uniform [15,10], both, no repl.", uniform, "both", False, 4.0),
        ("adaptive, both, no repl.", adaptive, "both", False, 4.0),
    ]
    adj = graph.side("in")
    lists = (adj.ptr.tolist(), adj.neighbor.tolist(), adj.edge_id.tolist())
    hubs = torch.argsort(graph.in_degree, descending=True)[: args.batch_size]
    g = torch.Generator().manual_seed(1)

    def random_seeds(n: int) -> torch.Tensor:
        return torch.randperm(args.num_nodes, generator=g)[:n]

    rows = []
    for seed_kind in ("random", "hubs"):
        for name, schedule, direction, replace, ratio in configs:
            sampler = NeighborSampler(schedule, 2, direction, replace, sparse_ratio=ratio)

            def run(r: int, sampler: NeighborSampler = sampler, kind: str = seed_kind) -> tuple[int, int]:
                seeds = random_seeds(args.batch_size) if kind == "random" else hubs
                sub = sampler.sample(graph, seeds, g)
                return sub.num_edges, sub.num_nodes

            seconds, edges, nodes = timed(run, args.repeats)
            rows.append(Row(name, seed_kind, seconds, args.batch_size, edges, nodes))

        n = args.naive_batch_size
        seed_fn = (lambda n=n: random_seeds(n)) if seed_kind == "random" else (lambda n=n: hubs[:n])
        for name, schedule in [("uniform [15,10]", uniform), ("adaptive", adaptive)]:

            def run_torch(r: int, schedule: FanoutSchedule = schedule, seed_fn=seed_fn) -> tuple[int, int]:
                nodes, eids = naive_sample(graph, seed_fn(), schedule, 2, "in", g)
                return eids.numel(), nodes.numel()

            def run_lists(r: int, schedule: FanoutSchedule = schedule, seed_fn=seed_fn) -> tuple[int, int]:
                nodes, eids = naive_sample_lists(graph, lists, seed_fn(), schedule, 2, "in", random.Random(r))
                return len(eids), len(nodes)

            reps = max(1, args.repeats // 3)
            rows.append(
                Row(f"naive torch loop: {name}, in, no repl.", seed_kind, *_per(timed(run_torch, reps), n))
            )
            rows.append(
                Row(f"naive list loop: {name}, in, no repl.", seed_kind, *_per(timed(run_lists, reps), n))
            )

    print(
        "| config (2 hops) | seeds | batch | ms / batch | seeds/s | edges/s | edges / batch | nodes / batch |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(row.markdown())


def _per(measured: tuple[float, int, int], batch: int) -> tuple[float, int, int, int]:
    seconds, edges, nodes = measured
    return seconds, batch, edges, nodes


if __name__ == "__main__":
    main()
