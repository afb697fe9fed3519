"""Vectorised per-segment sampling kernels and relabelling helpers (no Python loop over nodes).

Every kernel works on ``n`` segments (one per frontier node): segment ``i`` covers the adjacency slots
``start[i] .. start[i] + deg[i] - 1`` and wants ``k[i]`` of them. Kernels return ``(row, slot)``: the
segment each pick belongs to and the adjacency slot picked. Output order is deterministic given the
generator but otherwise unspecified (not grouped by segment).

Speed notes (torch 2.13 CPU, one thread; see experiments/bench/README.md): the kernels avoid sorting
(``torch.sort``/``torch.unique`` cost ~55 ns per element) and advanced indexing (``x[idx]`` is ~4x
slower than ``x.index_select(0, idx)``); duplicates are found through persistent scratch buffers
indexed by node or slot id instead. Per-op dispatch (a few us) dominates at sampler batch sizes, so the
kernels aim at a small, fixed number of tensor ops: no retry rounds, no data-dependent op counts beyond
one Python loop over the ``max(k)`` lanes of :func:`floyd_slots`.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Value of an unmarked entry in a slot scratch buffer (see :func:`first_occurrence`).
SENTINEL = torch.iinfo(torch.long).max


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
    start: Tensor, deg: Tensor, k: Tensor, generator: torch.Generator | None, picked: Tensor
) -> tuple[Tensor, Tensor]:
    """``min(k[i], deg[i])`` distinct slots per segment, each k-subset equally likely.

    A segment with ``k >= deg`` takes all its slots; the others run Floyd's algorithm
    (:func:`floyd_slots`), so a hub costs ``O(k)``, not ``O(deg)``. ``picked`` is the graph's pick mask
    (see :meth:`DirectedCSR.borrow_pick_mask`); it is restored before returning.
    """
    partial = k < deg
    # Take-all segments list all their slots; the others contribute no slot here (count 0).
    row, slot = _all_slots(start, torch.where(partial, 0, deg))
    partial = partial.nonzero().flatten()
    floyd_row, floyd_slot = floyd_slots(
        start.index_select(0, partial),
        deg.index_select(0, partial),
        k.index_select(0, partial),
        generator,
        picked,
    )
    return torch.cat([row, partial.index_select(0, floyd_row)]), torch.cat([slot, floyd_slot])


def floyd_slots(
    start: Tensor, deg: Tensor, k: Tensor, generator: torch.Generator | None, picked: Tensor
) -> tuple[Tensor, Tensor]:
    """``k[i]`` distinct uniform slots per segment (``k < deg``) by Floyd's algorithm, all segments at once.

    Floyd's algorithm draws a uniform k-subset of ``0 .. deg - 1`` exactly, with no retries: for
    ``j = deg - k, ..., deg - 1`` draw ``t`` uniform in ``0 .. j`` and take ``t``, or ``j`` if ``t`` was
    taken already. Here lane ``s`` of ``max(k)`` lanes runs step ``j = deg - max(k) + s`` of every
    segment at once (segments with a smaller ``k`` sit idle in the first lanes), so the Python loop is
    over lanes, 3 tensor ops each; all random numbers are drawn up front. "Taken" is looked up in
    ``picked``, a ``False``-filled bool buffer with one entry per slot plus a spare last entry, where
    idle lanes point (segments own disjoint slots, so one buffer serves all of them). Entries set here
    are reset before returning.
    """
    num_segments = k.numel()
    if num_segments == 0:
        return k.new_empty(0), k.new_empty(0)
    k_min, k_max = (int(v) for v in torch.aminmax(k))
    if k_max == 0:
        return k.new_empty(0), k.new_empty(0)
    lane = torch.arange(k_max, device=k.device).unsqueeze(1)
    first_step = deg - k_max  # the step j each segment would run on lane 0
    top = (start + first_step).unsqueeze(0) + lane  # slot of j, per lane and segment
    # float64 uniforms (53 random bits): see _uniform_below for why floor(u * (j + 1)) needs no clamp.
    draw = torch.rand((k_max, num_segments), generator=generator, dtype=torch.float64, device=k.device)
    draw = draw.mul_((first_step + 1).to(torch.float64).unsqueeze(0) + lane).long().add_(start)  # slot of t
    idle = None
    if k_min < k_max:
        idle = lane < (k_max - k).unsqueeze(0)
        spare = picked.numel() - 1
        top.masked_fill_(idle, spare)
        draw.masked_fill_(idle, spare)
    # Lane 0 is every active segment's first step, where nothing is taken yet: its draw stands. Later
    # lanes overwrite their draws with the picks in place (an elementwise op may write what it reads).
    mark = torch.ones(1, dtype=torch.bool, device=k.device).expand(num_segments)
    lanes = zip(draw.unbind(), top.unbind(), strict=True)
    for s, (lane_draw, lane_top) in enumerate(lanes):
        if s > 0:
            torch.where(picked.index_select(0, lane_draw), lane_top, lane_draw, out=lane_draw)
        picked.scatter_(0, lane_draw, mark)
    slot = draw.flatten()
    picked.scatter_(0, slot, torch.zeros(1, dtype=torch.bool, device=k.device).expand(slot.numel()))
    row = torch.arange(num_segments, device=k.device).expand(k_max, num_segments).flatten()
    if idle is None:
        return row, slot
    active = idle.logical_not_().flatten().nonzero().flatten()
    return row.index_select(0, active), slot.index_select(0, active)


def _all_slots(start: Tensor, deg: Tensor) -> tuple[Tensor, Tensor]:
    """Every slot of every segment: ``(seg, slot)``, segment by segment."""
    seg = torch.repeat_interleave(deg)
    # Output position p of segment i holds slot start[i] + (p - first output of i).
    shift = start - (torch.cumsum(deg, 0) - deg)
    return seg, torch.arange(seg.numel(), device=deg.device) + shift.index_select(0, seg)


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
