"""TalkingData AdTracking (Kaggle 2018) as a delayed-conversion click log: click -> app download.

CSV with header: ip, app, device, os, channel (integer-coded categoricals), click_time (UTC),
attributed_time (only when is_attributed = 1), is_attributed. The download time is the conversion time
(the label is never a feature). No engagement signals. Features: the five ids hashed into
``hash_buckets`` and the hour of day. Read with pyarrow's streaming CSV reader, one block of about
``chunk_rows`` lines at a time, into compact columns (the full 185 M-row ``train.csv`` has the same format).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import pyarrow as pa
from pydantic import Field

from recsci.core.errors import DataNotFoundError
from recsci.delayed.data import ClickLog, DataFormatError, apply_attribution_window, hash_ids, scan_csv

ID_FIELDS = ("ip", "app", "device", "os", "channel")
LINE_FORMAT = (
    "a header line, then comma-separated ip,app,device,os,channel (integers),click_time "
    "(YYYY-MM-DD hh:mm:ss),attributed_time (the same, or empty),is_attributed"
)
BYTES_PER_LINE = 60  # about, in train_sample.csv: the reader's block size for ``chunk_rows`` lines


class TalkingDataClicks:
    """Loader of ``<root>/<file>`` (``train_sample.csv`` or the full ``train.csv``)."""

    def __init__(
        self,
        root: str,
        file: str = "train_sample.csv",
        attribution_hours: Annotated[float, Field(gt=0.0)] = 24.0,
        hash_buckets: Annotated[int, Field(ge=16)] = 4096,
        chunk_rows: Annotated[int, Field(ge=1000)] = 500_000,
    ) -> None:
        self.path = Path(root) / file
        if not self.path.is_file():
            raise DataNotFoundError(
                str(self.path),
                f"  {root}/\n    {file}   (ip,app,device,os,channel,click_time,attributed_time,is_attributed)",
                "Kaggle 'talkingdata-adtracking-fraud-detection'; the 100k sample is in shared/data/tabular/"
                "talkingdata (see its SOURCE.md).",
            )
        self.attribution_hours, self.hash_buckets, self.chunk_rows = (
            attribution_hours,
            hash_buckets,
            chunk_rows,
        )

    def load(self) -> ClickLog:
        ids, clicks, convs = [], [], []
        column_types = dict.fromkeys(ID_FIELDS, pa.int64())
        column_types.update(click_time=pa.timestamp("s"), attributed_time=pa.timestamp("s"))
        for batch in scan_csv(
            self.path,
            column_types,
            LINE_FORMAT,
            include_columns=[*ID_FIELDS, "click_time", "attributed_time"],
            null_values=("",),
            block_bytes=self.chunk_rows * BYTES_PER_LINE,
        ):
            missing = [c for c in (*ID_FIELDS, "click_time") if batch.column(c).null_count]
            if missing:
                raise DataFormatError(self.path, f"empty values in column(s) {missing}", LINE_FORMAT)
            clicks.append(batch.column("click_time").cast(pa.int64()).to_numpy())
            conv = (
                batch.column("attributed_time").cast(pa.int64()).to_numpy(zero_copy_only=False)
            )  # NaN: none
            convs.append(np.where(np.isnan(conv), np.inf, conv))
            block = np.empty((batch.num_rows, len(ID_FIELDS)), dtype=np.int32)
            for j, name in enumerate(ID_FIELDS):
                block[:, j] = hash_ids(batch.column(name).to_numpy(), self.hash_buckets)
            ids.append(block)
        if not clicks:
            raise DataFormatError(self.path, "the file has no data lines", LINE_FORMAT)
        click = np.concatenate(clicks).astype(np.float64)
        conv = np.concatenate(convs).astype(np.float64)
        order = np.argsort(click, kind="stable")
        origin = click[order[0]]
        click_s, conv_s = click[order], conv[order]
        hour = ((click_s.astype(np.int64) // 3600) % 24)[:, None]
        features = np.concatenate([np.concatenate(ids)[order], hour], axis=1).astype(np.int32)
        click_h = (click_s - origin) / 3600.0
        conv_h = np.maximum((conv_s - origin) / 3600.0, click_h)
        return ClickLog(
            click_ts=click_h,
            conv_ts=apply_attribution_window(click_h, conv_h, self.attribution_hours),
            features=features,
            cardinalities=(self.hash_buckets,) * len(ID_FIELDS) + (24,),
            field_names=(*ID_FIELDS, "hour"),
            engagement_ts=np.zeros((click_h.shape[0], 0)),
            engagement_names=(),
            attribution_hours=self.attribution_hours,
            name="talkingdata",
        )
