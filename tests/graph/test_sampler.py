"""Tests for the vectorised directed neighbourhood sampler (recsci.graph.sampling)."""

from __future__ import annotations

import inspect
import math
from collections import Counter, deque

import numpy as np
import pydantic
import pytest
import torch
from scipy.stats import chi2
from torch_geometric.data import Data
from torch_geometric.loader import LinkLoader, NodeLoader
from torch_geometric.nn import SAGEConv
from torch_geometric.sampler import NegativeSampling

from recsci.graph.sampling import (
    DegreePowerFanout,
    DirectedCSR,
    NeighborSampler,
    PygNeighborSampler,
    SampledSubgraph,
    UniformFanout,
    _ops,
    powerlaw_exponent,
)

# Chi-square tests reject at p < 1e-4; with the fixed seeds below they pass deterministically, and a
# sampler with a real bias (e.g. always favouring the first slots) fails them by orders of magnitude.
P_REJECT = 1e-4


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def powerlaw_graph(num_nodes: int = 300, num_edges: int = 3000, seed: int = 0) -> torch.Tensor:
    """Directed graph with heavy-tailed in/out degrees, plus self-loops and parallel edges."""
    g = gen(seed)
    w_out = torch.rand(num_nodes, generator=g).pow(-1.2)  # Pareto-like weights -> hubs
    w_in = torch.rand(num_nodes, generator=g).pow(-1.2)
    src = torch.multinomial(w_out, num_edges, replacement=True, generator=g)
    dst = torch.multinomial(w_in, num_edges, replacement=True, generator=g)
    extra = torch.tensor([[5, 5, 7], [5, 9, 9]])  # a self-loop and a parallel edge 7 -> 9
    return torch.cat([torch.stack([src, dst]), extra, extra[:, 1:]], dim=1)


@pytest.fixture(scope="module")
def graph() -> tuple[torch.Tensor, DirectedCSR]:
    edge_index = powerlaw_graph()
    return edge_index, DirectedCSR.from_edge_index(edge_index, 300)


def star_forest(num_stars: int, leaves: int) -> tuple[torch.Tensor, DirectedCSR]:
    """``num_stars`` disjoint stars; edge ``s * leaves + j`` is leaf j -> centre s (centre ids first)."""
    centers = torch.arange(num_stars).repeat_interleave(leaves)
    leaf_ids = num_stars + torch.arange(num_stars * leaves)
    edge_index = torch.stack([leaf_ids, centers])
    return torch.arange(num_stars), DirectedCSR.from_edge_index(edge_index, num_stars * (leaves + 1))


def check_edges_real(sub: SampledSubgraph, edge_index: torch.Tensor) -> None:
    """Every sampled edge is the original edge its id names, in the original direction."""
    assert sub.edge_index.shape == (2, sub.edge_ids.numel())
    assert torch.equal(sub.nodes[sub.edge_index], edge_index[:, sub.edge_ids])


# ----------------------------------------------------------------------------------------------- CSR


def test_csr_matches_edge_index(graph: tuple[torch.Tensor, DirectedCSR]) -> None:
    edge_index, csr = graph
    assert csr.num_edges == edge_index.size(1)
    assert torch.equal(csr.out_degree, torch.bincount(edge_index[0], minlength=300))
    assert torch.equal(csr.in_degree, torch.bincount(edge_index[1], minlength=300))
    for v in (0, 5, 7, 9, 123):
        out = csr.out
        s, e = out.ptr[v], out.ptr[v + 1]
        assert torch.equal(edge_index[0, out.edge_id[s:e]], torch.full((int(e - s),), v))
        assert torch.equal(edge_index[1, out.edge_id[s:e]], out.neighbor[s:e])
        inc = csr.inc
        s, e = inc.ptr[v], inc.ptr[v + 1]
        assert torch.equal(edge_index[1, inc.edge_id[s:e]], torch.full((int(e - s),), v))
        assert torch.equal(edge_index[0, inc.edge_id[s:e]], inc.neighbor[s:e])


# ------------------------------------------------------------------------------ edges and directions


@pytest.mark.parametrize("direction", ["in", "out", "both"])
@pytest.mark.parametrize("replace", [False, True])
def test_sampled_edges_exist_with_original_direction(graph, direction: str, replace: bool) -> None:
    edge_index, csr = graph
    sampler = NeighborSampler(DegreePowerFanout(c=8, gamma=-0.5, k_min=1, k_max=6), 3, direction, replace)
    sub = sampler.sample(csr, torch.tensor([3, 1, 4, 1, 5]), gen())
    check_edges_real(sub, edge_index)
    assert sub.num_edges > 0
    assert sub.num_seeds == 4 and torch.equal(sub.nodes[:4], torch.tensor([3, 1, 4, 5]))
    assert sub.nodes.unique().numel() == sub.num_nodes  # no node twice
    hop_src, hop_dst = sub.hop_of_node[sub.edge_index[0]], sub.hop_of_node[sub.edge_index[1]]
    if direction == "in":  # edge u -> v found while expanding v: v is the older endpoint
        assert bool((hop_src <= hop_dst + 1).all())
    if direction == "out":
        assert bool((hop_dst <= hop_src + 1).all())
    if not replace:
        assert sub.edge_ids.unique().numel() == sub.num_edges


