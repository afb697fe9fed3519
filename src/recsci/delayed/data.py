"""The one in-memory format every delayed-feedback source produces: a click log with conversion times.

Times are float64 hours since the start of the log. A click that never converts (or converts after
the attribution window) has ``conv_ts = inf``; an engagement signal that never happens has ``inf``.
Features are categorical ids per field (numerical inputs are bucketised by the loaders), so one
embedding table per field is all a model needs.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from recsci.core.errors import RecsciError


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


def release_freed_memory() -> None:
    """Return freed heap memory to the system (glibc ``malloc_trim``; a no-op elsewhere).

    A loader that reads block by block frees thousands of small per-block arrays; glibc keeps those pages
    (on the 100 M-row Taobao file 1.5 GiB above the 1.6 GiB of columns kept) unless asked, and the sorts
    that follow need the room.
    """
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class DataFormatError(RecsciError, ValueError):
    """A data file exists but a line in it does not have the format its loader reads."""

    def __init__(self, path: Path | str, problem: str, expected: str) -> None:
        self.path = str(path)
        super().__init__(
            f"{path}: {problem}\nExpected: {expected}\n"
            "Fix or drop the offending line(s) (or re-download the file: a truncated or edited copy is the usual "
            "cause), then load again."
        )


def scan_csv(
    path: Path,
    column_types: dict[str, pa.DataType],
    expected: str,
    column_names: list[str] | None = None,
    include_columns: list[str] | None = None,
    delimiter: str = ",",
    null_values: tuple[str, ...] = (),
    block_bytes: int = 64 << 20,
) -> Iterator[pa.RecordBatch]:
    """Record batches of a delimited text file, read by pyarrow's streaming (multi-threaded) CSV reader.

    Only one batch of ``block_bytes`` of text is held at a time, so a caller that keeps compact NumPy columns
    per batch needs about those columns' memory, not the file's. ``column_names=None`` reads them from the
    header line. A parse or conversion error (wrong number of fields, a non-number in a numeric column, an
    empty value where none is allowed) becomes a :class:`DataFormatError` naming the file and the expected
    format (``expected``).
    """
    read_options = pa_csv.ReadOptions(column_names=column_names, block_size=block_bytes)
    convert_options = pa_csv.ConvertOptions(
        column_types=column_types,
        include_columns=include_columns,
        null_values=list(null_values),
        strings_can_be_null=bool(null_values),
        quoted_strings_can_be_null=bool(null_values),
    )
    try:
        reader = pa_csv.open_csv(
            path,
            read_options=read_options,
            parse_options=pa_csv.ParseOptions(delimiter=delimiter),
            convert_options=convert_options,
        )
        for batch in reader:
            if batch.num_rows:
                yield batch
    except (pa.ArrowInvalid, pa.ArrowKeyError) as error:
        raise DataFormatError(path, str(error), expected) from None


def dictionary_hash_ids(column: pa.Array | pa.ChunkedArray, buckets: int) -> np.ndarray:
    """:func:`hash_ids` of a dictionary-encoded string column, hashing each distinct string once.

    Hashing is elementwise, so hashing the dictionary and indexing by the codes gives exactly
    ``hash_ids(strings, buckets)`` (null -> 0) without materialising one Python string per row.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    # pandas hashes a string's UTF-8 bytes whatever array holds it: hashing the distinct strings as an object
    # array is what hash_ids does after its factorisation (tested to agree), minus the factorisation.
    strings = column.dictionary.to_numpy(zero_copy_only=False).astype(object)
    hashed_values = _hash_buckets(pd.util.hash_array(strings, categorize=False), buckets, reserve_zero=True)
    codes = column.indices.fill_null(0).to_numpy()
    out = hashed_values[codes] if hashed_values.size else np.zeros(len(column), dtype=np.int64)
    if column.null_count:
        out[column.is_null().to_numpy(zero_copy_only=False)] = 0
    return out


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
    return _hash_buckets(pd.util.hash_array(raw, categorize=True), buckets, reserve_zero, missing)


def _hash_buckets(
    hashed: np.ndarray, buckets: int, reserve_zero: bool, missing: np.ndarray | None = None
) -> np.ndarray:
    hashed = hashed.astype(np.uint64, copy=False)
    if reserve_zero:
        out = (hashed % np.uint64(buckets - 1)).astype(np.int64) + 1
        if missing is not None:
            out[missing] = 0
    else:
        out = (hashed % np.uint64(buckets)).astype(np.int64)
    return out


def log_bucket(counts: np.ndarray, max_bucket: int = 15) -> np.ndarray:
    """``floor(log2(1 + count))`` clipped to ``max_bucket``: count features as small categorical ids.

    Computed as the number of powers of two up to ``1 + count`` (exact, and without the float64 temporaries
    of ``np.log2``: on 58 M Taobao clicks those were the loader's peak).
    """
    powers = 2.0 ** np.arange(max_bucket + 1)
    return np.searchsorted(powers, 1 + np.maximum(counts, 0), side="right") - 1


def hour_of_day(unix_seconds: np.ndarray, utc_offset_hours: float = 0.0) -> np.ndarray:
    """Local hour of day (0-23) of unix timestamps."""
    return (((np.asarray(unix_seconds, dtype=np.int64) + int(utc_offset_hours * 3600)) // 3600) % 24).astype(
        np.int64
    )


@dataclass(frozen=True)
class FlipRates:
    """How often an observed negative at elapsed time e later converts, with and without engagement by e."""

    elapsed_hours: float
    engaged_negatives: int
    engaged_flips: int
    other_negatives: int
    other_flips: int

    @property
    def engaged_rate(self) -> float:
        return self.engaged_flips / max(self.engaged_negatives, 1)

    @property
    def other_rate(self) -> float:
        return self.other_flips / max(self.other_negatives, 1)

    @property
    def engaged_share_of_flips(self) -> float:
        return self.engaged_flips / max(self.engaged_flips + self.other_flips, 1)


def flip_rates(log: ClickLog, elapsed_hours: float, matured_only: bool = True) -> FlipRates:
    """Flip statistics of a click log at elapsed time ``elapsed_hours`` after each click.

    An observed negative at e: a click not converted by click + e. It flips when it converts later (within
    the log's attribution window: ``conv_ts`` is already inf beyond it). Engaged: any engagement signal by
    click + e. With ``matured_only`` only clicks whose attribution window closed before the log's last click
    count, so every flip that can happen is seen; without it, recent clicks (cut off by the end of the data
    before they could convert) dilute every rate.
    """
    click, conv = log.click_ts, log.conv_ts
    population = click + log.attribution_hours <= log.span_hours if matured_only else np.ones(len(log), bool)
    negative = population & ~(conv <= click + elapsed_hours)
    engaged = (log.engagement_ts <= (click + elapsed_hours)[:, None]).any(axis=1)
    flips = np.isfinite(conv)
    return FlipRates(
        elapsed_hours=elapsed_hours,
        engaged_negatives=int((negative & engaged).sum()),
        engaged_flips=int((negative & engaged & flips).sum()),
        other_negatives=int((negative & ~engaged).sum()),
        other_flips=int((negative & ~engaged & flips).sum()),
    )
