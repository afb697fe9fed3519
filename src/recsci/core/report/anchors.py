"""Published numbers ("anchor rows") shown beside ours, marked as published.

An anchors file (YAML, one per table)::

    source: DirLinkBench, Cora-ML, mean over the 10 published splits
    unit: percent            # percent | fraction: what the file's numbers are; ours are fractions
    rows:
      - label: SDGAE-D
        n: 10 splits         # optional, shown in the n column
        metrics: {test/hits@100: 61.40, test/mrr: 14.21}

Numbers are converted to fractions on load, so they aggregate and display exactly like ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from recsci.core.report.aggregate import Layout, Stat, TableModel, display_scales
from recsci.core.validation import check_keys

_UNITS = {"percent": 0.01, "fraction": 1.0}


@dataclass(frozen=True)
class Anchor:
    label: str
    metrics: dict[str, float]  # as fractions
    n: str = ""


@dataclass(frozen=True)
class Anchors:
    source: str
    rows: tuple[Anchor, ...]

    @classmethod
    def load(cls, path: Path) -> Anchors:
        raw: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
        check_keys(path, "", raw, ("source", "unit", "rows"), "an anchors file")
        for i, row in enumerate(raw.get("rows") or []):
            check_keys(path, f"rows[{i}].", row, ("label", "n", "metrics"), "an anchor row")
        unit = str(raw.get("unit", "fraction"))
        if unit not in _UNITS:
            raise ValueError(f"{path}: unit must be one of {sorted(_UNITS)}, got {unit!r}")
        factor = _UNITS[unit]
        rows = tuple(
            Anchor(
                label=str(row["label"]),
                metrics={str(k): float(v) * factor for k, v in (row.get("metrics") or {}).items()},
                n=str(row.get("n", "")),
            )
            for row in raw.get("rows") or []
        )
        return cls(source=str(raw.get("source", path.name)), rows=rows)


def add_anchor_rows(
    table: TableModel, anchors: Anchors, layout: Layout, scales: dict[str, float] | None = None
) -> None:
    """Append one "published" row per anchor: its label in the first key column, its metrics aligned.

    ``scales``: per metric, the same as our rows' (:func:`~recsci.core.report.aggregate.display_scales`;
    by default from the published values alone).
    """
    if scales is None:
        scales = display_scales(layout, {}, [anchor.metrics for anchor in anchors.rows])
    n_keys = len(layout.by) + (len(layout.pivot.rows) if layout.pivot else 0)
    for anchor in anchors.rows:
        keys = [anchor.label, *["" for _ in range(max(n_keys - 1, 0))]] if n_keys else []
        cells = [
            Stat(anchor.metrics[m.key], None, 1).format(scales[m.key], layout.digits)
            if m.key in anchor.metrics
            else ""
            for m in layout.metrics
        ]
        # The source itself is named once, in the report's facts: every row would repeat it.
        source = "published" if n_keys else f"published: {anchor.label}"
        table.add([*keys, anchor.n or "-", "-", *cells, source], kind="published")
