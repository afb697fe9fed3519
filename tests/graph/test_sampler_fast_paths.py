"""Tests for the sampler's sort-free paths: the raw per-hop draw, relabelling through the dense node map,
edge deduplication and the scratch buffers (recsci.graph.sampling._ops / NeighborSampler.draw)."""

from __future__ import annotations

import pytest
import torch

from recsci.graph.sampling import (
    Adjacency,
    DegreePowerFanout,
    DirectedCSR,
    FanoutSchedule,
    NeighborSampler,
    UniformFanout,
    WalkFill,
    _ops,
)
from recsci.graph.sampling import csr as csr_module


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def graph() -> tuple[torch.Tensor, DirectedCSR]:
    """Heavy-tailed directed graph with a self-loop and parallel edges (hubs, leaves, both kinds)."""
    g = gen(3)
    src = torch.multinomial(torch.rand(400, generator=g).pow(-1.5), 5000, replacement=True, generator=g)
    dst = torch.multinomial(torch.rand(400, generator=g).pow(-1.5), 5000, replacement=True, generator=g)
    edge_index = torch.cat([torch.stack([src, dst]), torch.tensor([[7, 7, 7], [7, 9, 9]])], dim=1)
    return edge_index, DirectedCSR.from_edge_index(edge_index, 400)


def reference_sample(
    sampler: NeighborSampler, csr: DirectedCSR, seeds: list[int], sides: tuple[str, ...], seed: int
) -> tuple[list[int], list[tuple[int, int]], list[int], list[int], list[int]]:
    """The relabelling spelled out with Python dicts, on the sampler's own per-hop draws.

    Returns (nodes, local edges, edge ids, nodes per hop, edges per hop). Because it asks
    ``sampler.draw`` for the same frontiers in the same order with the same generator, it sees the
    same draws as ``sampler.sample``, so the two must agree exactly.
    """
    generator = gen(seed)
    local: dict[int, int] = {}
    for v in seeds:
        local.setdefault(v, len(local))
    frontier, nodes_per_hop = list(local), [len(local)]
    picks = []  # (hop, source, target, edge id) in global ids, graph direction
    for hop in range(sampler.num_hops):
        reached = []
        for side in sides:
            d = sampler.draw(csr, torch.tensor(frontier, dtype=torch.long), side, hop, generator)
            for row, other, eid in zip(d.row.tolist(), d.neighbor.tolist(), d.edge_id.tolist(), strict=True):
                center = frontier[row]
                picks.append((hop, other, center, eid) if side == "in" else (hop, center, other, eid))
                reached.append(other)
        new = []
        for v in reached:
            if v not in local:
                local[v] = len(local)
                new.append(v)
        frontier = new
        nodes_per_hop.append(len(new))
    if len(sides) > 1 and not sampler.replace:  # an edge picked from both ends is kept at its first pick
        seen: set[int] = set()
        picks = [p for p in picks if p[3] < 0 or not (p[3] in seen or seen.add(p[3]))]
    edges = [(local[s], local[t]) for _, s, t, _ in picks]
    edges_per_hop = [sum(1 for p in picks if p[0] == h) for h in range(sampler.num_hops)]
    return list(local), edges, [p[3] for p in picks], nodes_per_hop, edges_per_hop


@pytest.mark.parametrize("direction", ["in", "out", "both"])
@pytest.mark.parametrize("replace", [False, True])
@pytest.mark.parametrize("schedule", ["uniform", "adaptive"])
def test_relabelled_subgraph_equals_reference(graph, direction: str, replace: bool, schedule: str) -> None:
    _, csr = graph
    fanout: FanoutSchedule = (
        UniformFanout([6, 3])
        if schedule == "uniform"
        else DegreePowerFanout(c=20, gamma=-0.5, k_min=2, k_max=12)
    )
    sampler = NeighborSampler(fanout, 2, direction, replace)
    seeds = [5, 17, 5, 300, 42, 17, 0]  # repeats must be dropped, first occurrences kept in order
    sides = ("in", "out") if direction == "both" else (direction,)
    nodes, edges, edge_ids, nodes_per_hop, edges_per_hop = reference_sample(sampler, csr, seeds, sides, 9)
    sub = sampler.sample(csr, torch.tensor(seeds), gen(9))
    assert sub.nodes.tolist() == nodes
    assert sub.edge_index.t().tolist() == [list(e) for e in edges]
    assert sub.edge_ids.tolist() == edge_ids
    assert sub.num_sampled_nodes == nodes_per_hop and sub.num_sampled_edges == edges_per_hop
    assert sub.num_seeds == 5 and sub.hop_of_node.tolist() == sum(
        ([h] * n for h, n in enumerate(nodes_per_hop)), []
    )
    assert bool((sub.edge_weight == 1).all()) and sub.edge_weight.numel() == sub.num_edges


