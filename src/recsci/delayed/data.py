"""The one in-memory format every delayed-feedback source produces: a click log with conversion times.

Times are float64 hours since the start of the log. A click that never converts (or converts after
the attribution window) has ``conv_ts = inf``; an engagement signal that never happens has ``inf``.
Features are categorical ids per field (numerical inputs are bucketised by the loaders), so one
embedding table per field is all a model needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd


@dataclass
class ClickLog:
    """Clicks sorted by time, with eventual conversion and engagement times (all in hours)."""

    click_ts: np.ndarray  # [N] float64, ascending
    conv_ts: np.ndarray  # [N] float64, inf when the click never converts within the attribution window
    features: np.ndarray  # [N, F] int32/int64, field-local ids in [0, cardinality)
    cardinalities: tuple[int, ...]
    field_names: tuple[str, ...]
    engagement_ts: np.ndarray  # [N, K] float64, first time of each engagement signal (inf: never)
    engagement_names: tuple[str, ...]
    attribution_hours: float
    name: str = "clicks"
    p_true: np.ndarray | None = None  # [N] ground-truth conversion probability (simulator only)
    truth: dict[str, np.ndarray] | None = None  # further per-click ground truth (simulator only)

    def __post_init__(self) -> None:
        n = self.click_ts.shape[0]
        if self.conv_ts.shape != (n,) or self.features.shape[0] != n or self.engagement_ts.shape[0] != n:
            raise ValueError("ClickLog arrays must all have one row per click")
        if self.features.shape[1] != len(self.cardinalities) or len(self.field_names) != len(
            self.cardinalities
        ):
            raise ValueError("one cardinality and one name per feature field")
        if self.engagement_ts.shape[1] != len(self.engagement_names):
            raise ValueError("one name per engagement signal")
        if n and np.any(np.diff(self.click_ts) < 0):
            raise ValueError("clicks must be sorted by click time")
        if np.any(self.conv_ts < self.click_ts):
            raise ValueError("a conversion cannot precede its click")

    def __len__(self) -> int:
        return int(self.click_ts.shape[0])

    @property
    def span_hours(self) -> float:
        return float(self.click_ts[-1]) if len(self) else 0.0

    @property
    def eventual_label(self) -> np.ndarray:
        """1.0 where the click eventually converts (within the attribution window)."""
        return np.isfinite(self.conv_ts).astype(np.float32)

    def subset(self, mask_or_index: np.ndarray) -> ClickLog:
        """Rows of this log (keeps time order when the selection does)."""
        pick = mask_or_index
        return ClickLog(
            click_ts=self.click_ts[pick],
            conv_ts=self.conv_ts[pick],
            features=self.features[pick],
            cardinalities=self.cardinalities,
            field_names=self.field_names,
            engagement_ts=self.engagement_ts[pick],
            engagement_names=self.engagement_names,
            attribution_hours=self.attribution_hours,
            name=self.name,
            p_true=None if self.p_true is None else self.p_true[pick],
            truth=None if self.truth is None else {k: v[pick] for k, v in self.truth.items()},
        )

    def signal_columns(self, signals: str | list[str] | tuple[str, ...]) -> list[int]:
        """Column indices of engagement signals: ``"all"``, ``"none"``, one name or a list of names."""
        if isinstance(signals, str):
            if signals == "all":
                return list(range(len(self.engagement_names)))
            if signals == "none":
                return []
            signals = [signals]
        unknown = [s for s in signals if s not in self.engagement_names]
        if unknown:
            raise ValueError(
                f"unknown engagement signal(s) {unknown} for {self.name}; it has {list(self.engagement_names)}"
            )
        return [self.engagement_names.index(s) for s in signals]


class ClickLogSource(Protocol):
    """What a ``data.source`` config builds: an object whose ``load()`` returns a :class:`ClickLog`."""

    def load(self) -> ClickLog: ...


def apply_attribution_window(click_ts: np.ndarray, conv_ts: np.ndarray, hours: float) -> np.ndarray:
    """Conversion times with those later than ``hours`` after the click set to inf (not attributed)."""
    conv = conv_ts.astype(np.float64, copy=True)
    conv[conv - click_ts > hours] = np.inf
    return conv


def hash_ids(values: np.ndarray | pd.Series, buckets: int, reserve_zero: bool = True) -> np.ndarray:
    """Stable vectorised hashing of ids (ints or strings) into ``[0, buckets)``; missing values -> 0.

    ``pandas.util.hash_array`` is deterministic across runs and platforms (unlike Python's ``hash``).
    With ``reserve_zero`` the ids land in ``[1, buckets)`` and 0 means "missing".
    """
    series = pd.Series(values)
    missing = series.isna().to_numpy()
    raw = series.fillna("").to_numpy()
    if raw.dtype == object:
        raw = raw.astype(str)
    hashed = pd.util.hash_array(raw, categorize=True).astype(np.uint64)
    if reserve_zero:
        out = (hashed % np.uint64(buckets - 1)).astype(np.int64) + 1
        out[missing] = 0
    else:
        out = (hashed % np.uint64(buckets)).astype(np.int64)
    return out


def log_bucket(counts: np.ndarray, max_bucket: int = 15) -> np.ndarray:
    """``floor(log2(1 + count))`` clipped to ``max_bucket``: count features as small categorical ids."""
    counts = np.maximum(np.asarray(counts, dtype=np.float64), 0.0)
    return np.minimum(np.floor(np.log2(1.0 + counts)), max_bucket).astype(np.int64)


def hour_of_day(unix_seconds: np.ndarray, utc_offset_hours: float = 0.0) -> np.ndarray:
    """Local hour of day (0-23) of unix timestamps."""
    return (((np.asarray(unix_seconds, dtype=np.int64) + int(utc_offset_hours * 3600)) // 3600) % 24).astype(
        np.int64
    )
