"""Metrics: trapezoid PR-AUC, calibration, RI and the interval-weighted mean, on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsci.delayed.metrics import (
    binary_metrics,
    expected_calibration_error,
    pr_auc_trapezoid,
    relative_improvement,
    weighted_mean,
)


def test_pr_auc_trapezoid_by_hand() -> None:
    # Scores 0.9 (pos), 0.8 (neg), 0.7 (pos): points (r, p) = (0, 1), (0.5, 1), (0.5, 0.5), (1, 2/3).
    value = pr_auc_trapezoid(np.array([0.9, 0.8, 0.7]), np.array([1, 0, 1]))
    assert value == pytest.approx(0.5 * 1.0 + 0.5 * (0.5 + 2 / 3) / 2)


def test_binary_metrics_by_hand() -> None:
    prob, label = np.array([0.8, 0.4, 0.3, 0.1]), np.array([1, 0, 1, 0])
    m = binary_metrics(prob, label)
    assert m["auc"] == pytest.approx(0.75)
    assert m["nll"] == pytest.approx(-(math.log(0.8) + math.log(0.6) + math.log(0.3) + math.log(0.9)) / 4)
    assert m["ap"] == pytest.approx((1.0 + 2 / 3) / 2)


def test_ece_by_hand() -> None:
    # Bin [0.2, 0.3): mean prediction 0.25, rate 0.5; bin [0.9, 1): 0.95 vs 1.0.
    ece = expected_calibration_error(np.array([0.2, 0.3 - 1e-9, 0.95, 0.95]), np.array([1, 0, 1, 1]))
    assert ece == pytest.approx(0.5 * abs(0.25 - 0.5) + 0.5 * 0.05, abs=1e-6)


def test_relative_improvement_both_ways() -> None:
    assert relative_improvement(0.84, 0.80, 0.85) == pytest.approx(0.8)
    assert relative_improvement(0.40, 0.42, 0.39) == pytest.approx(2 / 3)  # NLL: lower is better
    assert math.isnan(relative_improvement(0.8, 0.8, 0.8))


def test_weighted_mean_skips_undefined_intervals() -> None:
    rows = [(100, {"auc": 0.8, "nll": 0.3}), (300, {"auc": 0.6, "nll": float("nan")})]
    assert weighted_mean(rows) == pytest.approx({"auc": 0.65, "nll": 0.3})
