"""Metrics on hand-computed cases, ties included."""

from __future__ import annotations

import pytest
import torch

from recsci.core.metrics import average_precision, average_ranks, roc_auc


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values)


def test_average_ranks_share_ties() -> None:
    assert average_ranks(t(3.0, 1.0, 3.0, 2.0)).tolist() == [3.5, 1.0, 3.5, 2.0]


def test_auc_perfect_inverted_and_tied() -> None:
    assert roc_auc(t(0.9, 0.8), t(0.1, 0.2)) == 1.0
    assert roc_auc(t(0.1, 0.2), t(0.9, 0.8)) == 0.0
    assert roc_auc(t(0.5, 0.5), t(0.5, 0.5)) == 0.5


def test_auc_hand_computed() -> None:
    # pairs (pos > neg): 0.8>0.3, 0.8>0.6, 0.4>0.3 -> 3 of 4, and no ties.
    assert roc_auc(t(0.8, 0.4), t(0.3, 0.6)) == pytest.approx(0.75)


def test_average_precision_hand_computed() -> None:
    # ranking: pos(0.9), neg(0.8), pos(0.7) -> precision at the positives 1 and 2/3 -> AP = (1 + 2/3) / 2
    assert average_precision(t(0.9, 0.7), t(0.8)) == pytest.approx((1 + 2 / 3) / 2)


def test_average_precision_treats_a_tie_as_one_threshold() -> None:
    # One positive tied with one negative at the top: precision 1/2 at recall 1.
    assert average_precision(t(0.5), t(0.5, 0.1)) == pytest.approx(0.5)


def test_empty_inputs_are_nan_not_errors() -> None:
    assert roc_auc(t(), t(0.1)) != roc_auc(t(), t(0.1))  # NaN
