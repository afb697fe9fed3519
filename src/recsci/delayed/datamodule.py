"""Datamodule: loads a click log once and turns record sets into vectorised mini-batch loaders."""

from __future__ import annotations

from typing import Annotated

import lightning.pytorch as pl
import numpy as np
import torch
from pydantic import Field
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from recsci.delayed.data import ClickLog, ClickLogSource
from recsci.delayed.streams import Records


class TensorBatches(Dataset):
    """Columns indexed a whole batch at a time (``__getitems__``): no per-row Python in loading."""

    def __init__(self, columns: dict[str, Tensor]) -> None:
        sizes = {v.size(0) for v in columns.values()}
        if len(sizes) != 1:
            raise ValueError("all columns need the same number of rows")
        self.columns = columns
        self.size = sizes.pop()

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {k: v[i] for k, v in self.columns.items()}

    def __getitems__(self, rows: list[int]) -> dict[str, Tensor]:
        index = torch.as_tensor(rows)
        return {k: v[index] for k, v in self.columns.items()}


def _identity(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    return batch


class DelayedDataModule(pl.LightningDataModule):
    """Holds the click log of ``source``; protocols ask it for loaders over the records they build."""

    def __init__(
        self,
        source: ClickLogSource,
        batch_size: Annotated[int, Field(ge=1)] = 1024,
    ) -> None:
        super().__init__()
        self.source = source
        self.batch_size = batch_size
        self.clicks: ClickLog | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.clicks is None:
            self.clicks = self.source.load()

    def record_columns(self, records: Records, extra: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """The batch fields of ``records``: features, observed label, kind, elapsed hours, observed delay."""
        log = self.clicks
        columns = {
            "x": torch.from_numpy(np.ascontiguousarray(log.features[records.index])),
            "label": torch.from_numpy(records.label.astype(np.float32)),
            "kind": torch.from_numpy(records.kind.astype(np.int64)),
            "elapsed": torch.from_numpy(records.elapsed(log).astype(np.float32)),
            "delay": torch.from_numpy(records.delay(log).astype(np.float32)),
        }
        columns.update(extra or {})
        return columns

    def loader(self, columns: dict[str, Tensor], shuffle: bool = True) -> DataLoader:
        data = TensorBatches(columns)
        sampler = RandomSampler(data) if shuffle else SequentialSampler(data)
        return DataLoader(
            data, batch_sampler=BatchSampler(sampler, self.batch_size, drop_last=False), collate_fn=_identity
        )
