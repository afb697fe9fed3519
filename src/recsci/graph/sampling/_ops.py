"""Vectorised per-segment sampling kernels and relabelling helpers (no Python loop over nodes).

Every kernel works on ``n`` segments (one per frontier node): segment ``i`` covers the adjacency slots
``start[i] .. start[i] + deg[i] - 1`` and wants ``k[i]`` of them. Kernels return ``(row, slot)``: the
segment each pick belongs to and the adjacency slot picked. Output order is deterministic given the
generator but otherwise unspecified (not grouped by segment).

Speed notes (torch 2.13 CPU, one thread; see experiments/bench/README.md): the kernels avoid sorting
(``torch.sort``/``torch.unique`` cost ~55 ns per element) and advanced indexing (``x[idx]`` is ~4x
slower than ``x.index_select(0, idx)``); duplicates are found through persistent buffers indexed by
node or slot id instead. Per-op dispatch (a few us) dominates at sampler batch sizes, so the kernels
aim at a small number of tensor ops that does not grow with the fan-out: the draw without
replacement runs ``ceil(log2(max fan-out - 1))`` rounds of a fixed op count, not a loop over steps.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Value of an unmarked entry in a slot scratch buffer (see :func:`first_occurrence`).
SENTINEL = torch.iinfo(torch.long).max

# Largest int32: slot ids up to it fit the draw's int32 arithmetic.
_INT32_MAX = torch.iinfo(torch.int32).max


class SlotStamps:
    """Finds repeated slots within segments through per-slot stamp buffers never cleared between calls.

    A call stamps each position's slot, by a scatter-max, with a code that decreases with the position's
    step within its segment and exceeds every stamp already in the buffer: a slot then holds the code of
    its first step in this call (segments own disjoint slots), so a position whose own code differs
    repeats an earlier step. Stamps left by earlier calls (or by a call an error interrupted) are below
    any new code, so nothing is reset per call. The codes only need to tell the steps of one call apart,
    so calls with at most 255 steps per segment use uint8 stamps (``num_slots`` bytes, as small as a bool
    mask; the repeat check is ~1/4 of the draw on a 1 M-edge graph, and int32 stamps made the whole draw
    5-7% slower), refilled once the codes run out, every ``255 // steps`` calls (a fill of ``num_slots``
    bytes); wider calls use an int32 buffer, created when first needed.
    """

    def __init__(self, num_slots: int, device: torch.device) -> None:
        """Stamps for ``num_slots`` slots on ``device`` (buffers are created on first use)."""
        self.num_slots, self.device = num_slots, device
        self._buffers: dict[torch.dtype, Tensor] = {}
        self._top: dict[torch.dtype, int] = {}  # largest code handed out so far, per buffer

    def repeats(self, slots: Tensor, step: Tensor, num_steps: int) -> Tensor:
        """Mask of the positions whose slot occurs at an earlier step of the same segment.

        ``slots`` (long) are the slots of the positions, ``step`` (int) the index of each position within
        its segment, all below ``num_steps``; positions with equal slots must belong to one segment.
        """
        dtype = torch.uint8 if num_steps <= 255 else torch.int32
        limit = torch.iinfo(dtype).max
        if num_steps > limit:
            raise ValueError(f"SlotStamps: at most {limit} steps per segment, got {num_steps}")
        buffer, top = self._buffers.get(dtype), self._top.get(dtype, 0)
        if buffer is None:
            buffer = self._buffers[dtype] = torch.zeros(self.num_slots, dtype=dtype, device=self.device)
        if top > limit - num_steps:  # codes used up: start again from a clean buffer
            buffer.zero_()
            top = 0
        base = self._top[dtype] = top + num_steps  # codes base - step lie in top + 1 .. base
        code = (base - step).to(dtype)
        buffer.scatter_reduce_(0, slots, code, reduce="amax")
        return buffer.index_select(0, slots) != code


def expand_segments(count: Tensor) -> tuple[Tensor, Tensor]:
    """For segment sizes ``count`` return ``(seg, offset)``: the segment and 0-based offset of each item."""
    # No output_size=: on torch 2.13 CPU it makes repeat_interleave ~100x slower (measured: 4.6 ms vs 17 us).
    seg = torch.repeat_interleave(count)
    first = torch.cumsum(count, 0) - count
    offset = torch.arange(seg.numel(), device=count.device) - first.index_select(0, seg)
    return seg, offset


def first_occurrence(values: Tensor, scratch: Tensor) -> Tensor:
    """Boolean mask marking the first occurrence of each value of ``values`` (no sort).

    ``scratch`` is a long buffer covering every value (``values < scratch.numel()``) that holds
    :data:`SENTINEL` everywhere; it is used to record first positions and is restored before returning.
    """
    position = torch.arange(values.numel(), device=values.device)
    scratch.scatter_reduce_(0, values, position, reduce="amin")
    first = scratch.index_select(0, values) == position
    scratch.scatter_(0, values, _filled(values, SENTINEL))
    return first


def claim_new(local: Tensor, nodes: Tensor, first_id: int) -> Tensor:
    """Give the nodes of ``nodes`` that ``local`` does not know yet the next local ids.

    ``local`` maps global -> local id, ``-1`` for unknown nodes. The distinct unknown nodes are returned
    in order of first occurrence and get ids ``first_id, first_id + 1, ...`` in ``local``. Known nodes
    keep their ids. Cost O(len(nodes)): the map itself records first positions, no sort.
    """
    unknown = nodes.masked_select(local.index_select(0, nodes) < 0)
    # A code below -1 per position, smallest first: a scatter-min leaves each unknown node's
    # first-position code in the map, and comparing codes finds the first occurrences.
    code = torch.arange(-2 - unknown.numel(), -2, device=nodes.device)
    local.scatter_reduce_(0, unknown, code, reduce="amin")
    new = unknown.masked_select(local.index_select(0, unknown) == code)
    local.scatter_(0, new, torch.arange(first_id, first_id + new.numel(), device=nodes.device))
    return new


def sample_with_replacement(
    start: Tensor, deg: Tensor, k: Tensor, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """``k[i]`` independent uniform draws per segment with ``deg[i] > 0`` (duplicates allowed)."""
    seg = torch.repeat_interleave(torch.where(deg > 0, k, 0))
    seg_deg = deg.index_select(0, seg)
    return seg, start.index_select(0, seg) + _uniform_below(seg_deg, generator)


def sample_without_replacement(
    start: Tensor, deg: Tensor, k: Tensor, generator: torch.Generator | None, stamps: SlotStamps
) -> tuple[Tensor, Tensor]:
    """``min(k[i], deg[i])`` distinct slots per segment, each subset of that size equally likely.

    Floyd's algorithm draws a uniform ``c``-subset of ``0 .. d - 1`` exactly, with no retries: for the
    steps ``j = d - c, ..., d - 1`` draw ``t`` uniform in ``0 .. j`` and take ``t``, or ``j`` if ``t`` is
    taken already. A hub costs ``O(c)``, not ``O(d)``, and a segment with ``k >= deg`` needs no branch of
    its own: Floyd with ``c = d`` returns all ``d`` slots. Here every step of every segment is one *pick*,
    all at once: ``row`` lists the picks segment by segment (``c`` consecutive picks per segment, step by
    step), all ``t`` are drawn up front, and only "was ``t`` taken before this step?" is sequential.
    It is decided without a loop over steps:

    - ``t`` was taken before step ``m`` iff it equals an earlier ``t`` of the segment (a repeated slot,
      found in one scatter of stamps, see :class:`SlotStamps`) or it is the ``j`` of an earlier step
      ``p`` (``t >= d - c``, ``p = t - (d - c) < m``) and step ``p`` took its ``j``, i.e. ``t_p`` was taken
      before step ``p``. (If ``t_p = j_p``, step ``p`` took ``t_p`` and ``t_m = t_p`` is a repeat.)
    - So "taken" is an OR along the chain ``m -> p -> ...`` of strictly earlier steps; pointer doubling
      resolves all chains in ``ceil(log2(max c - 1))`` rounds of three ops, whatever the draws.

    Picks whose ``t`` cannot point at an earlier step point at the segment's first pick, whose "taken"
    is always False, so the OR is unaffected. ``stamps`` is the graph's slot stamp buffer (see
    :meth:`DirectedCSR.borrow_slot_stamps`). ``row`` is long; ``slot`` is int32 when the graph has
    fewer than 2**31 slots (an index either way). Cost: ~30 tensor ops over the picks plus 3 per round
    (4 rounds for fan-outs of 10..17), where a loop over steps costs ~3 ops per step of the largest
    fan-out plus a separate take-all branch.
    """
    count = torch.minimum(k, deg)
    row = torch.repeat_interleave(count)
    num_picks = row.numel()
    if num_picks == 0:
        return row, row
    device = row.device
    # A chain visits distinct steps and ends at a pick whose "taken" is False (step 0, or a pick that
    # points at itself or at step 0), so it has at most max(count) - 1 picks that matter: pointer
    # doubling covers them in ceil(log2(max(count) - 1)) rounds.
    max_count = int(count.max())
    rounds = max(max_count - 2, 0).bit_length()
    # int32 for the per-pick arithmetic: half the memory traffic of int64, measurably faster at these
    # sizes. Positions and steps fit (picks are materialised, far below 2**31); slots fit when the
    # graph has fewer than 2**31 slots, else they stay int64. Scatter indices must be int64.
    slot_dtype = torch.int32 if stamps.num_slots <= _INT32_MAX else torch.long
    end = torch.cumsum(count, 0)  # one past the position of each segment's last pick
    first = end - count  # position of each segment's first pick
    # Pick at position i of a segment with first pick f runs step j = (d - c) + (i - f) = offset + i,
    # offset = d - c - f = d - end.
    offset = (deg - end).int()
    position = torch.arange(num_picks, dtype=torch.int32, device=device)
    pick_offset = offset.index_select(0, row)
    step = pick_offset + position
    # float64 uniforms: floor(u * (j + 1)) <= j without a clamp, see _uniform_below.
    u = torch.rand(num_picks, generator=generator, dtype=torch.float64, device=device)
    draw = u.mul_(step + 1).int()
    pick_start = start.to(slot_dtype).index_select(0, row)
    draw_slot = pick_start + draw
    # Step p = draw - (d - c) sits at position f + p = draw - offset; earlier than the segment (draw below
    # d - c: no step's j) means "no chain", sent to the first pick instead.
    pick_first = first.int().index_select(0, row)
    chain = torch.maximum(draw - pick_offset, pick_first)
    taken = stamps.repeats(draw_slot.long(), position - pick_first, max_count)
    for r in range(rounds):
        if r:
            chain = chain.index_select(0, chain)
        taken |= taken.index_select(0, chain)
    return row, torch.where(taken, pick_start.add_(step), draw_slot)


def _uniform_below(bound: Tensor, generator: torch.Generator | None) -> Tensor:
    """One uniform integer in ``[0, bound[i])`` per entry (``bound > 0``)."""
    # float64 uniforms (53 random bits) keep the floor-of-product's bias below b / 2**53, where float32
    # would give b / 2**24. No clamp needed: u <= 1 - 2**-53, the largest double below 1, and
    # (1 - 2**-53) * b rounds to a double below b for every integer b < 2**53.
    u = torch.rand(bound.numel(), generator=generator, dtype=torch.float64, device=bound.device)
    return (u * bound).long()


def _filled(like: Tensor, value: int) -> Tensor:
    """``value`` repeated ``like.numel()`` times, as an expanded view (no allocation of that size)."""
    # scatter_ with such a tensor source is ~2x faster than with a Python scalar (torch 2.13 CPU).
    return torch.full((1,), value, dtype=torch.long, device=like.device).expand(like.numel())
