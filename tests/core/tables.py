"""A tiny table definition over the synthetic graph, for the `recsci table` tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.conftest import FAST


def write_tiny_table(tmp_path: Path, name: str, sweeps: dict[str, list[str]]) -> Path:
    """Write ``tiny.yaml`` (rows by model over seeds, test AUC) and a README with the table's markers."""
    path = tmp_path / "tiny.yaml"
    spec = {
        "name": name,
        "problem": "graph",
        "sweeps": [{"name": sweep, "overrides": overrides} for sweep, overrides in sweeps.items()],
        "by": ["model"],
        "over": ["seed"],
        "metrics": [{"key": "test/auc", "label": "AUC"}],
        "readme": "README.md",
    }
    path.write_text(yaml.safe_dump(spec))
    (tmp_path / "README.md").write_text(
        f"# tiny\n\n<!-- recsci-table: {name} -->\n<!-- /recsci-table: {name} -->\n"
    )
    return path


def two_sweep_table(tmp_path: Path, name: str) -> Path:
    """A two-sweep table of 1-epoch runs: GraphSAGE over seeds 0-2 ('sage') and GCN on seed 0 ('gcn')."""
    common = ["logger=none", "trainer.max_epochs=1", *FAST[1:]]
    sweeps = {"sage": ["seed=0,1,2", *common], "gcn": ["model=gcn", "sampler=full_batch", "seed=0", *common]}
    return write_tiny_table(tmp_path, name, sweeps)
