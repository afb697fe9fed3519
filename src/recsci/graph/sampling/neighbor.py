"""Vectorised multi-hop neighbourhood sampler for directed graphs (BLADE-style adaptive fan-out).

No ``from __future__ import annotations`` here: pydantic reads the ``__init__`` annotations at runtime.
"""

from dataclasses import dataclass, field
from typing import Annotated, Literal

import torch
from annotated_types import Gt
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
      nodes first reached at hop 1, hop 2, ...; within a hop they are sorted by global id.
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
class _HopEdges:
    """Edges picked while expanding one frontier, in global ids and original direction."""

    src: Tensor
    dst: Tensor
    edge_id: Tensor
    reached: Tensor  # the endpoint on the far side of the frontier, per edge
    weight: Tensor  # 1 for real edges, the visit share for walk-filled virtual edges


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
    ``sparse_ratio`` (only used without replacement) picks rejection sampling for nodes with
    ``deg > sparse_ratio * k`` so hubs cost ``O(k)``, not ``O(deg)`` (only once such nodes hold
    ``_ops.SPARSE_MIN_SLOTS`` slots in all; below that one sort is cheaper); ``None`` sorts every node.
    Both paths are exact; see ``experiments/bench/README.md`` for timings.
    """

    def __init__(
        self,
        schedule: FanoutSchedule,
        num_hops: PositiveInt,
        direction: Direction = "both",
        replace: bool = False,
        sparse_ratio: Annotated[float, Gt(1)] | None = _ops.SPARSE_RATIO,
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
                f"({schedule!r}); give one fan-out per hop"
            )
        if direction not in ("in", "out", "both"):
            raise ConfigError(f"direction must be 'in', 'out' or 'both', got {direction!r}")
        if sparse_ratio is not None and not sparse_ratio > 1:
            raise ConfigError(f"sparse_ratio must be > 1 or None, got {sparse_ratio!r}")
        self.schedule, self.num_hops, self.direction = schedule, num_hops, direction
        self.replace, self.sparse_ratio = bool(replace), sparse_ratio
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

    def _sample(
        self, graph: DirectedCSR, seeds: Tensor, sides: tuple[Side, ...], generator: torch.Generator | None
    ) -> SampledSubgraph:
        seeds = _check_seeds(seeds, graph)
        self._next_virtual_id = 0  # virtual edge ids only need to be unique within one subgraph
        local = graph.borrow_local_map()
        nodes = [seeds]
        try:
            local[seeds] = torch.arange(seeds.numel(), device=seeds.device)
            num_nodes, frontier, hops = seeds.numel(), seeds, []
            for hop in range(self.num_hops):
                edges = _cat_edges([self._expand(graph, frontier, side, hop, generator) for side in sides])
                new = edges.reached[local[edges.reached] < 0].unique()
                nodes.append(new)
                local[new] = torch.arange(num_nodes, num_nodes + new.numel(), device=new.device)
                num_nodes += new.numel()
                hops.append(edges)
                frontier = new
            edges = _cat_edges(hops)
            edge_index = torch.stack([local[edges.src], local[edges.dst]])
        finally:
            # Leave the shared buffer all -1 for the next call, even if sampling raised.
            local[torch.cat(nodes)] = -1
        node_counts = [n.numel() for n in nodes]
        edge_hop = _hop_index([h.edge_id.numel() for h in hops], seeds.device)
        if len(sides) > 1 and not self.replace:
            # An edge can be picked from both ends (as u's out-edge and v's in-edge, possibly at
            # different hops): keep its earliest pick so each edge appears once.
            keep = _ops.first_occurrence_mask(edges.edge_id)
            edge_index, edge_hop, edges.edge_id = edge_index[:, keep], edge_hop[keep], edges.edge_id[keep]
            edges.weight = edges.weight[keep]
        return SampledSubgraph(
            nodes=torch.cat(nodes),
            edge_index=edge_index,
            edge_ids=edges.edge_id,
            edge_weight=edges.weight,
            num_seeds=seeds.numel(),
            hop_of_node=_hop_index(node_counts, seeds.device),
            num_sampled_nodes=node_counts,
            num_sampled_edges=torch.bincount(edge_hop, minlength=self.num_hops).tolist(),
        )

    def _expand(
        self, graph: DirectedCSR, frontier: Tensor, side: Side, hop: int, generator: torch.Generator | None
    ) -> _HopEdges:
        """Sample the ``side`` neighbours of every frontier node according to the schedule."""
        adj = graph.side(side)
        k = self._fanout(graph, frontier, side, hop)
        start, deg = adj.ptr[frontier], adj.degree[frontier]
        if self.replace:
            row, slot = _ops.sample_with_replacement(start, deg, k, generator)
        else:
            row, slot = _ops.sample_without_replacement(start, deg, k, generator, self.sparse_ratio)
        center, other = frontier[row], adj.neighbor[slot]
        edge_id, weight = adj.edge_id[slot], torch.ones(slot.numel(), device=slot.device)
        if self.walk_fill is not None and hop == 0:
            # Nodes whose direct neighbourhood is smaller than their budget: top it up from walks.
            fill_row, fill_other, fill_weight = self.walk_fill.fill(graph, frontier, side, k, generator)
            center = torch.cat([center, frontier[fill_row]])
            other = torch.cat([other, fill_other])
            # Distinct negative ids keep virtual edges apart from real ones (and from each other).
            edge_id = torch.cat([edge_id, -1 - self._virtual_ids(fill_row.numel(), slot.device)])
            weight = torch.cat([weight, fill_weight])
        # Report edges in the graph's own direction: an in-neighbour u of v is the edge u -> v.
        if side == "in":
            return _HopEdges(src=other, dst=center, edge_id=edge_id, reached=other, weight=weight)
        return _HopEdges(src=center, dst=other, edge_id=edge_id, reached=other, weight=weight)

    def _virtual_ids(self, count: int, device: torch.device) -> Tensor:
        start = self._next_virtual_id
        self._next_virtual_id += count
        return torch.arange(start, start + count, device=device)

    def _fanout(self, graph: DirectedCSR, frontier: Tensor, side: Side, hop: int) -> Tensor:
        """Ask the schedule for per-node fan-outs and check the answer (custom schedules may err)."""
        k = self.schedule(hop, self.schedule.degree_of(graph, frontier, side))
        if k.shape != frontier.shape or k.is_floating_point():
            raise ConfigError(
                f"schedule {self.schedule!r} must return an integer tensor of shape {tuple(frontier.shape)}, "
                f"got {k.dtype} of shape {tuple(k.shape)}"
            )
        if k.numel() > 0 and int(k.min()) < 0:
            raise ConfigError(f"schedule {self.schedule!r} returned a negative fan-out at hop {hop}")
        return k.long()


def _check_seeds(seeds: Tensor, graph: DirectedCSR) -> Tensor:
    """Validate seed ids and drop repeats, keeping first occurrences in order."""
    if seeds.dim() != 1 or seeds.is_floating_point() or seeds.dtype == torch.bool:
        raise ConfigError(
            f"seeds must be a 1-D integer tensor, got {seeds.dtype} of shape {tuple(seeds.shape)}"
        )
    seeds = seeds.long().to(graph.device)
    if seeds.numel() > 0 and (int(seeds.min()) < 0 or int(seeds.max()) >= graph.num_nodes):
        raise ConfigError(
            f"seeds must be node ids in [0, {graph.num_nodes}), got [{int(seeds.min())}, {int(seeds.max())}]"
        )
    return _ops.unique_first_occurrence(seeds)


def _cat_edges(parts: list[_HopEdges]) -> _HopEdges:
    """Concatenate edge picks (the two sides of one hop, or all hops)."""
    if len(parts) == 1:
        return parts[0]
    return _HopEdges(
        *(torch.cat([getattr(p, f) for p in parts]) for f in ("src", "dst", "edge_id", "reached", "weight"))
    )


def _hop_index(counts: list[int], device: torch.device) -> Tensor:
    """``[0] * counts[0] + [1] * counts[1] + ...`` as a long tensor."""
    return torch.repeat_interleave(
        torch.arange(len(counts), device=device), torch.tensor(counts, device=device)
    )
