"""Decision rules: exact DPs against brute force, MIST, Optuna never beating the DP, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from recsci.uncertainty.buckets import assign_buckets, bucket_curves, bucket_edges
from recsci.uncertainty.errors import (
    DecisionRuleError,
    EmptyBucketError,
    NoPositivesError,
    PrecisionBoundUnreachableError,
)
from recsci.uncertainty.evaluation import precision_recall, reference_recall_at_precision
from recsci.uncertainty.rules import (
    EWDPMT,
    MIST,
    RULES,
    ExactBucketDP,
    OptunaBucketSearch,
    RejectOption,
    SingleThreshold,
)
from recsci.uncertainty.simulation import ScoreSimulator, oracle_decisions


def brute_force(curves, bound: float) -> int:
    """Most true positives over every combination of per-bucket candidate thresholds meeting the bound."""
    best = 0
    for combo in itertools.product(*(range(c.counts.size) for c in curves)):
        tp = sum(int(c.positives[t]) for c, t in zip(curves, combo, strict=True))
        n = sum(int(c.counts[t]) for c, t in zip(curves, combo, strict=True))
        if n and tp >= bound * n - 1e-9:
            best = max(best, tp)
    return best


def tiny_case(rng: np.random.Generator, n: int):
    s = rng.random(n).round(2)  # some ties
    u = rng.random(n)
    y = (rng.random(n) < 0.3 + 0.6 * s * (1 - u)).astype(np.int64)
    return s, u, y


@pytest.mark.parametrize("case", range(25))
def test_exact_dp_matches_brute_force_on_tiny_cases(case: int) -> None:
    rng = np.random.default_rng(case)
    s, u, y = tiny_case(rng, int(rng.integers(8, 15)))
    if y.sum() == 0:
        pytest.skip("no positives drawn")
    bound = float(rng.choice([0.5, 0.6, 0.7, 0.8]))
    n_buckets = int(rng.integers(1, 4))
    binning = str(rng.choice(["quantile", "uniform"]))  # uniform buckets have unequal sizes
    edges = bucket_edges(u, n_buckets, binning)
    curves = bucket_curves(s, y.astype(float), assign_buckets(u, edges), edges.size + 1)
    expected = brute_force(curves, bound)
    rule = ExactBucketDP(bound, n_buckets=n_buckets, binning=binning)
    if expected == 0:
        with pytest.raises(PrecisionBoundUnreachableError):
            rule.fit(s, u, y)
        return
    rule.fit(s, u, y)
    assert rule.fit_summary_["true_positives"] == expected
    precision, _ = precision_recall(rule.predict(s, u), y)
    assert precision >= bound - 1e-9
    # Neither MIST nor Optuna (same candidates) can beat the exact optimum on the data it fitted.
    for other in (
        MIST(bound, n_buckets=n_buckets, binning=binning),
        OptunaBucketSearch(bound, n_buckets=n_buckets, binning=binning, n_score_bins=None, n_trials=25),
    ):
        try:
            other.fit(s, u, y)
        except DecisionRuleError:
            continue
        assert other.fit_summary_["true_positives"] <= expected
        assert other.fit_summary_["precision"] >= bound - 1e-9


@pytest.mark.parametrize("case", range(10))
def test_ew_dpmt_matches_brute_force_on_equal_bins(case: int) -> None:
    rng = np.random.default_rng(100 + case)
    n_buckets, n_score_bins = 3, 4
    n = n_buckets * n_score_bins * int(rng.integers(1, 4))  # equal-weight bins: n divisible by U * S
    s, u = rng.permutation(n) / n, rng.permutation(n) / n  # distinct values: no ties at bin edges
    y = (rng.random(n) < 0.2 + 0.7 * s * (1 - u)).astype(np.int64)
    bound = float(rng.choice([0.5, 0.6, 0.7]))
    edges = bucket_edges(u, n_buckets, "quantile")
    curves = bucket_curves(s, y.astype(float), assign_buckets(u, edges), n_buckets, n_score_bins)
    assert all(np.all(np.diff(c.counts) == n // (n_buckets * n_score_bins)) for c in curves)
    expected = brute_force(curves, bound)
    rule = EWDPMT(bound, n_buckets=n_buckets, n_score_bins=n_score_bins)
    if expected == 0:
        with pytest.raises(PrecisionBoundUnreachableError):
            rule.fit(s, u, y)
        return
    assert rule.fit(s, u, y).fit_summary_["true_positives"] == expected
    # The pseudo-polynomial DP on the same bins agrees, and with every score a candidate it is at least as good.
    assert (
        ExactBucketDP(bound, n_buckets, n_score_bins=n_score_bins).fit(s, u, y).fit_summary_["true_positives"]
        == expected
    )
    assert ExactBucketDP(bound, n_buckets).fit(s, u, y).fit_summary_["true_positives"] >= expected


def test_optuna_search_never_beats_the_exact_dp() -> None:
    sample = ScoreSimulator().sample(3000, seed=3)
    args = (sample.scores, sample.uncertainties, sample.labels)
    for bound in (0.4, 0.5):
        dp = ExactBucketDP(bound, n_buckets=4, n_score_bins=10).fit(*args)
        search = OptunaBucketSearch(bound, n_buckets=4, n_score_bins=10, n_trials=80, seed=0).fit(*args)
        np.testing.assert_array_equal(search.edges_, dp.edges_)
        assert search.fit_summary_["true_positives"] <= dp.fit_summary_["true_positives"]
        assert search.fit_summary_["precision"] >= bound - 1e-9


def test_single_threshold_matches_torchmetrics_reference() -> None:
    rng = np.random.default_rng(0)
    s = rng.random(2000)
    y = (rng.random(2000) < s**2).astype(np.int64)
    for bound in (0.5, 0.7, 0.9):
        rule = SingleThreshold(bound).fit(s, np.zeros_like(s), y)
        recall, threshold = reference_recall_at_precision(s, y, bound)
        assert rule.fit_summary_["recall"] == pytest.approx(recall)
        assert rule.thresholds_[0] == pytest.approx(threshold)


def test_mist_one_bucket_is_the_single_threshold() -> None:
    rng = np.random.default_rng(1)
    s, u = rng.random(1500), rng.random(1500)
    y = (rng.random(1500) < s).astype(np.int64)
    single = SingleThreshold(0.7).fit(s, u, y)
    mist = MIST(0.7, n_buckets=1).fit(s, u, y)
    # Isotonic pooling can only merge tied-rate blocks: it reaches the single threshold's recall or less.
    assert mist.fit_summary_["true_positives"] <= single.fit_summary_["true_positives"]
    assert mist.fit_summary_["precision"] >= 0.7
    assert mist.thresholds_.size == 1


def test_rules_recover_the_optimal_boundary_on_the_simulator() -> None:
    simulator = ScoreSimulator()
    fit, test = simulator.sample(60_000, seed=0), simulator.sample(60_000, seed=1)
    bound = 0.5
    oracle = oracle_decisions(test, simulator, bound)
    _, oracle_recall = precision_recall(oracle, test.labels)
    dp = ExactBucketDP(bound, n_buckets=16).fit(fit.scores, fit.uncertainties, fit.labels)
    assert dp.edges_.size == len(simulator.evidence_levels) - 1  # one bucket per evidence level
    decisions = dp.predict(test.scores, test.uncertainties)
    precision, recall = precision_recall(decisions, test.labels)
    assert (decisions == oracle).mean() > 0.985
    assert recall > oracle_recall - 0.03 and precision > bound - 0.02
    _, single_recall = precision_recall(
        SingleThreshold(bound)
        .fit(fit.scores, fit.uncertainties, fit.labels)
        .predict(test.scores, test.uncertainties),
        test.labels,
    )
    assert (
        recall > single_recall + 0.05
    )  # per-bucket thresholds win where uncertainty shifts the positive rate
    mist = MIST(bound, n_buckets=16).fit(fit.scores, fit.uncertainties, fit.labels)
    assert precision_recall(mist.predict(test.scores, test.uncertainties), test.labels)[1] > single_recall


def test_reject_option_rejects_uncertain_examples() -> None:
    rng = np.random.default_rng(2)
    n = 4000
    s, u = rng.random(n), rng.random(n)
    y = (rng.random(n) < np.where(u > 0.7, 0.1, s)).astype(np.int64)  # uncertain examples: mostly negative
    rule = RejectOption(0.8, n_cutoffs=10).fit(s, u, y)
    assert rule.edges_.size == 1 and np.isinf(rule.thresholds_[1])
    assert 0.6 <= rule.edges_[0] <= 0.8
    assert not rule.predict(np.array([0.99]), np.array([0.95]))[0]
    assert rule.fit_summary_["recall"] > SingleThreshold(0.8).fit(s, u, y).fit_summary_["recall"]


def test_no_positives_is_a_clear_error() -> None:
    with pytest.raises(NoPositivesError, match="no positive"):
        ExactBucketDP(0.5).fit(np.linspace(0, 1, 50), np.zeros(50), np.zeros(50))


@pytest.mark.parametrize("name", sorted(RULES))
def test_unreachable_bound_is_a_clear_error_for_every_rule(name: str) -> None:
    rng = np.random.default_rng(0)
    s, u = rng.random(400), rng.random(400)
    y = (rng.random(400) < 0.1).astype(np.int64)  # scores carry no signal: precision stays ~0.1
    y[np.argmax(s)] = 0  # the top example is negative, so even the top-1 threshold misses the bound
    params = {"n_trials": 5} if name == "optuna_search" else {}
    with pytest.raises(PrecisionBoundUnreachableError, match="unreachable"):
        RULES[name](precision_bound=0.95, **params).fit(s, u, y)


def test_bad_arrays_are_clear_errors() -> None:
    rule = SingleThreshold(0.5)
    with pytest.raises(DecisionRuleError, match="NaN"):
        rule.fit([0.1, float("nan")], [0, 0], [0, 1])
    with pytest.raises(DecisionRuleError, match="3 values but uncertainties has 2"):
        rule.fit([0.1, 0.2, 0.3], [0, 0], [0, 1, 1])
    with pytest.raises(DecisionRuleError, match="empty"):
        rule.fit([], [], [])
    with pytest.raises(DecisionRuleError, match="0/1"):
        rule.fit([0.1, 0.2], [0, 0], [0, 2])
    with pytest.raises(DecisionRuleError, match="not fitted"):
        rule.predict([0.1], [0.0])


def test_empty_bucket_is_an_error_and_ties_collapse_buckets() -> None:
    s = np.linspace(0, 1, 20)
    y = (s > 0.5).astype(float)
    buckets = np.zeros(20, dtype=np.int64)  # bucket 1 of 2 gets nothing
    with pytest.raises(EmptyBucketError, match="bucket 1 of 2 has no fit examples"):
        bucket_curves(s, y, buckets, 2)
    # A constant uncertainty (the plain estimator) collapses to one bucket instead of empty ones.
    rule = ExactBucketDP(0.6, n_buckets=10).fit(s, np.zeros(20), y)
    assert rule.edges_.size == 0 and rule.fit_summary_["n_buckets"] == 1
    assert bucket_edges(np.array([0.0] * 10 + [1.0] * 10), 5).size == 1


def test_min_positives_lowers_the_bucket_count() -> None:
    rng = np.random.default_rng(4)
    u = rng.random(1000)
    y = (rng.random(1000) < 0.05).astype(float)
    edges = bucket_edges(u, 20, "quantile", y, min_positives=10)
    counts = np.bincount(assign_buckets(u, edges), weights=y)
    assert edges.size < 19 and counts.min() >= 10


def test_get_set_params_and_validation() -> None:
    rule = EWDPMT(0.6, n_buckets=5)
    assert rule.get_params() == {
        "precision_bound": 0.6,
        "n_buckets": 5,
        "n_score_bins": 20,
        "min_positives": 0,
    }
    assert rule.set_params(n_buckets=3) is rule and rule.n_buckets == 3
    with pytest.raises(DecisionRuleError, match="unknown parameter"):
        rule.set_params(n_bucket=3)
    with pytest.raises(ValueError, match="less than or equal to 1"):
        rule.set_params(precision_bound=1.5)
    with pytest.raises(ValueError):
        MIST(binning="log")
    assert rule.clone(precision_bound=0.9).precision_bound == 0.9 and rule.precision_bound == 0.6
