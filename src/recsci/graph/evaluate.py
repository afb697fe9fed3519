"""Evaluation protocols for directed link prediction; each returns a flat ``dict[str, float]``.

1. **Existence** (:func:`existence_metrics`, DirLinkBench / OGB style): every positive is ranked against
   ALL negatives of the split (one shared pool, not per query).
   - ``hits@K``: share of positives scoring strictly above the K-th highest negative score (OGB's
     ``Evaluator._eval_hits``, which DirLinkBench calls); 1.0 when there are fewer than K negatives.
   - ``mrr``: mean over positives of 1 / rank, rank = 1 + #(negatives > pos) + 0.5 #(negatives == pos)
     (DirLinkBench ``evaluation.evaluate_mrr``: ``0.5 * (num_ge + num_gt) + 1`` against all negatives).
   - ``auc``, ``ap``: ROC AUC and average precision of positives vs negatives, equal to scikit-learn's
     ``roc_auc_score`` / ``average_precision_score`` that DirLinkBench uses (tie-aware core metrics).
   - ``acc``: share of pairs on the right side of ``acc_threshold`` (score >= threshold predicts an edge).
     DirLinkBench thresholds probabilities at 0.5; our models emit logits, hence the default 0.0.
   DirLinkBench rounds each value to 4 decimals; we do not.
2. **Direction** (:func:`direction_metrics`): positives u -> v whose reverse is not an edge, against
   their reverses v -> u. ``direction_auc``: unpaired ROC AUC (forward scores vs reverse scores);
   ``direction_acc``: paired, share of pairs with score(u -> v) > score(v -> u), ties counting half.
   A symmetric model gets exactly 0.5 on both.
3. **Recommendation** (:func:`recommendation_metrics`): for every query u with held-out out-edges, all
   nodes are scored; excluded are u itself, u's training out-neighbours (and any ``exclude_edges``).
   Each held-out target t of u is ranked against the remaining non-target nodes ("filtered": u's other
   held-out targets are not competitors): rank(t) = 1 + #(competitors > s_t) + 0.5 #(competitors == s_t).
   Per query: ``hits@K`` = share of its targets with rank <= K, ``rr`` = mean of 1 / rank over its
   targets. Reported: the mean over queries (each query weighs the same, whatever its number of
   targets), overall and per degree bucket of the query (``low`` / ``mid`` / ``high``), see
   :func:`degree_buckets`. Computed in chunks of queries and blocks of targets, each holding at most
   ``max_chunk_scores`` scores, so memory stays bounded on any graph.

Where torchmetrics has the metric: ``binary_auroc`` and ``binary_average_precision`` agree exactly with
the core ``roc_auc`` / ``average_precision`` used here (tests check it); we keep the core ones because
they are float64 and share the tie handling of the rank metrics. torchmetrics' retrieval metrics
(``retrieval_reciprocal_rank``, ``retrieval_hit_rate``) break ties by input order (identical scores
give MRR 1.0 or 1/3 depending on where the target sits), and have neither OGB's shared-negative
Hits@K nor the filtered all-node ranking, so the rank metrics are our own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor

from recsci.core.metrics import average_precision, roc_auc
from recsci.graph.splits import EvalEdges

ScoreFn = Callable[[Tensor, Tensor], Tensor]  # (src ids, dst ids) -> scores
RowScoreFn = Callable[[Tensor], Tensor]  # query ids [Q] -> scores of every node as target [Q, num_nodes]
BucketBy = Literal["out", "total"]
BUCKETS = ("low", "mid", "high")


# ----------------------------------------------------------------------------------------------
# 1. Existence
# ----------------------------------------------------------------------------------------------


def hits_at_k(pos_scores: Tensor, neg_scores: Tensor, k: int) -> float:
    """OGB Hits@K: share of positives scoring strictly above the K-th highest negative (1.0 if < K negatives)."""
    pos, neg = pos_scores.flatten(), neg_scores.flatten()
    if pos.numel() == 0:
        return float("nan")
    if neg.numel() < k:
        return 1.0
    kth = torch.topk(neg, k).values[-1]
    return float((pos > kth).double().mean())


def shared_negative_ranks(pos_scores: Tensor, neg_scores: Tensor) -> Tensor:
    """Rank of each positive among ALL negatives: 1 + #(neg > pos) + 0.5 #(neg == pos) (float64)."""
    pos = pos_scores.flatten()
    sorted_neg = torch.sort(neg_scores.flatten()).values
    pos = pos.to(sorted_neg.dtype)
    m = sorted_neg.numel()
    greater_equal = m - torch.searchsorted(sorted_neg, pos, right=False)
    greater = m - torch.searchsorted(sorted_neg, pos, right=True)
    return 1.0 + 0.5 * (greater_equal + greater).double()


