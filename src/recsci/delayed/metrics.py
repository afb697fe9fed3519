"""Conversion-model metrics: AUC, PR-AUC, AP, NLL, ECE, and relative improvement (RI).

- ``auc``: ROC AUC, tie-aware (:func:`recsci.core.metrics.roc_auc`).
- ``pr_auc``: area under the precision-recall curve by the trapezoid rule over the distinct thresholds,
  starting at (recall 0, precision 1): ``sklearn.metrics.auc(recall, precision)`` as the ES-DFM/DEFER
  tables compute it.
- ``ap``: average precision (step-wise, :func:`recsci.core.metrics.average_precision`).
- ``nll``: mean binary log-loss, probabilities clipped to [1e-7, 1 - 1e-7].
- ``ece``: expected calibration error over ``bins`` equal-width probability bins.
- RI: ``(X - Vanilla) / (Oracle - Vanilla)`` and ``(X - Pretrained) / (Oracle - Pretrained)``; the same
  formula serves NLL (lower is better: both differences change sign).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import torch

from recsci.core.metrics import average_precision, roc_auc

CLIP = 1e-7
RI_METRICS = ("auc", "pr_auc", "nll")


def pr_auc_trapezoid(prob: np.ndarray, label: np.ndarray) -> float:
    """Trapezoid area under the precision-recall curve (thresholds at distinct scores)."""
    label = np.asarray(label, dtype=np.float64)
    n_pos = label.sum()
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-np.asarray(prob, dtype=np.float64), kind="stable")
    scores, label = np.asarray(prob, dtype=np.float64)[order], label[order]
    last = np.r_[scores[1:] != scores[:-1], True]
    tp = np.cumsum(label)[last]
    predicted = np.arange(1, scores.size + 1)[last]
    precision = np.r_[1.0, tp / predicted]
    recall = np.r_[0.0, tp / n_pos]
    return float(np.trapezoid(precision, recall))


def calibration_bins(prob: np.ndarray, label: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Reliability table: per equal-width bin, the count, mean prediction and observed rate."""
    prob, label = np.asarray(prob, dtype=np.float64), np.asarray(label, dtype=np.float64)
    which = np.minimum((prob * bins).astype(np.int64), bins - 1)
    count = np.bincount(which, minlength=bins)
    mean_pred = np.bincount(which, weights=prob, minlength=bins)
    rate = np.bincount(which, weights=label, minlength=bins)
    return [
        {
            "bin": b / bins,
            "count": int(count[b]),
            "mean_pred": mean_pred[b] / count[b],
            "rate": rate[b] / count[b],
        }
        for b in range(bins)
        if count[b]
    ]


def expected_calibration_error(prob: np.ndarray, label: np.ndarray, bins: int = 10) -> float:
    total = len(prob)
    if total == 0:
        return float("nan")
    return float(
        sum(
            row["count"] / total * abs(row["mean_pred"] - row["rate"])
            for row in calibration_bins(prob, label, bins)
        )
    )


def binary_metrics(prob: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """All conversion metrics of predicted probabilities against 0/1 labels."""
    prob = np.clip(np.asarray(prob, dtype=np.float64), CLIP, 1.0 - CLIP)
    label = np.asarray(label, dtype=np.float64)
    positive = label > 0.5
    pos, neg = torch.from_numpy(prob[positive]), torch.from_numpy(prob[~positive])
    nll = -(label * np.log(prob) + (1.0 - label) * np.log1p(-prob))
    return {
        "auc": roc_auc(pos, neg),
        "pr_auc": pr_auc_trapezoid(prob, label),
        "ap": average_precision(pos, neg) if positive.any() else float("nan"),
        "nll": float(nll.mean()) if label.size else float("nan"),
        "ece": expected_calibration_error(prob, label),
        "mean_pred": float(prob.mean()) if label.size else float("nan"),
        "pos_rate": float(label.mean()) if label.size else float("nan"),
    }


def weighted_mean(rows: Iterable[tuple[float, Mapping[str, float]]]) -> dict[str, float]:
    """Average each metric over intervals weighted by test size, skipping intervals where it is NaN."""
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    for weight, metrics in rows:
        for key, value in metrics.items():
            if value is None or not math.isfinite(value):
                continue
            sums[key] = sums.get(key, 0.0) + weight * value
            weights[key] = weights.get(key, 0.0) + weight
    return {key: sums[key] / weights[key] for key in sums if weights[key] > 0}


def relative_improvement(value: float, low: float, high: float) -> float:
    """``(value - low) / (high - low)``; NaN when the reference gap is zero or undefined."""
    gap = high - low
    if not all(math.isfinite(v) for v in (value, low, high)) or abs(gap) < 1e-12:
        return float("nan")
    return (value - low) / gap
