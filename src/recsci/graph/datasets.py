"""Real directed graphs, read in place.

Datasets live outside the repo under ``paths.data_dir`` (``RECSCI_DATA``) and may be read-only: nothing
is ever written beside the raw files. :class:`CitationFullGraph` goes through PyG's own
``CitationFull`` and writes PyG's processed file to a cache dir; the other loaders parse the raw
``.npz`` directly (milliseconds) and write nothing.

Every loader returns a PyG ``Data`` whose ``edge_index`` is oriented **query -> recommended item**
(citations: citing -> cited; Amazon: product page -> co-purchased product; Wikipedia: linking page ->
linked page), whatever the file's own convention: each class has a ``direction`` argument naming the
file's orientation, and files stored the other way round are flipped on load. Self-loops are always
dropped (no recommendation points at its own query) and duplicate edges merged.

``largest_component=True`` applies DirLinkBench's preprocessing (``dataset.py`` of
ivam-he/DirLinkBench-SDGAE): keep the largest weakly connected component, drop self-loops, and
renumber the kept nodes in sorted order of their original ids (``data.orig_id`` holds the original
id of each new node). On Cora-ML this gives the 2,810 nodes and 8,229 edges the published splits
index (see :func:`recsci.graph.splits.load_dirlinkbench_split`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch_geometric.data import Data
from torch_geometric.datasets import CitationFull

from recsci.core.errors import DataNotFoundError
from recsci.graph.splits import DIRLINKBENCH_FILE_DIRECTION


class _CachedCitationFull(CitationFull):
    """PyG's CitationFull reading ``<root>/<name>/raw`` and writing processed files elsewhere."""

    def __init__(self, root: str, name: str, processed_root: str) -> None:
        self._processed_root = processed_root
        super().__init__(root, name, to_undirected=False)

    @property
    def processed_dir(self) -> str:
        return str(Path(self._processed_root) / self.name / "processed")

    def download(self) -> None:  # never reached offline: the constructor checks the raw file first
        raise DataNotFoundError(self.raw_paths[0], "", "see the dataset's SOURCE.md")


# ----------------------------------------------------------------------------------------------
# Shared preprocessing
# ----------------------------------------------------------------------------------------------


def clean_graph(data: Data) -> Data:
    """Drop self-loops and merge duplicate edges (edges sorted by source, then target)."""
    edge_index = data.edge_index[:, data.edge_index[0] != data.edge_index[1]]
    data.edge_index = torch.unique(edge_index, dim=1)
    return data


def largest_weakly_connected_component(data: Data) -> Data:
    """DirLinkBench's preprocessing: largest weakly connected component, no self-loops, nodes renumbered
    in sorted order of their original ids (``data.orig_id``: original id of each kept node).

    Node-level attributes (``x``, ``y``, ...) are subset alongside. Ties between equally large
    components (absent from the real graphs) keep the component holding the smallest node id.
    """
    n = int(data.num_nodes)
    row, col = data.edge_index.numpy()
    adjacency = sp.coo_matrix((np.ones(len(row)), (row, col)), shape=(n, n))
    _, component = sp.csgraph.connected_components(adjacency, directed=True, connection="weak")
    keep = torch.from_numpy(component == np.bincount(component).argmax())
    if "orig_id" not in data:
        data.orig_id = torch.arange(n)
    data = data.subgraph(keep)  # relabels kept nodes in increasing order of their old ids
    return clean_graph(data)


def _read_sparse_graph_npz(path: Path) -> Data:
    """A graph2gauss/gnn-benchmark "SparseGraph" ``.npz``: ``adj_*`` (or ``adj_matrix.*``) CSR arrays,
    ``attr_*`` features (dense float32, values kept as stored) and ``labels``; rows -> columns."""
    with np.load(path, allow_pickle=True) as f:
        sep = "_" if "adj_data" in f.files else "_matrix."

        def csr(name: str) -> sp.csr_matrix:
            return sp.csr_matrix(
                (f[f"{name}{sep}data"], f[f"{name}{sep}indices"], f[f"{name}{sep}indptr"]),
                shape=tuple(f[f"{name}{sep}shape"]),
            )

        adjacency = csr("adj").tocoo()
        x = torch.from_numpy(np.asarray(csr("attr").todense(), dtype=np.float32))
        y = torch.from_numpy(f["labels"].astype(np.int64))
    edge_index = torch.from_numpy(np.stack([adjacency.row, adjacency.col]).astype(np.int64))
    return Data(x=x, edge_index=edge_index, y=y, num_nodes=adjacency.shape[0])


