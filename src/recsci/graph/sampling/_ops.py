"""Vectorised per-segment sampling kernels and relabelling helpers (no Python loop over nodes).

Every kernel works on ``n`` segments (one per frontier node): segment ``i`` covers the adjacency slots
``start[i] .. start[i] + deg[i] - 1`` and wants ``k[i]`` of them. Kernels return ``(row, slot)``: the
segment each pick belongs to and the adjacency slot picked. Output order is deterministic given the
generator but otherwise unspecified (not grouped by segment).

Speed notes (torch 2.13 CPU, one thread; see experiments/bench/README.md): the kernels avoid sorting
(``torch.sort``/``torch.unique`` cost ~55 ns per element) and advanced indexing (``x[idx]`` is ~4x
slower than ``x.index_select(0, idx)``); duplicates are found through persistent scratch buffers
indexed by node or slot id instead, so every step is O(number of picks).
"""

from __future__ import annotations

import torch
from torch import Tensor

# Value of an unmarked entry in a slot scratch buffer (see :func:`first_occurrence`).
SENTINEL = torch.iinfo(torch.long).max
# Marks a slot already picked by rejection sampling (below every draw position, so never "first").
_TAKEN = -1
# Extra rejection draws per segment and round, on top of a bound on the expected number: with 2, a
# segment needs a second round with probability <= 0.5% (simulated for counts 1..40, degrees 2x..100x
# the count). A batch of ~1000 partial segments then usually runs one short second round.
_DRAW_SLACK = 2


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
    start: Tensor, deg: Tensor, k: Tensor, generator: torch.Generator | None, scratch: Tensor
) -> tuple[Tensor, Tensor]:
    """``min(k[i], deg[i])`` distinct slots per segment, each k-subset equally likely.

    A segment with ``k >= deg`` takes all its slots. Otherwise it draws the smaller side by rejection:
    ``k`` distinct slots to keep when ``k <= deg / 2``, else ``deg - k`` distinct slots to drop (the
    complement of a uniform subset is uniform), so every rejection draw hits a free slot with
    probability >= 1/2 and a hub costs O(k), not O(deg). ``scratch`` is a :data:`SENTINEL`-filled long
    buffer with one entry per adjacency slot; it is restored before returning.
    """
    # "Scan" segments list all their slots but the dropped ones: take-all (nothing dropped) and drop.
    scan = 2 * k > deg
    row, slot = _distinct_slots(start, deg, torch.where(scan, (deg - k).clamp_min(0), k), generator, scratch)
    kept = (~scan).index_select(0, row).nonzero().flatten()
    scan = scan.nonzero().flatten()
    seg, scan_slot = _all_slots(start.index_select(0, scan), deg.index_select(0, scan))
    free = (scratch.index_select(0, scan_slot) == SENTINEL).nonzero().flatten()  # not dropped
    scratch.scatter_(0, slot, _filled(slot, SENTINEL))
    rows = torch.cat([row.index_select(0, kept), scan.index_select(0, seg.index_select(0, free))])
    return rows, torch.cat([slot.index_select(0, kept), scan_slot.index_select(0, free)])


def _distinct_slots(
    start: Tensor, deg: Tensor, count: Tensor, generator: torch.Generator | None, scratch: Tensor
) -> tuple[Tensor, Tensor]:
    """``count[i]`` distinct uniform slots per segment (``2 * count <= deg``), by rejection.

    Each segment keeps the first ``count`` distinct values of a sequence of i.i.d. uniform draws, which
    form a uniform ``count``-subset (by symmetry, as the stopping rule only reads how many distinct
    values were seen). The sequence is drawn in rounds sized so that one round usually suffices; a
    segment still short continues in the next round, where the slots it holds (marked ``_TAKEN`` in
    ``scratch``) never count again. The picks are left marked: the caller restores ``scratch``.
    """
    rows, slots = [], []
    pending: Tensor | None = None  # segments still short (None: all of them, in the first round)
    p_start, p_deg, p_count, need = start, deg, count, count
    while True:
        num_draws = _num_draws(need, p_deg, p_count)
        local = torch.repeat_interleave(num_draws)
        slot = p_start.index_select(0, local) + _uniform_below(p_deg.index_select(0, local), generator)
        position = torch.arange(slot.numel(), device=slot.device)
        scratch.scatter_reduce_(0, slot, position, reduce="amin")
        first_position = scratch.index_select(0, slot)  # _TAKEN for slots held since earlier rounds
        first = first_position == position
        # Segments are contiguous runs of draws: keep the first `need` new slots of each.
        seen = torch.cumsum(first, 0)
        seen = torch.cat([seen.new_zeros(1), seen])  # seen[j] = new slots among draws < j
        seg_start = torch.cumsum(num_draws, 0) - num_draws
        before = seen.index_select(0, seg_start)
        keep = first & (seen[1:] <= (before + need).index_select(0, local))
        picked = keep.nonzero().flatten()
        slots.append(slot.index_select(0, picked))
        if pending is None:  # nothing held yet: unmark every draw, then mark the picks
            scratch.scatter_(0, slot, _filled(slot, SENTINEL))
            scratch.scatter_(0, slots[-1], _filled(slots[-1], _TAKEN))
            rows.append(local.index_select(0, picked))
        else:  # held slots stay marked; all draws of one slot write the same value (deterministic)
            taken = (first_position < 0) | keep.index_select(0, first_position.clamp_min(0))
            scratch.scatter_(0, slot, torch.where(taken, _TAKEN, SENTINEL))
            rows.append(pending.index_select(0, local.index_select(0, picked)))
        got = seen.index_select(0, seg_start + num_draws) - before
        short = (got < need).nonzero().flatten()
        if short.numel() == 0:
            return torch.cat(rows), torch.cat(slots)
        pending = short if pending is None else pending.index_select(0, short)
        need = (need - got).index_select(0, short)
        p_start, p_deg, p_count = (t.index_select(0, pending) for t in (start, deg, count))


def _all_slots(start: Tensor, deg: Tensor) -> tuple[Tensor, Tensor]:
    """Every slot of every segment: ``(seg, slot)``, segment by segment."""
    seg = torch.repeat_interleave(deg)
    # Output position p of segment i holds slot start[i] + (p - first output of i).
    shift = start - (torch.cumsum(deg, 0) - deg)
    return seg, torch.arange(seg.numel(), device=deg.device) + shift.index_select(0, seg)


def _num_draws(need: Tensor, deg: Tensor, count: Tensor) -> Tensor:
    """Draws per segment for a round that wants ``need`` more new slots (0 where ``need == 0``).

    At least ``deg - count`` slots are free, so the expected number of draws is at most
    ``need * deg / (deg - count)`` (<= ``2 * need``); with ``_DRAW_SLACK`` more, a segment needs
    another round with probability <= 0.5%.
    """
    free = (deg - count).clamp_min(1)
    return torch.where(need > 0, (need * deg + free - 1) // free + _DRAW_SLACK, 0)


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
