"""The three evaluation protocols against hand-computed small cases."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.functional.classification import binary_auroc, binary_average_precision

from recsci.core.metrics import average_precision, roc_auc
from recsci.graph.evaluate import (
    degree_buckets,
    directed_link_metrics,
    direction_metrics,
    dot_product_rows,
    existence_metrics,
    filtered_target_ranks,
    hits_at_k,
    recommendation_metrics,
    shared_negative_ranks,
)
from recsci.graph.splits import split_links
from recsci.graph.synthetic import SyntheticProductGraph

# Existence: 3 positives against a shared pool of 4 negatives (a tie at 3).
POS = torch.tensor([5.0, 3.0, 1.0])
NEG = torch.tensor([4.0, 2.0, 0.0, 3.0])


def test_hits_at_k_is_ogb_strictly_above_the_kth_negative() -> None:
    assert hits_at_k(POS, NEG, 1) == pytest.approx(1 / 3)  # K-th negative 4: only 5 is above
    assert hits_at_k(POS, NEG, 2) == pytest.approx(1 / 3)  # K-th negative 3: the tie 3 is NOT above
    assert hits_at_k(POS, NEG, 3) == pytest.approx(2 / 3)  # K-th negative 2: 5 and 3
    assert hits_at_k(POS, NEG, 5) == 1.0  # fewer negatives than K: OGB returns 1


def test_mrr_is_dirlinkbench_shared_negative_rank() -> None:
    # ranks: 5 -> 1; 3 -> 1 + 1 (the 4) + 0.5 (the tied 3) = 2.5; 1 -> 1 + 3 = 4
    assert shared_negative_ranks(POS, NEG).tolist() == [1.0, 2.5, 4.0]
    metrics = existence_metrics(POS, NEG, ks=(1, 2), acc_threshold=2.5)
    assert metrics["mrr"] == pytest.approx((1 + 1 / 2.5 + 1 / 4) / 3)


def test_auc_ap_acc_hand_computed() -> None:
    metrics = existence_metrics(POS, NEG, ks=(20,), acc_threshold=2.5)
    # AUC: 5 beats 4 negatives, 3 beats 2 and ties 1 (2.5), 1 beats 1: 7.5 / 12
    assert metrics["auc"] == pytest.approx(7.5 / 12)
    # AP: thresholds 5 (P 1/1), tie group {3, 3} (P 2/4), 1 (P 3/6): each adds 1/3 recall
    assert metrics["ap"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    # ACC at 2.5: positives 5, 3 and negatives 2, 0 are on the right side: 4 of 7
    assert metrics["acc"] == pytest.approx(4 / 7)
    assert set(metrics) == {"hits@20", "mrr", "auc", "ap", "acc"}
    assert "acc" not in existence_metrics(POS, NEG, acc_threshold=None)


def test_core_auc_ap_agree_with_torchmetrics_under_ties() -> None:
    g = torch.Generator().manual_seed(0)
    pos = torch.randint(0, 5, (40,), generator=g).float()
    neg = torch.randint(0, 5, (60,), generator=g).float() - 1
    scores = torch.cat([pos, neg])
    labels = torch.cat([torch.ones(40), torch.zeros(60)]).long()
    assert roc_auc(pos, neg) == pytest.approx(float(binary_auroc(scores, labels)), abs=1e-6)
    assert average_precision(pos, neg) == pytest.approx(
        float(binary_average_precision(scores, labels)), abs=1e-6
    )


def test_constant_scores_give_chance_level_everywhere() -> None:
    metrics = existence_metrics(torch.zeros(5), torch.zeros(200))
    assert metrics["auc"] == 0.5
    assert metrics["hits@20"] == 0.0  # nothing is strictly above the 20th negative
    assert metrics["mrr"] == pytest.approx(1 / 101)  # expected rank among 200 ties
    assert direction_metrics(torch.ones(4), torch.ones(4)) == {"direction_auc": 0.5, "direction_acc": 0.5}


def test_empty_positives_give_nan() -> None:
    metrics = existence_metrics(torch.zeros(0), NEG)
    assert math.isnan(metrics["mrr"]) and math.isnan(metrics["hits@20"]) and math.isnan(metrics["auc"])
    assert all(math.isnan(v) for v in direction_metrics(torch.zeros(0), torch.zeros(0)).values())


def test_direction_paired_accuracy_and_unpaired_auc() -> None:
    forward = torch.tensor([2.0, 1.0, 3.0, 0.0])
    reverse = torch.tensor([1.0, 1.0, 4.0, -1.0])
    metrics = direction_metrics(forward, reverse)
    assert metrics["direction_acc"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)  # pair 2 ties, pair 3 loses
    # unpaired: 2 beats 3 reverses, 1 beats 1 and ties 2, 3 beats 3, 0 beats 1 -> 9 / 16
    assert metrics["direction_auc"] == pytest.approx(9 / 16)
    with pytest.raises(ValueError, match="paired"):
        direction_metrics(forward, reverse[:3])


# Recommendation: 5 nodes, training edge 0 -> 1, held-out 0 -> 2, 0 -> 3, 1 -> 4.
S = torch.tensor(
    [
        [9.0, 8.0, 5.0, 3.0, 4.0],
        [1.0, 7.0, 1.0, 2.0, 1.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
    ]
)
TRAIN = torch.tensor([[0], [1]])
HELD_OUT = torch.tensor([[0, 0, 1], [2, 3, 4]])


def pair_score(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    return S[src, dst]


def test_filtered_ranks_hand_computed() -> None:
    # 0 -> 2 (score 5): competitors {4} (not 0 itself, not train 1, not the other target 3): rank 1
    # 0 -> 3 (score 3): competitors {4} scoring 4 > 3: rank 2
    # 1 -> 4 (score 1): competitors {0, 2, 3} scoring 1, 1, 2: 1 + 1 + 0.5 * 2 = 3
    queries, ranks = filtered_target_ranks(HELD_OUT, TRAIN, 5, pair_score)
    assert queries.tolist() == [0, 1]
    assert ranks.tolist() == [1.0, 2.0, 3.0]
    _, ranks = filtered_target_ranks(
        HELD_OUT, TRAIN, 5, score_rows=lambda rows: S[rows].long()
    )  # integer scores
    assert ranks.tolist() == [1.0, 2.0, 3.0]
    # Further known edges are excluded too: with 1 -> 3 known, 1 -> 4 ties with {0, 2}: rank 2
    _, ranks = filtered_target_ranks(HELD_OUT, torch.tensor([[0, 1], [1, 3]]), 5, pair_score)
    assert ranks.tolist() == [1.0, 2.0, 2.0]


def test_recommendation_metrics_hand_computed_with_buckets() -> None:
    metrics = recommendation_metrics(HELD_OUT, TRAIN, 5, pair_score, ks=(1, 3), bucket_edges=(0, 0.5))
    # query 0: RR (1 + 1/2) / 2 = 0.75, hits@1 1/2, hits@3 1; query 1: RR 1/3, hits@1 0, hits@3 1
    assert metrics["rec_mrr"] == pytest.approx((0.75 + 1 / 3) / 2)
    assert metrics["rec_hits@1"] == pytest.approx(0.25)
    assert metrics["rec_hits@3"] == 1.0
    assert metrics["rec_queries"] == 2.0
    # training out-degree: query 1 has 0 (low: <= 0), query 0 has 1 (high: > 0.5); mid is empty
    assert metrics["rec_mrr_low"] == pytest.approx(1 / 3) and metrics["rec_queries_low"] == 1.0
    assert metrics["rec_mrr_high"] == pytest.approx(0.75) and metrics["rec_hits@1_high"] == 0.5
    assert math.isnan(metrics["rec_mrr_mid"]) and metrics["rec_queries_mid"] == 0.0
    known = recommendation_metrics(
        HELD_OUT, TRAIN, 5, pair_score, ks=(1,), exclude_edges=torch.tensor([[1], [3]])
    )
    assert known["rec_mrr"] == pytest.approx((0.75 + 0.5) / 2)


def test_recommendation_chunking_and_fast_path_match_brute_force() -> None:
    g = torch.Generator().manual_seed(0)
    n = 40
    train = torch.randint(0, n, (2, 120), generator=g)
    held_out = torch.randint(0, n, (2, 60), generator=g)
    scores = torch.randint(0, 6, (n, n), generator=g).float()  # many ties
    held = torch.unique(held_out, dim=1)
    expected = []
    for u, v in held.t().tolist():
        excluded = set(train[1, train[0] == u].tolist()) | set(held[1, held[0] == u].tolist()) | {u}
        others = torch.tensor([w for w in range(n) if w not in excluded])
        s = scores[u, v]
        expected.append(
            1 + float((scores[u, others] > s).sum()) + 0.5 * float((scores[u, others] == s).sum())
        )
    for kwargs in ({"max_chunk_scores": 1}, {"max_chunk_scores": 130}, {}):
        _, ranks = filtered_target_ranks(held_out, train, n, lambda s, d: scores[s, d], **kwargs)
        assert ranks.tolist() == expected
    _, ranks = filtered_target_ranks(held_out, train, n, score_rows=lambda rows: scores[rows])
    assert ranks.tolist() == expected


def test_minus_inf_target_ties_only_with_real_competitors() -> None:
    scores = torch.tensor([[0.0, float("-inf"), float("-inf"), 1.0]])
    # 0 -> 1 scored -inf; exclusions (0 itself) are -inf internally but must not count as ties
    _, ranks = filtered_target_ranks(
        torch.tensor([[0], [1]]), torch.zeros(2, 0, dtype=torch.long), 4, score_rows=lambda r: scores[r]
    )
    assert ranks.tolist() == [1 + 1 + 0.5]  # node 3 above, node 2 tied


def test_nan_target_score_gives_nan_not_rank_one() -> None:
    scores = torch.tensor([[0.0, float("nan"), 2.0, 1.0]])
    _, ranks = filtered_target_ranks(
        torch.tensor([[0, 0], [1, 3]]), torch.zeros(2, 0, dtype=torch.long), 4, score_rows=lambda r: scores[r]
    )
    assert math.isnan(ranks[0]) and ranks[1] == 2.0  # 0 -> 3 ranks below node 2 only


def test_degree_buckets_terciles_and_explicit_edges() -> None:
    buckets, edges = degree_buckets(torch.tensor([1, 2, 3, 4, 5, 6]))
    assert edges == pytest.approx((1 + 5 / 3, 1 + 10 / 3))  # torch.quantile, linear interpolation
    assert buckets.tolist() == [0, 0, 1, 1, 2, 2]
    buckets, _ = degree_buckets(torch.tensor([0, 1, 5, 10]), bucket_edges=(1, 5))
    assert buckets.tolist() == [0, 0, 1, 2]  # low <= 1 < mid <= 5 < high
    with pytest.raises(ValueError):
        degree_buckets(torch.tensor([1]), bucket_edges=(5, 1))


def test_dot_product_rows_matches_pairwise_decoder() -> None:
    g = torch.Generator().manual_seed(1)
    src, dst = torch.randn(12, 4, generator=g), torch.randn(12, 4, generator=g)
    train = torch.randint(0, 12, (2, 20), generator=g)
    held_out = torch.randint(0, 12, (2, 15), generator=g)
    fast = recommendation_metrics(held_out, train, 12, score_rows=dot_product_rows(src, dst), ks=(3,))
    slow = recommendation_metrics(held_out, train, 12, lambda s, d: (src[s] * dst[d]).sum(-1), ks=(3,))
    assert fast == pytest.approx(slow, nan_ok=True)


def test_directed_link_metrics_on_a_split() -> None:
    data = SyntheticProductGraph(num_nodes=200, seed=0).load()
    split = split_links(data.edge_index, 200, 0.1, 0.2, torch.Generator().manual_seed(0))
    emb = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))

    def score(s: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return (emb[s] * emb[d]).sum(-1)

    metrics = directed_link_metrics(score, split.test, split.train_pos, 200)
    expected = {"hits@20", "hits@50", "hits@100", "mrr", "auc", "ap", "acc", "direction_auc", "direction_acc"}
    expected |= {"rec_hits@10", "rec_mrr", "rec_queries"}
    expected |= {f"rec_{m}_{b}" for m in ("hits@10", "mrr", "queries") for b in ("low", "mid", "high")}
    expected |= {"rec_bucket_edge_low_mid", "rec_bucket_edge_mid_high"}
    assert set(metrics) == expected
    assert metrics["rec_bucket_edge_low_mid"] <= metrics["rec_bucket_edge_mid_high"]
    assert metrics["direction_auc"] == 0.5 and metrics["direction_acc"] == 0.5  # a symmetric scorer
    assert metrics["rec_queries"] == sum(metrics[f"rec_queries_{b}"] for b in ("low", "mid", "high"))
    assert "rec_mrr" not in directed_link_metrics(
        score, split.test, split.train_pos, 200, recommendation=False
    )
