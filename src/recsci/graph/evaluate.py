"""Test-time protocol for directed link prediction: a flat dict of metrics per split."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor

from recsci.core.metrics import average_precision, ranking_metrics, roc_auc
from recsci.graph.splits import EvalEdges

ScoreFn = Callable[[Tensor, Tensor], Tensor]  # (src ids, dst ids) -> scores


def link_prediction_metrics(
    score: ScoreFn, edges: EvalEdges, ks: Sequence[int] = (1, 10)
) -> dict[str, float]:
    """Existence (AUC, AP vs random pairs), ranking (MRR, HitRate@K vs per-query candidates) and
    direction (AUC of u -> v against v -> u over one-directional positives)."""
    pos = score(edges.pos[0], edges.pos[1])
    neg = score(edges.neg[0], edges.neg[1])
    num_pos, num_candidates = edges.candidates.shape
    queries = edges.pos[0].repeat_interleave(num_candidates)
    candidate_scores = score(queries, edges.candidates.reshape(-1)).view(num_pos, num_candidates)
    reverse = score(edges.reverse[0], edges.reverse[1])
    return {
        "auc": roc_auc(pos, neg),
        "ap": average_precision(pos, neg),
        **ranking_metrics(pos, candidate_scores, ks),
        "direction_auc": roc_auc(pos[edges.one_way], reverse),
    }