def existence_metrics(
    pos_scores: Tensor,
    neg_scores: Tensor,
    ks: Sequence[int] = (20, 50, 100),
    acc_threshold: float | None = 0.0,
) -> dict[str, float]:
    """DirLinkBench's existence metrics: ``hits@K`` for K in ``ks``, ``mrr``, ``auc``, ``ap`` and, unless
    ``acc_threshold`` is None, ``acc`` (module docstring gives the definitions)."""
    pos, neg = pos_scores.detach().flatten(), neg_scores.detach().flatten()
    metrics = {f"hits@{k}": hits_at_k(pos, neg, k) for k in ks}
    metrics["mrr"] = float((1.0 / shared_negative_ranks(pos, neg)).mean()) if pos.numel() else float("nan")
    metrics["auc"] = roc_auc(pos, neg)
    metrics["ap"] = average_precision(pos, neg)
    if acc_threshold is not None:
        correct = (pos >= acc_threshold).sum() + (neg < acc_threshold).sum()
        metrics["acc"] = float(correct / max(pos.numel() + neg.numel(), 1))
    return metrics


# ----------------------------------------------------------------------------------------------
# 2. Direction
# ----------------------------------------------------------------------------------------------


def direction_metrics(forward_scores: Tensor, reverse_scores: Tensor) -> dict[str, float]:
    """``direction_auc`` (unpaired AUC of u -> v vs v -> u) and ``direction_acc`` (paired: share of pairs
    with score(u -> v) > score(v -> u), ties half). ``reverse_scores[i]`` scores the reverse of pair i."""
    forward, reverse = forward_scores.detach().flatten(), reverse_scores.detach().flatten()
    if forward.shape != reverse.shape:
        raise ValueError(f"paired scores differ in shape: {tuple(forward.shape)} vs {tuple(reverse.shape)}")
    if forward.numel() == 0:
        return {"direction_auc": float("nan"), "direction_acc": float("nan")}
    paired = (forward > reverse).double() + 0.5 * (forward == reverse).double()
    return {"direction_auc": roc_auc(forward, reverse), "direction_acc": float(paired.mean())}


# ----------------------------------------------------------------------------------------------
# 3. Recommendation
# ----------------------------------------------------------------------------------------------


def query_degrees(train_edges: Tensor, num_nodes: int, bucket_by: BucketBy = "out") -> Tensor:
    """Training out-degree (``"out"``) or in + out degree (``"total"``) of every node."""
    out = torch.bincount(train_edges[0], minlength=num_nodes)
    return out if bucket_by == "out" else out + torch.bincount(train_edges[1], minlength=num_nodes)


def degree_buckets(
    degrees: Tensor, bucket_edges: Sequence[float] | None = None
) -> tuple[Tensor, tuple[float, float]]:
    """Bucket (0 = low, 1 = mid, 2 = high) of each degree: low = d <= e1, mid = e1 < d <= e2, high = d > e2.

    ``bucket_edges=None`` uses the terciles of ``degrees`` (``torch.quantile`` at 1/3 and 2/3, linear
    interpolation); with heavily tied degrees buckets are then unequal or even empty (their metrics are
    NaN), so give explicit edges to compare across splits or datasets. Returns (buckets, (e1, e2)).
    """
    if bucket_edges is None:
        if degrees.numel() == 0:
            return torch.zeros(0, dtype=torch.long), (float("nan"), float("nan"))
        q = torch.quantile(degrees.double(), torch.tensor([1 / 3, 2 / 3], dtype=torch.float64))
        e1, e2 = float(q[0]), float(q[1])
    else:
        if len(bucket_edges) != 2 or bucket_edges[0] > bucket_edges[1]:
            raise ValueError(f"bucket_edges={list(bucket_edges)}: need two increasing values [e1, e2]")
        e1, e2 = float(bucket_edges[0]), float(bucket_edges[1])
    d = degrees.double()
    return (d > e1).long() + (d > e2).long(), (e1, e2)


def _csr(edges: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    """(rowptr [num_nodes + 1], targets sorted by source) of ``edges`` [2, E]."""
    order = torch.argsort(edges[0] * num_nodes + edges[1])
    counts = torch.bincount(edges[0], minlength=num_nodes)
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.long)
    rowptr[1:] = torch.cumsum(counts, 0)
    return rowptr, edges[1, order]


