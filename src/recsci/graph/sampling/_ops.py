"""Vectorised per-segment sampling kernels (no Python loop over nodes).

Every kernel works on ``n`` segments (one per frontier node): segment ``i`` covers the adjacency slots
``start[i] .. start[i] + deg[i] - 1`` and wants ``k[i]`` of them. Kernels return ``(row, slot)``: the
segment each pick belongs to and the adjacency slot picked. Output order is deterministic given the
generator but otherwise unspecified (not grouped by segment).
"""

from __future__ import annotations

import torch
from torch import Tensor

# A segment with deg > SPARSE_RATIO * k is sampled by rejection (cost ~ k) instead of by sorting a
# random key per slot (cost ~ deg), so hubs never materialise all their neighbours.
SPARSE_RATIO = 4.0
# ...but only when those segments hold at least this many slots in total: rejection has a fixed cost of
# ~0.4 ms (a dozen small ops per round), sorting ~0.08 us per slot (measured on the 2-core dev box).
SPARSE_MIN_SLOTS = 4096
# Rejection rounds draw ceil(k * factor) + 2 candidates, doubling the factor for unlucky segments;
# at deg > 4k, 1.5k + 2 draws hold k distinct values almost always (see the README bench notes).
_FIRST_FACTOR = 1.5
_MAX_REJECTION_ROUNDS = 4
# Random sort keys for the dense path: segment id in the high bits, 31 random bits below.
_KEY_BITS = 31


def expand_segments(count: Tensor) -> tuple[Tensor, Tensor]:
    """For segment sizes ``count`` return ``(seg, offset)``: the segment and 0-based offset of each item."""
    total = int(count.sum())
    # No output_size=: on torch 2.13 CPU it makes repeat_interleave ~100x slower (measured: 4.6 ms vs 17 us).
    seg = torch.repeat_interleave(torch.arange(count.numel(), device=count.device), count)
    first = torch.cumsum(count, 0) - count
    offset = torch.arange(total, device=count.device) - first[seg]
    return seg, offset


def unique_first_occurrence(x: Tensor) -> Tensor:
    """Distinct values of ``x`` in order of first occurrence (``torch.unique`` would sort them)."""
    if x.numel() == 0:
        return x
    _, inverse = torch.unique(x, return_inverse=True)
    positions = torch.arange(x.numel(), device=x.device)
    first = torch.full((int(inverse.max()) + 1,), x.numel(), dtype=torch.long, device=x.device)
    first.scatter_reduce_(0, inverse, positions, reduce="amin")
    return x[first.sort().values]


def first_occurrence_mask(key: Tensor) -> Tensor:
    """Boolean mask marking the first occurrence of each value of ``key`` (one stable sort)."""
    sorted_key, order = torch.sort(key, stable=True)
    mask = torch.ones_like(key, dtype=torch.bool)
    # In a stable sort, a repeat comes after its first occurrence: mark every repeat as not-first.
    mask[order[1:][sorted_key[1:] == sorted_key[:-1]]] = False
    return mask


