"""Ranking and classification metrics shared by all problems (pure torch, tie-aware).

Ties matter here: a symmetric link predictor scores u -> v and v -> u identically, and its direction
AUC must come out as exactly 0.5, not as whatever order a sort happened to leave.
"""

from __future__ import annotations

import torch
from torch import Tensor


def average_ranks(values: Tensor) -> Tensor:
    """1-based ranks of ``values`` in ascending order, tied values sharing their average rank."""
    values = values.flatten()
    order = torch.argsort(values, stable=True)
    sorted_values = values[order]
    # Start of each run of equal values, and the run each sorted position belongs to.
    new_run = torch.ones_like(sorted_values, dtype=torch.bool)
    new_run[1:] = sorted_values[1:] != sorted_values[:-1]
    run_id = torch.cumsum(new_run.long(), 0) - 1
    device = values.device  # metrics are computed where the scores are (a GPU during training there)
    positions = torch.arange(1, values.numel() + 1, dtype=torch.float64, device=device)
    run_sum = torch.zeros(int(run_id[-1]) + 1 if values.numel() else 0, dtype=torch.float64, device=device)
    run_count = torch.zeros_like(run_sum)
    run_sum.index_add_(0, run_id, positions)
    run_count.index_add_(0, run_id, torch.ones_like(positions))
    ranks = torch.empty(values.numel(), dtype=torch.float64, device=device)
    ranks[order] = (run_sum / run_count)[run_id]
    return ranks


def roc_auc(pos_scores: Tensor, neg_scores: Tensor) -> float:
    """Area under the ROC curve: P(score(pos) > score(neg)) + 0.5 P(tie) (Mann-Whitney U)."""
    n_pos, n_neg = pos_scores.numel(), neg_scores.numel()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = average_ranks(torch.cat([pos_scores.flatten(), neg_scores.flatten()]).double())
    u_statistic = ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2
    return float(u_statistic / (n_pos * n_neg))


def average_precision(pos_scores: Tensor, neg_scores: Tensor) -> float:
    """Average precision (area under the precision-recall curve, step-wise), ties grouped as one threshold."""
    scores = torch.cat([pos_scores.flatten(), neg_scores.flatten()]).double()
    device = scores.device
    labels = torch.cat(
        [
            torch.ones(pos_scores.numel(), dtype=torch.float64, device=device),
            torch.zeros(neg_scores.numel(), dtype=torch.float64, device=device),
        ]
    )
    n_pos = pos_scores.numel()
    if n_pos == 0:
        return float("nan")
    order = torch.argsort(scores, descending=True, stable=True)
    scores, labels = scores[order], labels[order]
    true_pos = torch.cumsum(labels, 0)
    # Evaluate only at the last index of each run of tied scores: a threshold cannot split a tie.
    last_of_run = torch.ones_like(scores, dtype=torch.bool)
    last_of_run[:-1] = scores[:-1] != scores[1:]
    tp = true_pos[last_of_run]
    predicted = torch.arange(1, scores.numel() + 1, dtype=torch.float64, device=device)[last_of_run]
    precision = tp / predicted
    recall_step = torch.diff(tp, prepend=torch.zeros(1, dtype=torch.float64, device=device)) / n_pos
    return float((precision * recall_step).sum())
