"""Taobao UserBehavior (Alibaba Tianchi dataset 649) as a delayed-conversion click log.

File: ``UserBehavior.csv`` without header: user_id, item_id, category_id, behavior_type in {pv, cart,
fav, buy}, unix timestamp (s). The 84k-row prefix shipped under ``$RECSCI_DATA`` and the full 100 M-row
download share the format.

Examples, per (user, item) pair (rows outside the official 9-day window are dropped):

- click: the pair's first ``pv``;
- conversion: the pair's first ``buy``, if it is not before the click (then the delay is buy - click;
  conversions later than ``attribution_hours`` do not count);
- engagement: the pair's first ``cart`` and first ``fav`` at or after the click;
- features: hashed user, item and category ids, hour of day (UTC+8), and history counts known at click
  time (log2-bucketised): the user's earlier views, earlier buys, earlier views in the category, and the
  item's earlier views.

Reading is pyarrow's streaming CSV reader, one block of about ``chunk_rows`` lines at a time, each block
filtered to the window and kept as compact NumPy columns (17 bytes per row); everything after is one sort
by (user, item), segment reductions and ``searchsorted``. Peak memory on a generated 100 M-row file is in
``experiments/bench/README.md``. The processed log is
cached under ``cache_dir``, keyed by the file's size and modification time and the settings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import pyarrow as pa
from pydantic import Field

from recsci.core.errors import DataNotFoundError
from recsci.delayed.data import (
    ClickLog,
    DataFormatError,
    hash_ids,
    hour_of_day,
    log_bucket,
    release_freed_memory,
    scan_csv,
)

WINDOW_START = 1511539200  # 2017-11-25 00:00:00 UTC+8
WINDOW_END = 1512316800  # 2017-12-04 00:00:00 UTC+8
BEHAVIORS = {"pv": 0, "cart": 1, "fav": 2, "buy": 3}
FILE = "UserBehavior.csv"
LINE_FORMAT = (
    "5 comma-separated fields per line, no header: user_id,item_id,category_id,behavior_type,timestamp"
)
MAX_ID = 1 << 31  # user and item ids share one int64 per pair
ID_MASK = MAX_ID - 1
BYTES_PER_LINE = 34  # about, in the official file: the reader's block size for ``chunk_rows`` lines


class TaobaoUserBehavior:
    """Loader of ``<root>/UserBehavior.csv``; ``load()`` returns a :class:`ClickLog` (see module doc)."""

    def __init__(
        self,
        root: str,
        cache_dir: str | None = None,
        attribution_hours: Annotated[float, Field(gt=0.0)] = 72.0,
        id_buckets: Annotated[int, Field(ge=16)] = 65536,
        chunk_rows: Annotated[int, Field(ge=1000)] = 500_000,
    ) -> None:
        self.path = Path(root) / FILE
        if not self.path.is_file():
            raise DataNotFoundError(
                str(self.path),
                f"  {root}/\n    {FILE}   (no header: user_id,item_id,category_id,behavior_type,timestamp)",
                "the Tianchi 'UserBehavior' dataset (https://tianchi.aliyun.com/dataset/649); a real 84k-row "
                "prefix is in shared/data/delayed/taobao_userbehavior (see its SOURCE.md).",
            )
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.attribution_hours, self.id_buckets, self.chunk_rows = attribution_hours, id_buckets, chunk_rows

    def read_events(self) -> dict[str, np.ndarray]:
        """The rows inside the official window as compact columns: int32 ids, int8 behaviour codes
        (``BEHAVIORS``), int32 seconds since ``WINDOW_START`` (about 17 bytes per row)."""
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("user", "item", "cat", "behavior", "ts")}
        column_types = dict.fromkeys(("user", "item", "cat", "ts"), pa.int64())
        column_types["behavior"] = pa.dictionary(pa.int32(), pa.string())
        for batch in scan_csv(
            self.path,
            column_types,
            LINE_FORMAT,
            column_names=["user", "item", "cat", "behavior", "ts"],
            block_bytes=self.chunk_rows * BYTES_PER_LINE,
        ):
            ts = batch.column("ts").to_numpy()
            keep = (ts >= WINDOW_START) & (ts < WINDOW_END)
            behavior = batch.column("behavior")
            # Map the few distinct strings, not the rows.
            table = np.array([BEHAVIORS.get(v, -1) for v in behavior.dictionary.to_pylist()], dtype=np.int8)
            codes = table[behavior.indices.to_numpy()]
            if (codes < 0).any():
                bad = sorted(
                    {v for v, c in zip(behavior.dictionary.to_pylist(), table, strict=True) if c < 0}
                )
                raise DataFormatError(self.path, f"unknown behavior_type values {bad[:5]}", LINE_FORMAT)
            for name in ("user", "item", "cat"):
                ids = batch.column(name).to_numpy()[keep]
                if ids.size and (ids.min() < 0 or ids.max() >= MAX_ID):
                    raise DataFormatError(
                        self.path, f"a {name} id outside [0, 2^31): {ids.min()} .. {ids.max()}", LINE_FORMAT
                    )
                parts[name].append(ids.astype(np.int32))
            parts["behavior"].append(codes[keep])
            parts["ts"].append((ts[keep] - WINDOW_START).astype(np.int32))
        if not sum(part.size for part in parts["ts"]):
            raise DataFormatError(
                self.path, "no rows inside the official window (2017-11-25 to 2017-12-03, UTC+8)", LINE_FORMAT
            )
        # One column at a time, so the concatenation needs one column's extra memory, not the table's.
        events = {name: np.concatenate(parts.pop(name)) for name in list(parts)}
        release_freed_memory()
        return events

    def load(self) -> ClickLog:
        cache = self._cache_file()
        if cache is not None and cache.is_file():
            return _from_npz(cache, self.attribution_hours)
        log = build_click_log(self.read_events(), self.attribution_hours, self.id_buckets)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            _to_npz(cache, log)
        return log

    def _cache_file(self) -> Path | None:
        if self.cache_dir is None:
            return None
        stat = self.path.stat()
        key = json.dumps([stat.st_size, stat.st_mtime_ns, self.attribution_hours, self.id_buckets, 1])
        return self.cache_dir / f"clicks_{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"


NO_TIME = np.iinfo(np.int32).max  # "never" for int32 seconds
TS_BITS = 20  # seconds since the window start: 9 days = 777,600 s < 2^20


def _bits(n: int) -> int:
    return max(1, int(n).bit_length())


def _segment_first(ts: np.ndarray, mask: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per segment (rows ``starts[k]`` up to the next start), the minimum of ``ts`` where ``mask`` (or NO_TIME)."""
    return np.minimum.reduceat(np.where(mask, ts, NO_TIME), starts)


