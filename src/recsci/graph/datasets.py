"""Real directed graphs, read in place through PyG's own dataset classes.

Datasets live outside the repo under ``paths.data_dir`` (``RECSCI_DATA``) and may be read-only, so
PyG's processed files go to a cache dir instead of beside the raw files. Every loader returns a
PyG ``Data`` whose ``edge_index`` is oriented query -> recommended item (for citations: citing ->
cited), whatever the file's own convention.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from torch_geometric.data import Data
from torch_geometric.datasets import CitationFull

from recsci.core.errors import DataNotFoundError


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


class CitationFullGraph:
    """Cora-ML or CiteSeer from PyG's ``CitationFull(..., to_undirected=False)`` layout.

    ``direction``: the orientation of the raw rows in the file (``citing_to_cited`` for Cora-ML's
    graph2gauss file); ``cited_to_citing`` files are reversed on load so edges always point from
    the citing (query) paper to the cited (recommended) one.
    """

    def __init__(
        self,
        root: str,
        name: Literal["cora_ml", "citeseer", "dblp", "pubmed", "cora"],
        cache_dir: str,
        direction: Literal["citing_to_cited", "cited_to_citing"] = "citing_to_cited",
    ) -> None:
        self.root, self.name, self.cache_dir, self.direction = root, name, cache_dir, direction
        raw_file = Path(root) / name / "raw" / f"{name}.npz"
        if not raw_file.is_file():
            raise DataNotFoundError(
                str(raw_file),
                f"  {root}/\n    {name}/\n      raw/\n        {name}.npz   (PyG CitationFull format)",
                "PyG downloads it with torch_geometric.datasets.CitationFull(root, name); "
                f"the offline copy is in shared/data/graph/{name} (see its SOURCE.md).",
            )

    def load(self) -> Data:
        data = _CachedCitationFull(self.root, self.name, self.cache_dir)[0]
        if self.direction == "cited_to_citing":
            data.edge_index = data.edge_index.flip(0)
        return data
