"""BLADE training cost: epoch time against a symmetric GraphSAGE on the same batches, and scale.

Usage::

    python experiments/bench/blade_training.py epoch --num-nodes 20000 --num-edges 200000
    python experiments/bench/blade_training.py scale --num-nodes 1000000 --num-edges 10000000 --steps 20

``epoch``: both encoders (same width and depth, dot-product decoder, BCE with one random negative per
positive; BLADE also with reverse-edge hard negatives) train on the *same* pre-sampled mini-batches
(degree-adaptive sampler, both directions), interleaved so machine noise hits both alike; each encoder
twice, with its layers trimmed to the rows the batch's seeds need (as training runs them) and on every
sampled node. Prints the median step time of each and the ratios (target: BLADE <= 1.5x GraphSAGE).

``scale``: a generated power-law graph (1 M nodes, 10 M edges by default) is indexed, then BLADE trains
for ``--steps`` mini-batches of sampled neighbourhoods; prints the time per phase and the peak resident
memory of the process (target: within 24 GiB).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn.functional import binary_cross_entropy_with_logits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sampler import powerlaw_digraph  # noqa: E402  (the sampler bench's graph generator)

from recsci.graph.directed import BLADE  # noqa: E402
from recsci.graph.models import DotProductDecoder, GraphSAGE  # noqa: E402
from recsci.graph.sampling import DegreePowerFanout, DirectedCSR, NeighborSampler, WalkFill  # noqa: E402


def make_batches(graph: DirectedCSR, edge_index: torch.Tensor, batch_size: int, count: int, walk: bool):
    sampler = NeighborSampler(
        DegreePowerFanout(c=20.0, gamma=-0.5, k_min=3, k_max=25, hop_decay=0.5),
        num_hops=2,
        direction="both",
        walk_fill=WalkFill(3, 4) if walk else None,
    )
    generator = torch.Generator().manual_seed(0)
    batches, seconds = [], []
    for _ in range(count):
        start = time.perf_counter()
        pick = torch.randint(0, edge_index.size(1), (batch_size,), generator=generator)
        pos = edge_index[:, pick]
        neg = torch.randint(0, graph.num_nodes, pos.shape, generator=generator)
        seeds, local = torch.unique(torch.cat([pos, neg, pos.flip(0)], dim=1), return_inverse=True)
        sub = sampler.sample(graph, seeds, generator)
        lp, ln, lr = local.split([pos.size(1)] * 3, dim=1)
        batches.append((sub, lp, ln, lr))
        seconds.append(time.perf_counter() - start)
    return batches, statistics.median(seconds)


def train_step(encoder, optimiser, x, sub, pos, neg, rev, reverse_negatives: bool, trim: bool = True) -> None:
    decoder = DotProductDecoder()
    # trim: compute each layer only for the rows the batch's seeds need, as LinkPredictionModule does.
    emb = encoder(x[sub.nodes], sub.edge_index, num_outputs=sub.num_seeds if trim else None)
    p, n = decoder(emb, pos[0], pos[1]), decoder(emb, neg[0], neg[1])
    loss = binary_cross_entropy_with_logits(p, torch.ones_like(p)) + binary_cross_entropy_with_logits(
        n, torch.zeros_like(n)
    )
    if reverse_negatives:
        r = decoder(emb, rev[0], rev[1])
        loss = loss + binary_cross_entropy_with_logits(r, torch.zeros_like(r))
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()


def bench_epoch(args: argparse.Namespace) -> None:
    edge_index = powerlaw_digraph(args.num_nodes, args.num_edges, 2.1, seed=0)
    graph = DirectedCSR.from_edge_index(edge_index, args.num_nodes)
    x = torch.randn(args.num_nodes, args.features)
    batches, sample_time = make_batches(graph, edge_index, args.batch_size, args.batches, walk=False)
    torch.manual_seed(0)
    encoders = {
        "graphsage": GraphSAGE(args.features, args.hidden, args.hidden, args.layers),
        "blade": BLADE(args.features, args.hidden, args.hidden, args.layers),
    }
    # Each encoder trimmed to the seeds' rows (what training does) and on every sampled node (before).
    variants = [(name, trim) for trim in (True, False) for name in encoders]
    optimisers = {name: torch.optim.Adam(enc.parameters(), lr=1e-3) for name, enc in encoders.items()}
    times: dict[tuple[str, bool], list[float]] = {variant: [] for variant in variants}
    for sub, pos, neg, rev in batches:
        for name, trim in variants:
            start = time.perf_counter()
            is_blade = name == "blade"
            train_step(encoders[name], optimisers[name], x, sub, pos, neg, rev, is_blade, trim)
            times[name, trim].append(time.perf_counter() - start)
    median = {variant: statistics.median(t[2:]) for variant, t in times.items()}  # skip warm-up steps
    edges = statistics.median(b[0].num_edges for b in batches)
    nodes = statistics.median(b[0].num_nodes for b in batches)
    seeds = statistics.median(b[0].num_seeds for b in batches)
    print(
        f"graph: {args.num_nodes} nodes, {args.num_edges} edges; {args.batches} batches of {args.batch_size} "
        f"positives, median {edges:.0f} sampled edges, {nodes:.0f} nodes and {seeds:.0f} seeds a batch, "
        f"width {args.hidden}, {args.layers} layers, {torch.get_num_threads()} threads"
    )
    # An epoch samples each batch once and trains on it: both encoders pay the same sampling.
    print("| encoder | layers computed for | median step (ms) | sampling (ms/batch) | epoch estimate (s) |")
    print("|---|---|---:|---:|---:|")
    steps_per_epoch = args.num_edges / args.batch_size
    for (name, trim), value in median.items():
        epoch = (value + sample_time) * steps_per_epoch
        rows = "rows the seeds need" if trim else "every sampled node"
        print(f"| {name} | {rows} | {value * 1e3:.1f} | {sample_time * 1e3:.1f} | {epoch:.1f} |")
    for trim in (True, False):
        blade, sage = median["blade", trim], median["graphsage", trim]
        step_ratio, epoch_ratio = blade / sage, (blade + sample_time) / (sage + sample_time)
        label = "trimmed" if trim else "untrimmed"
        print(
            f"BLADE / GraphSAGE, {label}: step time {step_ratio:.2f}, epoch (sampling + step) {epoch_ratio:.2f}"
        )


def bench_scale(args: argparse.Namespace) -> None:
    phases: dict[str, float] = {}
    start = time.perf_counter()
    edge_index = powerlaw_digraph(args.num_nodes, args.num_edges, 2.1, seed=0)
    phases["generate graph"] = time.perf_counter() - start
    start = time.perf_counter()
    graph = DirectedCSR.from_edge_index(edge_index, args.num_nodes)
    phases["index (CSR + CSC)"] = time.perf_counter() - start
    x = torch.randn(args.num_nodes, args.features)
    start = time.perf_counter()
    batches, _ = make_batches(graph, edge_index, args.batch_size, args.steps, walk=True)
    phases[f"sample {args.steps} batches (with walk fill)"] = time.perf_counter() - start
    encoder = BLADE(args.features, args.hidden, args.hidden, args.layers)
    optimiser = torch.optim.Adam(encoder.parameters(), lr=1e-3)
    start = time.perf_counter()
    for sub, pos, neg, rev in batches:
        train_step(encoder, optimiser, x, sub, pos, neg, rev, reverse_negatives=True)
    phases[f"train {args.steps} BLADE steps"] = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is KiB on Linux
    print(f"graph: {args.num_nodes} nodes, {args.num_edges} edges, batches of {args.batch_size} positives")
    for phase, seconds in phases.items():
        print(f"- {phase}: {seconds:.1f} s")
    print(f"- peak resident memory: {peak_gib:.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["epoch", "scale"])
    parser.add_argument("--num-nodes", type=int, default=20_000)
    parser.add_argument("--num-edges", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bench_epoch(args) if args.mode == "epoch" else bench_scale(args)


if __name__ == "__main__":
    main()
