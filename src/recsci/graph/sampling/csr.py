"""Compressed adjacency of a directed graph, indexed both by source (CSR) and by target (CSC)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import torch
from torch import Tensor

from recsci.core.errors import ConfigError
from recsci.graph.edge_set import EdgeSet
from recsci.graph.sampling._ops import SENTINEL, SlotStamps

Side = Literal["in", "out"]
T = TypeVar("T")

# Largest id (node or edge) that int32 holds.
_INT32_MAX = torch.iinfo(torch.int32).max
_LOW_32_BITS = 2**32 - 1

# Entries kept by DirectedCSR.cached (fan-out tables: one per schedule, side and hop); oldest go first.
CACHE_SIZE = 16


@dataclass(frozen=True)
class Adjacency:
    """One side of a :class:`DirectedCSR`: the neighbours of every node in one direction.

    The neighbours of node ``v`` are ``neighbor[ptr[v]:ptr[v + 1]]`` and the ids of the edges that
    lead to them (positions in the original ``edge_index``) are ``edge_id[ptr[v]:ptr[v + 1]]``.
    """

    ptr: Tensor  # [num_nodes + 1] long
    neighbor: Tensor  # [num_edges] long, global node ids
    edge_id: Tensor  # [num_edges] long, positions in the original edge_index
    degree: Tensor  # [num_nodes] long


@dataclass(frozen=True)
class SlotTables:
    """Per-node slot bounds of one :class:`Adjacency` side in the draw's integer dtype, and its slots'
    (neighbour, edge id) pairs packed for one gather; built once per graph and side (see
    :meth:`DirectedCSR.slot_tables`)."""

    stop: Tensor  # [num_nodes] one past each node's last slot (ptr[1:])
    deg_plus_one: Tensor  # [num_nodes] degree + 1
    # [num_edges] int64 words edge_id * 2**32 + neighbour, one per slot; None when ids need more than
    # 31 bits.
    packed: Tensor | None


@dataclass
class DirectedCSR:
    """A directed graph stored twice: out-neighbours (CSR, by source) and in-neighbours (CSC, by target).

    Build it once per graph with :meth:`from_edge_index`. Within a node's slice neighbours keep the
    order of the original ``edge_index`` (stable sort), so results are reproducible. Parallel edges
    and self-loops are kept as they are: each is its own slot with its own edge id.

    The object also owns three reusable scratch buffers that :class:`~recsci.graph.sampling.NeighborSampler`
    borrows to find duplicates without sorting: a global->local id map (``num_nodes`` longs, all ``-1``
    between calls), a slot buffer (``num_edges`` longs, all ``SENTINEL`` between calls) and slot stamps
    (``num_edges`` int32, never reset, see ``_ops.SlotStamps``), the last two created on first use,
    per-side :class:`SlotTables` (:meth:`slot_tables`) and a small cache of per-node tables
    (:meth:`cached`, e.g. fan-outs). They make sampling not thread-safe on one graph object
    (DataLoader worker *processes* are fine, each has its own copy).
    """

    num_nodes: int
    out: Adjacency
    inc: Adjacency
    _local_map: Tensor | None = field(default=None, repr=False)
    _slot_scratch: Tensor | None = field(default=None, repr=False)
    _slot_stamps: SlotStamps | None = field(default=None, repr=False)
    _cache: dict[Hashable, Any] = field(default_factory=dict, repr=False, compare=False)
    _slot_tables: dict[Side, SlotTables] = field(default_factory=dict, repr=False, compare=False)
    _edge_set: EdgeSet | None = field(default=None, repr=False)

    @classmethod
    def from_edge_index(cls, edge_index: Tensor, num_nodes: int) -> DirectedCSR:
        """Build both adjacency sides from ``edge_index`` ([2, E], row 0 = source, row 1 = target)."""
        _check_edge_index(edge_index, num_nodes)
        src, dst = edge_index[0].long(), edge_index[1].long()
        return cls(
            num_nodes=num_nodes,
            out=_compress(key=src, value=dst, num_nodes=num_nodes),
            inc=_compress(key=dst, value=src, num_nodes=num_nodes),
        )

    @property
    def num_edges(self) -> int:
        """Number of edges (parallel edges counted separately)."""
        return int(self.out.neighbor.numel())

    @property
    def out_degree(self) -> Tensor:
        """Out-degree of every node, ``[num_nodes]`` long."""
        return self.out.degree

    @property
    def in_degree(self) -> Tensor:
        """In-degree of every node, ``[num_nodes]`` long."""
        return self.inc.degree

    @property
    def total_degree(self) -> Tensor:
        """In-degree plus out-degree of every node, ``[num_nodes]`` long."""
        return self.out.degree + self.inc.degree

    @property
    def device(self) -> torch.device:
        """Device on which the adjacency lives."""
        return self.out.ptr.device

    def side(self, side: Side) -> Adjacency:
        """Return the out-neighbour (``"out"``) or in-neighbour (``"in"``) adjacency."""
        if side == "out":
            return self.out
        if side == "in":
            return self.inc
        raise ConfigError(f"side must be 'in' or 'out', got {side!r}")

    def to(self, device: torch.device | str) -> DirectedCSR:
        """Return a copy on ``device`` (the scratch buffers are recreated there lazily)."""

        def move(adj: Adjacency) -> Adjacency:
            return Adjacency(*(t.to(device) for t in (adj.ptr, adj.neighbor, adj.edge_id, adj.degree)))

        return DirectedCSR(num_nodes=self.num_nodes, out=move(self.out), inc=move(self.inc))

    def has_edges(self, src: Tensor, dst: Tensor) -> Tensor:
        """Whether each ``src[i] -> dst[i]`` is an edge of the graph."""
        if self._edge_set is None:
            # Built on first use only: plain sampling never needs it.
            sources = torch.repeat_interleave(
                torch.arange(self.num_nodes, device=self.device), self.out.degree
            )
            self._edge_set = EdgeSet(torch.stack([sources, self.out.neighbor]), self.num_nodes)
        return self._edge_set.contains(src, dst)

    def borrow_local_map(self) -> Tensor:
        """Return the global->local buffer (all ``-1``); callers must reset the entries they set."""
        if self._local_map is None or self._local_map.device != self.device:
            self._local_map = torch.full((self.num_nodes,), -1, dtype=torch.long, device=self.device)
        return self._local_map

    def borrow_slot_scratch(self) -> Tensor:
        """Return the per-slot buffer (all ``SENTINEL``); callers must reset the entries they set.

        One entry per adjacency slot, which is also one per edge id; the sampler uses it to drop edges
        picked twice (edge ids, see ``_ops.first_occurrence``).
        """
        if self._slot_scratch is None or self._slot_scratch.device != self.device:
            self._slot_scratch = torch.full((self.num_edges,), SENTINEL, dtype=torch.long, device=self.device)
        return self._slot_scratch

    def borrow_slot_stamps(self) -> SlotStamps:
        """Return the per-slot stamps the draw without replacement finds repeated slots with.

        Unlike the other buffers they need no resetting (see ``_ops.SlotStamps``).
        """
        if self._slot_stamps is None or self._slot_stamps.device != self.device:
            self._slot_stamps = SlotStamps(self.num_edges, self.device)
        return self._slot_stamps

    def slot_tables(self, side: Side) -> SlotTables:
        """The :class:`SlotTables` of ``side``, built on first use.

        int32 when the graph has fewer than 2**31 slots (else long), so the draw's per-pick arithmetic
        can run in int32. The packed pairs cost ``num_edges`` * 8 bytes per side and turn the draw's
        two random-access gathers (neighbour, edge id) into one.
        """
        tables = self._slot_tables.get(side)
        if tables is None:
            adj = self.side(side)
            dtype = torch.int32 if self.num_edges <= _INT32_MAX else torch.long
            packed = None
            if self.num_edges <= _INT32_MAX and self.num_nodes <= _INT32_MAX:
                packed = (adj.edge_id << 32) | adj.neighbor
            tables = SlotTables(adj.ptr[1:].to(dtype), (adj.degree + 1).to(dtype), packed)
            self._slot_tables[side] = tables
        return tables

    def gather_slots(self, side: Side, slot: Tensor) -> tuple[Tensor, Tensor]:
        """``(neighbour, edge id)`` (long) of the adjacency slots ``slot`` (int32 or long) of ``side``."""
        packed = self.slot_tables(side).packed
        if packed is None:
            adj = self.side(side)
            return adj.neighbor.index_select(0, slot), adj.edge_id.index_select(0, slot)
        # One 8-byte gather per slot fetches both ids (one random access instead of two); two
        # elementwise ops split them.
        word = packed.index_select(0, slot)
        return word & _LOW_32_BITS, word >> 32

    def cached(self, key: Hashable, build: Callable[[], T]) -> T:
        """Return ``build()``, computed once per ``key`` for this graph.

        For tables that depend only on the graph and on ``key`` (e.g. a schedule's fan-out of every node
        at one hop and side). At most :data:`CACHE_SIZE` entries are kept, the oldest dropped first, so
        a sweep over many schedules on one graph does not grow memory without bound.
        """
        value = self._cache.get(key)
        if value is None:
            value = build()
            if len(self._cache) >= CACHE_SIZE:
                del self._cache[next(iter(self._cache))]
            self._cache[key] = value
        return value

    def reset_scratch(self) -> None:
        """Refill every scratch buffer completely (after an error left some entries set).

        The slot stamps need no refill: stale stamps never match a later call's codes.
        """
        if self._local_map is not None:
            self._local_map.fill_(-1)
        if self._slot_scratch is not None:
            self._slot_scratch.fill_(SENTINEL)


def _check_edge_index(edge_index: Tensor, num_nodes: int) -> None:
    """Reject malformed input early: a bad id would otherwise surface as an opaque index error."""
    if num_nodes < 0:
        raise ConfigError(f"num_nodes must be >= 0, got {num_nodes}")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ConfigError(f"edge_index must have shape [2, E], got {tuple(edge_index.shape)}")
    if edge_index.is_floating_point() or edge_index.dtype == torch.bool:
        raise ConfigError(f"edge_index must hold integer node ids, got dtype {edge_index.dtype}")
    if edge_index.numel() > 0:
        lo, hi = int(edge_index.min()), int(edge_index.max())
        if lo < 0 or hi >= num_nodes:
            raise ConfigError(
                f"edge_index ids must lie in [0, num_nodes={num_nodes}), got range [{lo}, {hi}]"
            )


def _compress(key: Tensor, value: Tensor, num_nodes: int) -> Adjacency:
    """Group ``value`` by ``key`` with a stable sort so each node's slice keeps the input edge order."""
    key_sorted, perm = torch.sort(key, stable=True)
    degree = torch.bincount(key_sorted, minlength=num_nodes)
    ptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=key.device)
    torch.cumsum(degree, dim=0, out=ptr[1:])
    return Adjacency(ptr=ptr, neighbor=value[perm], edge_id=perm, degree=degree)
