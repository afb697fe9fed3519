"""Datamodule for scored binary classification: train / hold-out / tuning / test, negative downsampling.

- ``train``: fits the estimator; negatives are kept with probability ``negative_sampling_rate``
  (class-dependent sampling, as in ads); estimators correct their probabilities back with
  ``q -> w q / (w q + 1 - q)`` using :attr:`negative_sampling_rate`.
- ``holdout``: the model's validation split (checkpointing, early stopping) and where decision rules
  are fitted.
- ``tuning``: where decision-rule hyperparameters are compared (``val/...`` metrics of the protocol).
- ``test``: reported only.

Splits are stratified random (default) or chronological (train first, test last), fixed by
``split_seed`` independently of the training seed. Numeric features are standardised with training
statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Protocol

import lightning.pytorch as pl
import numpy as np
import torch
from pydantic import Field
from torch.utils.data import DataLoader, TensorDataset

from recsci.uncertainty.datasets import TabularTable

Ratio = Annotated[float, Field(gt=0.0, lt=1.0)]
SPLITS = ("train", "holdout", "tuning", "test")


class TabularSource(Protocol):
    def load(self) -> TabularTable: ...


@dataclass
class FeatureSpec:
    num_numeric: int
    cardinalities: list[int]


class TabularDataModule(pl.LightningDataModule):
    """Serves (numeric, categorical, label) batches of one tabular dataset's splits."""

    def __init__(
        self,
        dataset: TabularSource,
        split: Literal["random", "chronological"] = "random",
        holdout_ratio: Ratio = 0.2,
        tuning_ratio: Ratio = 0.1,
        test_ratio: Ratio = 0.2,
        negative_sampling_rate: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0,
        batch_size: Annotated[int, Field(ge=1)] = 1024,
        eval_batch_size: Annotated[int, Field(ge=1)] = 8192,
        split_seed: Annotated[int, Field(ge=0)] = 0,
    ) -> None:
        super().__init__()
        if holdout_ratio + tuning_ratio + test_ratio >= 1.0:
            raise ValueError(
                f"holdout_ratio + tuning_ratio + test_ratio = {holdout_ratio + tuning_ratio + test_ratio:g} "
                "leaves no training data; it must be < 1."
            )
        if not 0.0 < negative_sampling_rate <= 1.0:
            raise ValueError(f"negative_sampling_rate={negative_sampling_rate}: must be in (0, 1].")
        self.dataset = dataset
        self.split = split
        self.ratios = {"holdout": holdout_ratio, "tuning": tuning_ratio, "test": test_ratio}
        self.negative_sampling_rate = float(negative_sampling_rate)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.split_seed = split_seed
        self.indices: dict[str, np.ndarray] | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.indices is not None:
            return
        table = self.dataset.load()
        if len(table) == 0 or table.labels.sum() == 0:
            raise ValueError("The dataset has no rows or no positive labels.")
        rng = np.random.default_rng(self.split_seed)
        self.indices = self._split(table, rng)
        train = self.indices["train"]
        if self.negative_sampling_rate < 1.0:
            keep = (table.labels[train] == 1) | (rng.random(train.size) < self.negative_sampling_rate)
            self.indices["train"] = train[keep]
        self.table = table
        stats_rows = self.indices["train"]
        mean = table.numeric[stats_rows].mean(0) if table.numeric.shape[1] else np.zeros(0)
        std = table.numeric[stats_rows].std(0) if table.numeric.shape[1] else np.ones(0)
        self.numeric = torch.from_numpy(
            ((table.numeric - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)
        )
        self.categorical = torch.from_numpy(table.categorical.astype(np.int64))
        self.labels = torch.from_numpy(table.labels.astype(np.float32))

    def _split(self, table: TabularTable, rng: np.random.Generator) -> dict[str, np.ndarray]:
        fractions = [self.ratios["test"], self.ratios["tuning"], self.ratios["holdout"]]
        if self.split == "chronological":
            order = np.argsort(table.time, kind="stable")
            parts = self._cut(order[::-1], fractions)  # test = latest rows, then tuning, hold-out
            return {name: np.sort(p) for name, p in parts.items()}
        parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
        for label in (0, 1):  # stratified: each split keeps the overall positive rate
            rows = np.flatnonzero(table.labels == label)
            rows = rows[rng.permutation(rows.size)]
            for name, p in self._cut(rows, fractions).items():
                parts[name].append(p)
        return {name: np.sort(np.concatenate(p)) for name, p in parts.items()}

    @staticmethod
    def _cut(rows: np.ndarray, fractions: list[float]) -> dict[str, np.ndarray]:
        n = rows.size
        bounds = np.round(np.cumsum([0.0, *fractions]) * n).astype(int)
        out = {name: rows[bounds[i] : bounds[i + 1]] for i, name in enumerate(("test", "tuning", "holdout"))}
        out["train"] = rows[bounds[-1] :]
        return out

    @property
    def feature_spec(self) -> FeatureSpec:
        self.setup()
        return FeatureSpec(int(self.numeric.shape[1]), list(self.table.cardinalities))

    def split_tensors(self, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.setup()
        rows = torch.from_numpy(self.indices[name])
        return self.numeric[rows], self.categorical[rows], self.labels[rows]

    def split_dataloader(self, name: str, shuffle: bool = False) -> DataLoader:
        dataset = TensorDataset(*self.split_tensors(name))
        size = self.batch_size if name == "train" else self.eval_batch_size
        # The shuffle order follows the run's seed (seed_everything), not the split seed.
        return DataLoader(dataset, batch_size=size, shuffle=shuffle)

    def train_dataloader(self) -> DataLoader:
        return self.split_dataloader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.split_dataloader("holdout")

    def test_dataloader(self) -> DataLoader:
        return self.split_dataloader("test")

    def summary(self) -> dict[str, dict[str, float]]:
        self.setup()
        return {
            name: {"rows": int(rows.size), "positive_rate": float(self.table.labels[rows].mean())}
            for name, rows in self.indices.items()
        }