def _finish(data: Data, flip: bool, largest_component: bool) -> Data:
    if flip:
        data.edge_index = data.edge_index.flip(0)
    data = clean_graph(data)
    return largest_weakly_connected_component(data) if largest_component else data


def _require(path: Path, layout: str, how_to_get: str) -> None:
    if not path.is_file():
        raise DataNotFoundError(str(path), layout, how_to_get)


# ----------------------------------------------------------------------------------------------
# Loaders (each: constructor checks the files, load() returns the Data)
# ----------------------------------------------------------------------------------------------


class CitationFullGraph:
    """Cora-ML or CiteSeer (4,230 nodes) from PyG's ``CitationFull(..., to_undirected=False)`` layout.

    ``direction``: the orientation of the raw rows in the file (``citing_to_cited`` for the
    graph2gauss files of Cora-ML and CiteSeer); ``cited_to_citing`` files are reversed on load so edges
    always point from the citing (query) paper to the cited (recommended) one. PyG binarises the
    features (``x > 0 -> 1``). ``largest_component``: see :func:`largest_weakly_connected_component`.
    """

    def __init__(
        self,
        root: str,
        name: Literal["cora_ml", "citeseer", "dblp", "pubmed", "cora"],
        cache_dir: str,
        direction: Literal["citing_to_cited", "cited_to_citing"] = "citing_to_cited",
        largest_component: bool = False,
    ) -> None:
        self.root, self.name, self.cache_dir, self.direction = root, name, cache_dir, direction
        self.largest_component = largest_component
        _require(
            Path(root) / name / "raw" / f"{name}.npz",
            f"  {root}/\n    {name}/\n      raw/\n        {name}.npz   (PyG CitationFull format)",
            "PyG downloads it with torch_geometric.datasets.CitationFull(root, name); "
            f"the offline copy is in shared/data/graph/{name} (see its SOURCE.md).",
        )

    def load(self) -> Data:
        data = _CachedCitationFull(self.root, self.name, self.cache_dir)[0]
        return _finish(data, self.direction == "cited_to_citing", self.largest_component)


class CiteSeer3312Graph:
    """The 3,312-node CiteSeer of MagNet / PyG-Signed-Directed / DirLinkBench (``citeseer_3312/raw``).

    Its file stores rows as the CITED paper (``direction="cited_to_citing"``, the default), the
    reverse of Cora-ML: edges are flipped on load to citing -> cited. Binary features, 6 classes.
    """

    def __init__(
        self,
        root: str,
        direction: Literal["cited_to_citing", "citing_to_cited"] = "cited_to_citing",
        largest_component: bool = False,
    ) -> None:
        self.path = Path(root) / "citeseer_3312" / "raw" / "citeseer.npz"
        self.direction, self.largest_component = direction, largest_component
        _require(
            self.path,
            f"  {root}/\n    citeseer_3312/\n      raw/\n        citeseer.npz   (SparseGraph keys adj_*, attr_*, labels)",
            "shchur/gnn-benchmark data/npz/citeseer.npz (same blob as pytorch_geometric_signed_directed's); "
            "the offline copy is in shared/data/graph/citeseer_3312 (see its SOURCE.md).",
        )

    def load(self) -> Data:
        data = _read_sparse_graph_npz(self.path)
        return _finish(data, self.direction == "cited_to_citing", self.largest_component)


