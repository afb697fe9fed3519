"""Real datasets through the real loaders (skipped when RECSCI_DATA is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recsci.core.errors import DataNotFoundError
from recsci.graph.datasets import (
    AmazonPhotoGraph,
    CitationFullGraph,
    CiteSeer3312Graph,
    DirLinkBenchGraph,
    WikipediaGraph,
)
from recsci.graph.edge_set import EdgeSet
from tests.conftest import data_root

pytestmark = pytest.mark.data


@pytest.fixture
def root() -> Path:
    found = data_root()
    if found is None or not (found / "graph" / "cora_ml").is_dir():
        pytest.skip("RECSCI_DATA does not point at a folder with graph/cora_ml (see shared/data/README.md)")
    return found


def test_cora_ml_matches_its_source_md(root: Path, tmp_path: Path) -> None:
    data = CitationFullGraph(str(root / "graph"), "cora_ml", cache_dir=str(tmp_path)).load()
    assert data.num_nodes == 2995
    assert data.edge_index.size(1) == 8416  # directed, as SOURCE.md states (16,316 after symmetrising)
    assert data.x.size(1) == 2879
    # Citing -> cited: the most-cited paper has far more in- than out-links (SOURCE.md: 246 vs 72).
    assert int(data.edge_index[1].bincount().max()) == 246
    assert int(data.edge_index[0].bincount().max()) == 72
    assert list((tmp_path / "cora_ml" / "processed").iterdir()), "processed files go to the cache dir"


# ----------------------------------------------------------------------------------------------
# Every loader on the real files: counts as in each SOURCE.md, direction normalised to query -> item
# ----------------------------------------------------------------------------------------------


def graph_dir(root: Path, folder: str) -> str:
    if not (root / "graph" / folder).is_dir():
        pytest.skip(f"RECSCI_DATA has no graph/{folder} (see shared/data/README.md)")
    return str(root / "graph")


def max_out_in(data) -> tuple[int, int]:
    return int(data.edge_index[0].bincount().max()), int(data.edge_index[1].bincount().max())


def reverse_is_edge(data) -> torch.Tensor:
    edges = EdgeSet(data.edge_index, data.num_nodes)
    return edges.contains(data.edge_index[1], data.edge_index[0])


def assert_clean(data) -> None:
    edges = data.edge_index
    assert not bool((edges[0] == edges[1]).any()), "self-loops are dropped on load"
    assert torch.unique(edges, dim=1).size(1) == edges.size(1), "no duplicate edges"
    assert int(edges.max()) < data.num_nodes and data.x.size(0) == data.num_nodes


def test_cora_ml_largest_component_is_dirlinkbench_graph(root: Path, tmp_path: Path) -> None:
    # LCC + sorted renumbering of the CitationFull loader gives the graph DirLinkBench's splits index.
    data = CitationFullGraph(
        str(root / "graph"), "cora_ml", cache_dir=str(tmp_path), largest_component=True
    ).load()
    assert (data.num_nodes, data.edge_index.size(1)) == (2810, 8229)
    reference = DirLinkBenchGraph(graph_dir(root, "dirlinkbench"), "cora_ml").load()
    assert torch.equal(data.edge_index, reference.edge_index)
    assert torch.equal(data.orig_id, reference.orig_id)
    assert torch.equal(data.x, (reference.x > 0).float())  # PyG binarises; DirLinkBench keeps TF-IDF
    assert_clean(data)


def test_citeseer_full_matches_its_source_md(root: Path, tmp_path: Path) -> None:
    data = CitationFullGraph(graph_dir(root, "citeseer"), "citeseer", cache_dir=str(tmp_path)).load()
    assert (data.num_nodes, data.edge_index.size(1), data.x.size(1)) == (4230, 5358, 602)
    assert int(data.y.max()) + 1 == 6
    assert max_out_in(data) == (17, 85)  # citing -> cited: most cited paper has 85 in-links
    assert_clean(data)
    lcc = CitationFullGraph(str(root / "graph"), "citeseer", str(tmp_path), largest_component=True).load()
    assert (lcc.num_nodes, lcc.edge_index.size(1)) == (1681, 2907)


def test_citeseer_3312_is_flipped_to_citing_to_cited(root: Path) -> None:
    data = CiteSeer3312Graph(graph_dir(root, "citeseer_3312")).load()
    # 4,591 directed edges + 124 self-loops in the file; self-loops dropped
    assert (data.num_nodes, data.edge_index.size(1), data.x.size(1)) == (3312, 4591, 3703)
    assert int(data.y.max()) + 1 == 6
    # The file's rows are cited papers (max row degree 99): after the flip 99 is the max IN-degree.
    assert max_out_in(data) == (26, 99)
    as_stored = CiteSeer3312Graph(str(root / "graph"), direction="citing_to_cited").load()
    assert torch.equal(as_stored.edge_index.flip(0).unique(dim=1), data.edge_index)
    lcc = CiteSeer3312Graph(str(root / "graph"), largest_component=True).load()
    assert (lcc.num_nodes, lcc.edge_index.size(1)) == (2110, 3705)
    assert_clean(data)


def test_photo_keeps_its_direction(root: Path) -> None:
    data = AmazonPhotoGraph(graph_dir(root, "photo")).load()
    # 143,662 directed edges + 1 self-loop; PyG's Amazon would give 238,162 symmetrised
    assert (data.num_nodes, data.edge_index.size(1), data.x.size(1)) == (7650, 143662, 745)
    assert int(data.y.max()) + 1 == 8
    assert max_out_in(data) == (81, 1434)  # accessories are the in-degree hubs
    one_way = float((~reverse_is_edge(data)).double().mean())
    assert one_way == pytest.approx(0.658, abs=0.001)
    assert_clean(data)


@pytest.mark.parametrize(
    ("name", "nodes", "file_edges", "self_loops", "features", "reciprocal"),
    [("chameleon", 2277, 36101, 50, 2325, 0.26), ("squirrel", 5201, 217073, 140, 2089, 0.17)],
)
def test_wikipedia_matches_its_source_md(
    root: Path, name: str, nodes: int, file_edges: int, self_loops: int, features: int, reciprocal: float
) -> None:
    data = WikipediaGraph(graph_dir(root, "wikipedia"), name).load()
    assert (data.num_nodes, data.edge_index.size(1), data.x.size(1)) == (
        nodes,
        file_edges - self_loops,
        features,
    )
    assert int(data.y.max()) + 1 == 5
    share = float(reverse_is_edge(data).double().mean())
    assert share == pytest.approx(reciprocal, abs=0.01)
    lcc = WikipediaGraph(str(root / "graph"), name, largest_component=True).load()
    assert lcc.num_nodes == nodes  # already one weakly connected component
    assert_clean(data)


def test_missing_files_raise_data_not_found(tmp_path: Path) -> None:
    for make in (
        lambda: CiteSeer3312Graph(str(tmp_path)),
        lambda: AmazonPhotoGraph(str(tmp_path)),
        lambda: WikipediaGraph(str(tmp_path), "squirrel"),
        lambda: DirLinkBenchGraph(str(tmp_path), "citeseer"),
        lambda: CitationFullGraph(str(tmp_path), "citeseer", str(tmp_path)),
    ):
        with pytest.raises(DataNotFoundError, match="Expected layout"):
            make()
