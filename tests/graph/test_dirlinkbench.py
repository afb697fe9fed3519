"""DirLinkBench: the benchmark's preprocessing (LCC + sorted renumbering) and its fixed split files.

The first tests write tiny split folders in the published layout; the ``data`` ones read the real
splits and check which node indexing they use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from recsci.core.errors import DataNotFoundError
from recsci.graph.datasets import DirLinkBenchGraph, largest_weakly_connected_component
from recsci.graph.splits import (
    DirLinkBenchSplit,
    EdgeSet,
    RandomSplit,
    load_dirlinkbench_split,
    spanning_forest_mask,
)
from recsci.graph.synthetic import SyntheticProductGraph
from tests.conftest import compose_config, data_root


def edge_keys(edges: torch.Tensor, n: int) -> set[int]:
    return set((edges[0] * n + edges[1]).tolist())


def test_lcc_keeps_the_largest_weak_component_renumbered_in_sorted_order() -> None:
    # Weak component {1, 3, 5, 6} (6 -> 5 only reaches it against the edge direction), plus {0, 2}
    # and the isolated 4; the self-loop 3 -> 3 goes.
    edge_index = torch.tensor([[1, 3, 5, 6, 0, 3], [3, 5, 1, 5, 2, 3]])
    x = torch.arange(7, dtype=torch.float).view(7, 1)
    data = largest_weakly_connected_component(Data(x=x, edge_index=edge_index, num_nodes=7))
    assert data.num_nodes == 4
    assert data.orig_id.tolist() == [1, 3, 5, 6]
    assert data.x.flatten().tolist() == [1.0, 3.0, 5.0, 6.0]
    # 1 -> 3, 3 -> 5, 5 -> 1, 6 -> 5 become 0 -> 1, 1 -> 2, 2 -> 0, 3 -> 2
    assert edge_keys(data.edge_index, 4) == edge_keys(torch.tensor([[0, 1, 2, 3], [1, 2, 0, 2]]), 4)


def test_random_split_keeps_a_spanning_forest_in_training() -> None:
    # DirLinkBench's protocol for graphs without published splits: LCC, then val/test drawn outside a
    # spanning forest, so the training graph stays weakly connected.
    import scipy.sparse as sp

    data = largest_weakly_connected_component(SyntheticProductGraph(num_nodes=400, seed=0).load())
    n = data.num_nodes
    forest = spanning_forest_mask(data.edge_index, n)
    lo = torch.minimum(*data.edge_index)
    hi = torch.maximum(*data.edge_index)
    assert torch.unique(lo[forest] * n + hi[forest]).numel() == n - 1  # one tree over the component
    split = RandomSplit(0.05, 0.15).make_split(data, torch.Generator().manual_seed(0))
    train = split.train_pos.numpy()
    adjacency = sp.coo_matrix((np.ones(train.shape[1]), (train[0], train[1])), shape=(n, n))
    assert sp.csgraph.connected_components(adjacency, connection="weak")[0] == 1
    parts = [split.train_pos, split.val.pos, split.test.pos]
    assert sum(len(edge_keys(p, n)) for p in parts) == len(edge_keys(data.edge_index, n))
    assert split.test.pos.size(1) == round(0.15 * data.edge_index.size(1))


def write_split(root: Path, dataset: str, index: int, parts: dict[str, np.ndarray]) -> None:
    folder = root / "dirlinkbench" / "split" / dataset / str(index)
    folder.mkdir(parents=True)
    for name, array in parts.items():
        np.save(folder / name, array)
    np.save(folder / "observed_graph.npy", parts["pos_train_edges.npy"].T)


# 6 nodes; every pair in the file's orientation (rows of the raw adjacency).
TINY = {
    "pos_train_edges.npy": np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [2, 1]]),
    "pos_val_edges.npy": np.array([[0, 2]]),
    "pos_test_edges.npy": np.array([[1, 3], [5, 0]]),
    "neg_train_edges.npy": np.array([[5, 1], [3, 0], [0, 4], [4, 2], [1, 5], [3, 1]]),
    "neg_val_edges.npy": np.array([[4, 0]]),
    "neg_test_edges.npy": np.array([[3, 5], [2, 5]]),
}


@pytest.mark.parametrize("dataset", ["cora_ml", "citeseer"])
def test_load_split_keeps_published_negatives_and_orients_pairs(tmp_path: Path, dataset: str) -> None:
    write_split(tmp_path, dataset, 0, TINY)
    split = load_dirlinkbench_split(tmp_path, dataset, 0)
    flip = dataset == "citeseer"  # stored cited -> citing: normalised to citing -> cited

    def expected(name: str) -> torch.Tensor:
        pairs = torch.from_numpy(TINY[name]).t()
        return pairs.flip(0) if flip else pairs

    assert split.num_nodes == 6
    assert torch.equal(split.train_pos, expected("pos_train_edges.npy"))
    assert torch.equal(split.val.pos, expected("pos_val_edges.npy"))
    assert torch.equal(split.test.pos, expected("pos_test_edges.npy"))
    assert torch.equal(split.val.neg, expected("neg_val_edges.npy"))
    assert torch.equal(split.test.neg, expected("neg_test_edges.npy"))
    assert torch.equal(split.train_neg, expected("neg_train_edges.npy"))
    # One-way flags and reverses are computed against all positives, as in split_links.
    everything = EdgeSet(torch.cat([split.train_pos, split.val.pos, split.test.pos], dim=1), 6)
    for edges in (split.val, split.test):
        assert torch.equal(edges.one_way, ~everything.contains(edges.pos[1], edges.pos[0]))
        assert torch.equal(edges.reverse, edges.pos[:, edges.one_way].flip(0))
    file_order = load_dirlinkbench_split(tmp_path, dataset, 0, orientation="file")
    assert torch.equal(file_order.test.neg, torch.from_numpy(TINY["neg_test_edges.npy"]).t())


def test_split_errors(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="pos_train_edges.npy"):
        load_dirlinkbench_split(tmp_path, "cora_ml", 0)
    with pytest.raises(DataNotFoundError):
        DirLinkBenchSplit(str(tmp_path), "cora_ml", 3)
    bad = dict(TINY)
    write_split(tmp_path, "cora_ml", 1, bad)
    np.save(tmp_path / "dirlinkbench/split/cora_ml/1/observed_graph.npy", TINY["pos_val_edges.npy"].T)
    with pytest.raises(ValueError, match="observed_graph"):
        load_dirlinkbench_split(tmp_path, "cora_ml", 1)
    write_split(tmp_path, "cora_ml", 2, TINY)
    with pytest.raises(ValueError, match="num_nodes"):
        load_dirlinkbench_split(tmp_path, "cora_ml", 2, num_nodes=5)
    # A graph that is not the one the split indexes is refused.
    wrong = Data(edge_index=torch.tensor([[0, 1], [1, 2]]), num_nodes=6)
    with pytest.raises(ValueError, match="does not index the loaded graph"):
        DirLinkBenchSplit(str(tmp_path), "cora_ml", 2).make_split(wrong, torch.Generator())


# ----------------------------------------------------------------------------------------------
# The real published splits
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def graph_root() -> Path:
    found = data_root()
    if found is None or not (found / "graph" / "dirlinkbench" / "split").is_dir():
        pytest.skip(
            "RECSCI_DATA does not point at a folder with graph/dirlinkbench (see shared/data/README.md)"
        )
    return found / "graph"


# dataset: (raw nodes, LCC nodes, LCC edges, train / val / test positives)
PUBLISHED = {"cora_ml": (2995, 2810, 8229, 6584, 411, 1234), "citeseer": (3312, 2110, 3705, 2965, 185, 555)}


@pytest.mark.data
@pytest.mark.parametrize("dataset", ["cora_ml", "citeseer"])
def test_real_splits_index_the_lcc_renumbered_in_sorted_order(graph_root: Path, dataset: str) -> None:
    raw_nodes, nodes, edges, num_train, num_val, num_test = PUBLISHED[dataset]
    data = DirLinkBenchGraph(str(graph_root), dataset).load()
    assert (data.num_nodes, data.edge_index.size(1)) == (nodes, edges)
    assert data.orig_id.max() < raw_nodes and bool((data.orig_id.diff() > 0).all())
    graph = edge_keys(data.edge_index, nodes)
    for index in range(10):
        # Without num_nodes the split implies it (largest id + 1): our LCC reproduces it exactly.
        split = load_dirlinkbench_split(graph_root, dataset, index)
        assert split.num_nodes == nodes
        assert (split.train_pos.size(1), split.val.pos.size(1), split.test.pos.size(1)) == (
            num_train,
            num_val,
            num_test,
        )
        positives = torch.cat([split.train_pos, split.val.pos, split.test.pos], dim=1)
        assert edge_keys(positives, nodes) == graph  # every LCC edge, each in exactly one part
        for part in (split.val, split.test):
            assert part.neg.size(1) == part.pos.size(1)
            assert not edge_keys(part.neg, nodes) & graph  # published negatives are non-edges


@pytest.mark.data
def test_real_split_pairs_are_in_the_raw_file_orientation(graph_root: Path) -> None:
    # CiteSeer's file stores cited -> citing: in file orientation the pairs match the unflipped graph;
    # normalised, they match the citing -> cited graph whose max in-degree (most cited) is 99.
    as_stored = DirLinkBenchGraph(str(graph_root), "citeseer", orientation="file").load()
    normalised = DirLinkBenchGraph(str(graph_root), "citeseer").load()
    assert int(normalised.edge_index[1].bincount().max()) == 99
    assert int(normalised.edge_index[0].bincount().max()) == 26
    n = as_stored.num_nodes
    for graph, orientation in ((as_stored, "file"), (normalised, "normalised")):
        split = load_dirlinkbench_split(graph_root, "citeseer", 0, orientation=orientation)
        assert edge_keys(split.test.pos, n) <= edge_keys(graph.edge_index, n)


@pytest.mark.data
def test_raw_ids_are_not_the_split_ids(graph_root: Path) -> None:
    # The split ids are NOT raw ids: read as raw ids, most published positives are not raw edges.
    import scipy.sparse as sp

    with np.load(graph_root / "dirlinkbench/cora_ml/raw/cora_ml.npz", allow_pickle=True) as f:
        adj = sp.csr_matrix(
            (f["adj_matrix.data"], f["adj_matrix.indices"], f["adj_matrix.indptr"]),
            shape=tuple(f["adj_matrix.shape"]),
        ).tocoo()
    raw = torch.from_numpy(np.stack([adj.row, adj.col]).astype(np.int64))
    split = load_dirlinkbench_split(graph_root, "cora_ml", 0)
    hits = len(edge_keys(split.test.pos, 2995) & edge_keys(raw, 2995))
    assert hits < 0.5 * split.test.pos.size(1)


@pytest.mark.data
def test_datamodule_serves_the_published_split(graph_root: Path, tmp_path: Path) -> None:
    from recsci.core.build import build
    from recsci.core.validation import validate_config

    cfg = compose_config(
        [
            "data=citeseer_dirlinkbench",
            f"paths.data_dir={graph_root.parent}",
            "data.split_source.split_index=7",
        ],
        output_dir=tmp_path,
    )
    validate_config(cfg)
    datamodule = build(cfg.data)
    datamodule.setup()
    published = load_dirlinkbench_split(graph_root, "citeseer", 7)
    assert datamodule.num_nodes == 2110
    assert torch.equal(datamodule.split.train_pos, published.train_pos)
    assert torch.equal(datamodule.split.test.neg, published.test.neg)
    assert datamodule.x.size(0) == 2110