class AmazonPhotoGraph:
    """Amazon Photo "frequently bought together", DIRECTED (PyG's ``Amazon`` would symmetrise it).

    ``direction="query_to_item"`` (the file's rows): product page -> co-purchased product shown on it;
    popular accessories are the in-degree hubs (max in-degree 1,434 vs max out-degree 81).
    """

    def __init__(
        self,
        root: str,
        direction: Literal["query_to_item", "item_to_query"] = "query_to_item",
        largest_component: bool = False,
    ) -> None:
        self.path = Path(root) / "photo" / "raw" / "amazon_electronics_photo.npz"
        self.direction, self.largest_component = direction, largest_component
        _require(
            self.path,
            f"  {root}/\n    photo/\n      raw/\n        amazon_electronics_photo.npz   (keys adj_*, attr_*, labels)",
            "the file torch_geometric.datasets.Amazon(root, 'Photo') downloads (shchur/gnn-benchmark); "
            "the offline copy is in shared/data/graph/photo (see its SOURCE.md).",
        )

    def load(self) -> Data:
        data = _read_sparse_graph_npz(self.path)
        return _finish(data, self.direction == "item_to_query", self.largest_component)


class WikipediaGraph:
    """Wikipedia hyperlink graphs chameleon / squirrel, directed (``wikipedia/<name>_directed.npz``).

    Keys ``node_features``, ``node_labels``, ``edges`` (E x 2). ``direction="source_to_target"``: the
    linking page is the query, the linked page the recommendation. The node-classification masks are
    not loaded.
    """

    def __init__(
        self,
        root: str,
        name: Literal["chameleon", "squirrel"],
        direction: Literal["source_to_target", "target_to_source"] = "source_to_target",
        largest_component: bool = False,
    ) -> None:
        self.path = Path(root) / "wikipedia" / f"{name}_directed.npz"
        self.name, self.direction, self.largest_component = name, direction, largest_component
        _require(
            self.path,
            f"  {root}/\n    wikipedia/\n      {name}_directed.npz   (keys node_features, node_labels, edges)",
            f"yandex-research/heterophilous-graphs data/{name}_directed.npz; "
            "the offline copy is in shared/data/graph/wikipedia (see its SOURCE.md).",
        )

    def load(self) -> Data:
        with np.load(self.path) as f:
            x = torch.from_numpy(f["node_features"].astype(np.float32))
            y = torch.from_numpy(f["node_labels"].astype(np.int64))
            edge_index = torch.from_numpy(f["edges"].astype(np.int64)).t().contiguous()
        data = Data(x=x, edge_index=edge_index, y=y, num_nodes=x.size(0))
        return _finish(data, self.direction == "target_to_source", self.largest_component)


class DirLinkBenchGraph:
    """The graph DirLinkBench's fixed splits index: ``dirlinkbench/<name>/raw/<name>.npz`` after the
    benchmark's own preprocessing (largest weakly connected component, no self-loops, sorted renumbering).

    Features are kept as stored (Cora-ML: TF-IDF values, as DirLinkBench feeds them; PyG's CitationFull
    would binarise them). ``orientation="normalised"`` flips CiteSeer (stored cited -> citing) to
    citing -> cited like every other loader; ``"file"`` keeps the benchmark's own orientation (then use
    the same for :class:`recsci.graph.splits.DirLinkBenchSplit`; a mismatch is detected there).
    """

    def __init__(
        self,
        root: str,
        name: Literal["cora_ml", "citeseer"],
        orientation: Literal["normalised", "file"] = "normalised",
    ) -> None:
        self.path = Path(root) / "dirlinkbench" / name / "raw" / f"{name}.npz"
        self.name, self.orientation = name, orientation
        _require(
            self.path,
            f"  {root}/\n    dirlinkbench/\n      {name}/raw/{name}.npz\n      split/{name}/<0..9>/*.npy",
            "ivam-he/DirLinkBench-SDGAE (raw/ and split/ folders); "
            "the offline copy is in shared/data/graph/dirlinkbench (see its SOURCE.md).",
        )

    @property
    def flipped(self) -> bool:
        return (
            self.orientation == "normalised" and DIRLINKBENCH_FILE_DIRECTION[self.name] == "cited_to_citing"
        )

    def load(self) -> Data:
        return _finish(_read_sparse_graph_npz(self.path), self.flipped, largest_component=True)
