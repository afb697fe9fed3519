"""Decision rules: maximise recall subject to precision >= a bound, with one score threshold per bucket.

Every rule is a small scikit-learn-style estimator: ``fit(scores, uncertainties, labels)`` on a hold-out
split, ``predict(scores, uncertainties)`` -> boolean decisions on any split, ``get_params`` /
``set_params``. A fitted rule is ``edges_`` (ascending uncertainty bucket edges) and ``thresholds_``
(predict positive iff ``score >= thresholds_[bucket]``; ``inf``: the bucket never predicts positive),
plus ``fit_summary_`` (counts, precision and recall on the fit data).

- :class:`SingleThreshold`: one global score threshold (the baseline; uncertainty ignored).
- :class:`RejectOption`: one score threshold, and no positive above an uncertainty cut-off.
- :class:`MIST`: isotonic regression of label on score within each uncertainty bucket, then one global
  threshold on the recalibrated score (Arora et al. 2023), i.e. a per-bucket score threshold.
- :class:`EWDPMT`: the exact dynamic program for equal-weight bins (equal-count uncertainty buckets,
  equal-count score bins within each): ``DP[r][k] = max_t DP[r-1][k-t] + P_r(t)``, O(U^2 S^2).
- :class:`ExactBucketDP`: exact for any bins (unequal bucket sizes make the problem NP-hard): a
  pseudo-polynomial DP over the number of positives, ``C[r][p] = min_t C[r-1][p - P_r(t)] + N_r(t)``
  (fewest predictions reaching exactly ``p`` true positives); the answer is the largest ``p`` with
  ``p >= bound * C[U][p]``. O(U * T * P) for T candidate thresholds per bucket and P positives; with
  ``n_score_bins=None`` every distinct score is a candidate, so it is the optimum over all per-bucket
  thresholds on the fit data.
- :class:`OptunaBucketSearch`: black-box search (Optuna TPE) over the same per-bucket candidates;
  it can never beat :class:`ExactBucketDP` on the data the DP fit (tested).

Bad input is an error with a message, never a silent threshold: no positive labels
(:class:`NoPositivesError`), a bound no threshold reaches (:class:`PrecisionBoundUnreachableError`),
an empty bucket, NaN scores.
"""

from __future__ import annotations

import inspect
import logging
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import Field, validate_call

from recsci.uncertainty.buckets import (
    Binning,
    BucketCurve,
    assign_buckets,
    bucket_curves,
    bucket_edges,
    check_inputs,
    meets_bound,
)
from recsci.uncertainty.errors import DecisionRuleError, NoPositivesError, PrecisionBoundUnreachableError

log = logging.getLogger(__name__)

PrecisionBound = Annotated[float, Field(gt=0.0, le=1.0)]
NumBuckets = Annotated[int, Field(ge=1, le=10_000)]
NumScoreBins = Annotated[int, Field(ge=1)]
MinPositives = Annotated[int, Field(ge=0)]