def sample_with_replacement(
    start: Tensor, deg: Tensor, k: Tensor, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """``k[i]`` independent uniform draws per segment with ``deg[i] > 0`` (duplicates allowed)."""
    count = torch.where(deg > 0, k, torch.zeros_like(k))
    seg, _ = expand_segments(count)
    # float64 uniforms keep the floor-of-product unbiased for degrees far beyond 2**24.
    u = torch.rand(seg.numel(), generator=generator, dtype=torch.float64, device=deg.device)
    pick = (u * deg[seg]).long().clamp_max_(deg[seg] - 1)
    return seg, start[seg] + pick


def sample_without_replacement(
    start: Tensor, deg: Tensor, k: Tensor, generator: torch.Generator | None, sparse_ratio: float | None
) -> tuple[Tensor, Tensor]:
    """``min(k[i], deg[i])`` distinct slots per segment, each k-subset equally likely.

    Segments are split three ways: take-all (``k >= deg``), sparse (``deg > sparse_ratio * k``,
    rejection sampling, used when they hold >= ``SPARSE_MIN_SLOTS`` slots in all) and dense (the rest,
    random-key sort). ``sparse_ratio=None`` disables the sparse path (every partial segment is sorted),
    which the bench uses as a comparison. Both paths are exact, so the choice only affects speed.
    """
    take_all = k >= deg
    partial = ~take_all & (k > 0)
    sparse = partial & (deg.double() > sparse_ratio * k.double()) if sparse_ratio is not None else None
    if sparse is not None and int(deg[sparse].sum()) < SPARSE_MIN_SLOTS:
        sparse = None  # too few slots for rejection to beat one small sort
    dense = partial & ~sparse if sparse is not None else partial
    rows, slots = [], []

    idx = take_all.nonzero().flatten()
    seg, off = expand_segments(deg[idx])
    rows.append(idx[seg])
    slots.append(start[idx][seg] + off)

    if sparse is not None:
        idx = sparse.nonzero().flatten()
        r, s, leftover = _rejection(start[idx], deg[idx], k[idx], generator)
        rows.append(idx[r])
        slots.append(s)
        # Segments whose rejection rounds all failed (vanishingly rare) fall back to the exact sort.
        dense = dense.clone()
        dense[idx[leftover]] = True

    idx = dense.nonzero().flatten()
    r, s = _random_key_sort(start[idx], deg[idx], k[idx], generator)
    rows.append(idx[r])
    slots.append(s)
    return torch.cat(rows), torch.cat(slots)


def _random_key_sort(
    start: Tensor, deg: Tensor, k: Tensor, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """Shuffle every segment with one sort on (segment, random key) and keep its first ``k`` slots."""
    seg, off = expand_segments(deg)
    noise = torch.randint(1 << _KEY_BITS, (seg.numel(),), generator=generator, device=deg.device)
    # Segments stay contiguous after the sort, so sorted position j still belongs to segment seg[j]
    # and off[j] is its rank inside the shuffled segment.
    order = torch.sort((seg << _KEY_BITS) | noise).indices
    keep = off < k[seg]
    chosen = order[keep]
    return seg[keep], start[seg[chosen]] + off[chosen]


def _rejection(
    start: Tensor, deg: Tensor, k: Tensor, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Keep the first ``k`` distinct values of i.i.d. uniform draws per segment.

    The first k distinct values of an i.i.d. uniform sequence form a uniform k-subset, and so do they
    conditioned on the (label-symmetric) event that m draws hold at least k distinct values: retrying
    failed segments from scratch keeps the result exact. Returns picks and the still-failed segments.
    """
    rows, slots = [], []
    pending = torch.arange(deg.numel(), device=deg.device)
    factor = _FIRST_FACTOR
    for _ in range(_MAX_REJECTION_ROUNDS):
        if pending.numel() == 0:
            break
        p_deg, p_k = deg[pending], k[pending]
        count = torch.ceil(p_k.double() * factor).long() + 2
        seg, _ = expand_segments(count)
        u = torch.rand(seg.numel(), generator=generator, dtype=torch.float64, device=deg.device)
        draw = (u * p_deg[seg]).long().clamp_max_(p_deg[seg] - 1)
        is_first = first_occurrence_mask(seg * (int(p_deg.max()) + 1) + draw)
        rank = _segment_cumsum(is_first.long(), count) - 1  # rank among distinct draws of the segment
        n_distinct = torch.zeros_like(p_k).index_add_(0, seg, is_first.long())
        ok = n_distinct >= p_k
        keep = is_first & (rank < p_k[seg]) & ok[seg]
        rows.append(pending[seg[keep]])
        slots.append(start[pending[seg[keep]]] + draw[keep])
        pending = pending[~ok]
        factor *= 2
    empty = torch.empty(0, dtype=torch.long, device=deg.device)
    return (torch.cat(rows) if rows else empty), (torch.cat(slots) if slots else empty), pending


def _segment_cumsum(x: Tensor, count: Tensor) -> Tensor:
    """Inclusive cumulative sum of ``x`` restarted at every segment boundary."""
    total = torch.cumsum(x, 0)
    before = torch.cat([total.new_zeros(1), total])[torch.cumsum(count, 0) - count]
    return total - torch.repeat_interleave(before, count)