def test_relabelled_subgraph_with_walk_fill_equals_reference() -> None:
    # Phones 0..3 -> cases 4..6; node 0 has one out-neighbour, so hop 0 fills it from walks.
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 3], [4, 4, 5, 5, 6, 4, 5, 6]])
    csr = DirectedCSR.from_edge_index(edge_index, 7)
    sampler = NeighborSampler(UniformFanout([3, 2]), 2, "both", walk_fill=WalkFill(3, 8))
    nodes, edges, edge_ids, _, _ = reference_sample(sampler, csr, [0, 2], ("in", "out"), 4)
    sub = sampler.sample(csr, torch.tensor([0, 2]), gen(4))
    assert sub.nodes.tolist() == nodes
    assert sub.edge_index.t().tolist() == [list(e) for e in edges]
    assert sub.edge_ids.tolist() == edge_ids
    assert bool((sub.edge_ids < 0).any())  # the fill did add virtual edges
    assert bool((sub.edge_weight[sub.edge_ids >= 0] == 1).all())


@pytest.mark.parametrize("side", ["in", "out"])
@pytest.mark.parametrize("replace", [False, True])
def test_raw_draw_counts_and_edges(graph, side: str, replace: bool) -> None:
    edge_index, csr = graph
    schedule = DegreePowerFanout(c=30, gamma=-0.5, k_min=2, k_max=15)
    frontier = torch.randperm(400, generator=gen(1))[:250]
    d = NeighborSampler(schedule, 1, side, replace).draw(csr, frontier, side, 0, gen(2))
    deg = csr.side(side).degree[frontier]
    k = schedule(0, deg)
    expected = torch.where(deg > 0, k, 0) if replace else torch.minimum(k, deg)
    assert torch.equal(torch.bincount(d.row, minlength=250), expected)
    center = frontier[d.row]
    src, dst = (d.neighbor, center) if side == "in" else (center, d.neighbor)
    assert torch.equal(edge_index[:, d.edge_id], torch.stack([src, dst]))  # each id names its edge
    assert d.weight is None
    if not replace:
        assert d.edge_id.unique().numel() == d.num_edges


def test_raw_draw_is_the_first_hop_of_sample(graph) -> None:
    _, csr = graph
    sampler = NeighborSampler(UniformFanout([4, 4]), 2, "in")
    seeds = torch.tensor([3, 1, 4, 159, 26])
    d = sampler.draw(csr, seeds, "in", 0, gen(6))
    sub = sampler.sample(csr, seeds, gen(6))
    hop0 = sub.edge_ids[: sub.num_sampled_edges[0]]
    assert torch.equal(hop0, d.edge_id)


@pytest.mark.parametrize("replace", [False, True])
def test_wide_graph_fallbacks_draw_the_same_edges(graph, monkeypatch, replace: bool) -> None:
    """A graph whose ids need more than 31 bits keeps long slot tables and gathers neighbour and edge
    ids apart instead of as packed int32 pairs: the same draws on the same uniforms."""
    edge_index, csr = graph
    sampler = NeighborSampler(DegreePowerFanout(c=30, gamma=-0.5, k_min=2, k_max=15), 2, "both", replace)
    seeds = torch.randperm(400, generator=gen(1))[:60]
    packed = sampler.sample(csr, seeds, gen(2))
    assert csr.slot_tables("in").packed is not None and csr.slot_tables("in").stop.dtype == torch.int32
    monkeypatch.setattr(csr_module, "_INT32_MAX", 399)  # fewer than num_nodes and num_edges
    wide_csr = DirectedCSR.from_edge_index(edge_index, 400)
    wide = sampler.sample(wide_csr, seeds, gen(2))
    assert wide_csr.slot_tables("in").packed is None and wide_csr.slot_tables("in").stop.dtype == torch.long
    assert torch.equal(packed.nodes, wide.nodes) and torch.equal(packed.edge_index, wide.edge_index)
    assert torch.equal(packed.edge_ids, wide.edge_ids)
    slot = torch.tensor([0, 5, 5, csr.num_edges - 1])
    for side in ("in", "out"):
        adj = csr.side(side)
        for g in (csr, wide_csr):
            neighbor, edge_id = g.gather_slots(side, slot)
            assert torch.equal(neighbor, adj.neighbor[slot]) and torch.equal(edge_id, adj.edge_id[slot])
            assert neighbor.dtype == edge_id.dtype == torch.long


