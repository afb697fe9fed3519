"""Vectorised multi-hop neighbourhood sampler for directed graphs (BLADE-style adaptive fan-out).

No ``from __future__ import annotations`` here: pydantic reads the ``__init__`` annotations at runtime.
"""

from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import torch
from torch import Tensor

from recsci.core.errors import ConfigError
from recsci.graph.sampling import _ops
from recsci.graph.sampling.csr import DirectedCSR, Side
from recsci.graph.sampling.fanout import FanoutSchedule, PositiveInt
from recsci.graph.sampling.walks import WalkFill

Direction = Literal["in", "out", "both"]


@dataclass
class SampledSubgraph:
    """A sampled multi-hop neighbourhood, relabelled to local ids.

    - ``nodes``: global ids. The seeds come first in their given order; duplicate seeds are dropped,
      keeping the first occurrence (so ``num_seeds`` may be smaller than ``len(seeds)``). Then come the
      nodes first reached at hop 1, hop 2, ...; within a hop in order of first appearance among that
      hop's sampled edges (as PyG's samplers order them).
    - ``edge_index``: ``[2, E]`` local ids into ``nodes``, in the original edge direction
      (row 0 = source, row 1 = target of the real graph), whichever direction was sampled.
    - ``edge_ids``: ``[E]`` position of each sampled edge in the original ``edge_index``; negative ids
      mark virtual edges added by a :class:`~recsci.graph.sampling.WalkFill` (not in the graph).
    - ``edge_weight``: ``[E]`` 1 for real edges, the walk visit share for virtual ones.
    - ``hop_of_node``: hop at which each node was first reached (0 for seeds).
    - ``num_sampled_nodes`` / ``num_sampled_edges``: per-hop counts (PyG's ``SamplerOutput`` layout:
      nodes start with the seed count, edges have one entry per expansion).
    """

    nodes: Tensor
    edge_index: Tensor
    edge_ids: Tensor
    num_seeds: int
    hop_of_node: Tensor
    num_sampled_nodes: list[int] = field(default_factory=list)
    num_sampled_edges: list[int] = field(default_factory=list)
    edge_weight: Tensor | None = None

    @property
    def num_nodes(self) -> int:
        """Number of nodes in the subgraph."""
        return int(self.nodes.numel())

    @property
    def num_edges(self) -> int:
        """Number of sampled edges."""
        return int(self.edge_ids.numel())


@dataclass
class NeighborDraw:
    """The neighbours drawn for one frontier on one side, in global ids (no relabelling).

    Edge ``j`` joins ``frontier[row[j]]`` and ``neighbor[j]``; it is the graph edge ``edge_id[j]``
    (``neighbor -> frontier node`` for the in side, ``frontier node -> neighbor`` for the out side), or a
    walk-filled virtual edge when ``edge_id[j] < 0``. ``weight`` is ``None`` when every edge is real
    (weight 1), else one weight per edge.
    """

    row: Tensor
    neighbor: Tensor
    edge_id: Tensor
    weight: Tensor | None = None

    @property
    def num_edges(self) -> int:
        """Number of drawn edges."""
        return int(self.edge_id.numel())