def _pack(group: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """(group, ts) as one int64 that sorts by group, then time (groups >= 0, ts < 2^TS_BITS)."""
    return (group.astype(np.int64) << TS_BITS) | ts


class _Queries:
    """Query (group, time) keys sorted once, for several counts over the same groups (one argsort)."""

    def __init__(self, group: np.ndarray, ts: np.ndarray) -> None:
        key = _pack(group, ts)
        order = np.argsort(key)
        self.key = key[order]
        del key
        self.order = order.astype(np.int32) if order.size < 2**31 else order
        del order
        group_sorted = self.key >> TS_BITS
        self.group_first = np.flatnonzero(np.concatenate([[True], group_sorted[1:] != group_sorted[:-1]]))
        self.group_start_key = group_sorted[self.group_first] << TS_BITS
        self.group_size = np.diff(np.append(self.group_first, self.key.size))


def _count_before(group: np.ndarray, ts: np.ndarray, queries: _Queries) -> np.ndarray:
    """For each query, in the queries' sorted order, how many events of its group happened strictly before
    its time (``group`` is a temporary: it becomes the packed keys in place).

    Events and queries are packed (group, ts) int64 keys, so a count is the event keys below the query's key
    minus those below its group's first key: one ``searchsorted`` per query, in sorted order (numpy's binary
    search then starts near the previous hit; in random order it was ~8x slower, cache misses), and one
    per distinct group.
    """
    key = group.astype(np.int64, copy=False)
    key <<= TS_BITS
    key |= ts
    key.sort()
    before = np.searchsorted(key, queries.key, side="left")
    group_start = np.searchsorted(key, queries.group_start_key, side="left").astype(
        np.int32 if key.size < 2**31 else np.int64
    )
    before -= np.repeat(group_start, queries.group_size)
    return before


def _history_bucket(out: np.ndarray, group: np.ndarray, ts: np.ndarray, queries: _Queries) -> None:
    """``out[i] = log_bucket(count of group's events before query i)``, scattered from the sorted order."""
    before = _count_before(group, ts, queries)
    step = 1 << 22  # log_bucket's temporaries per slice, not per column
    for start in range(0, before.size, step):
        out[queries.order[start : start + step]] = log_bucket(before[start : start + step])


def build_click_log(events: dict[str, np.ndarray], attribution_hours: float, id_buckets: int) -> ClickLog:
    """Click log from the in-window events of :meth:`TaobaoUserBehavior.read_events` (see the module doc).

    The caller's dict is emptied as its columns are used, so their memory goes as soon as possible.
    Everything is sorts, segment reductions and ``searchsorted``: rows are sorted once by (user, item), each
    pair's first view / buy / cart / fav is a ``minimum.reduceat`` over its segment.
    """
    pair_code = _pair_code(events.pop("user"), events.pop("item"))
    order = np.argsort(pair_code)
    pair_code = pair_code[order]
    ts = events.pop("ts")[order]
    behavior = events.pop("behavior")[order]
    cat = events.pop("cat")
    n_rows = ts.size
    starts = np.flatnonzero(np.concatenate([[True], pair_code[1:] != pair_code[:-1]]))
    # Category of a pair: that of its first row in the file (items have one category).
    pair_cat = cat[np.minimum.reduceat(order, starts)]
    cat = cat[order]
    del order

    click = _segment_first(ts, behavior == BEHAVIORS["pv"], starts)
    first_buy = _segment_first(ts, behavior == BEHAVIORS["buy"], starts)
    after_click = ts >= np.repeat(click, np.diff(np.append(starts, n_rows)))
    cart = _segment_first(ts, (behavior == BEHAVIORS["cart"]) & after_click, starts)
    fav = _segment_first(ts, (behavior == BEHAVIORS["fav"]) & after_click, starts)
    del after_click
    conv = np.where(first_buy >= click, first_buy, NO_TIME)
    del first_buy
    # Users in dense ids (rows are sorted by user first) and categories in dense ids: the (user, category)
    # groups then fit one int64 key with the time (_pack), as user and item ids (< 2^31) do.
    row_user = pair_code >> 31
    new_user = np.empty(n_rows, dtype=bool)
    new_user[0] = True
    np.not_equal(row_user[1:], row_user[:-1], out=new_user[1:])
    del row_user
    dense_user = np.cumsum(new_user, dtype=np.int64)
    dense_user -= 1
    del new_user
    categories = np.unique(cat)
    cat_bits = _bits(categories.size)
    if _bits(int(dense_user[-1])) + cat_bits + TS_BITS > 63:
        raise ValueError(f"too many (user, category) groups to pack with {TS_BITS} bits of time")
    is_pv = behavior == BEHAVIORS["pv"]
    pv_user_cat = dense_user[is_pv]
    pv_user_cat <<= cat_bits
    pv_user_cat |= np.searchsorted(categories, cat[is_pv])
    del cat
    pair_dense_user = dense_user[starts]
    del dense_user

    # One row per (user, item) pair that has a view, in click order (ties: by pair, as np.unique sorts them).
    pairs = np.flatnonzero(click != NO_TIME)
    pairs = pairs[np.argsort(click[pairs], kind="stable")]
    click, conv, cart, fav = click[pairs], conv[pairs], cart[pairs], fav[pairs]
    first_rows, pair_cat, pair_dense_user = (
        starts[pairs],
        pair_cat[pairs].astype(np.int64),
        pair_dense_user[pairs],
    )
    del starts, pairs
    names = ("user", "item", "category", "hour", "user_views", "user_buys", "user_cat_views", "item_views")
    cards = (id_buckets, id_buckets, max(16, id_buckets // 8), 24, *(16,) * 4)
    features = np.empty((click.size, len(names)), dtype=np.int32)
    c_user = pair_code[first_rows] >> 31
    _fill(features[:, 0], c_user, lambda v: hash_ids(v, id_buckets))
    _fill(features[:, 1], pair_code[first_rows] & ID_MASK, lambda v: hash_ids(v, id_buckets))
    _fill(features[:, 2], pair_cat, lambda v: hash_ids(v, cards[2]))
    _fill(
        features[:, 3], click, lambda v: hour_of_day(v.astype(np.int64) + WINDOW_START, utc_offset_hours=8.0)
    )
    c_user_cat = (pair_dense_user << cat_bits) | np.searchsorted(categories, pair_cat)
    del pair_cat, pair_dense_user

    # History counts known at click time, one column at a time (each count array is transient).
    is_buy = behavior == BEHAVIORS["buy"]
    del behavior
    pv_ts, buy_ts = ts[is_pv], ts[is_buy]
    del ts
    # (user, category) first: its event keys are packed in place into pv_user_cat, freed before the others.
    _history_bucket(features[:, 6], pv_user_cat, pv_ts, _Queries(c_user_cat, click))
    del pv_user_cat, c_user_cat
    by_user = _Queries(c_user, click)
    del c_user
    _history_bucket(features[:, 4], _user_of(pair_code[is_pv]), pv_ts, by_user)
    _history_bucket(features[:, 5], _user_of(pair_code[is_buy]), buy_ts, by_user)
    del by_user, buy_ts, is_buy
    c_item = pair_code[first_rows] & ID_MASK
    pv_item = pair_code[is_pv]
    pv_item &= ID_MASK
    del pair_code, is_pv, first_rows
    _history_bucket(features[:, 7], pv_item, pv_ts, _Queries(c_item, click))
    del pv_item, pv_ts, c_item
    click_h = click / 3600.0
    conv_h = _hours(conv)
    conv_h[conv_h - click_h > attribution_hours] = np.inf
    engagement = np.empty((click.size, 2), dtype=np.float64)
    engagement[:, 0] = _hours(cart)
    engagement[:, 1] = _hours(fav)
    return ClickLog(
        click_ts=click_h,
        conv_ts=conv_h,
        features=features,
        cardinalities=cards,
        field_names=names,
        engagement_ts=engagement,
        engagement_names=("cart", "fav"),
        attribution_hours=attribution_hours,
        name="taobao_userbehavior",
    )


def _fill(out: np.ndarray, values: np.ndarray, transform: Callable[[np.ndarray], np.ndarray]) -> None:
    """``out[:] = transform(values)`` in slices of 4 M rows: an elementwise transform's temporaries (hashing
    makes several 8-byte copies) then cost slices, not columns."""
    step = 1 << 22
    for start in range(0, values.shape[0], step):
        out[start : start + step] = transform(values[start : start + step])


def _user_of(pair_codes: np.ndarray) -> np.ndarray:
    """User ids of (a temporary array of) pair codes, in place."""
    pair_codes >>= 31
    return pair_codes


def _hours(seconds: np.ndarray) -> np.ndarray:
    """int32 seconds since the window start -> float64 hours, ``NO_TIME`` -> inf."""
    hours = seconds / 3600.0
    hours[seconds == NO_TIME] = np.inf
    return hours


def _pair_code(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One int64 per (a, b) pair (ids are below 2^31: checked when reading)."""
    return (a.astype(np.int64) << 31) | b.astype(np.int64)


def _to_npz(path: Path, log: ClickLog) -> None:
    np.savez(
        path,
        click_ts=log.click_ts,
        conv_ts=log.conv_ts,
        features=log.features,
        engagement_ts=log.engagement_ts,
        cardinalities=np.asarray(log.cardinalities),
        field_names=np.asarray(log.field_names),
        engagement_names=np.asarray(log.engagement_names),
        name=np.asarray(log.name),
    )


def _from_npz(path: Path, attribution_hours: float) -> ClickLog:
    with np.load(path) as f:
        return ClickLog(
            click_ts=f["click_ts"],
            conv_ts=f["conv_ts"],
            features=f["features"],
            cardinalities=tuple(int(c) for c in f["cardinalities"]),
            field_names=tuple(str(n) for n in f["field_names"]),
            engagement_ts=f["engagement_ts"],
            engagement_names=tuple(str(n) for n in f["engagement_names"]),
            attribution_hours=attribution_hours,
            name=str(f["name"]),
        )
