"""Group runs by config keys and aggregate their metrics over seeds/splits (mean, std, count).

Everything here is problem-agnostic: groups are keyed by config values, cells are metrics named in
``metrics.json``. A ``pivot`` spreads metrics whose *names* carry a row key (the uncertainty package
writes ``test/<rule>/recall@p<bound>``) over rows, so one table definition can ask for "one row per
rule and bound" without the core knowing what a rule is.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from recsci.core.report.runs import RunRecord, value_of

UNITS = ("fraction", "value")


@dataclass(frozen=True)
class MetricSpec:
    """A column: the metric key (or the ``{metric}`` value of a pivot), its header and its unit.

    ``unit``: ``"fraction"`` (a share or rate: a percent display scales it), ``"value"`` (a count, a
    threshold, a loss: always shown as recorded) or None (inferred from the values, see
    :func:`display_scales`).
    """

    key: str
    label: str
    unit: str | None = None

    def __post_init__(self) -> None:
        if self.unit is not None and self.unit not in UNITS:
            raise ValueError(f"metric {self.key!r}: unit must be one of {UNITS} or absent, got {self.unit!r}")

    @classmethod
    def parse(cls, spec: str | dict[str, Any]) -> MetricSpec:
        if isinstance(spec, str):
            return cls(spec, spec)
        unit = spec.get("unit")
        return cls(str(spec["key"]), str(spec.get("label", spec["key"])), None if unit is None else str(unit))


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation over ``n`` finite values (std is None for one value)."""

    mean: float
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat | None:
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            return None
        std = statistics.stdev(finite) if len(finite) > 1 else None
        return cls(statistics.fmean(finite), std, len(finite))

    def format(self, scale: float = 1.0, digits: int = 4) -> str:
        mean = f"{self.mean * scale:.{digits}f}"
        return mean if self.std is None else f"{mean} ± {self.std * scale:.{digits}f}"


@dataclass
class Group:
    """The runs sharing one value of the ``by`` keys (completed or not)."""

    key: tuple[str, ...]
    runs: list[RunRecord] = field(default_factory=list)

    @property
    def label(self) -> str:
        return " / ".join(self.key) or "all runs"

    @property
    def completed(self) -> list[RunRecord]:
        return [r for r in self.runs if r.completed]

    @property
    def not_completed(self) -> list[RunRecord]:
        return [r for r in self.runs if not r.completed]

    def values(self, metric: str) -> list[float]:
        return [r.metrics[metric] for r in self.completed if metric in r.metrics]

    def stat(self, metric: str) -> Stat | None:
        return Stat.of(self.values(metric))

    def over_values(self, over: Sequence[str]) -> list[str]:
        return [", ".join(value_of(r, k) for k in over) for r in self.completed]


def group_runs(
    runs: Sequence[RunRecord], by: Sequence[str], order: dict[str, list[str]] | None = None
) -> list[Group]:
    """Runs grouped by their ``by`` values; groups in ``order`` (per key) then natural sort order."""
    groups: dict[tuple[str, ...], Group] = {}
    for run in runs:
        key = tuple(value_of(run, k) for k in by)
        groups.setdefault(key, Group(key)).runs.append(run)
    return sorted(groups.values(), key=lambda g: _order_key(g.key, by, order or {}))


def _order_key(key: tuple[str, ...], by: Sequence[str], order: dict[str, list[str]]) -> list[Any]:
    out: list[Any] = []
    for name, value in zip(by, key, strict=True):
        preferred = [str(v) for v in order.get(name, [])]
        out.append((preferred.index(value) if value in preferred else len(preferred), natural_key(value)))
    return out


def natural_key(text: str) -> list[Any]:
    """Sort "2" before "10", and numbers before words, without failing on mixed values."""
    return [
        (0, float(p), "") if _is_number(p) else (1, 0.0, p) for p in re.split(r"(-?\d+(?:\.\d+)?)", text) if p
    ]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def default_metrics(runs: Sequence[RunRecord], prefix: str = "test/", limit: int = 12) -> list[MetricSpec]:
    """Without a metric list: the ``test/*`` metrics every completed run has (at most ``limit``)."""
    completed = [r for r in runs if r.completed]
    if not completed:
        return []
    shared = set.intersection(*(set(r.metrics) for r in completed))
    keys = sorted(k for k in shared if k.startswith(prefix)) or sorted(shared)
    return [MetricSpec(k, k) for k in keys[:limit]]


# -- pivot -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pivot:
    """Metric names as ``pattern`` (e.g. ``test/{rule}/{metric}@p{bound}``) -> rows by ``rows`` fields.

    ``{metric}`` is the column; every other field becomes a row key, ordered as in ``rows``.
    """

    pattern: str
    rows: tuple[str, ...]

    def __post_init__(self) -> None:
        fields = re.findall(r"{(\w+)}", self.pattern)
        if "metric" not in fields:
            raise ValueError(f"pivot pattern {self.pattern!r} needs a {{metric}} field (the column)")
        unknown = set(self.rows) - set(fields)
        if unknown:
            raise ValueError(f"pivot rows {sorted(unknown)} are not fields of {self.pattern!r}")

    @property
    def regex(self) -> re.Pattern[str]:
        parts = re.split(r"{(\w+)}", self.pattern)
        # Even parts are literal text, odd parts field names; fields never span a "/".
        regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+?)" for i, p in enumerate(parts))
        return re.compile(f"^{regex}$")

    def split(self, metrics: dict[str, float]) -> dict[tuple[tuple[str, ...], str], float]:
        """``{(row key, column): value}`` for every metric name the pattern matches."""
        regex, out = self.regex, {}
        for name, value in metrics.items():
            match = regex.match(name)
            if match:
                out[(tuple(match[r] for r in self.rows), match["metric"])] = value
        return out


