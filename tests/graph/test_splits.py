"""Link splits: disjoint, seeded, with valid negatives of each kind."""

from __future__ import annotations

import torch

from recsci.graph.edge_set import EdgeSet
from recsci.graph.splits import split_links
from recsci.graph.synthetic import SyntheticProductGraph


def make_split(seed: int = 0):
    data = SyntheticProductGraph(num_nodes=500, seed=0).load()
    return data, split_links(data.edge_index, data.num_nodes, 0.1, 0.2, torch.Generator().manual_seed(seed))


def keys(edges: torch.Tensor, n: int) -> set[int]:
    return set((edges[0] * n + edges[1]).tolist())


def test_splits_partition_the_edges() -> None:
    data, split = make_split()
    n = data.num_nodes
    train, val, test = keys(split.train_pos, n), keys(split.val.pos, n), keys(split.test.pos, n)
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == keys(data.edge_index, n)
    assert abs(len(test) / len(keys(data.edge_index, n)) - 0.2) < 0.01


def test_negatives_are_non_edges_and_reverses_are_one_way() -> None:
    data, split = make_split()
    all_edges = EdgeSet(data.edge_index, data.num_nodes)
    for edges in (split.val, split.test):
        assert not all_edges.contains(edges.neg[0], edges.neg[1]).any()
        assert not all_edges.contains(edges.reverse[0], edges.reverse[1]).any()
        assert torch.equal(edges.reverse, edges.pos[:, edges.one_way].flip(0))


def test_split_is_seeded() -> None:
    _, a = make_split(0)
    _, b = make_split(0)
    _, c = make_split(1)
    assert torch.equal(a.test.pos, b.test.pos) and torch.equal(a.test.neg, b.test.neg)
    assert not torch.equal(a.test.pos, c.test.pos)


def test_edge_set_membership() -> None:
    edges = EdgeSet(torch.tensor([[0, 1, 2], [1, 2, 0]]), 3)
    assert edges.contains(torch.tensor([0, 1, 1]), torch.tensor([1, 0, 2])).tolist() == [True, False, True]
