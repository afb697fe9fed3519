"""Evaluation of decision rules: recall and achieved precision, bootstrap intervals, reference, plots."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from recsci.uncertainty.buckets import assign_buckets


def precision_recall(decisions: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(precision, recall) of boolean decisions; precision is NaN when nothing is predicted positive."""
    decisions = np.asarray(decisions, dtype=bool)
    labels = np.asarray(labels, dtype=np.float64)
    predicted, positives = decisions.sum(), labels.sum()
    tp = labels[decisions].sum()
    precision = float(tp / predicted) if predicted else float("nan")
    recall = float(tp / positives) if positives else float("nan")
    return precision, recall


def bootstrap_intervals(
    decisions: Mapping[str, np.ndarray],
    labels: np.ndarray,
    baseline: str | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Percentile bootstrap intervals of recall and precision per rule (same resamples for all rules),
    and of the paired recall gain over ``baseline``: ``{rule: {recall_lo, recall_hi, precision_lo, ...}}``.

    Vectorised: each chunk of replicates is one index matrix, and every rule is summed over the same one.
    """
    labels = np.asarray(labels, dtype=np.float64)
    n = labels.size
    out: dict[str, dict[str, float]] = {name: {} for name in decisions}
    if n_boot <= 0 or n == 0:
        return out
    rng = np.random.default_rng(seed)
    chunk = max(1, 4_000_000 // n)
    dec = {name: np.asarray(d, dtype=np.float64) for name, d in decisions.items()}
    sums: dict[str, list[np.ndarray]] = {name: [] for name in ["__pos__", *(f"{k}:tp" for k in dec)]}
    sums.update({f"{k}:pred": [] for k in dec})
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_boot - start), n))
        sums["__pos__"].append(labels[idx].sum(1))
        for name, d in dec.items():
            sums[f"{name}:tp"].append((d * labels)[idx].sum(1))
            sums[f"{name}:pred"].append(d[idx].sum(1))
    total = {key: np.concatenate(parts) for key, parts in sums.items()}
    positives = total["__pos__"]
    alpha = (1.0 - level) / 2.0
    recalls: dict[str, np.ndarray] = {}
    for name in dec:
        tp, predicted = total[f"{name}:tp"], total[f"{name}:pred"]
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = tp / positives
            precision = tp / predicted
        recalls[name] = recall
        out[name].update(_interval("recall", recall, alpha))
        out[name].update(_interval("precision", precision, alpha))
    if baseline is not None and baseline in recalls:
        for name, recall in recalls.items():
            if name != baseline:
                out[name].update(_interval("recall_gain", recall - recalls[baseline], alpha))
    return out


def _interval(key: str, values: np.ndarray, alpha: float) -> dict[str, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {f"{key}_lo": float("nan"), f"{key}_hi": float("nan")}
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return {f"{key}_lo": float(lo), f"{key}_hi": float(hi)}


def reference_recall_at_precision(
    scores: np.ndarray, labels: np.ndarray, bound: float
) -> tuple[float, float]:
    """torchmetrics' ``BinaryRecallAtFixedPrecision``: (recall, threshold), the single-threshold reference."""
    from torchmetrics.classification import BinaryRecallAtFixedPrecision

    metric = BinaryRecallAtFixedPrecision(min_precision=bound, thresholds=None)
    recall, threshold = metric(
        torch.as_tensor(np.asarray(scores), dtype=torch.float64), torch.as_tensor(np.asarray(labels)).long()
    )
    return float(recall), float(threshold)


def positive_rate_table(
    scores: np.ndarray,
    uncertainties: np.ndarray,
    labels: np.ndarray,
    edges: np.ndarray,
    n_score_bins: int = 10,
) -> list[dict[str, float]]:
    """Empirical positive rate per (uncertainty bucket, score bin): the paper's key observation as rows."""
    buckets = assign_buckets(uncertainties, edges)
    score_edges = np.unique(np.quantile(scores, np.linspace(0, 1, n_score_bins + 1)[1:-1]))
    score_bins = np.searchsorted(score_edges, scores, side="right")
    rows = []
    for r in range(edges.size + 1):
        for b in range(score_edges.size + 1):
            mask = (buckets == r) & (score_bins == b)
            if mask.sum() == 0:
                continue
            rows.append(
                {
                    "bucket": r,
                    "score_bin": b,
                    "n": int(mask.sum()),
                    "mean_score": float(scores[mask].mean()),
                    "positive_rate": float(labels[mask].mean()),
                }
            )
    return rows


def plot_positive_rate_by_bucket(
    scores: np.ndarray,
    uncertainties: np.ndarray,
    labels: np.ndarray,
    edges: np.ndarray,
    path: str | Path,
    n_score_bins: int = 10,
) -> Path:
    """Empirical positive rate against mean score, one line per uncertainty bucket."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = positive_rate_table(scores, uncertainties, labels, edges, n_score_bins)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    n_buckets = edges.size + 1
    cmap = plt.get_cmap("viridis")
    for r in range(n_buckets):
        pts = [(row["mean_score"], row["positive_rate"]) for row in rows if row["bucket"] == r]
        if pts:
            x, y = zip(*pts, strict=True)
            ax.plot(x, y, marker="o", ms=3, color=cmap(r / max(n_buckets - 1, 1)), label=f"bucket {r}")
    lim = max(float(np.max(scores)), 1e-3)
    ax.plot([0, lim], [0, lim], ls=":", color="grey", lw=1)
    ax.set_xlabel("mean score in score bin")
    ax.set_ylabel("empirical positive rate")
    ax.set_title("Positive rate vs score per uncertainty bucket\n(low -> high uncertainty: dark -> light)")
    if n_buckets <= 10:
        ax.legend(fontsize=7)
    return _save_figure(fig, path)


def plot_precision_recall(points: Mapping[str, list[tuple[float, float]]], path: str | Path) -> Path:
    """Test precision-recall curves: one line per rule through its (recall, precision) at each bound."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for name, pts in points.items():
        pts = sorted(p for p in pts if np.isfinite(p[0]) and np.isfinite(p[1]))
        if pts:
            x, y = zip(*pts, strict=True)
            ax.plot(x, y, marker="o", ms=3, label=name)
    ax.set_xlabel("test recall")
    ax.set_ylabel("test precision")
    ax.set_title("Precision-recall of rules fitted on hold-out at each bound")
    ax.legend(fontsize=7)
    return _save_figure(fig, path)


def _save_figure(fig, path: str | Path) -> Path:
    """Write ``fig`` as PNG (creating the folder) and release it: plots are made in loops over runs."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