def test_in_direction_one_hop_targets_are_seeds(graph) -> None:
    edge_index, csr = graph
    seeds = torch.tensor([10, 20, 30])
    sub = NeighborSampler(UniformFanout([4]), 1, "in").sample(csr, seeds, gen())
    assert bool((sub.edge_index[1] < 3).all())  # every edge points into a seed
    out = NeighborSampler(UniformFanout([4]), 1, "out").sample(csr, seeds, gen())
    assert bool((out.edge_index[0] < 3).all())  # every edge leaves a seed


# ---------------------------------------------------------------------------------- per-node counts


@pytest.mark.parametrize("side", ["in", "out"])
@pytest.mark.parametrize("replace", [False, True])
def test_per_node_count(graph, side: str, replace: bool) -> None:
    edge_index, csr = graph
    schedule = DegreePowerFanout(c=12, gamma=-0.5, k_min=2, k_max=9)
    seeds = torch.randperm(300, generator=gen(1))
    sub = NeighborSampler(schedule, 1, side, replace).sample(csr, seeds, gen(2))
    deg = csr.side(side).degree[seeds]
    k = schedule(0, deg)
    # Take-all (k >= deg) and Floyd's draw (k < deg), with k both above and below deg / 2.
    assert bool((k >= deg).any()) and bool(((k < deg) & (2 * k > deg)).any())
    assert bool((2 * k <= deg).any())
    center = sub.edge_index[1] if side == "in" else sub.edge_index[0]
    counts = torch.bincount(center, minlength=300)  # seeds are local ids 0..299 in seed order
    expected = torch.minimum(k, deg) if not replace else torch.where(deg > 0, k, 0)
    assert torch.equal(counts, expected)
    if not replace:  # distinct neighbour slots per node
        assert sub.edge_ids.unique().numel() == sub.num_edges


def subset_counts(row: torch.Tensor, slot: torch.Tensor, deg: int) -> dict[int, Counter]:
    """Per fan-out k: how often each k-subset of offsets 0..deg-1 was drawn (segments of deg slots)."""
    picks: dict[int, list[int]] = {}
    for r, s in zip(row.tolist(), slot.tolist(), strict=True):
        picks.setdefault(r, []).append(s % deg)
    counts: dict[int, Counter] = {}
    for offsets in picks.values():
        assert len(set(offsets)) == len(offsets)  # distinct slots within a segment
        counts.setdefault(len(offsets), Counter())[tuple(sorted(offsets))] += 1
    return counts


def stamps_for(num_slots: int) -> _ops.SlotStamps:
    return _ops.SlotStamps(num_slots, torch.device("cpu"))


