"""Uncertainty buckets and per-bucket score curves: the shared machinery of every decision rule.

A fitted rule is always the same object: ascending ``edges`` on the uncertainty axis (bucket ``r`` holds
``edges[r-1] <= u < edges[r]``) and one score threshold per bucket (predict positive iff
``score >= thresholds[r]``; ``inf`` means the bucket never predicts positive).

Within a bucket, candidate thresholds are the distinct fit scores (tied scores always go together, so a
threshold never splits a tie), optionally coarsened to ``n_score_bins`` equal-count score bins. A
:class:`BucketCurve` lists, for ``t = 0..T`` selected top bins, the cumulative predicted count ``N(t)``,
the positives ``P(t)`` and the threshold that selects exactly them on the fit data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from recsci.uncertainty.errors import DecisionRuleError, EmptyBucketError

Binning = Literal["quantile", "uniform"]


def check_inputs(
    scores: object, uncertainties: object, labels: object | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Float64 score/uncertainty arrays (and 0/1 labels) of equal length, finite, non-empty."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    u = np.asarray(uncertainties, dtype=np.float64).reshape(-1)
    if s.size == 0:
        raise DecisionRuleError("No scored examples: scores is empty.")
    if u.size != s.size:
        raise DecisionRuleError(f"scores has {s.size} values but uncertainties has {u.size}.")
    for name, values in (("scores", s), ("uncertainties", u)):
        bad = ~np.isfinite(values)
        if bad.any():
            rows = np.flatnonzero(bad)[:5].tolist()
            raise DecisionRuleError(f"{name} has {int(bad.sum())} NaN/inf values (first at rows {rows}).")
    y = None
    if labels is not None:
        y_raw = np.asarray(labels).reshape(-1)
        if y_raw.size != s.size:
            raise DecisionRuleError(f"scores has {s.size} values but labels has {y_raw.size}.")
        y = y_raw.astype(np.float64)
        if not np.isin(y, (0.0, 1.0)).all():
            raise DecisionRuleError("labels must be 0/1 (or booleans).")
    return s, u, y


def bucket_edges(
    uncertainties: np.ndarray,
    n_buckets: int,
    binning: Binning = "quantile",
    labels: np.ndarray | None = None,
    min_positives: int = 0,
) -> np.ndarray:
    """Interior edges (ascending, at most ``n_buckets - 1``) of the uncertainty buckets.

    ``quantile``: equal-count (equal-weight) buckets, edges at midpoints between neighbouring sorted
    values, so the fit data splits into counts that differ by at most one when there are no ties.
    ``uniform``: equal-width buckets over ``[min, max]``. Tied values never straddle an edge: ties (a
    constant uncertainty, say) collapse buckets rather than leave empty ones. With ``min_positives``
    the number of buckets is lowered until every bucket holds at least that many positive labels.
    """
    u = np.asarray(uncertainties, dtype=np.float64)
    order = np.sort(u)
    for k in range(int(n_buckets), 0, -1):
        edges = _edges(order, k, binning)
        if k == 1 or min_positives <= 0 or labels is None:
            return edges
        positives = np.bincount(assign_buckets(u, edges), weights=labels, minlength=edges.size + 1)
        if positives.min() >= min_positives:
            return edges
    return np.empty(0)


def _edges(sorted_u: np.ndarray, n_buckets: int, binning: Binning) -> np.ndarray:
    n = sorted_u.size
    if n_buckets <= 1 or n < 2:
        return np.empty(0)
    if binning == "quantile":
        cuts = (np.arange(1, n_buckets) * n) // n_buckets
        cuts = cuts[(cuts > 0) & (cuts < n)]
        low, high = sorted_u[cuts - 1], sorted_u[cuts]
        edges = np.where(low < high, (low + high) / 2.0, high)
    elif binning == "uniform":
        edges = np.linspace(sorted_u[0], sorted_u[-1], n_buckets + 1)[1:-1]
    else:
        raise DecisionRuleError(f"binning={binning!r}: expected 'quantile' or 'uniform'.")
    edges = np.unique(edges)
    edges = edges[edges > sorted_u[0]]  # else bucket 0 would be empty
    # An edge whose upper bucket is empty (ties, gaps in a uniform grid) merges that bucket into its neighbour.
    counts = np.bincount(np.searchsorted(edges, sorted_u, side="right"), minlength=edges.size + 1)
    edges = edges[counts[1:] > 0]
    return edges


def assign_buckets(uncertainties: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bucket index of each uncertainty: ``r`` such that ``edges[r-1] <= u < edges[r]``."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), uncertainties, side="right")


@dataclass
class BucketCurve:
    """Candidate thresholds of one bucket, best scores first (index 0 = predict nothing)."""

    counts: np.ndarray  # int64 [T + 1], N(t): examples with score >= thresholds[t]
    positives: np.ndarray  # int64 [T + 1], P(t): positives among them
    thresholds: np.ndarray  # float64 [T + 1], thresholds[0] = inf

    @property
    def size(self) -> int:
        return int(self.counts[-1])

    @property
    def n_positives(self) -> int:
        return int(self.positives[-1])


def bucket_curves(
    scores: np.ndarray,
    labels: np.ndarray,
    buckets: np.ndarray,
    n_buckets: int,
    n_score_bins: int | None = None,
    check_empty: bool = True,
) -> list[BucketCurve]:
    """One :class:`BucketCurve` per bucket; sorts once (score descending, then a stable sort by bucket)."""
    order = np.argsort(-scores, kind="stable")
    # A stable sort of small integers is a radix sort in numpy: the second pass is linear.
    small = buckets.astype(np.int16) if n_buckets < np.iinfo(np.int16).max else buckets
    order = order[np.argsort(small[order], kind="stable")]
    s, y, b = scores[order], labels[order], buckets[order]
    starts = np.searchsorted(b, np.arange(n_buckets + 1), side="left")
    curves = []
    for r in range(n_buckets):
        lo, hi = starts[r], starts[r + 1]
        if hi == lo:
            if check_empty:
                raise EmptyBucketError(
                    f"Uncertainty bucket {r} of {n_buckets} has no fit examples; use fewer buckets "
                    "(n_buckets) or edges learnt from the fit data."
                )
            curves.append(BucketCurve(np.zeros(1, np.int64), np.zeros(1, np.int64), np.array([np.inf])))
            continue
        curves.append(_curve(s[lo:hi], y[lo:hi], n_score_bins))
    return curves


def _curve(s_desc: np.ndarray, y: np.ndarray, n_score_bins: int | None) -> BucketCurve:
    n = s_desc.size
    # Ends (exclusive) of each run of tied scores: a threshold can only cut there.
    ends = np.append(np.flatnonzero(s_desc[1:] != s_desc[:-1]) + 1, n)
    if n_score_bins is not None and ends.size > n_score_bins:
        targets = np.ceil(np.arange(1, n_score_bins + 1) * n / n_score_bins).astype(np.int64)
        ends = np.unique(ends[np.minimum(np.searchsorted(ends, targets, side="left"), ends.size - 1)])
    cum_pos = np.concatenate([[0], np.cumsum(y, dtype=np.float64)]).astype(np.int64)
    counts = np.concatenate([[0], ends]).astype(np.int64)
    positives = cum_pos[counts]
    thresholds = np.concatenate([[np.inf], s_desc[ends - 1]])
    return BucketCurve(counts, positives, thresholds)


def meets_bound(positives: np.ndarray | float, counts: np.ndarray | float, bound: float) -> np.ndarray:
    """``positives / counts >= bound`` without dividing (and with a tolerance for float bounds)."""
    positives = np.asarray(positives, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # inf counts (unreachable DP states) compare False
        return (counts > 0) & (
            positives >= bound * counts - 1e-9 * np.minimum(np.maximum(counts, 1.0), 1e300)
        )