class DecisionRule:
    """Base class: parameters are the ``__init__`` arguments, stored under the same names."""

    name: ClassVar[str] = "rule"

    edges_: np.ndarray
    thresholds_: np.ndarray
    fit_summary_: dict[str, Any]

    # -- scikit-learn-style parameter handling -------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            n for n, p in signature.parameters.items() if n != "self" and p.kind is p.POSITIONAL_OR_KEYWORD
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> DecisionRule:
        unknown = sorted(set(params) - set(self._param_names()))
        if unknown:
            raise DecisionRuleError(
                f"{type(self).__name__}: unknown parameter(s) {unknown}; valid: {self._param_names()}"
            )
        validated = type(self)(**{**self.get_params(), **params})  # re-run the signature's validation
        for name in self._param_names():
            setattr(self, name, getattr(validated, name))
        return self

    def clone(self, **params: Any) -> DecisionRule:
        """An unfitted copy with the same parameters (and ``params`` overriding them)."""
        return type(self)(**{**self.get_params(), **params})

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- fit / predict ---------------------------------------------------------------------------------
    def fit(self, scores: Any, uncertainties: Any, labels: Any) -> DecisionRule:
        s, u, y = check_inputs(scores, uncertainties, labels)
        if y.sum() == 0:
            raise NoPositivesError(
                f"{self.name}: the fit labels contain no positive ({y.size} examples): recall is undefined. "
                "Fit on a larger hold-out split."
            )
        self._fit(s, u, y)
        self._summarise(s, u, y)
        return self

    def _fit(self, s: np.ndarray, u: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def predict(self, scores: Any, uncertainties: Any) -> np.ndarray:
        """Boolean decisions: ``score >= thresholds_[bucket(uncertainty)]``."""
        self._check_fitted()
        s, u, _ = check_inputs(scores, uncertainties)
        return s >= self.thresholds_[assign_buckets(u, self.edges_)]

    def buckets(self, uncertainties: Any) -> np.ndarray:
        self._check_fitted()
        return assign_buckets(np.asarray(uncertainties, dtype=np.float64), self.edges_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "thresholds_"):
            raise DecisionRuleError(f"{type(self).__name__} is not fitted: call fit(...) first.")

    def _summarise(self, s: np.ndarray, u: np.ndarray, y: np.ndarray) -> None:
        decisions = self.predict(s, u)
        tp, predicted, positives = int(y[decisions].sum()), int(decisions.sum()), int(y.sum())
        self.fit_summary_ = {
            "n": int(y.size),
            "positives": positives,
            "predicted": predicted,
            "true_positives": tp,
            "precision": tp / predicted if predicted else float("nan"),
            "recall": tp / positives,
            "n_buckets": int(self.edges_.size + 1),
            **getattr(self, "_extra_summary", {}),
        }

    # -- shared helpers --------------------------------------------------------------------------------
    def _buckets_and_curves(
        self,
        s: np.ndarray,
        u: np.ndarray,
        y: np.ndarray,
        n_buckets: int,
        binning: Binning,
        min_positives: int,
        n_score_bins: int | None,
    ) -> tuple[np.ndarray, list[BucketCurve]]:
        edges = bucket_edges(u, n_buckets, binning, y, min_positives)
        curves = bucket_curves(s, y, assign_buckets(u, edges), edges.size + 1, n_score_bins)
        _check_reachable(curves, self.precision_bound, self.name)
        return edges, curves

    def _set_from_choice(self, edges: np.ndarray, curves: list[BucketCurve], choice: list[int]) -> None:
        self.edges_ = np.asarray(edges, dtype=np.float64)
        self.thresholds_ = np.array([c.thresholds[t] for c, t in zip(curves, choice, strict=True)])


def _check_reachable(curves: list[BucketCurve], bound: float, rule: str) -> None:
    best = 0.0
    for curve in curves:
        n, p = curve.counts[1:], curve.positives[1:]
        if n.size:
            best = max(best, float((p / n).max()))
            if meets_bound(p, n, bound).any():
                return
    raise PrecisionBoundUnreachableError(bound, best, rule)


def _best_prefix(curve: BucketCurve, bound: float) -> int:
    """Index t >= 1 with the most positives among those meeting the bound (fewest predictions on ties)."""
    feasible = meets_bound(curve.positives, curve.counts, bound)
    feasible[0] = False
    if not feasible.any():
        return 0
    candidates = np.flatnonzero(feasible)
    return int(candidates[np.argmax(curve.positives[candidates])])  # argmax takes the first (smallest t)


class SingleThreshold(DecisionRule):
    """One global score threshold: the most recall with precision >= ``precision_bound`` on the fit data."""

    name = "single_threshold"

    @validate_call
    def __init__(self, precision_bound: PrecisionBound = 0.5) -> None:
        self.precision_bound = precision_bound

    def _fit(self, s: np.ndarray, u: np.ndarray, y: np.ndarray) -> None:
        curve = bucket_curves(s, y, np.zeros(s.size, np.int64), 1)[0]
        _check_reachable([curve], self.precision_bound, self.name)
        self._set_from_choice(np.empty(0), [curve], [_best_prefix(curve, self.precision_bound)])


class RejectOption(DecisionRule):
    """One score threshold on the examples below an uncertainty cut-off; none above it predicts positive.

    The cut-off is searched over ``n_cutoffs`` uncertainty quantiles of the fit data (the largest being
    "reject nothing"), jointly with the threshold, for the most recall at the bound.
    """

    name = "reject_option"

    @validate_call
    def __init__(
        self, precision_bound: PrecisionBound = 0.5, n_cutoffs: Annotated[int, Field(ge=1, le=1000)] = 20
    ) -> None:
        self.precision_bound = precision_bound
        self.n_cutoffs = n_cutoffs

    def _fit(self, s: np.ndarray, u: np.ndarray, y: np.ndarray) -> None:
        sorted_u = np.sort(u)
        n = u.size
        best: tuple[int, int, float, float] | None = None  # (positives, -count, edge, threshold)
        best_precision = 0.0
        for k in range(1, self.n_cutoffs + 1):
            keep_n = (k * n) // self.n_cutoffs
            if keep_n == 0:
                continue
            edge = np.inf if keep_n >= n else float(_midpoint(sorted_u[keep_n - 1], sorted_u[keep_n]))
            kept = u < edge
            if not kept.any():
                continue
            curve = bucket_curves(s[kept], y[kept], np.zeros(int(kept.sum()), np.int64), 1)[0]
            best_precision = max(best_precision, float((curve.positives[1:] / curve.counts[1:]).max()))
            t = _best_prefix(curve, self.precision_bound)
            if t == 0:
                continue
            key = (int(curve.positives[t]), -int(curve.counts[t]), edge, float(curve.thresholds[t]))
            if best is None or key[:2] > best[:2]:
                best = key
        if best is None:
            raise PrecisionBoundUnreachableError(self.precision_bound, best_precision, self.name)
        _, _, edge, threshold = best
        if np.isinf(edge):
            self.edges_, self.thresholds_ = np.empty(0), np.array([threshold])
        else:
            self.edges_, self.thresholds_ = np.array([edge]), np.array([threshold, np.inf])
        self._extra_summary = {"uncertainty_cutoff": None if np.isinf(edge) else edge}


def _midpoint(low: float, high: float) -> float:
    return (low + high) / 2.0 if low < high else high


class MIST(DecisionRule):
    """Per-bucket isotonic recalibration of the score, then one global threshold on the recalibrated score.

    Within each uncertainty bucket the empirical positive rate is fitted as a non-decreasing step
    function of the score (pool-adjacent-violators, ``scipy.optimize.isotonic_regression``); examples
    are ranked by that rate across buckets and the largest prefix meeting the precision bound is taken.
    Because the recalibration is monotone within a bucket, the result is a score threshold per bucket.
    """

    name = "mist"

    @validate_call
    def __init__(
        self,
        precision_bound: PrecisionBound = 0.5,
        n_buckets: NumBuckets = 10,
        binning: Binning = "quantile",
        min_positives: MinPositives = 0,
    ) -> None:
        self.precision_bound = precision_bound
        self.n_buckets = n_buckets
        self.binning = binning
        self.min_positives = min_positives

    def _fit(self, s: np.ndarray, u: np.ndarray, y: np.ndarray) -> None:
        from scipy.optimize import isotonic_regression

        edges, curves = self._buckets_and_curves(
            s, u, y, self.n_buckets, self.binning, self.min_positives, None
        )
        rates, counts, positives, owner = [], [], [], []
        for r, curve in enumerate(curves):
            atom_n = np.diff(curve.counts).astype(np.float64)
            atom_p = np.diff(curve.positives).astype(np.float64)
            if atom_n.size == 0:
                continue
            # Atoms run from high to low score: the calibrated rate must be non-increasing along them.
            fitted = isotonic_regression(atom_p / atom_n, weights=atom_n, increasing=False).x
            rates.append(fitted)
            counts.append(atom_n)
            positives.append(atom_p)
            owner.append(np.full(atom_n.size, r))
        rate, n_atom, p_atom, bucket = map(np.concatenate, (rates, counts, positives, owner))
        order = np.argsort(-rate, kind="stable")
        rate_sorted = rate[order]
        cum_n, cum_p = np.cumsum(n_atom[order]), np.cumsum(p_atom[order])
        group_end = np.append(np.flatnonzero(rate_sorted[1:] != rate_sorted[:-1]), rate_sorted.size - 1)
        feasible = group_end[meets_bound(cum_p[group_end], cum_n[group_end], self.precision_bound)]
        if feasible.size == 0:  # cannot happen after _check_reachable (the top atom is a cell): a guard
            raise PrecisionBoundUnreachableError(self.precision_bound, float(rate_sorted[0]), self.name)
        end = feasible[np.argmax(cum_p[feasible])]
        tau = rate_sorted[end]
        # Per bucket: how many of its atoms (high score first) clear the global calibrated threshold.
        choice = [int((rate[bucket == r] >= tau).sum()) for r in range(len(curves))]
        self._set_from_choice(edges, curves, choice)
        self._extra_summary = {"calibrated_threshold": float(tau)}


class EWDPMT(DecisionRule):
    """Exact DP for equal-weight bins: ``n_buckets`` equal-count uncertainty buckets x ``n_score_bins``
    equal-count score bins within each; ``DP[r][k] = max_t DP[r-1][k-t] + P_r(t)``.

    With equal bins (``n`` divisible by ``n_buckets * n_score_bins`` and no ties at bin edges) every
    selection of ``k`` bins predicts the same count, so the best ``k`` meeting the bound is the exact
    optimum over bin-aligned per-bucket thresholds. Otherwise bins differ by a few examples and each
    candidate ``k``'s DP solution is checked against the bound with its true count.
    """

    name = "ew_dpmt"

    @validate_call
    def __init__(
        self,
        precision_bound: PrecisionBound = 0.5,
        n_buckets: NumBuckets = 10,
        n_score_bins: NumScoreBins = 20,
        min_positives: MinPositives = 0,
    ) -> None:
        self.precision_bound = precision_bound
        self.n_buckets = n_buckets
        self.n_score_bins = n_score_bins
        self.min_positives = min_positives

    def _fit(self, s: np.ndarray, u: np.ndarray, y: np.ndarray) -> None:
        edges, curves = self._buckets_and_curves(
            s, u, y, self.n_buckets, "quantile", self.min_positives, self.n_score_bins
        )
        n_bins = sum(c.counts.size - 1 for c in curves)
        unit = s.size / n_bins  # the weight of one equal-weight bin
        # Each prefix's weight in bins: exactly t for equal bins; the rounded count otherwise (ties).
        weights = [np.rint(c.counts / unit).astype(np.int64) for c in curves]
        total = int(sum(int(w[-1]) for w in weights))
        dp = np.full(total + 1, -np.inf)
        dp[0] = 0.0
        choices = []
        for curve, weight in zip(curves, weights, strict=True):
            new = np.full(total + 1, -np.inf)
            arg = np.zeros(total + 1, dtype=np.int64)
            for t in range(curve.counts.size):
                w = int(weight[t])
                candidate = dp[: total + 1 - w] + curve.positives[t]
                better = candidate > new[w:]
                new[w:][better] = candidate[better]
                arg[w:][better] = t
            dp = new
            choices.append(arg)
        ks = np.flatnonzero(np.isfinite(dp) & (dp > 0))
        ks = ks[np.lexsort((ks, -dp[ks]))]  # most positives first, then fewest bins
        for k in ks:
            choice = self._backtrack(choices, weights, int(k))
            count = sum(int(c.counts[t]) for c, t in zip(curves, choice, strict=True))
            if meets_bound(dp[k], count, self.precision_bound):
                self._set_from_choice(edges, curves, choice)
                self._extra_summary = {"selected_bins": int(k), "total_bins": total}
                return
        raise DecisionRuleError(
            f"{self.name}: no DP solution meets precision {self.precision_bound:g} with its true count: the "
            "score bins are far from equal weight (many tied scores?). Use exact_dp (any bin sizes)."
        )

    @staticmethod
    def _backtrack(choices: list[np.ndarray], weights: list[np.ndarray], k: int) -> list[int]:
        choice = []
        for arg, weight in zip(reversed(choices), reversed(weights), strict=True):
            t = int(arg[k])
            choice.append(t)
            k -= int(weight[t])
        return choice[::-1]


class ExactBucketDP(DecisionRule):
    """Exact per-bucket thresholds for buckets of any size: a DP over the number of true positives.

    ``C[r][p]`` = fewest predicted positives in buckets ``0..r`` that contain exactly ``p`` true
    positives; the rule takes the largest ``p`` with ``p >= precision_bound * C[U][p]``. Pseudo-polynomial:
    O(U * T * P) with T candidate thresholds per bucket (only those that add a positive can be optimal,
    so T <= positives in the bucket) and P positives in the fit data. ``n_score_bins=None`` (default)
    uses every distinct score: the optimum over all per-bucket thresholds for these buckets.
    """

    name = "exact_dp"

    @validate_call
    def __init__(
        self,
        precision_bound: PrecisionBound = 0.5,
        n_buckets: NumBuckets = 10,
        binning: Binning = "quantile",
        n_score_bins: NumScoreBins | None = None,
        min_positives: MinPositives = 0,
    ) -> None:
        self.precision_bound = precision_bound
        self.n_buckets = n_buckets
        self.binning = binning
        self.n_score_bins = n_score_bins
        self.min_positives = min_positives

    def _fit(self, s: np.ndarray, u: np.ndarray, y: np.ndarray) -> None:
        edges, curves = self._buckets_and_curves(
            s, u, y, self.n_buckets, self.binning, self.min_positives, self.n_score_bins
        )
        choice = solve_exact_dp(curves, self.precision_bound)
        if choice is None:  # unreachable was checked above; kept as a guard
            raise PrecisionBoundUnreachableError(self.precision_bound, 0.0, self.name)
        self._set_from_choice(edges, curves, choice)


def solve_exact_dp(curves: list[BucketCurve], bound: float) -> list[int] | None:
    """Per-bucket prefix lengths with the most positives at precision >= bound (None if none meets it)."""
    total = int(sum(c.n_positives for c in curves))
    cost = np.full(total + 1, np.inf)
    cost[0] = 0.0
    choices = []
    for curve in curves:
        # Only a threshold right after a positive can be optimal: it has the fewest predictions for its P.
        candidates = np.concatenate([[0], np.flatnonzero(np.diff(curve.positives) > 0) + 1])
        new = np.full(total + 1, np.inf)
        arg = np.zeros(total + 1, dtype=np.int64)
        for t in candidates:
            p, n = int(curve.positives[t]), float(curve.counts[t])
            candidate = cost[: total + 1 - p] + n
            better = candidate < new[p:]
            new[p:][better] = candidate[better]
            arg[p:][better] = t
        cost = new
        choices.append(arg)
    p_values = np.arange(total + 1)
    feasible = np.flatnonzero(np.isfinite(cost) & meets_bound(p_values, cost, bound) & (p_values > 0))
    if feasible.size == 0:
        return None
    p = int(feasible.max())
    choice = []
    for curve, arg in zip(reversed(curves), reversed(choices), strict=True):
        t = int(arg[p])
        choice.append(t)
        p -= int(curve.positives[t])
    return choice[::-1]


class OptunaBucketSearch(DecisionRule):
    """Black-box search of per-bucket thresholds with Optuna (TPE), over the same candidates as the DP.

    Each bucket's threshold is an integer parameter (how many of its candidate thresholds, best scores
    first, to take). The objective is the fit recall when the precision bound holds and a negative
    penalty otherwise. The search is seeded with the single global threshold's solution.
    """

    name = "optuna_search"

    @validate_call
    def __init__(
        self,
        precision_bound: PrecisionBound = 0.5,
        n_buckets: NumBuckets = 10,
        binning: Binning = "quantile",
        n_score_bins: NumScoreBins | None = 50,
        min_positives: MinPositives = 0,
        n_trials: Annotated[int, Field(ge=1)] = 200,
        seed: Annotated[int, Field(ge=0)] = 0,
    ) -> None:
        self.precision_bound = precision_bound
        self.n_buckets = n_buckets
        self.binning = binning
        self.n_score_bins = n_score_bins
        self.min_positives = min_positives
        self.n_trials = n_trials
        self.seed = seed

    def _fit(self, s: np.ndarray, u: np.ndarray, y: np.ndarray) -> None:
        import optuna

        edges, curves = self._buckets_and_curves(
            s, u, y, self.n_buckets, self.binning, self.min_positives, self.n_score_bins
        )
        total_pos = float(sum(c.n_positives for c in curves))
        bound = self.precision_bound

        def value(choice: list[int]) -> float:
            tp = sum(int(c.positives[t]) for c, t in zip(curves, choice, strict=True))
            n = sum(int(c.counts[t]) for c, t in zip(curves, choice, strict=True))
            if n == 0:
                return -2.0
            if meets_bound(tp, n, bound):
                return tp / total_pos
            return -1.0 - (bound - tp / n)

        def objective(trial: optuna.Trial) -> float:
            return value([trial.suggest_int(f"t{r}", 0, c.counts.size - 1) for r, c in enumerate(curves)])

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=self.seed))
        study.enqueue_trial({f"t{r}": t for r, t in enumerate(self._single_threshold_start(s, y, curves))})
        study.optimize(objective, n_trials=self.n_trials)
        best = [int(study.best_params[f"t{r}"]) for r in range(len(curves))]
        if value(best) < 0:
            best_precision = max(
                float((c.positives[1:] / c.counts[1:]).max()) for c in curves if c.counts.size > 1
            )
            raise PrecisionBoundUnreachableError(
                bound, best_precision, f"{self.name} ({self.n_trials} trials)"
            )
        self._set_from_choice(edges, curves, best)
        self._extra_summary = {"n_trials": self.n_trials, "best_trial": int(study.best_trial.number)}

    def _single_threshold_start(self, s: np.ndarray, y: np.ndarray, curves: list[BucketCurve]) -> list[int]:
        try:
            threshold = SingleThreshold(self.precision_bound).fit(s, np.zeros_like(s), y).thresholds_[0]
        except PrecisionBoundUnreachableError:
            threshold = np.inf
        return [int((c.thresholds[1:] >= threshold).sum()) for c in curves]


RULES: dict[str, type[DecisionRule]] = {
    cls.name: cls for cls in (SingleThreshold, RejectOption, MIST, EWDPMT, ExactBucketDP, OptunaBucketSearch)
}