def test_draw_without_replacement_mixed_fanouts_uniform_over_subsets() -> None:
    """Floyd's draw with different k in one call, k = 0 and k >= deg (take-all) included: every segment
    gets exactly min(k, deg) distinct slots of its own, each subset of that size equally likely."""
    deg, num_segments = 6, 14000
    k = torch.tensor([1, 2, 4, 5, 0, 6, 9]).repeat(num_segments // 7)
    start = torch.arange(num_segments) * deg
    stamps = stamps_for(num_segments * deg)
    row, slot = _ops.sample_without_replacement(start, torch.full((num_segments,), deg), k, gen(4), stamps)
    assert torch.equal(torch.bincount(row, minlength=num_segments), torch.clamp(k, max=deg))
    assert torch.equal(slot // deg, row)  # each slot inside its own segment
    for fanout, counts in subset_counts(row, slot, deg).items():
        assert len(counts) == math.comb(deg, fanout)
        if fanout < deg:
            assert chi_square_uniform(np.array(list(counts.values()))) > P_REJECT


def floyd_reference(deg: int, count: int, uniforms: list[float]) -> list[int]:
    """Floyd's algorithm step by step (a Python set), fed the kernel's uniforms: the picks in step order.

    The kernel draws ``t = j - floor(u * (j + 1))``, uniform in ``0 .. j`` like ``floor(u * (j + 1))``.
    """
    taken: set[int] = set()
    picks = []
    for m, u in enumerate(uniforms):
        j = deg - count + m
        t = j - int(u * (j + 1))
        pick = j if t in taken else t
        taken.add(pick)
        picks.append(pick)
    return picks


def stepwise_floyd_slots(start: torch.Tensor, deg: int, count: torch.Tensor, seed: int) -> list[int]:
    """The slots the sequential algorithm picks, segment by segment, on the uniforms of ``gen(seed)``."""
    # The kernel draws one float64 uniform per pick, segment by segment, step by step.
    uniforms = torch.rand(int(count.sum()), generator=gen(seed), dtype=torch.float64).tolist()
    want, at = [], 0
    for s, c in zip(start.tolist(), count.tolist(), strict=True):
        want += [s + pick for pick in floyd_reference(deg, c, uniforms[at : at + c])]
        at += c
    return want


def stepwise_case(deg: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(start, k, count)`` for segments of ``deg`` slots with every fan-out from 1 to ``deg + 2``."""
    k = torch.arange(1, deg + 3).repeat(600 if deg <= 9 else 40)
    start = torch.arange(k.numel()) * deg + 7  # segments need not start at slot 0
    return start, k, torch.clamp(k, max=deg)


@pytest.mark.parametrize("deg", [1, 2, 5, 6, 7, 9, 16, 33, 300])
def test_draw_without_replacement_equals_stepwise_floyd(deg: int) -> None:
    """The pointer-doubling resolution of "t taken before?" gives exactly the picks of the sequential
    algorithm on the same uniforms, for every fan-out from 1 to above the degree. With k near deg most
    draws land on an earlier step's j, so chains are long; the many small segments make chains of the
    longest possible length occur (the next test shows that one doubling round too few fails)."""
    start, k, count = stepwise_case(deg)
    stamps = stamps_for(int(start[-1]) + deg)
    every_slot = torch.arange(stamps.num_slots)
    for _ in range(2):  # stale stamps from earlier calls must not matter
        stamps.repeat_gap(every_slot, torch.arange(every_slot.numel()))
    row, slot = _ops.sample_without_replacement(start, torch.full_like(k, deg), k, gen(5), stamps)
    assert slot.dtype == torch.int32
    assert torch.equal(row, torch.repeat_interleave(count))
    assert slot.tolist() == stepwise_floyd_slots(start, deg, count, 5)


@pytest.mark.parametrize(("deg", "take_all_segments"), [(3, 0), (5, 0), (9, 0), (16, 3000)])
def test_one_doubling_round_too_few_breaks_the_draw(deg: int, take_all_segments: int) -> None:
    """Guard the guard: understating the largest count by enough to drop one pointer-doubling round
    makes the draw differ from the sequential algorithm, so the test above would catch a round too few;
    overstating it only adds rounds, with the same picks. Chains long enough to need a 4th round are
    rare, so deg 16 adds 3,000 segments with k = deg, where every draw continues a chain."""
    start, _, count = stepwise_case(deg)
    count = torch.cat([count, torch.full((take_all_segments,), deg)])
    start = torch.cat([start, int(start[-1]) + deg * (1 + torch.arange(take_all_segments))])
    stop, deg_plus_one = (start + deg).int(), torch.full_like(start, deg + 1).int()
    want = stepwise_floyd_slots(start, deg, count, 5)
    rounds = (deg - 2).bit_length()
    fewer = 1 << (rounds - 1)  # ceil(log2(fewer)) = rounds - 1, so max_count = fewer + 1 runs one less
    for max_count, equal in [(deg, True), (deg + 40, True), (fewer + 1, False)]:
        stamps = stamps_for(int(stop[-1]))
        _, slot = _ops.floyd_draw(count.int(), stop, deg_plus_one, max_count, gen(5), stamps)
        assert (slot.tolist() == want) is equal, max_count


def test_draw_without_replacement_wide_fallbacks_match_int32(monkeypatch) -> None:
    """Graphs with 2**31 slots or more draw with long slots, and batches whose pointer arithmetic could
    overflow int32 use long pointers: same picks as the int32 path on the same uniforms."""
    deg = 16
    start, k, count = stepwise_case(deg)
    deg_t = torch.full_like(k, deg)
    num_slots = int(start[-1]) + deg
    row32, slot32 = _ops.sample_without_replacement(start, deg_t, k, gen(5), stamps_for(num_slots))
    monkeypatch.setattr(_ops, "_INT32_MAX", num_slots - 1)  # too few bits for the slots and pointers
    row64, slot64 = _ops.sample_without_replacement(start, deg_t, k, gen(5), stamps_for(num_slots))
    assert slot32.dtype == torch.int32 and slot64.dtype == torch.long
    assert torch.equal(row32, row64) and torch.equal(slot32.long(), slot64)
    # int32 slots with long pointers (the pointer bound alone exceeds the patched limit).
    stop, deg_plus_one = (start + deg).int(), torch.full_like(start, deg + 1).int()
    row, slot = _ops.floyd_draw(count.int(), stop, deg_plus_one, deg, gen(5), stamps_for(num_slots))
    assert slot.dtype == torch.int32 and torch.equal(row, row32) and torch.equal(slot, slot32)


def test_draw_without_replacement_is_reproducible_and_skips_zero_fanouts() -> None:
    start, deg, k = torch.tensor([0, 10, 30, 35]), torch.tensor([10, 20, 5, 0]), torch.tensor([3, 0, 4, 2])
    stamps = stamps_for(36)
    first = _ops.sample_without_replacement(start, deg, k, gen(9), stamps)
    again = _ops.sample_without_replacement(start, deg, k, gen(9), stamps)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert torch.equal(torch.bincount(first[0], minlength=4), torch.tensor([3, 0, 4, 0]))
    zero = torch.zeros(4, dtype=torch.long)
    none = _ops.sample_without_replacement(start, deg, zero, gen(9), stamps)
    assert none[0].numel() == 0 and none[1].numel() == 0


def test_take_all_returns_the_full_neighbourhood(graph) -> None:
    """k >= deg: every slot of the node, each once (Floyd's draw with as many steps as slots)."""
    _, csr = graph
    adj = csr.side("in")
    nodes = torch.arange(300)
    start, deg = adj.ptr[nodes], adj.degree[nodes]
    row, slot = _ops.sample_without_replacement(start, deg, deg + 2, gen(3), csr.borrow_slot_stamps())
    assert torch.equal(torch.sort(slot).values, torch.arange(csr.num_edges))  # every slot, once
    assert torch.equal(torch.searchsorted(adj.ptr[1:], slot, right=True), row)  # under its own node


def test_slot_stamps_find_repeats_without_reset() -> None:
    stamps = stamps_for(10)
    # Two segments: slots 0..4 (positions 0..3) and 5..9 (positions 4..5).
    slots, position = torch.tensor([3, 1, 3, 3, 9, 9]), torch.arange(6)
    assert stamps.repeat_gap(slots, position).tolist() == [0, 0, 2, 3, 0, 1]
    # The next calls see only their own repeats, though the buffer holds the earlier stamps.
    for _ in range(3):
        again = stamps.repeat_gap(torch.tensor([1, 3, 4, 4], dtype=torch.int32), torch.arange(4))
        assert again.tolist() == [0, 0, 0, 1]
    # Once the int32 codes run out the buffer is refilled, and stale stamps still do not matter.
    stamps._top = torch.iinfo(torch.int32).max - 2
    assert stamps.repeat_gap(torch.tensor([1, 3, 4, 4]), torch.arange(4)).tolist() == [0, 0, 0, 1]
    assert stamps._top == 4
    assert stamps.repeat_gap(torch.tensor([4, 1, 4]), torch.arange(3)).tolist() == [0, 0, 2]


def test_replacement_keeps_duplicates_and_covers_low_degree() -> None:
    seeds, csr = star_forest(num_stars=50, leaves=2)
    sub = NeighborSampler(UniformFanout([6]), 1, "in", replace=True).sample(csr, seeds, gen())
    assert sub.num_edges == 50 * 6  # 6 draws from 2 leaves: duplicates are kept
    assert sub.edge_ids.unique().numel() <= 100


# ------------------------------------------------------------------------------------------ uniform


def chi_square_uniform(counts: np.ndarray) -> float:
    """p-value of a chi-square goodness-of-fit test against equal cell probabilities."""
    expected = counts.sum() / counts.size
    stat = float(((counts - expected) ** 2 / expected).sum())
    return float(chi2.sf(stat, counts.size - 1))


@pytest.mark.parametrize(
    ("leaves", "k", "replace"),
    [(20, 6, False), (40, 3, False), (7, 3, True), (10, 9, False), (20, 13, False)],
    ids=["k-below-half", "k-sparse", "with-replacement", "k-is-deg-minus-one", "k-above-half"],
)
def test_uniform_over_leaves(leaves: int, k: int, replace: bool) -> None:
    seeds, csr = star_forest(num_stars=3000, leaves=leaves)
    sub = NeighborSampler(UniformFanout([k]), 1, "in", replace).sample(csr, seeds, gen(7))
    counts = np.bincount((sub.edge_ids % leaves).numpy(), minlength=leaves)
    assert counts.sum() == 3000 * k
    assert chi_square_uniform(counts) > P_REJECT


@pytest.mark.parametrize(
    ("leaves", "k"), [(5, 2), (9, 2), (5, 3)], ids=["k-below-half", "sparse", "k-above-half"]
)
def test_uniform_over_subsets(leaves: int, k: int) -> None:
    """Each k-subset of a node's neighbours is equally likely (not only each neighbour)."""
    seeds, csr = star_forest(num_stars=8000, leaves=leaves)
    sub = NeighborSampler(UniformFanout([k]), 1, "in").sample(csr, seeds, gen(11))
    pos = (sub.edge_ids % leaves).numpy()
    star = (sub.edge_ids // leaves).numpy()
    pairs: dict[int, list[int]] = {}
    for s, p in zip(star.tolist(), pos.tolist(), strict=True):
        pairs.setdefault(s, []).append(p)
    counts = Counter(tuple(sorted(v)) for v in pairs.values())
    assert all(len(v) == k and len(set(v)) == k for v in pairs.values())
    assert len(counts) == math.comb(leaves, k)
    assert chi_square_uniform(np.array(list(counts.values()))) > P_REJECT


def test_uniformity_test_detects_bias() -> None:
    """Guard the guard: the chi-square check above rejects a sampler biased towards low slots."""
    rng = np.random.default_rng(0)
    biased = rng.choice(20, size=3000 * 6, p=np.linspace(1.2, 0.8, 20) / 20.0)
    assert chi_square_uniform(np.bincount(biased, minlength=20)) < P_REJECT


# ---------------------------------------------------------------------------------- reproducibility


@pytest.mark.parametrize("replace", [False, True])
def test_reproducible_with_generator(graph, replace: bool) -> None:
    _, csr = graph
    sampler = NeighborSampler(UniformFanout([5, 3]), 2, "both", replace)
    seeds = torch.arange(0, 300, 7)
    a, b = sampler.sample(csr, seeds, gen(42)), sampler.sample(csr, seeds, gen(42))
    c = sampler.sample(csr, seeds, gen(43))
    assert torch.equal(a.nodes, b.nodes) and torch.equal(a.edge_ids, b.edge_ids)
    assert torch.equal(a.edge_index, b.edge_index)
    assert not torch.equal(a.edge_ids.sort().values, c.edge_ids.sort().values)


def test_relabel_buffer_is_reset(graph) -> None:
    _, csr = graph
    NeighborSampler(UniformFanout([5, 5]), 2).sample(csr, torch.tensor([1, 2, 3]), gen())
    assert bool((csr.borrow_local_map() == -1).all())


# --------------------------------------------------------------------------------- multi-hop frontier


def bfs(edge_index: torch.Tensor, seeds: list[int], hops: int, direction: str) -> dict[int, int]:
    """Reference: hop distance of every node within ``hops`` steps, in the sampled direction(s)."""
    nbrs: dict[int, list[int]] = {}
    for s, d in edge_index.t().tolist():
        if direction in ("out", "both"):
            nbrs.setdefault(s, []).append(d)
        if direction in ("in", "both"):
            nbrs.setdefault(d, []).append(s)
    dist = {s: 0 for s in seeds}
    queue = deque(seeds)
    while queue:
        v = queue.popleft()
        if dist[v] == hops:
            continue
        for u in nbrs.get(v, []):
            if u not in dist:
                dist[u] = dist[v] + 1
                queue.append(u)
    return dist


@pytest.mark.parametrize("direction", ["in", "out", "both"])
def test_full_fanout_equals_bfs(graph, direction: str) -> None:
    """With fan-outs above every degree the sample is the exact k-hop neighbourhood, each node once."""
    edge_index, csr = graph
    seeds = [17, 4, 250]
    sub = NeighborSampler(UniformFanout([10_000] * 3), 3, direction).sample(csr, torch.tensor(seeds), gen())
    dist = bfs(edge_index, seeds, 3, direction)
    assert dict(zip(sub.nodes.tolist(), sub.hop_of_node.tolist(), strict=True)) == dist
    assert sub.num_sampled_nodes == [sum(1 for h in dist.values() if h == i) for i in range(4)]
    assert bool((sub.hop_of_node[1:] >= sub.hop_of_node[:-1]).all())  # nodes ordered hop by hop
    # Exactly the edges of nodes expanded at hops 0..2 (hop < 3), each once.
    expanded = {v for v, h in dist.items() if h < 3}
    src, dst = edge_index.tolist()
    want = {
        e
        for e, (s, d) in enumerate(zip(src, dst, strict=True))
        if (direction in ("out", "both") and s in expanded) or (direction in ("in", "both") and d in expanded)
    }
    assert sorted(sub.edge_ids.tolist()) == sorted(want)
    assert sum(sub.num_sampled_edges) == sub.num_edges


def test_frontier_not_reexpanded() -> None:
    """A cycle 0 -> 1 -> 2 -> 0: after reaching 1 and 2, hop 2 must not expand 0 again."""
    edge_index = torch.tensor([[0, 1, 2], [1, 2, 0]])
    csr = DirectedCSR.from_edge_index(edge_index, 3)
    sub = NeighborSampler(UniformFanout([5] * 4), 4, "out").sample(csr, torch.tensor([0]), gen())
    assert sub.nodes.tolist() == [0, 1, 2] and sub.hop_of_node.tolist() == [0, 1, 2]
    assert sorted(sub.edge_ids.tolist()) == [0, 1, 2]  # edge 2 -> 0 links back; nothing repeats
    assert sub.num_sampled_edges == [1, 1, 1, 0]


def test_sample_roles_separates_out_and_in(graph) -> None:
    edge_index, csr = graph
    seeds = torch.tensor([9, 5, 7])
    out_sub, in_sub = NeighborSampler(UniformFanout([3, 2]), 2).sample_roles(csr, seeds, gen())
    for sub in (out_sub, in_sub):
        check_edges_real(sub, edge_index)
        assert torch.equal(sub.nodes[:3], seeds)
    assert bool(
        (out_sub.hop_of_node[out_sub.edge_index[1]] <= out_sub.hop_of_node[out_sub.edge_index[0]] + 1).all()
    )
    hop0_in = in_sub.edge_index[:, : in_sub.num_sampled_edges[0]]
    assert bool((hop0_in[1] < 3).all())


def test_empty_and_isolated_seeds(graph) -> None:
    _, csr = graph
    sampler = NeighborSampler(UniformFanout([3, 3]), 2)
    empty = sampler.sample(csr, torch.tensor([], dtype=torch.long), gen())
    assert empty.num_nodes == 0 and empty.num_edges == 0
    lonely = DirectedCSR.from_edge_index(torch.tensor([[0], [1]]), 3)
    sub = sampler.sample(lonely, torch.tensor([2]), gen())
    assert sub.nodes.tolist() == [2] and sub.num_edges == 0


# -------------------------------------------------------------------------------------- schedules


def test_degree_power_fanout_larger_for_low_degree_and_clipped() -> None:
    schedule = DegreePowerFanout(c=10, gamma=-0.5, k_min=2, k_max=8)
    degree = torch.tensor([0, 1, 4, 16, 25, 100, 10_000])
    k = schedule(0, degree)
    assert k.tolist() == [8, 8, 5, 3, 2, 2, 2]  # 10/sqrt(d): 10 -> 8 (clip), 5, 2.5 -> 3, 2, 1 -> 2 (clip)
    assert bool((k[1:] <= k[:-1]).all())
    assert (
        DegreePowerFanout(c=10, gamma=-0.5, k_min=1, k_max=8, hop_decay=0.5)(1, torch.tensor([4])).item() == 3
    )
    growing = DegreePowerFanout(c=1, gamma=0.5, k_min=1, k_max=50)(0, torch.tensor([1, 100, 10_000]))
    assert growing.tolist() == [1, 10, 50]


def test_degree_switch(graph) -> None:
    _, csr = graph
    nodes = torch.arange(300)
    for which, want in [("in", csr.in_degree), ("out", csr.out_degree), ("total", csr.total_degree)]:
        schedule = DegreePowerFanout(degree=which)
        assert torch.equal(schedule.degree_of(csr, nodes, "out"), want)
    assert torch.equal(DegreePowerFanout().degree_of(csr, nodes, "in"), csr.in_degree)


def test_uniform_fanout_per_hop() -> None:
    schedule = UniformFanout([7, 2])
    assert schedule(0, torch.tensor([1, 50])).tolist() == [7, 7]
    assert schedule(1, torch.tensor([3])).tolist() == [2]


def test_powerlaw_exponent_known_and_sampled() -> None:
    assert powerlaw_exponent(torch.tensor([1, 2, 4])) == pytest.approx(1 + 1 / math.log(2))
    rng = np.random.default_rng(3)
    pareto = (1.0 - rng.random(200_000)) ** (-1 / 1.5)  # continuous power law, alpha = 2.5, x_min = 1
    assert powerlaw_exponent(torch.from_numpy(pareto)) == pytest.approx(2.5, abs=0.02)
    zeta = torch.from_numpy(rng.zipf(2.5, size=1_000_000))  # discrete power law, alpha = 2.5
    assert powerlaw_exponent(zeta, d_min=10, discrete_correction=True) == pytest.approx(2.5, abs=0.05)
    assert abs(powerlaw_exponent(zeta, d_min=10) - 2.5) > 0.05  # the correction matters at small d_min


# --------------------------------------------------------------------------------------------- PyG


def pyg_data() -> Data:
    edge_index = powerlaw_graph(num_nodes=120, num_edges=900, seed=5)
    return Data(
        x=torch.arange(120, dtype=torch.float).view(-1, 1),
        edge_index=edge_index,
        edge_attr=torch.arange(edge_index.size(1), dtype=torch.float).view(-1, 1),
        num_nodes=120,
    )


def test_pyg_node_loader() -> None:
    data = pyg_data()
    sampler = NeighborSampler(DegreePowerFanout(c=6, gamma=-0.5, k_min=1, k_max=5), 2, "in")
    loader = NodeLoader(
        data, PygNeighborSampler(data, sampler, gen()), input_nodes=torch.arange(120), batch_size=32
    )
    conv, seen = SAGEConv(1, 4), []
    for batch in loader:
        seeds = batch.n_id[: batch.batch_size]
        seen.append(seeds)
        assert torch.equal(batch.x[:, 0], batch.n_id.float())
        assert torch.equal(batch.edge_attr[:, 0], batch.e_id.float())
        assert torch.equal(batch.n_id[batch.edge_index], data.edge_index[:, batch.e_id])
        assert conv(batch.x, batch.edge_index).shape == (batch.num_nodes, 4)
    assert torch.equal(torch.cat(seen), torch.arange(120))


def test_pyg_link_loader_with_negatives() -> None:
    data = pyg_data()
    sampler = NeighborSampler(UniformFanout([3]), 1, "both")
    label_index = data.edge_index[:, :40]
    loader = LinkLoader(
        data,
        PygNeighborSampler(data, sampler, gen()),
        edge_label_index=label_index,
        neg_sampling=NegativeSampling("binary"),
        batch_size=20,
    )
    batch = next(iter(loader))
    assert batch.edge_label_index.shape == (2, 40) and batch.edge_label.tolist() == [1.0] * 20 + [0.0] * 20
    assert torch.equal(batch.n_id[batch.edge_label_index[:, :20]], label_index[:, :20])
    assert torch.equal(batch.n_id[batch.edge_index], data.edge_index[:, batch.e_id])


def test_pyg_rejects_repeated_seeds() -> None:
    data = pyg_data()
    loader = NodeLoader(
        data,
        PygNeighborSampler(data, NeighborSampler(UniformFanout([2]), 1)),
        input_nodes=torch.tensor([1, 1]),
        batch_size=2,
    )
    with pytest.raises(ValueError, match="distinct"):
        next(iter(loader))


# -------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: UniformFanout([]), "fanouts"),
        (lambda: UniformFanout([3, 0]), r"fanouts\[1\]"),
        (lambda: DegreePowerFanout(k_min=0), "k_min"),
        (lambda: DegreePowerFanout(k_max=0), "k_max"),
        (lambda: DegreePowerFanout(k_min=5, k_max=4), "k_min"),
        (lambda: DegreePowerFanout(c=0), "c must"),
        (lambda: DegreePowerFanout(gamma=float("nan")), "gamma"),
        (lambda: DegreePowerFanout(hop_decay=0), "hop_decay"),
        (lambda: DegreePowerFanout(hop_decay=1.5), "hop_decay"),
        (lambda: DegreePowerFanout(degree="both"), "degree"),
        (lambda: NeighborSampler(UniformFanout([2]), 0), "num_hops"),
        (lambda: NeighborSampler(UniformFanout([2]), 2), "sampler.schedule.fanouts"),
        (lambda: NeighborSampler(UniformFanout([2]), 1, "sideways"), "direction"),
        (lambda: powerlaw_exponent(torch.tensor([1, 2]), d_min=0), "d_min"),
        (lambda: DirectedCSR.from_edge_index(torch.tensor([[0, 3]]), 3), "edge_index"),
        (lambda: DirectedCSR.from_edge_index(torch.tensor([[0], [3]]), 3), "edge_index"),
    ],
)
def test_bad_parameters_raise_naming_them(make, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        make()


def test_bad_seeds_raise(graph) -> None:
    _, csr = graph
    sampler = NeighborSampler(UniformFanout([2]), 1)
    with pytest.raises(ValueError, match="seeds"):
        sampler.sample(csr, torch.tensor([0, 300]))
    with pytest.raises(ValueError, match="seeds"):
        sampler.sample(csr, torch.tensor([0.0]))


def test_annotations_are_pydantic_checkable() -> None:
    """The core validates configs against __init__ signatures; the constraints must be visible there."""
    params = inspect.signature(DegreePowerFanout.__init__).parameters
    fields = {n: (p.annotation, p.default) for n, p in params.items() if n != "self"}
    model = pydantic.create_model("DegreePowerFanoutConfig", **fields)
    model(k_min=2, k_max=3)
    for bad in ({"k_min": 0}, {"c": -1.0}, {"hop_decay": 2.0}, {"degree": "both"}):
        with pytest.raises(pydantic.ValidationError):
            model(**bad)
    uniform = inspect.signature(UniformFanout.__init__).parameters["fanouts"].annotation
    with pytest.raises(pydantic.ValidationError):
        pydantic.TypeAdapter(uniform).validate_python([2, 0])
    hops = inspect.signature(NeighborSampler.__init__).parameters["num_hops"].annotation
    with pytest.raises(pydantic.ValidationError):
        pydantic.TypeAdapter(hops).validate_python(0)


# --- random-walk fill (BLADE: small neighbourhoods topped up from further hops) ---------------------


def _walk_graph() -> DirectedCSR:
    # Phones 0, 1 -> cases 2, 3; phone 1 also -> protector 4. Phone 0's only out-neighbour is 2.
    edges = torch.tensor([[0, 1, 1, 1], [2, 2, 3, 4]])
    return DirectedCSR.from_edge_index(edges, 5)


def test_walk_fill_reaches_targets_of_similar_sources() -> None:
    from recsci.graph.sampling import WalkFill

    graph = _walk_graph()
    fill = WalkFill(walk_length=3, walks_per_slot=50)
    row, neighbour, weight = fill.fill(
        graph, torch.tensor([0]), "out", torch.tensor([3]), torch.Generator().manual_seed(0)
    )
    # Walk 0 -> 2 <- 1 -> {2, 3, 4}: the new targets are 3 and 4 (2 is already a direct neighbour).
    assert sorted(neighbour.tolist()) == [3, 4]
    assert row.tolist() == [0, 0]
    assert torch.all(weight > 0) and float(weight.sum()) <= 1.0 + 1e-6


def test_walk_fill_only_for_nodes_short_of_budget() -> None:
    from recsci.graph.sampling import WalkFill

    graph = _walk_graph()
    row, _, _ = WalkFill().fill(
        graph, torch.tensor([0, 1]), "out", torch.tensor([1, 3]), torch.Generator().manual_seed(0)
    )
    assert row.numel() == 0  # node 0 has 1 >= 1 neighbour, node 1 has 3 >= 3


def test_sampler_with_walk_fill_marks_virtual_edges() -> None:
    from recsci.graph.sampling import NeighborSampler, UniformFanout, WalkFill

    graph = _walk_graph()
    sampler = NeighborSampler(UniformFanout([3]), num_hops=1, direction="out", walk_fill=WalkFill(3, 20))
    sub = sampler.sample(graph, torch.tensor([0]), torch.Generator().manual_seed(0))
    virtual = sub.edge_ids < 0
    assert int((~virtual).sum()) == 1 and int(virtual.sum()) == 2
    assert torch.all(sub.edge_weight[~virtual] == 1) and torch.all(sub.edge_weight[virtual] < 1)
    src, dst = sub.nodes[sub.edge_index]
    assert torch.all(src == 0)  # out side: virtual edges point from the query to the reached targets


@pytest.mark.parametrize("side", ["out", "in"])
def test_walk_fill_visit_shares_follow_the_alternating_walk(side: str) -> None:
    # With every endpoint kept (large budgets), a node's visit shares estimate the probability that
    # a uniform walk of 3 alternating steps (side, other side, side) ends there; self and direct
    # neighbours are dropped, so their mass is simply missing. Exact probabilities by matrix products.
    from recsci.graph.sampling import WalkFill

    edge_index = powerlaw_graph(num_nodes=40, num_edges=160, seed=3)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]].unique(dim=1)
    graph = DirectedCSR.from_edge_index(edge_index, 40)
    adjacency = torch.zeros(40, 40, dtype=torch.float64)
    adjacency[edge_index[0], edge_index[1]] = 1.0
    forward = adjacency if side == "out" else adjacency.t()

    def step(a: torch.Tensor) -> torch.Tensor:
        return a / a.sum(1, keepdim=True).clamp_min(1)

    exact = step(forward) @ step(forward.t()) @ step(forward)
    nodes = (graph.side(side).degree > 0).nonzero().flatten()
    budget = graph.side(side).degree[nodes] + 40  # deficit 40 for each: every endpoint is kept
    walks_per_slot = 500
    row, neighbour, weight = WalkFill(3, walks_per_slot).fill(graph, nodes, side, budget, gen(5))
    estimate = torch.zeros(40, 40, dtype=torch.float64)
    estimate[nodes[row], neighbour] = weight.double()
    expected = exact.clone()
    expected[forward.bool()] = 0.0
    expected.fill_diagonal_(0.0)
    expected = expected[nodes]
    estimate = estimate[nodes]
    walks = 40 * walks_per_slot
    # Binomial standard error of each share; 5 sigma over ~1,600 cells.
    tolerance = 5 * torch.sqrt(expected * (1 - expected) / walks) + 1e-9
    assert torch.all((estimate - expected).abs() <= tolerance)
    assert torch.all(estimate[expected == 0] == 0)  # never a direct neighbour, self or unreachable node
    assert float(expected.sum()) > 1.0  # the check has mass to test


def test_walk_fill_keeps_the_most_visited_endpoints_of_each_node() -> None:
    # The selection step against a plain-Python ranking: per node its deficit most visited endpoints
    # (ties: lower id first), never itself or a direct neighbour, weighted by visits / walks launched.
    from recsci.graph.sampling import WalkFill

    edge_index = powerlaw_graph(num_nodes=60, num_edges=300, seed=1)
    graph = DirectedCSR.from_edge_index(edge_index, 60)
    g = gen(2)
    nodes = torch.randperm(60, generator=g)[:25]
    deficit = torch.randint(0, 6, (25,), generator=g)
    row = torch.sort(torch.randint(0, 25, (900,), generator=g)).values
    endpoint = torch.randint(0, 60, (900,), generator=g).pow(2) % 60  # skewed: repeated endpoints
    fill = WalkFill(3, 7)
    out_edges = set(map(tuple, edge_index.t().tolist()))
    for side in ("out", "in"):
        got_row, got_endpoint, got_weight = fill._most_visited(graph, side, row, endpoint, nodes, deficit)
        got = list(zip(got_row.tolist(), got_endpoint.tolist(), got_weight.tolist(), strict=True))
        expected = []
        for r in range(25):
            u = int(nodes[r])
            visits = Counter(int(v) for v in endpoint[row == r])
            candidates = [
                (-c, v)
                for v, c in visits.items()
                if v != u and ((u, v) if side == "out" else (v, u)) not in out_edges
            ]
            for c, v in sorted(candidates)[: int(deficit[r])]:
                expected.append((r, v, -c / (int(deficit[r]) * 7)))
        assert [(r, v) for r, v, _ in got] == [(r, v) for r, v, _ in expected]
        assert np.allclose([w for *_, w in got], [w for *_, w in expected])


def test_walk_fill_rejects_even_lengths() -> None:
    from recsci.graph.sampling import WalkFill

    with pytest.raises(ValueError, match="walk_length must be an odd integer"):
        WalkFill(walk_length=2)
