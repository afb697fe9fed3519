"""Benchmark the vectorised directed neighbour sampler on Amazon Photo and a synthetic power-law graph.

Usage::

    RECSCI_DATA=/path/to/data python experiments/bench/sampler.py            # Photo + 100k-node synthetic
    python experiments/bench/sampler.py --graphs synthetic --repeats 5        # quick, no data needed
    python experiments/bench/sampler.py --baseline 686980e                    # before/after, one process

Every configuration samples 2 hops around batches of ``--batch-size`` seeds (random nodes, and the
nodes of highest in-degree, "hubs") and is timed two ways:

- ``relabel``: :meth:`NeighborSampler.sample`, the full sampler: per-hop draws, deduplication of the
  reached nodes and relabelling into a local subgraph (``nodes``, local ``edge_index``), as PyG's
  samplers return it.
- ``raw``: the raw draw alone, :meth:`NeighborSampler.draw` on the same per-hop frontiers (recorded
  from an untimed ``sample`` call on the same seeds): fan-outs, the per-node draw and the gather of
  neighbour and edge ids, in global ids; no deduplication of reached nodes, no relabelling.

Edges/s counts sampled edges (with replacement, repeated draws count; in direction ``both`` the raw
draw counts an edge drawn from both of its ends twice, ``sample`` keeps it once). ``--baseline REV``
also times the sampler as it was at git revision ``REV`` (its ``sample`` and its ``draw``, or before
``draw`` existed its per-hop ``_expand``),
interleaved batch by batch with the current code on the same seeds. Alternating versions leaves each
one's code and data cold in the caches when its turn comes, which on a small shared machine slows
every call of both; ``--blocked`` times each version's batches in one block instead (as a training
loop calls the sampler, batch after batch), at the price of more exposure to load drift between the
blocks. A naive per-node Python loop (``random.sample`` on adjacency lists converted once) gives the
reference point.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType

import torch

import recsci.graph.sampling as current
from recsci.graph.sampling import DirectedCSR, FanoutSchedule, powerlaw_exponent

REPO = Path(__file__).resolve().parents[2]
SAMPLING_DIR = "src/recsci/graph/sampling"


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


def load_graph(name: str, args: argparse.Namespace) -> tuple[torch.Tensor, int, str]:
    """``(edge_index, num_nodes, description)`` of a benchmark graph."""
    if name == "photo":
        from recsci.graph.datasets import AmazonPhotoGraph

        root = os.environ.get("RECSCI_DATA")
        if not root:
            raise SystemExit("--graphs photo needs RECSCI_DATA=<data dir> (it reads graph/photo/raw/*.npz)")
        data = AmazonPhotoGraph(str(Path(root) / "graph")).load()
        return data.edge_index, int(data.num_nodes), "Amazon Photo (directed co-purchase, query -> item)"
    if name == "synthetic":
        edge_index = powerlaw_digraph(args.num_nodes, args.num_edges, args.alpha, seed=0)
        return edge_index, args.num_nodes, f"synthetic Chung-Lu power-law digraph (alpha={args.alpha})"
    raise SystemExit(f"--graphs: unknown graph {name!r} (choose photo, synthetic)")


def load_baseline(rev: str) -> ModuleType:
    """Import ``recsci.graph.sampling`` as of git revision ``rev`` under another package name."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout

    package = "recsci_sampling_baseline"
    with tempfile.TemporaryDirectory(prefix="sampler_baseline_") as root:
        (Path(root) / package).mkdir()
        for name in git("ls-tree", "--name-only", f"{rev}:{SAMPLING_DIR}").split():
            if name.endswith(".py"):
                source = git("show", f"{rev}:{SAMPLING_DIR}/{name}")
                (Path(root) / package / name).write_text(source.replace("recsci.graph.sampling", package))
        sys.path.insert(0, root)
        try:  # the package's __init__ imports all its modules, so the files can go afterwards
            return importlib.import_module(package)
        finally:
            sys.path.remove(root)


def naive_sample_lists(
    lists: tuple[list[int], list[int], list[int]],
    degree: torch.Tensor,
    seeds: list[int],
    schedule: FanoutSchedule,
    num_hops: int,
    rng: random.Random,
) -> tuple[list[int], list[int]]:
    """Reference: the per-node loop in pure Python (``random.sample`` on adjacency lists converted once)."""
    ptr, nbr, eid = lists
    local = {v: i for i, v in enumerate(seeds)}
    frontier, edge_ids = list(local), []
    for hop in range(num_hops):
        ks = schedule(hop, degree[torch.tensor(frontier, dtype=torch.long)]).tolist()
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
class Measure:
    """Per-batch wall and CPU seconds and sampled edges of one timed function."""

    wall: list[float]
    cpu: list[float]
    edges: list[int]

    def rate(self, clock: str = "wall") -> float:
        """Median over batches of sampled edges per second."""
        times = self.wall if clock == "wall" else self.cpu
        return statistics.median(e / t for e, t in zip(self.edges, times, strict=True))

    def rates(self) -> str:
        """M edges/s over batches: median and best by wall clock, median by CPU time."""
        best = max(e / t for e, t in zip(self.edges, self.wall, strict=True))
        return f"{self.rate() / 1e6:.2f}, {best / 1e6:.2f}, {self.rate('cpu') / 1e6:.2f}"

    @property
    def ms(self) -> float:
        return statistics.median(self.wall) * 1e3

    @property
    def edges_per_batch(self) -> float:
        return statistics.mean(self.edges)


