"""Criteo conversion logs (Chapelle, KDD 2014) as a delayed-conversion click log.

``data.txt``: tab-separated, no header, one click per line (15.9 M lines over 60 days):
click timestamp (s), conversion timestamp (s; empty when the click did not convert), 8 integer features,
9 categorical features (hashed strings); any feature may be empty. Download it from
https://labs.criteo.com/2013/12/conversion-logs-dataset/ and place it at
``$RECSCI_DATA/delayed/criteo/data.txt``.

Reading is pyarrow's streaming CSV reader, one block of about ``chunk_rows`` lines at a time, each turned
into compact int32 feature columns before the next is read (the categorical strings arrive
dictionary-encoded, so each distinct string is hashed once per block, never one Python object per row).
Preprocessing (vectorised per block): integers -> ``1 + floor(log(v)^2)`` for v > 2,
``1 + v`` for 0 <= v <= 2 (the Criteo-competition bucketing), negatives -> their own buckets, empty -> 0,
clipped to ``max_int_bucket``; categoricals -> stable hash into ``[1, hash_buckets)``, empty -> 0. Times
become hours since the first click; conversions later than ``attribution_hours`` do not count. The result
is cached under ``cache_dir`` (keyed by file size, mtime and settings).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated

import numpy as np
import pyarrow as pa
from pydantic import Field

from recsci.core.errors import DataNotFoundError
from recsci.delayed.data import (
    ClickLog,
    DataFormatError,
    apply_attribution_window,
    dictionary_hash_ids,
    release_freed_memory,
    scan_csv,
)

FILE = "data.txt"
INT_FIELDS = tuple(f"int{i}" for i in range(1, 9))
CAT_FIELDS = tuple(f"cat{i}" for i in range(1, 10))
COLUMNS = ("click_ts", "conv_ts", *INT_FIELDS, *CAT_FIELDS)
LINE_FORMAT = (
    "19 tab-separated fields per line, no header: click unix time (s), conversion unix time (s) or empty, "
    "8 integer features, 9 categorical features (any feature may be empty)"
)
# About 96 bytes of text per line of the real file: the reader's block size for ``chunk_rows`` lines.
BYTES_PER_LINE = 96


def bucketise_integers(values: np.ndarray, max_bucket: int) -> np.ndarray:
    """Criteo integer bucketing; NaN (empty) -> 0; negative v -> 2 + max(-v, ...) folded into a small range."""
    v = np.asarray(values, dtype=np.float64)
    out = np.zeros(v.shape, dtype=np.int64)
    present = ~np.isnan(v)
    small = present & (v >= 0) & (v <= 2)
    large = present & (v > 2)
    negative = present & (v < 0)
    out[small] = 1 + v[small].astype(np.int64)
    out[large] = 1 + np.floor(np.log(v[large]) ** 2).astype(np.int64)
    out[negative] = max_bucket  # rare; one shared bucket
    return np.minimum(out, max_bucket)


class CriteoConversionLogs:
    """Loader of ``<root>/data.txt`` (see the module doc); ``load()`` returns a :class:`ClickLog`."""

    def __init__(
        self,
        root: str,
        cache_dir: str | None = None,
        attribution_hours: Annotated[float, Field(gt=0.0)] = 168.0,
        hash_buckets: Annotated[int, Field(ge=16)] = 1_000_000,
        max_int_bucket: Annotated[int, Field(ge=4)] = 63,
        chunk_rows: Annotated[int, Field(ge=1000)] = 500_000,
        file: str = FILE,
    ) -> None:
        self.path = Path(root) / file
        if not self.path.is_file():
            raise DataNotFoundError(
                str(self.path),
                f"  {root}/\n    {file}   (tab-separated: click_ts, conv_ts or empty, 8 integer, 9 categorical)",
                "download the Criteo conversion logs (https://labs.criteo.com/2013/12/conversion-logs-dataset/), "
                "unpack data.txt there (docs/delayed.md).",
            )
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.attribution_hours, self.hash_buckets = attribution_hours, hash_buckets
        self.max_int_bucket, self.chunk_rows = max_int_bucket, chunk_rows

    def load(self) -> ClickLog:
        cache = self._cache_file()
        if cache is not None and cache.is_file():
            with np.load(cache) as f:
                click, conv, features = f["click_ts"], f["conv_ts"], f["features"]
        else:
            click, conv, features = self._read()
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.savez(cache, click_ts=click, conv_ts=conv, features=features)
        return ClickLog(
            click_ts=click,
            conv_ts=apply_attribution_window(click, conv, self.attribution_hours),
            features=features,
            cardinalities=(self.max_int_bucket + 1,) * len(INT_FIELDS)
            + (self.hash_buckets,) * len(CAT_FIELDS),
            field_names=INT_FIELDS + CAT_FIELDS,
            engagement_ts=np.zeros((click.shape[0], 0)),
            engagement_names=(),
            attribution_hours=self.attribution_hours,
            name="criteo",
        )

    def _read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        column_types = dict.fromkeys(("click_ts", "conv_ts", *INT_FIELDS), pa.float64())
        column_types.update(dict.fromkeys(CAT_FIELDS, pa.dictionary(pa.int32(), pa.string())))
        clicks, convs, feats = [], [], []
        for batch in scan_csv(
            self.path,
            column_types,
            LINE_FORMAT,
            column_names=list(COLUMNS),
            delimiter="\t",
            null_values=("",),
            block_bytes=self.chunk_rows * BYTES_PER_LINE,
        ):
            click = batch.column("click_ts")
            if click.null_count:
                raise DataFormatError(self.path, "a line has an empty click timestamp (field 1)", LINE_FORMAT)
            clicks.append(click.to_numpy())
            conv = batch.column("conv_ts").to_numpy(zero_copy_only=False)  # empty -> NaN
            convs.append(np.where(np.isnan(conv) | (conv < 0), np.inf, conv))
            features = np.empty((batch.num_rows, len(INT_FIELDS) + len(CAT_FIELDS)), dtype=np.int32)
            for j, name in enumerate(INT_FIELDS):
                values = batch.column(name).to_numpy(zero_copy_only=False)
                features[:, j] = bucketise_integers(values, self.max_int_bucket)
            for j, name in enumerate(CAT_FIELDS, start=len(INT_FIELDS)):
                features[:, j] = dictionary_hash_ids(batch.column(name), self.hash_buckets)
            feats.append(features)
        if not clicks:
            raise DataFormatError(self.path, "the file has no lines", LINE_FORMAT)
        click = np.concatenate(clicks)
        del clicks
        conv = np.concatenate(convs)
        del convs
        features = np.concatenate(feats)
        del feats
        release_freed_memory()
        origin = click.min()
        if np.all(click[1:] >= click[:-1]):  # the published file is in click order: no copy needed
            click_h, conv_h = (click - origin) / 3600.0, (conv - origin) / 3600.0
        else:
            order = np.argsort(click, kind="stable")
            click_h = (click[order] - origin) / 3600.0
            conv_h = (conv[order] - origin) / 3600.0
            features = features[order]
        return click_h, np.maximum(conv_h, click_h), features

    def _cache_file(self) -> Path | None:
        if self.cache_dir is None:
            return None
        stat = self.path.stat()
        key = json.dumps([stat.st_size, stat.st_mtime_ns, self.hash_buckets, self.max_int_bucket, 1])
        return self.cache_dir / f"clicks_{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
