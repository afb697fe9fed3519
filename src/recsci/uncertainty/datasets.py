"""Tabular / CTR datasets for the uncertainty problem, read in place, and a synthetic generator.

Every source's ``load()`` returns a :class:`TabularTable`: numeric features, integer-coded categorical
features (0 = missing or rare), binary labels, and a time key for chronological splits. Standardising
numeric columns is the datamodule's job (with training-split statistics only).

- :class:`BankMarketing`: UCI bank-additional-full.csv (``duration`` dropped: it leaks the label).
- :class:`TalkingData`: the TalkingData AdTracking 100k sample (``attributed_time`` dropped: it leaks).
- :class:`CriteoDAC`: Criteo display-ads, Kaggle DAC format (label, 13 integer, 26 hashed categorical
  columns, tab-separated, no header), e.g. BARS Criteo_x1 exported to that format.
- :class:`Avazu`: Avazu CTR CSV (``id,click,hour,C1,banner_pos,site_id,...``).
- :class:`SyntheticTabular`: a generator with a known positive probability where a sparse region of
  feature space makes models uncertain (fast tests and the default smoke run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field

from recsci.core.errors import DataNotFoundError

PositiveInt = Annotated[int, Field(ge=1)]


@dataclass
class TabularTable:
    """A loaded dataset: features, labels and a time order (row order when the data has no time)."""

    numeric: np.ndarray  # float32 [N, Dn]
    categorical: np.ndarray  # int64 [N, Dc], 0 = missing/rare
    cardinalities: list[int]  # per categorical column, including code 0
    labels: np.ndarray  # int64 [N] in {0, 1}
    time: np.ndarray  # [N] sortable key for chronological splits
    numeric_names: list[str] = field(default_factory=list)
    categorical_names: list[str] = field(default_factory=list)
    true_probability: np.ndarray | None = None  # known only for synthetic data

    def __len__(self) -> int:
        return int(self.labels.size)


def encode_categorical(values: pd.Series, min_count: int = 1) -> tuple[np.ndarray, int]:
    """Integer codes by descending frequency from 1; values seen fewer than ``min_count`` times -> 0."""
    counts = values.value_counts(dropna=True)
    kept = counts[counts >= min_count].index
    mapping = pd.Series(np.arange(1, len(kept) + 1, dtype=np.int64), index=kept)
    codes = values.map(mapping).fillna(0).to_numpy(dtype=np.int64)
    return codes, len(kept) + 1


def _table(
    frame: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    labels: np.ndarray,
    time: np.ndarray,
    min_count: int,
) -> TabularTable:
    cats, cards = [], []
    for column in categorical:
        codes, card = encode_categorical(frame[column], min_count)
        cats.append(codes)
        cards.append(card)
    num = frame[numeric].to_numpy(dtype=np.float32) if numeric else np.zeros((len(frame), 0), np.float32)
    cat = np.stack(cats, axis=1) if cats else np.zeros((len(frame), 0), np.int64)
    return TabularTable(num, cat, cards, labels.astype(np.int64), time, list(numeric), list(categorical))


def _require(path: Path, layout: str, how: str) -> None:
    if not path.is_file():
        raise DataNotFoundError(str(path), layout, how)


class BankMarketing:
    """UCI Bank Marketing (bank-additional-full.csv, ';'-separated, 41,188 rows, 11.3% positive).

    ``duration`` is dropped (known only after the call; it leaks the label). ``pdays=999`` ("never
    contacted") becomes an indicator. Rows are in date order, which is the time key.
    """

    FILE = "bank-additional-full.csv"
    NUMERIC = [
        "age",
        "campaign",
        "pdays",
        "previous",
        "emp.var.rate",
        "cons.price.idx",
        "cons.conf.idx",
        "euribor3m",
        "nr.employed",
    ]
    CATEGORICAL = [
        "job",
        "marital",
        "education",
        "default",
        "housing",
        "loan",
        "contact",
        "month",
        "day_of_week",
        "poutcome",
    ]

    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self.file = self.root / self.FILE
        _require(
            self.file,
            f"  {root}/\n    {self.FILE}   (';'-separated, header, label column y = yes/no)",
            "UCI Machine Learning Repository, 'Bank Marketing' (bank-additional.zip); the offline copy is "
            "shared/data/tabular/bank_marketing (see its SOURCE.md).",
        )

    def load(self) -> TabularTable:
        frame = pd.read_csv(self.file, sep=";")
        frame = frame.drop(columns=["duration"])
        frame["never_contacted"] = (frame["pdays"] == 999).astype(np.float32)
        frame.loc[frame["pdays"] == 999, "pdays"] = -1
        labels = (frame["y"] == "yes").to_numpy()
        return _table(
            frame,
            [*self.NUMERIC, "never_contacted"],
            self.CATEGORICAL,
            labels,
            np.arange(len(frame)),
            min_count=1,
        )


class TalkingData:
    """TalkingData AdTracking sample (100k clicks, 0.23% downloads).

    Categorical: ip, app, device, os, channel (values seen fewer than ``min_count`` times -> 0) and the
    click hour; numeric: log counts of clicks per ip and per (ip, app) over the file. ``attributed_time``
    is dropped (set only for positives). Time key: ``click_time``.
    """

    FILE = "train_sample.csv"

    def __init__(self, root: str, min_count: PositiveInt = 5) -> None:
        self.root = Path(root)
        self.file = self.root / self.FILE
        self.min_count = min_count
        _require(
            self.file,
            f"  {root}/\n    {self.FILE}   (ip,app,device,os,channel,click_time,attributed_time,is_attributed)",
            "Kaggle 'TalkingData AdTracking Fraud Detection' (train_sample.csv); the offline copy is "
            "shared/data/tabular/talkingdata (see its SOURCE.md).",
        )

    def load(self) -> TabularTable:
        frame = pd.read_csv(self.file)
        clicked = pd.to_datetime(frame["click_time"])
        frame["hour"] = clicked.dt.hour
        frame["ip_clicks"] = np.log1p(frame.groupby("ip")["ip"].transform("size")).astype(np.float32)
        frame["ip_app_clicks"] = np.log1p(frame.groupby(["ip", "app"])["ip"].transform("size")).astype(
            np.float32
        )
        return _table(
            frame,
            ["ip_clicks", "ip_app_clicks"],
            ["ip", "app", "device", "os", "channel", "hour"],
            frame["is_attributed"].to_numpy(),
            clicked.to_numpy(dtype="datetime64[ns]").astype(np.int64),
            self.min_count,
        )


class CriteoDAC:
    """Criteo display-ads in the Kaggle DAC format: ``label, I1..I13, C1..C26``, tab-separated, no header.

    Integer columns become ``log1p(max(x, 0))`` with missing -> 0 plus a missing indicator each;
    hashed categorical columns are coded by frequency (fewer than ``min_count`` -> 0). Row order is
    time order in the DAC files. ``max_rows`` reads only the first rows.
    """

    N_INT, N_CAT = 13, 26

    def __init__(self, path: str, max_rows: PositiveInt | None = None, min_count: PositiveInt = 10) -> None:
        self.path = Path(path)
        self.max_rows, self.min_count = max_rows, min_count
        _require(
            self.path,
            f"  {self.path}   (tab-separated, no header: label, 13 integer features, 26 hashed categorical)",
            "Criteo Display Advertising Challenge (Kaggle DAC, train.txt) or the BARS Criteo_x1 split "
            "exported to that format; it is not available offline.",
        )

    def load(self) -> TabularTable:
        ints = [f"I{i}" for i in range(1, self.N_INT + 1)]
        cats = [f"C{i}" for i in range(1, self.N_CAT + 1)]
        frame = pd.read_csv(
            self.path,
            sep="\t",
            header=None,
            names=["label", *ints, *cats],
            nrows=self.max_rows,
            dtype={c: "string" for c in cats},
        )
        numeric = []
        for column in ints:
            values = pd.to_numeric(frame[column], errors="coerce")
            frame[f"{column}_missing"] = values.isna().astype(np.float32)
            frame[column] = np.log1p(values.clip(lower=0).fillna(0)).astype(np.float32)
            numeric += [column, f"{column}_missing"]
        return _table(frame, numeric, cats, frame["label"].to_numpy(), np.arange(len(frame)), self.min_count)


class Avazu:
    """Avazu CTR data (CSV with header ``id,click,hour,C1,banner_pos,site_id,...,C21``).

    Every column but ``id``/``click`` is categorical; ``hour`` (YYMMDDHH) becomes hour-of-day and
    weekday, and is the time key. ``max_rows`` reads only the first rows.
    """

    def __init__(self, path: str, max_rows: PositiveInt | None = None, min_count: PositiveInt = 10) -> None:
        self.path = Path(path)
        self.max_rows, self.min_count = max_rows, min_count
        _require(
            self.path,
            f"  {self.path}   (CSV with header: id,click,hour,C1,banner_pos,site_id,...,C21)",
            "Kaggle 'Click-Through Rate Prediction' (Avazu, train.csv) or the BARS Avazu_x1 split; it is "
            "not available offline.",
        )

    def load(self) -> TabularTable:
        frame = pd.read_csv(self.path, nrows=self.max_rows, dtype=str)
        missing = {"click", "hour"} - set(frame.columns)
        if missing:
            raise ValueError(
                f"'{self.path}' lacks the Avazu columns {sorted(missing)}; found {list(frame.columns)}"
            )
        hour = pd.to_datetime(frame["hour"], format="%y%m%d%H")
        frame["hour_of_day"] = hour.dt.hour.astype(str)
        frame["weekday"] = hour.dt.weekday.astype(str)
        categorical = [c for c in frame.columns if c not in ("id", "click", "hour")]
        labels = frame["click"].astype(np.int64).to_numpy()
        return _table(
            frame,
            [],
            categorical,
            labels,
            hour.to_numpy(dtype="datetime64[ns]").astype(np.int64),
            self.min_count,
        )


class SyntheticTabular:
    """Synthetic binary data with a known positive probability and a sparse, noisy region.

    ``x ~ N(0, I)`` for a dense majority and ``N(0, spread^2 I)`` for a ``sparse_share`` minority; the
    true logit is ``w.x + bias``, with its slope shrunk by ``noise_shrink`` in the sparse region (labels
    are noisier there). A model sees few training points in the sparse region, so its uncertainty is
    higher there, and at a fixed score the positive rate differs between the regions: the situation
    per-bucket thresholds are for. One categorical column (the region id is *not* given).
    """

    def __init__(
        self,
        num_samples: PositiveInt = 20_000,
        num_features: PositiveInt = 8,
        sparse_share: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2,
        spread: Annotated[float, Field(gt=0.0)] = 3.0,
        noise_shrink: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5,
        bias: float = -2.5,
        seed: Annotated[int, Field(ge=0)] = 0,
    ) -> None:
        self.num_samples, self.num_features = num_samples, num_features
        self.sparse_share, self.spread, self.noise_shrink = sparse_share, spread, noise_shrink
        self.bias, self.seed = bias, seed

    def load(self) -> TabularTable:
        rng = np.random.default_rng(self.seed)
        n, d = self.num_samples, self.num_features
        sparse = rng.random(n) < self.sparse_share
        x = rng.standard_normal((n, d)) * np.where(sparse, self.spread, 1.0)[:, None]
        w = rng.standard_normal(d)
        w *= 2.0 / np.linalg.norm(w)
        slope = np.where(sparse, 1.0 - self.noise_shrink, 1.0)
        logit = slope * (x @ w) + self.bias
        p = 1.0 / (1.0 + np.exp(-logit))
        y = (rng.random(n) < p).astype(np.int64)
        group = rng.integers(1, 5, size=n)  # an uninformative categorical column (exercises embeddings)
        return TabularTable(
            x.astype(np.float32),
            group[:, None].astype(np.int64),
            [5],
            y,
            np.arange(n),
            [f"x{i}" for i in range(d)],
            ["group"],
            true_probability=p,
        )