def timed_pair(
    fns: dict[str, Callable[[int], int]], repeats: int, warmup: int = 3, blocked: bool = False
) -> dict[str, Measure]:
    """Time each ``fn(batch) -> edges`` on the same batches, interleaved (order alternates per batch),
    or with ``blocked`` one function's batches after the other's (each after its own warm-up)."""
    out = {name: Measure([], [], []) for name in fns}
    names = list(fns)

    def run(name: str, b: int) -> None:
        w0, c0 = time.perf_counter(), time.thread_time()
        edges = fns[name](b)
        c1, w1 = time.thread_time(), time.perf_counter()
        out[name].wall.append(w1 - w0)
        out[name].cpu.append(c1 - c0)
        out[name].edges.append(edges)

    if blocked:
        for name in names:
            for b in range(warmup):
                fns[name](-1 - b)
            for b in range(repeats):
                run(name, b)
        return out
    for name in names:
        for b in range(warmup):
            fns[name](-1 - b)
    for b in range(repeats):
        for name in names if b % 2 == 0 else reversed(names):
            run(name, b)
    return out


def frontiers(sub: current.SampledSubgraph) -> list[torch.Tensor]:
    """Global ids of the nodes expanded at each hop (seeds, then the nodes first reached at each hop)."""
    return list(sub.nodes.split(sub.num_sampled_nodes))[:-1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--graphs", default="photo,synthetic", help="comma-separated: photo, synthetic")
    parser.add_argument("--num-nodes", type=int, default=100_000, help="synthetic graph")
    parser.add_argument("--num-edges", type=int, default=1_000_000, help="synthetic graph")
    parser.add_argument("--alpha", type=float, default=2.1, help="synthetic degree power-law exponent")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--seed-kinds", default="random,hubs", help="comma-separated: random, hubs")
    parser.add_argument("--repeats", type=int, default=15, help="timed batches per configuration")
    parser.add_argument(
        "--naive-repeats", type=int, default=3, help="timed batches of the naive loop (0: skip)"
    )
    parser.add_argument("--baseline", default=None, help="git revision whose sampler to time alongside")
    parser.add_argument(
        "--blocked",
        action="store_true",
        help="time each version's batches in one block instead of alternating versions batch by batch",
    )
    # One thread by default: the sampler's tensors are small enough that intra-op threads barely help, and
    # on a shared 2-core box a second thread makes timings swing 10x whenever the other core is busy.
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    versions: dict[str, ModuleType] = {"after": current}
    if args.baseline:
        versions = {"before": load_baseline(args.baseline), "after": current}

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {platform.processor() or platform.machine()}"
        f", {os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.2f}"
        + (f"; baseline = git {args.baseline}" if args.baseline else "")
        + ("; versions timed in blocks" if args.blocked and args.baseline else "")
    )
    rows: list[Row] = []
    for graph_name in args.graphs.split(","):
        rows += bench_graph(graph_name, args, versions)
    print(f"\nload average at end {os.getloadavg()[0]:.2f}\n")
    print_table(rows, has_baseline=bool(args.baseline))


Row = tuple[str, str, str, str, dict[str, Measure]]