class NeighborSampler:
    """Samples a ``num_hops`` neighbourhood around seed nodes with a per-node fan-out schedule.

    - ``direction="in"``: a frontier node ``v`` samples among its in-neighbours ``u`` (edges ``u -> v``),
      the neighbourhood a source-to-target GNN aggregates over; ``"out"``: among its out-neighbours.
    - ``direction="both"``: in- and out-neighbours are sampled *separately*, each with the node's full
      budget from the schedule (computed from the degree of that side), and the two edge sets are
      merged; an edge picked from both of its ends (possibly at different hops) is kept once, at its
      earliest pick, when ``replace=False``. For BLADE's separate source/target roles use
      :meth:`sample_roles`, which returns the two neighbourhoods apart.
    - ``replace=False``: ``min(k, deg)`` distinct neighbours per node, every subset equally likely.
      ``replace=True``: exactly ``k`` i.i.d. draws per node with ``deg > 0``; repeated draws are *kept*
      as parallel edges (same edge id), so mean aggregation over them is an unbiased neighbourhood mean.

    The frontier of hop ``h + 1`` is the set of nodes first reached at hop ``h``; nodes already in the
    subgraph are linked to but never re-expanded. Fully vectorised: the only Python loop is over hops.
    :meth:`draw` is one hop's neighbour draw on its own (global ids, no relabelling); :meth:`sample`
    chains it over hops and relabels the result into a local subgraph. Without replacement every node
    is sampled by Floyd's algorithm (cost ``O(min(k, deg))``, so hubs never materialise all their
    neighbours); see ``experiments/bench/README.md`` for timings.
    """

    def __init__(
        self,
        schedule: FanoutSchedule,
        num_hops: PositiveInt,
        direction: Direction = "both",
        replace: bool = False,
        walk_fill: WalkFill | None = None,
    ) -> None:
        """Validate and store the sampling configuration."""
        if not isinstance(schedule, FanoutSchedule):
            raise ConfigError(f"schedule must be a FanoutSchedule, got {type(schedule).__name__}")
        if isinstance(num_hops, bool) or not isinstance(num_hops, int) or num_hops < 1:
            raise ConfigError(f"num_hops must be an integer >= 1, got {num_hops!r}")
        if schedule.max_hops is not None and num_hops > schedule.max_hops:
            raise ConfigError(
                f"num_hops={num_hops} exceeds the {schedule.max_hops} hop(s) the schedule defines "
                f"({schedule!r}); give one fan-out per hop (config: lower `sampler.num_hops` or lengthen "
                "`sampler.schedule.fanouts`)"
            )
        if direction not in ("in", "out", "both"):
            raise ConfigError(f"direction must be 'in', 'out' or 'both', got {direction!r}")
        self.schedule, self.num_hops, self.direction = schedule, num_hops, direction
        self.replace = bool(replace)
        self.walk_fill = walk_fill
        self._next_virtual_id = 0

    def __repr__(self) -> str:
        return (
            f"NeighborSampler(schedule={self.schedule!r}, num_hops={self.num_hops}, "
            f"direction={self.direction!r}, replace={self.replace})"
        )

    def sample(
        self, graph: DirectedCSR, seeds: Tensor, generator: torch.Generator | None = None
    ) -> SampledSubgraph:
        """Sample the neighbourhood of ``seeds`` (global ids) in ``self.direction``."""
        sides: tuple[Side, ...] = ("in", "out") if self.direction == "both" else (self.direction,)
        return self._sample(graph, seeds, sides, generator)

    def sample_roles(
        self, graph: DirectedCSR, seeds: Tensor, generator: torch.Generator | None = None
    ) -> tuple[SampledSubgraph, SampledSubgraph]:
        """Sample the out- and in-neighbourhoods apart: returns ``(out_subgraph, in_subgraph)``.

        BLADE's source role of a node aggregates its out-neighbourhood and its target role its
        in-neighbourhood. Both subgraphs start with the same seeds in the same order, so local id ``i <
        num_seeds`` denotes the same node in each. ``self.direction`` is ignored; the two draws are
        independent (out first, then in, from the same generator).
        """
        return (
            self._sample(graph, seeds, ("out",), generator),
            self._sample(graph, seeds, ("in",), generator),
        )

    def draw(
        self,
        graph: DirectedCSR,
        frontier: Tensor,
        side: Side,
        hop: int,
        generator: torch.Generator | None = None,
    ) -> NeighborDraw:
        """Draw the ``side`` neighbours of every ``frontier`` node for expansion ``hop`` (the raw draw).

        The schedule's fan-out, the per-node draw (with or without replacement) and, at hop 0, the walk
        fill; no deduplication of reached nodes and no relabelling. ``frontier`` must hold distinct,
        valid node ids (``long``, on the graph's device); unlike :meth:`sample` this is not checked.
        """
        if self.replace:
            adj = graph.side(side)
            k = self._fanout(graph, frontier, side, hop)
            start, deg = adj.ptr.index_select(0, frontier), adj.degree.index_select(0, frontier)
            row, slot = _ops.sample_with_replacement(start, deg, k, generator)
        else:
            count, max_count = self._distinct_count(graph, frontier, side, hop)
            tables = graph.slot_tables(side)
            row, slot = _ops.floyd_draw(
                count,
                tables.stop.index_select(0, frontier),
                tables.deg_plus_one.index_select(0, frontier),
                max_count,
                generator,
                graph.borrow_slot_stamps(),
            )
        out = NeighborDraw(row, *graph.gather_slots(side, slot))
        if self.walk_fill is not None and hop == 0:
            # Nodes whose direct neighbourhood is smaller than their budget: top it up from walks.
            k = self._fanout(graph, frontier, side, hop)
            fill_row, fill_other, fill_weight = self.walk_fill.fill(graph, frontier, side, k, generator)
            # Distinct negative ids keep virtual edges apart from real ones (and from each other).
            virtual_id = -1 - self._virtual_ids(fill_row.numel(), frontier.device)
            out = NeighborDraw(
                row=torch.cat([out.row, fill_row]),
                neighbor=torch.cat([out.neighbor, fill_other]),
                edge_id=torch.cat([out.edge_id, virtual_id]),
                weight=torch.cat([torch.ones(slot.numel(), device=slot.device), fill_weight]),
            )
        return out

    def _sample(
        self, graph: DirectedCSR, seeds: Tensor, sides: tuple[Side, ...], generator: torch.Generator | None
    ) -> SampledSubgraph:
        seeds = _check_seeds(seeds, graph)
        self._next_virtual_id = 0  # virtual edge ids only need to be unique within one subgraph
        local = graph.borrow_local_map()
        try:
            nodes = [_ops.claim_new(local, seeds, 0)]  # drops repeated seeds, keeps first occurrences
            num_nodes, draws = nodes[0].numel(), []
            for hop in range(self.num_hops):
                frontier = nodes[-1]
                hop_draws = [(side, self.draw(graph, frontier, side, hop, generator)) for side in sides]
                reached = [d.neighbor for _, d in hop_draws]
                nodes.append(
                    _ops.claim_new(local, torch.cat(reached) if len(sides) > 1 else reached[0], num_nodes)
                )
                # Frontier nodes hold the consecutive local ids frontier_base + row.
                draws += [(side, d, num_nodes - frontier.numel()) for side, d in hop_draws]
                num_nodes += nodes[-1].numel()
            # Write local ids straight into the result: the map is final once every hop is claimed.
            edge_index = torch.empty(
                2, sum(d.num_edges for _, d, _ in draws), dtype=torch.long, device=seeds.device
            )
            at = 0
            for side, d, frontier_base in draws:
                source, target = edge_index[0, at : at + d.num_edges], edge_index[1, at : at + d.num_edges]
                # Report edges in the graph's own direction: an in-neighbour u of v is the edge u -> v.
                center, other = (source, target) if side == "out" else (target, source)
                torch.add(d.row, frontier_base, out=center)
                torch.index_select(local, 0, d.neighbor, out=other)
                at += d.num_edges
        except BaseException:
            graph.reset_scratch()  # rare: restore whole buffers rather than track half-set entries
            raise
        all_nodes = torch.cat(nodes)
        local.scatter_(0, all_nodes, torch.full((1,), -1, device=local.device).expand(all_nodes.numel()))
        edge_ids = torch.cat([d.edge_id for _, d, _ in draws])
        if self.walk_fill is None:
            edge_weight = torch.ones(edge_ids.numel(), device=edge_ids.device)
        else:  # only the hop-0 draws carry weights (the fill's visit shares); real edges weigh 1
            edge_weight = torch.cat(
                [
                    torch.ones(d.num_edges, device=edge_ids.device) if d.weight is None else d.weight
                    for _, d, _ in draws
                ]
            )
        per_hop = len(sides)
        edge_counts = [
            sum(draws[h * per_hop + i][1].num_edges for i in range(per_hop)) for h in range(self.num_hops)
        ]
        if len(sides) > 1 and not self.replace:
            # An edge can be picked from both ends (as u's out-edge and v's in-edge, possibly at
            # different hops): keep its earliest pick so each edge appears once.
            keep = self._first_picks(graph, edge_ids)
            edge_counts = [int(part.sum()) for part in keep.split(edge_counts)]
            keep = keep.nonzero().flatten()
            edge_index, edge_ids = edge_index.index_select(1, keep), edge_ids.index_select(0, keep)
            edge_weight = edge_weight.index_select(0, keep)
        node_counts = [n.numel() for n in nodes]
        return SampledSubgraph(
            nodes=all_nodes,
            edge_index=edge_index,
            edge_ids=edge_ids,
            edge_weight=edge_weight,
            num_seeds=node_counts[0],
            hop_of_node=torch.repeat_interleave(torch.tensor(node_counts, device=all_nodes.device)),
            num_sampled_nodes=node_counts,
            num_sampled_edges=edge_counts,
        )

    def _first_picks(self, graph: DirectedCSR, edge_ids: Tensor) -> Tensor:
        """Mask of the first pick of every real edge (virtual walk-fill edges are all distinct)."""
        scratch = graph.borrow_slot_scratch()
        if self.walk_fill is None:
            return _ops.first_occurrence(edge_ids, scratch)
        real = (edge_ids >= 0).nonzero().flatten()
        keep = torch.ones_like(edge_ids, dtype=torch.bool)
        keep[real] = _ops.first_occurrence(edge_ids.index_select(0, real), scratch)
        return keep

    def _virtual_ids(self, count: int, device: torch.device) -> Tensor:
        start = self._next_virtual_id
        self._next_virtual_id += count
        return torch.arange(start, start + count, device=device)

    def _fanout(self, graph: DirectedCSR, frontier: Tensor, side: Side, hop: int) -> Tensor:
        """Per-node fan-outs of ``frontier``: from the graph's table of the schedule if it has a table key.

        Degrees are small integers and the built-in schedules are fixed functions of them, so the fan-out
        of every node is computed (and checked) once per graph, side and hop; a draw then costs one gather
        instead of the schedule's ~10 ops and the check's sync.
        """
        key = self.schedule.table_key()
        if key is None:
            return self._checked_fanout(graph, frontier, side, hop)
        every_node = partial(self._checked_fanout, graph, None, side, hop)
        return graph.cached(("fanout", key, side, hop), every_node).index_select(0, frontier)

    def _distinct_count(
        self, graph: DirectedCSR, frontier: Tensor, side: Side, hop: int
    ) -> tuple[Tensor, int]:
        """Picks per frontier node without replacement, ``min(k, deg)``, in the graph's slot dtype, and a
        bound on their maximum (it sets the draw's pointer-doubling rounds).

        Tabulated like :meth:`_fanout`: one gather per draw, and the bound is the table's maximum over
        every node, so no per-draw reduction and sync (a frontier with smaller counts only runs a
        round or two more, with the same result).
        """
        key = self.schedule.table_key()
        if key is None:
            return self._counts_of(graph, frontier, side, hop)
        every_node = partial(self._counts_of, graph, None, side, hop)
        table, max_count = graph.cached(("distinct count", key, side, hop), every_node)
        return table.index_select(0, frontier), max_count

    def _counts_of(
        self, graph: DirectedCSR, nodes: Tensor | None, side: Side, hop: int
    ) -> tuple[Tensor, int]:
        """``min(k, deg)`` of ``nodes`` (``None``: every node) in the slot dtype, and its maximum."""
        deg = graph.side(side).degree
        count = torch.minimum(
            self._checked_fanout(graph, nodes, side, hop),
            deg if nodes is None else deg.index_select(0, nodes),
        )
        return count.to(graph.slot_tables(side).stop.dtype), int(count.max()) if count.numel() else 0

    def _checked_fanout(self, graph: DirectedCSR, nodes: Tensor | None, side: Side, hop: int) -> Tensor:
        """Ask the schedule for the fan-outs of ``nodes`` (``None``: every node) and check the answer
        (custom schedules may err)."""
        if nodes is None:
            nodes = torch.arange(graph.num_nodes, device=graph.device)
        k = self.schedule(hop, self.schedule.degree_of(graph, nodes, side))
        if k.shape != nodes.shape or k.is_floating_point():
            raise ConfigError(
                f"schedule {self.schedule!r} must return an integer tensor of shape {tuple(nodes.shape)}, "
                f"got {k.dtype} of shape {tuple(k.shape)}"
            )
        if k.numel() > 0 and int(k.min()) < 0:
            raise ConfigError(f"schedule {self.schedule!r} returned a negative fan-out at hop {hop}")
        return k.long()


def _check_seeds(seeds: Tensor, graph: DirectedCSR) -> Tensor:
    """Validate seed ids (repeats are dropped later, while relabelling)."""
    if seeds.dim() != 1 or seeds.is_floating_point() or seeds.dtype == torch.bool:
        raise ConfigError(
            f"seeds must be a 1-D integer tensor, got {seeds.dtype} of shape {tuple(seeds.shape)}"
        )
    seeds = seeds.long().to(graph.device)
    if seeds.numel() > 0:
        lo, hi = (int(v) for v in torch.aminmax(seeds))
        if lo < 0 or hi >= graph.num_nodes:
            raise ConfigError(f"seeds must be node ids in [0, {graph.num_nodes}), got [{lo}, {hi}]")
    return seeds
