"""Seeded link splits for directed link prediction, with the negatives each protocol needs.

For every evaluation split we keep three kinds of negatives:
- random pairs (u, w) that are not edges: existence AUC/AP;
- per positive (u, v), ``num_candidates`` random targets w for the same query u: MRR and HitRate@K;
- the reverse (v, u) of every one-directional positive: direction AUC (can the model tell phone ->
  case from case -> phone?). A symmetric model scores both the same and gets exactly 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


class EdgeSet:
    """Membership test for directed edges, vectorised through sorted ``u * n + v`` keys."""

    def __init__(self, edge_index: Tensor, num_nodes: int) -> None:
        self.num_nodes = num_nodes
        self.keys = torch.unique(edge_index[0] * num_nodes + edge_index[1])  # unique() also sorts

    def contains(self, src: Tensor, dst: Tensor) -> Tensor:
        keys = src * self.num_nodes + dst
        position = torch.searchsorted(self.keys, keys).clamp(max=max(len(self.keys) - 1, 0))
        return self.keys[position] == keys if len(self.keys) else torch.zeros_like(keys, dtype=torch.bool)


@dataclass
class EvalEdges:
    """Positives of one evaluation split and their negatives (all global node ids)."""

    pos: Tensor  # [2, P]
    neg: Tensor  # [2, P] random non-edges
    candidates: Tensor  # [P, C] random targets for each positive's query node
    one_way: Tensor  # [P] bool: the reverse of this positive is not an edge
    reverse: Tensor  # [2, sum(one_way)] reverse of the one-directional positives


@dataclass
class LinkSplit:
    train_pos: Tensor  # [2, E_train]; also the message-passing graph
    val: EvalEdges
    test: EvalEdges
    num_nodes: int


def clean_edges(edge_index: Tensor) -> Tensor:
    """Drop self-loops and duplicate edges (sorted by source, then target)."""
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    return torch.unique(edge_index, dim=1)


def random_non_edges(
    edges: EdgeSet, count: int, generator: torch.Generator, src: Tensor | None = None
) -> Tensor:
    """``count`` uniform random pairs that are neither edges nor self-loops (sources fixed when given)."""
    n = edges.num_nodes
    if src is None:
        src = torch.randint(0, n, (count,), generator=generator)
    dst = torch.randint(0, n, (count,), generator=generator)
    bad = edges.contains(src, dst) | (src == dst)
    # Redraw only the rejected targets; dense graphs would need many rounds, so cap them.
    for _ in range(100):
        if not bad.any():
            break
        dst[bad] = torch.randint(0, n, (int(bad.sum()),), generator=generator)
        bad = edges.contains(src, dst) | (src == dst)
    return torch.stack([src, dst])


def split_links(
    edge_index: Tensor,
    num_nodes: int,
    val_ratio: float,
    test_ratio: float,
    num_candidates: int,
    generator: torch.Generator,
) -> LinkSplit:
    """Split edges at random into train/val/test and draw the evaluation negatives."""
    edge_index = clean_edges(edge_index)
    num_edges = edge_index.size(1)
    num_val, num_test = int(round(val_ratio * num_edges)), int(round(test_ratio * num_edges))
    if num_edges - num_val - num_test < 1 or num_val < 1 or num_test < 1:
        raise ValueError(
            f"Cannot split {num_edges} edges with val_ratio={val_ratio}, test_ratio={test_ratio}: "
            "each split needs at least one edge."
        )
    perm = torch.randperm(num_edges, generator=generator)
    val_idx, test_idx, train_idx = (
        perm[:num_val],
        perm[num_val : num_val + num_test],
        perm[num_val + num_test :],
    )
    all_edges = EdgeSet(edge_index, num_nodes)
    return LinkSplit(
        train_pos=edge_index[:, train_idx.sort().values],
        val=_eval_edges(edge_index[:, val_idx], all_edges, num_candidates, generator),
        test=_eval_edges(edge_index[:, test_idx], all_edges, num_candidates, generator),
        num_nodes=num_nodes,
    )


def _eval_edges(
    pos: Tensor, all_edges: EdgeSet, num_candidates: int, generator: torch.Generator
) -> EvalEdges:
    num_pos = pos.size(1)
    neg = random_non_edges(all_edges, num_pos, generator)
    queries = pos[0].repeat_interleave(num_candidates)
    candidates = random_non_edges(all_edges, num_pos * num_candidates, generator, src=queries)[1]
    one_way = ~all_edges.contains(pos[1], pos[0])
    return EvalEdges(
        pos=pos,
        neg=neg,
        candidates=candidates.view(num_pos, num_candidates),
        one_way=one_way,
        reverse=pos[:, one_way].flip(0),
    )
