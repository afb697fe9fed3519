"""Fill small neighbourhoods from further hops with role-respecting random walks (BLADE).

A node whose 1-hop neighbourhood on one side is smaller than its fan-out budget gets the rest of
its budget from nodes reached by random walks that alternate direction: for the out side (the
source role) the walk goes out, in, out, ... so after an odd number of steps it stands on a node in
the *target* role, e.g. phone -> case <- other phone -> screen protector. The most visited endpoints
become virtual neighbours weighted by their visit share.
"""

from typing import Annotated

import torch
from annotated_types import Ge
from torch import Tensor

from recsci.core.errors import ConfigError
from recsci.graph.sampling import _ops
from recsci.graph.sampling.csr import DirectedCSR, Side

_OTHER_SIDE: dict[str, Side] = {"out": "in", "in": "out"}


class WalkFill:
    """Top up 1-hop neighbourhoods that fall short of their budget with random-walk endpoints.

    ``walk_length`` is odd (3 = two hops further than a direct neighbour); each missing slot launches
    ``walks_per_slot`` walks; per node the ``budget - degree`` most visited endpoints (not the node
    itself, not a direct neighbour) are kept with weight ``visits / walks launched``.
    """

    def __init__(
        self, walk_length: Annotated[int, Ge(3)] = 3, walks_per_slot: Annotated[int, Ge(1)] = 4
    ) -> None:
        if (
            isinstance(walk_length, bool)
            or not isinstance(walk_length, int)
            or walk_length < 3
            or walk_length % 2 == 0
        ):
            raise ConfigError(f"walk_length must be an odd integer >= 3, got {walk_length!r}")
        if isinstance(walks_per_slot, bool) or not isinstance(walks_per_slot, int) or walks_per_slot < 1:
            raise ConfigError(f"walks_per_slot must be an integer >= 1, got {walks_per_slot!r}")
        self.walk_length, self.walks_per_slot = walk_length, walks_per_slot

    def __repr__(self) -> str:
        return f"WalkFill(walk_length={self.walk_length}, walks_per_slot={self.walks_per_slot})"

    def fill(
        self,
        graph: DirectedCSR,
        nodes: Tensor,
        side: Side,
        budget: Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Virtual ``side`` neighbours for ``nodes``: ``(row, neighbour, weight)``.

        ``row`` indexes ``nodes``; ``neighbour`` is a global node id; ``weight`` is the visit share.
        """
        # Gathers by index_select: on CPU ~5x faster than advanced indexing for these 1-D lookups (walks
        # are the sampler's largest arrays: ~230 k per batch on squirrel).
        deficit = (budget - graph.side(side).degree.index_select(0, nodes)).clamp_min(0)
        origin_row, _ = _ops.expand_segments(deficit * self.walks_per_slot)
        origin = nodes.index_select(0, origin_row)
        position = origin
        alive = torch.ones_like(position, dtype=torch.bool)
        step_side = side
        for _ in range(self.walk_length):
            adj = graph.side(step_side)
            deg = adj.degree.index_select(0, position)
            alive &= deg > 0
            draw = torch.rand(
                position.numel(), generator=generator, dtype=torch.float64, device=position.device
            )
            slot = adj.ptr.index_select(0, position) + (draw * deg).long().clamp_max(
                torch.clamp_min(deg - 1, 0)
            )
            slot = torch.where(alive, slot, torch.zeros_like(slot))
            if adj.neighbor.numel():
                position = torch.where(alive, adj.neighbor.index_select(0, slot), position)
            step_side = _OTHER_SIDE[step_side]
        keep = alive & (position != origin)
        return self._most_visited(graph, side, origin_row[keep], position[keep], nodes, deficit)

    def _most_visited(
        self, graph: DirectedCSR, side: Side, row: Tensor, endpoint: Tensor, nodes: Tensor, deficit: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        num_nodes = graph.num_nodes
        pair, visits = torch.unique(row * num_nodes + endpoint, return_counts=True)
        row, endpoint = pair // num_nodes, pair % num_nodes
        # Direct neighbours are not virtual ones: checked once per distinct (node, endpoint) pair.
        origin = nodes.index_select(0, row)
        src, dst = (origin, endpoint) if side == "out" else (endpoint, origin)
        new = ~graph.has_edges(src, dst)
        row, endpoint, visits = row[new], endpoint[new], visits[new]
        # Most visited first within each row: sort by visits (desc), then stably by row.
        order = torch.argsort(visits, descending=True, stable=True)
        order = order[torch.argsort(row[order], stable=True)]
        row, endpoint, visits = row[order], endpoint[order], visits[order]
        counts = torch.bincount(row, minlength=deficit.numel())
        rank = torch.arange(row.numel(), device=row.device) - (torch.cumsum(counts, 0) - counts)[row]
        keep = rank < deficit[row]
        weight = visits[keep].double() / (deficit[row[keep]] * self.walks_per_slot).double()
        return row[keep], endpoint[keep], weight.float()