def test_packed_slot_ids_round_trip_at_31_bits() -> None:
    """The packed (edge id, neighbour) words give back ids up to 2**31 - 1 exactly."""
    big = 2**31 - 1
    adj = Adjacency(
        ptr=torch.tensor([0, 3]),
        neighbor=torch.tensor([0, big, 5]),
        edge_id=torch.tensor([big, 0, big - 1]),
        degree=torch.tensor([3]),
    )
    csr = DirectedCSR(num_nodes=1, out=adj, inc=adj)
    assert csr.slot_tables("out").packed is not None
    neighbor, edge_id = csr.gather_slots("out", torch.tensor([2, 1, 0, 1], dtype=torch.int32))
    assert neighbor.tolist() == [5, big, 0, big] and edge_id.tolist() == [big - 1, 0, big, 0]


def test_distinct_count_table_bounds_the_frontier(graph) -> None:
    """Without replacement the tabulated count is min(k, deg) per node, and its bound (which sets the
    doubling rounds) is the largest count over all nodes; a custom schedule gets its frontier's."""
    _, csr = graph
    schedule = DegreePowerFanout(c=30, gamma=-0.5, k_min=2, k_max=15)
    sampler = NeighborSampler(schedule, 2, "in")
    deg = csr.in_degree
    for hop in range(2):
        want = torch.minimum(schedule(hop, deg), deg)
        frontier = torch.tensor([5, 0, 399])
        count, bound = sampler._distinct_count(csr, frontier, "in", hop)
        assert count.tolist() == want[frontier].tolist() and bound == int(want.max())
    custom = NeighborSampler(_CountingSchedule(), 1, "in")
    count, bound = custom._distinct_count(csr, frontier, "in", 0)
    assert count.tolist() == torch.clamp(deg[frontier], max=2).tolist() and bound == int(count.max())


def test_claim_new_keeps_first_occurrences() -> None:
    local = torch.full((10,), -1)
    local[7] = 0
    new = _ops.claim_new(local, torch.tensor([3, 7, 9, 3, 1, 9, 7]), 1)
    assert new.tolist() == [3, 9, 1]
    assert local.tolist() == [-1, 3, -1, 1, -1, -1, -1, 0, -1, 2]


def test_first_occurrence_matches_python_and_restores_scratch() -> None:
    values = torch.randint(0, 50, (500,), generator=gen(8))
    scratch = torch.full((50,), _ops.SENTINEL)
    mask = _ops.first_occurrence(values, scratch)
    seen: set[int] = set()
    assert mask.tolist() == [not (v in seen or seen.add(v)) for v in values.tolist()]
    assert bool((scratch == _ops.SENTINEL).all())


@pytest.mark.parametrize("direction", ["in", "both"])
def test_scratch_buffers_are_restored(graph, direction: str) -> None:
    _, csr = graph
    NeighborSampler(UniformFanout([9, 5]), 2, direction).sample(csr, torch.arange(0, 400, 3), gen())
    assert bool((csr.borrow_local_map() == -1).all())
    assert bool((csr.borrow_slot_scratch() == _ops.SENTINEL).all())


class _FailingSchedule(FanoutSchedule):
    def __call__(self, hop: int, degree: torch.Tensor) -> torch.Tensor:
        if hop == 1:
            raise RuntimeError("schedule failed")
        return torch.full_like(degree, 3)


def test_scratch_buffers_restored_after_an_error(graph) -> None:
    _, csr = graph
    with pytest.raises(RuntimeError, match="schedule failed"):
        NeighborSampler(_FailingSchedule(), 2, "in").sample(csr, torch.arange(20), gen())
    assert bool((csr.borrow_local_map() == -1).all())
    assert bool((csr.borrow_slot_scratch() == _ops.SENTINEL).all())