# -- the table model shared by the Markdown and HTML writers ----------------------------------------


@dataclass
class TableModel:
    """Header and rows of text cells; ``kinds[i]`` is "ours" or "published" (for styling)."""

    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)

    def add(self, cells: list[str], kind: str = "ours") -> None:
        self.rows.append(cells)
        self.kinds.append(kind)


@dataclass
class Layout:
    """How to lay out the results table (from a table definition or ``recsci report`` flags)."""

    by: list[str]
    over: list[str]
    metrics: list[MetricSpec]
    pivot: Pivot | None = None
    scale: float = 1.0  # display scale of fractions: 100 shows them as percentages (see display_scales)
    digits: int = 4
    order: dict[str, list[str]] = field(default_factory=dict)  # preferred order of values, per key


def column_values(groups: Sequence[Group], layout: Layout) -> dict[str, list[float]]:
    """Every value each metric column aggregates, over the completed runs of all groups."""
    values: dict[str, list[float]] = {m.key: [] for m in layout.metrics}
    for group in groups:
        if layout.pivot is None:
            for key in values:
                values[key] += group.values(key)
            continue
        for run in group.completed:
            for (_, column), value in layout.pivot.split(run.metrics).items():
                if column in values:
                    values[column].append(value)
    return values


def display_scales(
    layout: Layout, values: dict[str, Sequence[float]], published: Sequence[dict[str, float]] = ()
) -> dict[str, float]:
    """The scale each metric column is shown at: ``layout.scale`` for fractions, 1 for anything else.

    A percent display means "fractions as percentages"; a count (``rec_queries``: 828) or a threshold (a
    query-degree bucket edge: 2) times 100 would read as 82800 % or 200 %. A column declares its unit
    (:class:`MetricSpec`), or is a fraction when every finite value it shows, ours and published, lies in
    [0, 1]: one value outside proves the metric is not a share. The values cannot tell a threshold that
    happens to lie in [0, 1] (a degree edge of 1 on every split) from a share: declare it ``unit: value``.
    """
    scales = {}
    for metric in layout.metrics:
        shown = [*values.get(metric.key, []), *(row[metric.key] for row in published if metric.key in row)]
        fraction = (
            metric.unit == "fraction"
            if metric.unit is not None
            else all(0.0 <= v <= 1.0 for v in shown if math.isfinite(v))
        )
        scales[metric.key] = layout.scale if fraction else 1.0
    return scales


def results_table(
    groups: Sequence[Group], layout: Layout, scales: dict[str, float] | None = None
) -> TableModel:
    """One row per group (per group and pivot row key with a pivot): count, what was aggregated, metrics.

    ``scales``: per metric (:func:`display_scales`; by default from these groups' values alone).
    """
    scales = display_scales(layout, column_values(groups, layout)) if scales is None else scales
    pivot_cols = list(layout.pivot.rows) if layout.pivot else []
    over_label = ", ".join(layout.over) or "runs"
    header = [*layout.by, *pivot_cols, "n", over_label, *[m.label for m in layout.metrics], "source"]
    table = TableModel(header)
    for group in groups:
        for pivot_key, cells in _group_rows(group, layout, scales):  # one row, or one per pivot row key
            n = len(group.completed)
            overs = compact_values(group.over_values(layout.over))
            missing = len(group.not_completed)
            source = "ours" + (f" ({missing} not completed)" if missing else "")
            table.add([*group.key, *pivot_key, str(n), overs, *cells, source])
    return table


def _group_rows(
    group: Group, layout: Layout, scales: dict[str, float]
) -> list[tuple[tuple[str, ...], list[str]]]:
    if layout.pivot is None:
        return [((), [_cell(group.stat(m.key), scales[m.key], layout.digits) for m in layout.metrics])]
    collected: dict[tuple[str, ...], dict[str, list[float]]] = {}
    for run in group.completed:
        for (row, column), value in layout.pivot.split(run.metrics).items():
            collected.setdefault(row, {}).setdefault(column, []).append(value)
    rows = []
    for row in sorted(collected, key=lambda r: _order_key(r, layout.pivot.rows, layout.order)):
        cells = [
            _cell(Stat.of(collected[row].get(m.key, [])), scales[m.key], layout.digits)
            for m in layout.metrics
        ]
        rows.append((row, cells))
    return rows


def _cell(stat: Stat | None, scale: float, digits: int) -> str:
    return "-" if stat is None else stat.format(scale, digits)


def compact_values(values: Sequence[str]) -> str:
    """``0, 1, 2, 3`` -> ``0-3``; other lists joined with commas, duplicates kept (they are reruns)."""
    if not values:
        return "-"
    if all(v.lstrip("-").isdigit() for v in values) and len(values) > 2:
        ints = sorted(int(v) for v in values)
        if ints == list(range(ints[0], ints[0] + len(ints))):
            return f"{ints[0]}-{ints[-1]}"
    return ", ".join(sorted(values, key=natural_key))
