"""Dataset loaders (Criteo DAC and Avazu on generated files; the real ones when RECSCI_DATA is set)
and the datamodule's splits and negative downsampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsci.core.errors import DataNotFoundError
from recsci.uncertainty.datamodule import TabularDataModule
from recsci.uncertainty.datasets import Avazu, BankMarketing, CriteoDAC, SyntheticTabular, TalkingData
from recsci.uncertainty.estimators import correct_probability
from tests.conftest import data_root


def write_criteo(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(rows):
        label = str(int(rng.random() < 0.25))
        ints = ["" if rng.random() < 0.2 else str(int(rng.integers(-2, 500))) for _ in range(13)]
        cats = ["" if rng.random() < 0.1 else f"{int(rng.integers(0, 6)):08x}" for _ in range(26)]
        lines.append("\t".join([label, *ints, *cats]))
    path.write_text("\n".join(lines) + "\n")


def write_avazu(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    header = (
        "id,click,hour,C1,banner_pos,site_id,site_domain,site_category,app_id,app_domain,app_category,"
        "device_id,device_ip,device_model,device_type,device_conn_type,C14,C15,C16,C17,C18,C19,C20,C21"
    )
    lines = [header]
    for i in range(rows):
        hour = f"1410{21 + i % 3:02d}{i % 24:02d}"
        values = [f"{int(rng.integers(0, 4)):x}ab" for _ in range(21)]
        lines.append(",".join([str(10**18 + i), str(int(rng.random() < 0.17)), hour, *values]))
    path.write_text("\n".join(lines) + "\n")


def test_criteo_dac_loader(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    write_criteo(path, 300)
    table = CriteoDAC(str(path), min_count=2).load()
    assert table.numeric.shape == (300, 26) and table.categorical.shape == (300, 26)
    assert np.isfinite(table.numeric).all() and table.labels.sum() > 0
    assert set(np.unique(table.numeric[:, 1::2])) <= {0.0, 1.0}  # missing indicators
    assert all(c == table.categorical[:, i].max() + 1 for i, c in enumerate(table.cardinalities))
    assert len(CriteoDAC(str(path), max_rows=50).load()) == 50


def test_avazu_loader(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    write_avazu(path, 200)
    table = Avazu(str(path), min_count=1).load()
    assert table.numeric.shape == (200, 0)
    assert table.categorical.shape == (200, 23)  # 21 columns + hour_of_day + weekday
    assert "hour_of_day" in table.categorical_names and np.all(np.diff(np.sort(table.time)) >= 0)


def test_missing_files_say_where_and_how(tmp_path: Path) -> None:
    for make in (
        lambda: CriteoDAC(str(tmp_path / "x.txt")),
        lambda: Avazu(str(tmp_path / "x.csv")),
        lambda: BankMarketing(str(tmp_path)),
        lambda: TalkingData(str(tmp_path)),
    ):
        with pytest.raises(DataNotFoundError, match="How to get it"):
            make()


def test_datamodule_splits_and_downsampling() -> None:
    dm = TabularDataModule(
        SyntheticTabular(num_samples=5000, seed=1), negative_sampling_rate=0.25, split_seed=3
    )
    dm.setup()
    idx = dm.indices
    all_rows = np.concatenate(list(idx.values()))
    assert np.unique(all_rows).size == all_rows.size  # disjoint
    labels = dm.table.labels
    base = labels.mean()
    for name in ("holdout", "tuning", "test"):
        assert labels[idx[name]].mean() == pytest.approx(base, abs=0.01)  # stratified, untouched
    # Training negatives kept at ~25%, every positive kept: the positive rate rises accordingly.
    train_rate = labels[idx["train"]].mean()
    expected = base / (base + 0.25 * (1 - base))
    assert train_rate == pytest.approx(expected, abs=0.03)
    again = TabularDataModule(
        SyntheticTabular(num_samples=5000, seed=1), negative_sampling_rate=0.25, split_seed=3
    )
    again.setup()
    assert all(np.array_equal(idx[k], again.indices[k]) for k in idx)


def test_chronological_split_puts_the_latest_rows_in_test() -> None:
    dm = TabularDataModule(SyntheticTabular(num_samples=1000), split="chronological")
    dm.setup()
    assert dm.indices["test"].min() > dm.indices["tuning"].max() > dm.indices["holdout"].min()
    assert dm.indices["train"].max() < dm.indices["holdout"].min()


def test_bad_ratios_and_rate() -> None:
    with pytest.raises(ValueError, match="leaves no training data"):
        TabularDataModule(SyntheticTabular(), holdout_ratio=0.5, tuning_ratio=0.3, test_ratio=0.3)
    with pytest.raises(ValueError, match="negative_sampling_rate"):
        TabularDataModule(SyntheticTabular(), negative_sampling_rate=0.0)


def test_downsampling_correction_inverts_the_odds_shift() -> None:
    import torch

    p = torch.tensor([0.01, 0.1, 0.5, 0.9])
    w = 0.2
    q = p / (p + w * (1 - p))  # what a model trained with negatives kept at rate w learns
    torch.testing.assert_close(correct_probability(q, w), p)
    torch.testing.assert_close(correct_probability(q, 1.0), q)


@pytest.mark.data
def test_real_bank_marketing_and_talkingdata() -> None:
    root = data_root()
    if root is None:
        pytest.skip("RECSCI_DATA is not set: the real datasets are not available here")
    bank = BankMarketing(str(root / "tabular" / "bank_marketing")).load()
    assert len(bank) == 41188 and int(bank.labels.sum()) == 4640
    assert "duration" not in bank.numeric_names + bank.categorical_names
    talking = TalkingData(str(root / "tabular" / "talkingdata")).load()
    assert len(talking) == 100_000 and int(talking.labels.sum()) == 227
    assert "attributed_time" not in talking.numeric_names + talking.categorical_names