def bench_graph(graph_name: str, args: argparse.Namespace, versions: dict[str, ModuleType]) -> list[Row]:
    """Time every configuration on one graph."""
    edge_index, num_nodes, description = load_graph(graph_name, args)
    graphs = {v: mod.DirectedCSR.from_edge_index(edge_index, num_nodes) for v, mod in versions.items()}
    graph: DirectedCSR = graphs["after"]
    print(
        f"\n{graph_name}: {description}: {num_nodes:,} nodes, {graph.num_edges:,} edges, mean degree "
        f"{graph.num_edges / num_nodes:.1f}, max in/out degree {int(graph.in_degree.max()):,}/"
        f"{int(graph.out_degree.max()):,}, in-degree alpha (d_min=10, discrete MLE) "
        f"{powerlaw_exponent(graph.in_degree, d_min=10, discrete_correction=True):.2f}"
    )
    hubs = torch.argsort(graph.in_degree, descending=True)[: args.batch_size]
    rows: list[Row] = []
    for seed_kind in args.seed_kinds.split(","):
        seeds = partial(batch_seeds, seed_kind, hubs, num_nodes, args.batch_size)
        for schedule_name, direction, replace in [
            (s, d, r) for s in ("uniform [15,10]", "adaptive") for d in ("in", "both") for r in (False, True)
        ]:
            config = f"{schedule_name}, {direction}, {'repl.' if replace else 'no repl.'}"
            samplers = {
                v: make_sampler(mod, schedule_name, direction, replace) for v, mod in versions.items()
            }
            relabel = {v: partial(sample_edges, samplers[v], graphs[v], seeds) for v in versions}
            rows.append(
                (
                    graph_name,
                    config,
                    seed_kind,
                    "relabel",
                    timed_pair(relabel, args.repeats, blocked=args.blocked),
                )
            )
            # Frontiers come from an untimed sample() of the current code on the same seeds.
            hop_frontiers = {
                b: frontiers(samplers["after"].sample(graph, seeds(b), gen(b)))
                for b in [*range(-3, 0), *range(args.repeats)]
            }
            sides = ("in", "out") if direction == "both" else (direction,)
            raw = {v: partial(raw_draw, samplers[v], graphs[v], hop_frontiers, sides, v) for v in versions}
            rows.append(
                (graph_name, config, seed_kind, "raw", timed_pair(raw, args.repeats, blocked=args.blocked))
            )
        if args.naive_repeats:
            adj = graph.side("in")
            lists = (adj.ptr.tolist(), adj.neighbor.tolist(), adj.edge_id.tolist())
            for schedule_name in ("uniform [15,10]", "adaptive"):
                naive = partial(naive_edges, lists, adj.degree, seeds, make_schedule(current, schedule_name))
                measured = timed_pair({"after": naive}, args.naive_repeats, warmup=1)
                rows.append((graph_name, f"{schedule_name}, in, no repl.", seed_kind, "naive loop", measured))
    return rows


def batch_seeds(kind: str, hubs: torch.Tensor, num_nodes: int, batch_size: int, batch: int) -> torch.Tensor:
    """Seeds of batch ``batch``: the hubs, or a random batch that depends only on ``batch``."""
    if kind == "hubs":
        return hubs
    return torch.randperm(num_nodes, generator=torch.Generator().manual_seed(1000 + batch))[:batch_size]


def sample_edges(sampler, graph, seeds: Callable[[int], torch.Tensor], batch: int) -> int:
    return sampler.sample(graph, seeds(batch), gen(batch)).num_edges


def naive_edges(lists, degree, seeds: Callable[[int], torch.Tensor], schedule, batch: int) -> int:
    _, edge_ids = naive_sample_lists(lists, degree, seeds(batch).tolist(), schedule, 2, random.Random(batch))
    return len(edge_ids)


def make_schedule(mod: ModuleType, name: str) -> FanoutSchedule:
    if name == "uniform [15,10]":
        return mod.UniformFanout([15, 10])
    return mod.DegreePowerFanout(c=40.0, gamma=-0.5, k_min=3, k_max=40, hop_decay=0.67)


def make_sampler(
    mod: ModuleType, schedule_name: str, direction: str, replace: bool
) -> current.NeighborSampler:
    return mod.NeighborSampler(make_schedule(mod, schedule_name), 2, direction, replace)


def gen(batch: int) -> torch.Generator:
    return torch.Generator().manual_seed(batch)


def raw_draw(
    sampler, graph, hop_frontiers: dict[int, list[torch.Tensor]], sides, version: str, batch: int
) -> int:
    """Per-hop draws on the batch's recorded frontiers, no relabelling; returns the number of drawn edges."""
    edges, generator = 0, gen(batch)
    for hop, frontier in enumerate(hop_frontiers[batch]):
        for side in sides:
            if version == "after" or hasattr(sampler, "draw"):
                edges += sampler.draw(graph, frontier, side, hop, generator).num_edges
            else:  # a baseline from before draw() (f03e5c6): its per-hop _expand, same work minus relabelling
                edges += sampler._expand(graph, frontier, side, hop, generator).edge_id.numel()
    return edges


def print_table(rows: list[Row], has_baseline: bool) -> None:
    """Markdown table: median ms per batch (wall clock) and M edges/s as "median, best, CPU": median and
    best over batches by wall clock, and median by CPU time of the sampling thread, which time slices
    lost to other processes on a busy shared machine do not inflate."""
    head = "| graph | config (2 hops) | seeds | timed | edges / batch |"
    head += " ms before | ms after | speed-up | M edges/s before |" if has_baseline else " ms |"
    print(head + " M edges/s |")
    print("|---" * 4 + "|---:" * (head.count("|") - 4) + "|")
    for graph_name, config, seed_kind, mode, measured in rows:
        after, before = measured["after"], measured.get("before")
        cells = [graph_name, config, seed_kind, mode, f"{after.edges_per_batch:,.0f}"]
        if has_baseline:
            cells += (
                [f"{before.ms:.2f}", f"{after.ms:.2f}", f"{before.ms / after.ms:.1f}x", before.rates()]
                if before
                else ["", f"{after.ms:.2f}", "", ""]
            )
        else:
            cells.append(f"{after.ms:.2f}")
        print("| " + " | ".join([*cells, after.rates()]) + " |")


if __name__ == "__main__":
    main()
