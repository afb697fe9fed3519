"""Paired comparisons: row A minus row B on the same split or seed, with wins and a paired t statistic.

Two rows that differ in one setting (``model=blade_relatedness`` vs ``model=blade``) are best compared
split by split: the spread between splits is often larger than the effect, and it cancels in each
difference. A :class:`Comparison` names the settings of each side; every other ``by`` key stays
fixed within a line of the table (one line per value of the keys neither side names) and the runs are
matched on the ``over`` keys.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from recsci.core.report.aggregate import Layout, TableModel, natural_key
from recsci.core.report.runs import RunRecord, value_of


@dataclass(frozen=True)
class Comparison:
    """``a`` minus ``b``: each a mapping of ``by`` keys to the value that side has (as shown in tables)."""

    a: tuple[tuple[str, str], ...]
    b: tuple[tuple[str, str], ...]
    label: str = ""

    @classmethod
    def parse(cls, spec: dict[str, Any]) -> Comparison:
        """From ``{a: {model: blade_relatedness}, b: {model: blade}, label: ...}`` (label optional)."""
        if (
            not isinstance(spec, dict)
            or set(spec) - {"a", "b", "label"}
            or not isinstance(spec.get("a"), dict)
            or not isinstance(spec.get("b"), dict)
        ):
            raise ValueError(
                f"a comparison is {{a: {{key: value}}, b: {{key: value}}, label: text}}, got {spec!r}"
            )
        a = tuple((str(k), str(v)) for k, v in spec["a"].items())
        b = tuple((str(k), str(v)) for k, v in spec["b"].items())
        if not a or not b or a == b:
            raise ValueError(f"a comparison needs two different, non-empty sides, got {spec!r}")
        return cls(a, b, str(spec.get("label") or ""))

    @classmethod
    def from_cli(cls, a: str, b: str) -> Comparison:
        """From ``"model=blade_relatedness"`` and ``"model=blade"`` (comma-separated key=value pairs)."""

        def side(text: str) -> dict[str, str]:
            pairs = [p for p in text.split(",") if p]
            if not pairs or any("=" not in p for p in pairs):
                raise ValueError(f"--compare: expected key=value[,key=value...], got {text!r}")
            return dict(p.split("=", 1) for p in pairs)

        return cls.parse({"a": side(a), "b": side(b)})

    @property
    def keys(self) -> set[str]:
        return {k for k, _ in self.a} | {k for k, _ in self.b}

    @property
    def title(self) -> str:
        def show(side: tuple[tuple[str, str], ...]) -> str:
            return ", ".join(f"{k}={v}" for k, v in side)

        return self.label or f"{show(self.a)} - {show(self.b)}"

    def check(self, layout: Layout) -> None:
        """Both sides may only name ``by`` keys (an ``over`` key would leave nothing to match on)."""
        outside = sorted(self.keys - set(layout.by))
        if outside:
            raise ValueError(
                f"comparison {self.title!r}: {outside} not among the row keys (by: {layout.by}); "
                "a side picks rows, so it names by keys only"
            )


def check_comparisons(comparisons: Sequence[Comparison], layout: Layout) -> None:
    """Raise ValueError unless every comparison fits ``layout`` (sides name by keys; no pivot)."""
    if comparisons and layout.pivot is not None:
        raise ValueError("paired comparisons need one row per run group: they do not combine with a pivot")
    for comparison in comparisons:
        comparison.check(layout)


@dataclass(frozen=True)
class PairedStat:
    """Differences ``a - b`` over matched pairs: mean, how many favour ``a``, paired t (None below 2)."""

    mean: float
    higher: int
    n: int
    t: float | None

    @classmethod
    def of(cls, diffs: Sequence[float]) -> PairedStat | None:
        if not diffs:
            return None
        mean = statistics.fmean(diffs)
        t = None
        if len(diffs) > 1:
            sd = statistics.stdev(diffs)
            if sd > 0:
                t = mean / (sd / math.sqrt(len(diffs)))
            else:  # every pair differs by the same amount: infinitely sure of it, or of no difference
                t = math.copysign(math.inf, mean) if mean else 0.0
        return cls(mean, sum(d > 0 for d in diffs), len(diffs), t)

    def format(self, scale: float, digits: int) -> str:
        text = f"{self.mean * scale:+.{digits}f} ({self.higher}/{self.n}"
        return text + (f", t {self.t:.1f})" if self.t is not None else ")")


def paired_table(
    runs: Sequence[RunRecord], layout: Layout, comparisons: Sequence[Comparison], scales: dict[str, float]
) -> TableModel:
    """One line per comparison and value of the ``by`` keys neither side names; a cell per metric."""
    check_comparisons(comparisons, layout)
    completed = [r for r in runs if r.completed]
    rest_keys = sorted(set(layout.by) - set().union(*(c.keys for c in comparisons)), key=layout.by.index)
    table = TableModel(["comparison", *rest_keys, "pairs", *[m.label for m in layout.metrics]])
    for comparison in comparisons:
        free = [k for k in layout.by if k not in comparison.keys]
        sides = {
            name: _side(completed, side, free, layout.over)
            for name, side in (("a", comparison.a), ("b", comparison.b))
        }
        for rest in sorted(set(sides["a"]) & set(sides["b"]), key=lambda r: [natural_key(v) for v in r]):
            a, b = sides["a"][rest], sides["b"][rest]
            matched = sorted(set(a) & set(b))
            cells = []
            for metric in layout.metrics:
                diffs = [
                    _mean(a[m], metric.key) - _mean(b[m], metric.key)
                    for m in matched
                    if _mean(a[m], metric.key) is not None and _mean(b[m], metric.key) is not None
                ]
                stat = PairedStat.of(diffs)
                cells.append("-" if stat is None else stat.format(scales.get(metric.key, 1.0), layout.digits))
            shown_rest = [dict(zip(free, rest, strict=True)).get(k, "-") for k in rest_keys]
            table.add([comparison.title, *shown_rest, str(len(matched)), *cells])
    return table


def _side(
    runs: Sequence[RunRecord], side: tuple[tuple[str, str], ...], free: Sequence[str], over: Sequence[str]
) -> dict[tuple[str, ...], dict[tuple[str, ...], list[RunRecord]]]:
    """The side's runs by (values of the free by keys) then by (values of the over keys)."""
    out: dict[tuple[str, ...], dict[tuple[str, ...], list[RunRecord]]] = {}
    for run in runs:
        if all(value_of(run, k) == v for k, v in side):
            rest = tuple(value_of(run, k) for k in free)
            match = tuple(value_of(run, k) for k in over)
            out.setdefault(rest, {}).setdefault(match, []).append(run)
    return out


def _mean(runs: Sequence[RunRecord], metric: str) -> float | None:
    """A pair member's value: its run's, or the mean of its reruns (finite values only)."""
    values = [r.metrics[metric] for r in runs if metric in r.metrics and math.isfinite(r.metrics[metric])]
    return statistics.fmean(values) if values else None
