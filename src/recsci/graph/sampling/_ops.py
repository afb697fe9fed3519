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
replacement runs ``ceil(log2(max fan-out - 1))`` rounds of one gather, not a loop over steps. Per-pick
arithmetic is int32 where exact (int64 elementwise ops cost 2-3x as much per element here) and
contiguous (strided operands cost ~3x).
"""

from __future__ import annotations

import torch
from torch import Tensor

# Value of an unmarked entry in a slot scratch buffer (see :func:`first_occurrence`).
SENTINEL = torch.iinfo(torch.long).max

# Largest int32: slot ids, positions and pointers up to it fit the draw's int32 arithmetic.
_INT32_MAX = torch.iinfo(torch.int32).max


class SlotStamps:
    """Finds repeated slots within segments through a per-slot stamp buffer never cleared between calls.

    A call stamps each position's slot, by a scatter-max, with a code that decreases with the position
    and exceeds every stamp already in the buffer: a slot then holds the code of the first position of
    this call that drew it (segments own disjoint slots), so comparing codes gives each position's gap
    to the first position of its segment with the same slot (0 for a first occurrence). Stamps left by
    earlier calls (or by a call an error interrupted) are below any new code, so nothing is reset per
    call. Codes are int32 (``num_slots`` * 4 bytes, created on first use); the buffer is refilled only
    once the codes run out, after ``2**31`` positions in all.
    """

    def __init__(self, num_slots: int, device: torch.device) -> None:
        """Stamps for ``num_slots`` slots on ``device`` (the buffer is created on first use)."""
        self.num_slots, self.device = num_slots, device
        self._buffer: Tensor | None = None
        self._top = 0  # largest code handed out so far

    def repeat_gap(self, slots: Tensor, position: Tensor) -> Tensor:
        """For every position, how far (in positions) it lies after the first position with its slot.

        ``slots`` (int32 or long) are the slots drawn at positions ``position`` (``0 .. n - 1`` in
        order, int32 or long); positions with equal slots must belong to one segment. A gap of 0 marks
        the first occurrence of a slot, a positive gap a repeat. Returns int32.
        """
        num = slots.numel()
        if num > _INT32_MAX:
            raise ValueError(f"SlotStamps: at most {_INT32_MAX} positions per call, got {num}")
        if self._buffer is None:
            self._buffer = torch.zeros(self.num_slots, dtype=torch.int32, device=self.device)
        if self._top > _INT32_MAX - num:  # codes used up: start again from a clean buffer
            self._buffer.zero_()
            self._top = 0
        self._top += num  # codes top - position lie in (old top, top]
        code = torch.sub(self._top, position)
        if code.dtype != torch.int32:
            code = code.int()
        self._buffer.scatter_reduce_(0, slots.long(), code, reduce="amax")
        return self._buffer.index_select(0, slots).sub_(code)


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
    return seg, start.index_select(0, seg) + uniform_below(seg_deg, generator)


def sample_without_replacement(
    start: Tensor, deg: Tensor, k: Tensor, generator: torch.Generator | None, stamps: SlotStamps
) -> tuple[Tensor, Tensor]:
    """``min(k[i], deg[i])`` distinct slots per segment, each subset of that size equally likely.

    Convenience form of :func:`floyd_draw` for per-segment ``start``, ``deg`` and fan-out ``k`` (long);
    the sampler calls :func:`floyd_draw` with precomputed tables instead. ``slot`` is int32 when the
    slots fit (``stamps.num_slots <= 2**31 - 1``), else long.
    """
    dtype = torch.int32 if stamps.num_slots <= _INT32_MAX else torch.long
    count = torch.minimum(k, deg)
    max_count = int(count.max()) if count.numel() else 0
    return floyd_draw(
        count.to(dtype), (start + deg).to(dtype), (deg + 1).to(dtype), max_count, generator, stamps
    )


def floyd_draw(
    count: Tensor,
    stop: Tensor,
    deg_plus_one: Tensor,
    max_count: int,
    generator: torch.Generator | None,
    stamps: SlotStamps,
) -> tuple[Tensor, Tensor]:
    """``count[i] <= deg[i]`` distinct slots per segment, each subset of that size equally likely.

    Segment ``i`` covers the slots ``stop[i] - deg[i] .. stop[i] - 1`` (``deg_plus_one = deg + 1``);
    ``count``, ``stop`` and ``deg_plus_one`` share one integer dtype (int32 when the slots fit: the
    per-pick arithmetic, positions included, is then int32, ~2-3x cheaper per element than int64 on
    CPU; the picks are materialised, so there are far fewer than 2**31 of them), and
    ``max_count >= max(count)`` bounds the pointer-doubling rounds (any larger bound gives the same
    result). Returns ``(row, slot)``: ``row`` (long) lists the picks segment by segment, ``count[i]``
    consecutive picks each; ``slot`` has the dtype of ``stop``.

    Floyd's algorithm draws a uniform ``c``-subset of ``0 .. d - 1`` exactly, with no retries: for the
    steps ``j = d - c, ..., d - 1`` draw ``t`` uniform in ``0 .. j`` and take ``t``, or ``j`` if ``t`` is
    taken already. A hub costs ``O(c)``, not ``O(d)``, and ``c = d`` (take-all) needs no branch of its
    own: Floyd with ``c = d`` returns all ``d`` slots. Here every step of every segment is one *pick*,
    all at once, with ``t = j - w`` for ``w = floor(u * (j + 1))`` (one float64 uniform ``u`` per
    pick); only "was ``t`` taken before this step?" is sequential. It is decided without a loop over
    steps:

    - ``t`` was taken before step ``m`` iff it equals an earlier ``t`` of the segment (a repeated slot,
      found in one scatter of stamps, see :class:`SlotStamps`) or it is the ``j`` of an earlier step
      ``p = m - w >= 0`` and step ``p`` took its ``j``, i.e. ``t_p`` was taken before step ``p``. (If
      ``w = 0``, ``t = j`` is new and points at the pick itself.)
    - So "taken" is "a repeat somewhere along the chain ``m -> p -> ...`` of strictly earlier steps".
      Each pick holds one pointer: to a sentinel index if it is a repeat itself, else to its chain's
      next pick (picks without one point at their segment's step 0, never taken). The sentinel points
      at itself, so ``ceil(log2(max count - 1))`` rounds of ``pointer = pointer[pointer]`` (one gather
      each) leave exactly the picks whose chain meets a repeat pointing at the sentinel.

    Cost: ~25 tensor ops over the picks plus one gather per round (4 rounds for counts of 10..17).
    """
    dtype, device = stop.dtype, stop.device
    end = torch.cumsum(count, 0, dtype=dtype)  # one past each segment's last pick
    num_picks = int(end[-1]) if end.numel() else 0
    if num_picks == 0:
        return torch.zeros(0, dtype=torch.long, device=device), stop.new_empty(0)
    # With output_size, repeat_interleave skips its own cumsum, sync and sign check (~40% faster here).
    row = torch.repeat_interleave(count, output_size=num_picks)
    # Pick at position i of a segment with first pick f = end - c runs step m = i - f and draws below
    # j + 1 = d - c + m + 1 = (d + 1 - end) + i; the slot of its j is start + j = (stop - end) + i.
    position = torch.arange(num_picks, dtype=dtype, device=device)
    bound = (deg_plus_one - end).index_select(0, row).add_(position)
    j_slot = (stop - end).index_select(0, row).add_(position)
    # float64 uniforms: floor(u * (j + 1)) <= j without a clamp, see _uniform_below.
    u = torch.rand(num_picks, generator=generator, dtype=torch.float64, device=device)
    back = u.mul_(bound).to(dtype)  # w: the draw is t = j - w, uniform in 0 .. j like w
    draw_slot = j_slot - back
    # Step p = m - w sits at position i - w; w > m (t below d - c: no step's j) means no chain, sent to
    # the segment's first pick, whose step 0 is never taken.
    chain = torch.maximum(position - back, (end - count).index_select(0, row))
    gap = stamps.repeat_gap(draw_slot, position)
    # pointer = chain, or the sentinel num_picks for a repeat (gap >= 1): min(chain + gap * n, n).
    if (max_count + 1) * (num_picks + 1) > _INT32_MAX:  # gap * num_picks could overflow int32
        chain, gap = chain.long(), gap.long()
    pointer = torch.full((num_picks + 1,), num_picks, dtype=chain.dtype, device=device)
    torch.add(chain, gap, alpha=num_picks, out=pointer[:num_picks])
    pointer.clamp_max_(num_picks)
    for _ in range(max(max_count - 2, 0).bit_length()):
        pointer = pointer.index_select(0, pointer)
    # -1 for picks that keep their draw t (pointer below the sentinel), 0 for those that take j.
    keeps_draw = pointer[:num_picks].sub_(num_picks).clamp_min_(-1)
    return row, j_slot.addcmul_(back, keeps_draw if keeps_draw.dtype == dtype else keeps_draw.to(dtype))


def uniform_below(bound: Tensor, generator: torch.Generator | None) -> Tensor:
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
