"""The embedded synthetic product graph has the shape the docs promise."""

from __future__ import annotations

import torch
from torch_geometric.utils import degree

from recsci.graph.synthetic import SyntheticProductGraph


def reciprocal_share(edge_index: torch.Tensor) -> float:
    edges = set(map(tuple, edge_index.t().tolist()))
    return sum((v, u) in edges for u, v in edges) / len(edges)


def test_mostly_base_to_accessory_and_heavy_tailed() -> None:
    data = SyntheticProductGraph(num_nodes=2000, seed=0).load()
    src, dst = data.edge_index
    base_to_accessory = ((data.role[src] == 0) & (data.role[dst] == 1)).float().mean()
    accessory_to_base = ((data.role[src] == 1) & (data.role[dst] == 0)).float().mean()
    assert base_to_accessory > 0.7 and accessory_to_base < 0.1
    in_degree = degree(dst, data.num_nodes)
    assert in_degree.max() > 10 * in_degree[in_degree > 0].median()  # a heavy tail of popular accessories
    assert (src != dst).all()
    assert torch.unique(data.edge_index, dim=1).size(1) == data.edge_index.size(1)


def test_reciprocal_share_is_tunable() -> None:
    low = reciprocal_share(SyntheticProductGraph(reciprocal_share=0.0, seed=1).load().edge_index)
    high = reciprocal_share(SyntheticProductGraph(reciprocal_share=0.4, seed=1).load().edge_index)
    assert low < 0.05 < 0.3 < high


def test_same_seed_same_graph_other_seed_other_graph() -> None:
    a, b = SyntheticProductGraph(seed=3).load(), SyntheticProductGraph(seed=3).load()
    c = SyntheticProductGraph(seed=4).load()
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x, b.x)
    assert not torch.equal(a.edge_index, c.edge_index)
