"""TalkingData AdTracking (Kaggle 2018) as a delayed-conversion click log: click -> app download.

CSV with header: ip, app, device, os, channel (integer-coded categoricals), click_time (UTC),
attributed_time (only when is_attributed = 1), is_attributed. The download time is the conversion time
(the label is never a feature). No engagement signals. Features: the five ids hashed into
``hash_buckets`` and the hour of day.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field

from recsci.core.errors import DataNotFoundError
from recsci.delayed.data import ClickLog, apply_attribution_window, hash_ids

ID_FIELDS = ("ip", "app", "device", "os", "channel")


class TalkingDataClicks:
    """Loader of ``<root>/<file>`` (``train_sample.csv`` or the full ``train.csv``)."""

    def __init__(
        self,
        root: str,
        file: str = "train_sample.csv",
        attribution_hours: Annotated[float, Field(gt=0.0)] = 24.0,
        hash_buckets: Annotated[int, Field(ge=16)] = 4096,
        chunk_rows: Annotated[int, Field(ge=1000)] = 5_000_000,
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
        reader = pd.read_csv(
            self.path,
            usecols=[*ID_FIELDS, "click_time", "attributed_time"],
            dtype=dict.fromkeys(ID_FIELDS, np.int64),
            chunksize=self.chunk_rows,
        )
        for chunk in reader:
            clicks.append(pd.to_datetime(chunk["click_time"]).to_numpy("datetime64[s]").astype(np.int64))
            conv = pd.to_datetime(chunk["attributed_time"])
            convs.append(np.where(conv.isna(), np.inf, conv.to_numpy("datetime64[s]").astype(np.int64)))
            ids.append(
                np.stack([hash_ids(chunk[c].to_numpy(), self.hash_buckets) for c in ID_FIELDS], axis=1)
            )
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