def test_uniform_below_stays_below_the_bound() -> None:
    """The draw floors u * b without a clamp: the largest u torch.rand returns, 1 - 2**-53, must map
    below b for every bound, including powers of two and their neighbours."""
    bounds = torch.tensor([1, 2, 3, 5, 7, 1023, 1024, 1025, 2**31 - 1, 2**31, 2**40 + 1, 2**52 - 1])
    u_max = torch.full((bounds.numel(),), 1 - 2**-53, dtype=torch.float64)
    assert bool(((u_max * bounds).long() < bounds).all())
    assert bool(((u_max * bounds).long() == bounds - 1).all())


# --- fan-out tables (the schedule evaluated once per graph, side and hop) -----------------------------


@pytest.mark.parametrize("degree", ["sampled", "out", "in", "total"])
def test_fanout_table_equals_the_formula_for_every_node(graph, degree: str) -> None:
    _, csr = graph
    schedule = DegreePowerFanout(c=25, gamma=-0.5, k_min=2, k_max=11, hop_decay=0.6, degree=degree)
    sampler = NeighborSampler(schedule, 3, "both")
    nodes = torch.arange(400)
    for side in ("in", "out"):
        for hop in range(3):
            want = schedule(hop, schedule.degree_of(csr, nodes, side))
            assert torch.equal(sampler._fanout(csr, nodes, side, hop), want)
            frontier = torch.tensor([399, 7, 0, 123])
            assert torch.equal(sampler._fanout(csr, frontier, side, hop), want[frontier])


def test_fanout_table_covers_every_degree() -> None:
    """One node per degree 0..2000 (stars with that many leaves): table == formula at each degree."""
    degrees = torch.arange(2001)
    centers = torch.repeat_interleave(degrees)
    leaves = 2001 + torch.arange(centers.numel())
    csr = DirectedCSR.from_edge_index(torch.stack([leaves, centers]), 2001 + centers.numel())
    schedule = DegreePowerFanout(c=40, gamma=-0.5, k_min=3, k_max=40, hop_decay=0.67)
    sampler = NeighborSampler(schedule, 2, "in")
    for hop in range(2):
        assert torch.equal(sampler._fanout(csr, degrees, "in", hop), schedule(hop, degrees))


def test_fanout_table_follows_parameter_changes(graph) -> None:
    _, csr = graph
    schedule = DegreePowerFanout(c=25, gamma=-0.5, k_min=2, k_max=11)
    sampler, nodes = NeighborSampler(schedule, 1, "in"), torch.arange(400)
    before = sampler._fanout(csr, nodes, "in", 0)
    schedule.k_max = 4  # a new key, so a new table rather than the stale one
    after = sampler._fanout(csr, nodes, "in", 0)
    assert int(before.max()) == 11 and torch.equal(after, torch.clamp(before, max=4))
    uniform = NeighborSampler(UniformFanout([5, 2]), 2, "in")
    assert uniform._fanout(csr, nodes, "in", 1).tolist() == [2] * 400


def test_fanout_cache_is_bounded(graph) -> None:
    edge_index, _ = graph
    csr = DirectedCSR.from_edge_index(edge_index, 400)
    for c in range(1, 40):
        NeighborSampler(DegreePowerFanout(c=c), 1, "in")._fanout(csr, torch.arange(3), "in", 0)
    assert len(csr._cache) <= 16


class _CountingSchedule(FanoutSchedule):
    """A schedule without a table key: asked at every draw, with the frontier's degrees only."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, hop: int, degree: torch.Tensor) -> torch.Tensor:
        self.calls.append(degree.numel())
        return torch.full_like(degree, 2)


def test_schedule_without_table_key_is_asked_per_draw(graph) -> None:
    _, csr = graph
    schedule = _CountingSchedule()
    sampler = NeighborSampler(schedule, 1, "in")
    sampler.draw(csr, torch.arange(5), "in", 0, gen())
    sampler.draw(csr, torch.arange(7), "in", 0, gen())
    assert schedule.calls == [5, 7]


class _NegativeSchedule(DegreePowerFanout):
    def __call__(self, hop: int, degree: torch.Tensor) -> torch.Tensor:
        return torch.full_like(degree, -1)


def test_bad_tabulated_fanout_raises(graph) -> None:
    _, csr = graph
    with pytest.raises(ValueError, match="negative fan-out"):
        NeighborSampler(_NegativeSchedule(), 1, "in").draw(csr, torch.arange(5), "in", 0, gen())
