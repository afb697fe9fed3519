"""Real datasets through the real loaders (skipped when RECSCI_DATA is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsci.graph.datasets import CitationFullGraph
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