def _gather_rows(rowptr: Tensor, cols: Tensor, rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """For CSR rows ``rows``: (local row index, position within the row, column) of every entry."""
    counts = rowptr[rows + 1] - rowptr[rows]
    local = torch.repeat_interleave(torch.arange(rows.numel()), counts)
    starts = torch.repeat_interleave(rowptr[rows], counts)
    offsets = torch.arange(local.numel()) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    return local, offsets, cols[starts + offsets]


def filtered_target_ranks(
    targets: Tensor,
    exclude_edges: Tensor,
    num_nodes: int,
    score: ScoreFn | None = None,
    *,
    score_rows: RowScoreFn | None = None,
    max_chunk_scores: int = 2**20,
) -> tuple[Tensor, Tensor]:
    """Filtered all-node rank of every held-out edge (query u, target t) in ``targets`` [2, P].

    Competitors of (u, t): every node except u, u's ``exclude_edges`` out-neighbours and u's targets;
    rank = 1 + #(competitors scoring > s(u, t)) + 0.5 #(== s(u, t)). Scores come from ``score_rows``
    (query ids -> [Q, num_nodes]) if given, else from ``score`` on all (u, v) pairs of a chunk.
    Returns (queries sorted [Q], ranks [P] aligned with ``targets`` sorted by (query, target)).
    """
    if score is None and score_rows is None:
        raise ValueError("give score (pairs -> scores) or score_rows (queries -> score matrix)")
    targets = torch.unique(targets, dim=1)  # sorted by (query, target); duplicates are one target
    queries = torch.unique(targets[0])
    target_ptr, target_cols = _csr(targets, num_nodes)
    exclude_ptr, exclude_cols = _csr(exclude_edges, num_nodes)
    ranks = torch.empty(targets.size(1), dtype=torch.float64)
    chunk = max(1, max_chunk_scores // max(num_nodes, 1))
    done = 0
    for start in range(0, queries.numel(), chunk):
        rows = queries[start : start + chunk]
        c = rows.numel()
        with torch.no_grad():
            if score_rows is not None:
                scores = score_rows(rows).detach()
            else:
                src = rows.repeat_interleave(num_nodes)
                dst = torch.arange(num_nodes).repeat(c)
                scores = score(src, dst).detach()
        # float scores (integer scores, e.g. popularity counts, too), at least float32
        scores = scores.reshape(c, num_nodes).cpu()
        scores = scores.to(torch.promote_types(scores.dtype, torch.float32))
        t_row, _, t_col = _gather_rows(target_ptr, target_cols, rows)
        target_scores = scores[t_row, t_col]
        masked = torch.zeros(c, num_nodes, dtype=torch.bool)
        e_row, _, e_col = _gather_rows(exclude_ptr, exclude_cols, rows)
        masked[e_row, e_col] = True
        masked[t_row, t_col] = True
        masked[torch.arange(c), rows] = True
        # Excluded entries become NaN: they compare False with everything, so they never count.
        competitors = scores.masked_fill(masked, float("nan"))
        # Compare each target with its own row, a bounded block of targets at a time (cheaper than
        # sorting every row: queries have few targets on average).
        for lo in range(0, t_row.numel(), chunk):
            row, value = t_row[lo : lo + chunk], target_scores[lo : lo + chunk, None]
            greater = torch.count_nonzero(competitors[row] > value, dim=1)
            ties = torch.count_nonzero(competitors[row] == value, dim=1)
            rank = 1.0 + greater.double() + 0.5 * ties.double()
            # A NaN target score has no rank: NaN propagates into the metrics instead of a silent rank 1.
            ranks[done + lo : done + lo + row.numel()] = rank.masked_fill(
                value.squeeze(1).isnan(), float("nan")
            )
        done += t_row.numel()
    return queries, ranks


def recommendation_metrics(
    targets: Tensor,
    train_edges: Tensor,
    num_nodes: int,
    score: ScoreFn | None = None,
    *,
    score_rows: RowScoreFn | None = None,
    ks: Sequence[int] = (10,),
    bucket_by: BucketBy = "out",
    bucket_edges: Sequence[float] | None = None,
    exclude_edges: Tensor | None = None,
    max_chunk_scores: int = 2**20,
    prefix: str = "rec_",
) -> dict[str, float]:
    """Recommendation protocol (module docstring): ``rec_hits@K``, ``rec_mrr`` over all queries and per
    bucket (``rec_hits@K_low``, ``rec_mrr_high``, ...), and query counts (``rec_queries``,
    ``rec_queries_low``, ...). Buckets come from the query's training degree (``bucket_by``) and
    ``bucket_edges`` (None: terciles over the evaluated queries, see :func:`degree_buckets`).
    ``train_edges`` are excluded from each query's candidates; ``exclude_edges`` adds more known edges
    (e.g. validation edges when ranking test targets)."""
    exclude = train_edges if exclude_edges is None else torch.cat([train_edges, exclude_edges], dim=1)
    targets = torch.unique(targets, dim=1)
    queries, ranks = filtered_target_ranks(
        targets, exclude, num_nodes, score, score_rows=score_rows, max_chunk_scores=max_chunk_scores
    )
    # Per-query means: targets are sorted by query, so their query index is a searchsorted away.
    query_index = torch.searchsorted(queries, targets[0].contiguous())
    counts = torch.bincount(query_index, minlength=queries.numel()).double()

    def per_query(values: Tensor) -> Tensor:
        sums = torch.zeros(queries.numel(), dtype=torch.float64).index_add_(0, query_index, values)
        return sums / counts

    per_query_metrics = {"mrr": per_query(1.0 / ranks)}
    for k in ks:
        per_query_metrics[f"hits@{k}"] = per_query((ranks <= k).double())
    buckets, (edge_low_mid, edge_mid_high) = degree_buckets(
        query_degrees(train_edges, num_nodes, bucket_by)[queries], bucket_edges
    )

    def mean(values: Tensor) -> float:
        return float(values.mean()) if values.numel() else float("nan")

    metrics = {f"{prefix}{name}": mean(values) for name, values in per_query_metrics.items()}
    metrics[f"{prefix}queries"] = float(queries.numel())
    # The degree edges of the buckets, so reports can say what "low" and "high" meant on this split.
    metrics[f"{prefix}bucket_edge_low_mid"] = edge_low_mid
    metrics[f"{prefix}bucket_edge_mid_high"] = edge_mid_high
    for index, bucket in enumerate(BUCKETS):
        in_bucket = buckets == index
        for name, values in per_query_metrics.items():
            metrics[f"{prefix}{name}_{bucket}"] = mean(values[in_bucket])
        metrics[f"{prefix}queries_{bucket}"] = float(in_bucket.sum())
    return metrics


def dot_product_rows(source: Tensor, target: Tensor | None = None) -> RowScoreFn:
    """Fast path for :func:`recommendation_metrics`: scores ``source[q] . target[v]`` for all v at once
    (``target`` defaults to ``source``, i.e. a symmetric dot-product decoder)."""
    target = source if target is None else target
    return lambda rows: source[rows.to(source.device)] @ target.t()


# ----------------------------------------------------------------------------------------------
# All three protocols on one split
# ----------------------------------------------------------------------------------------------


def directed_link_metrics(
    score: ScoreFn,
    edges: EvalEdges,
    train_edges: Tensor,
    num_nodes: int,
    *,
    hits_ks: Sequence[int] = (20, 50, 100),
    acc_threshold: float | None = 0.0,
    recommendation: bool = True,
    rec_ks: Sequence[int] = (10,),
    score_rows: RowScoreFn | None = None,
    bucket_by: BucketBy = "out",
    bucket_edges: Sequence[float] | None = None,
    exclude_edges: Tensor | None = None,
    max_chunk_scores: int = 2**20,
) -> dict[str, float]:
    """Existence (vs ``edges.neg``), direction (``edges.pos[:, one_way]`` vs ``edges.reverse``) and, if
    ``recommendation``, the all-node recommendation protocol over ``edges.pos``, as one flat dict:
    ``hits@20 .. mrr auc ap acc direction_auc direction_acc rec_hits@10 rec_mrr rec_hits@10_low ...``."""
    with torch.no_grad():
        # Scores are computed where the model is; the bookkeeping (ranks, buckets) runs on the CPU.
        pos = score(edges.pos[0], edges.pos[1]).detach().cpu()
        neg = score(edges.neg[0], edges.neg[1]).detach().cpu()
        reverse = score(edges.reverse[0], edges.reverse[1]).detach().cpu()
    metrics = existence_metrics(pos, neg, hits_ks, acc_threshold)
    metrics.update(direction_metrics(pos[edges.one_way.cpu()], reverse))
    if recommendation:
        metrics.update(
            recommendation_metrics(
                edges.pos.cpu(),
                train_edges.cpu(),
                num_nodes,
                score,
                score_rows=score_rows,
                ks=rec_ks,
                bucket_by=bucket_by,
                bucket_edges=bucket_edges,
                exclude_edges=None if exclude_edges is None else exclude_edges.cpu(),
                max_chunk_scores=max_chunk_scores,
            )
        )
    return metrics
