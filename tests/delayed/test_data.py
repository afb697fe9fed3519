"""Sources: the simulator's ground truth, the Criteo loader on a generated file, the real Taobao and
TalkingData files (marked ``data``: skipped without RECSCI_DATA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsci.core.errors import DataNotFoundError
from recsci.delayed.criteo import CriteoConversionLogs, bucketise_integers
from recsci.delayed.simulator import DelayedFeedbackSimulator
from recsci.delayed.talkingdata import TalkingDataClicks
from recsci.delayed.taobao import TaobaoUserBehavior
from tests.conftest import data_root


def test_simulator_is_seeded_and_matches_its_ground_truth() -> None:
    a = DelayedFeedbackSimulator(num_clicks=60_000, days=4.0, seed=1).load()
    b = DelayedFeedbackSimulator(num_clicks=60_000, days=4.0, seed=1).load()
    np.testing.assert_array_equal(a.conv_ts, b.conv_ts)
    assert np.all(np.diff(a.click_ts) >= 0)
    # The eventual conversion rate matches the ground-truth probability it was drawn from.
    assert a.eventual_label.mean() == pytest.approx(a.p_true.mean(), abs=0.01)
    delay = (a.conv_ts - a.click_ts)[np.isfinite(a.conv_ts)]
    assert delay.max() <= a.attribution_hours and np.median(delay) == pytest.approx(6.0, rel=0.35)


def test_simulated_engagement_predicts_flips() -> None:
    log = DelayedFeedbackSimulator(num_clicks=60_000, days=4.0, seed=2).load()
    e = 1.0
    negative = ~(log.conv_ts <= log.click_ts + e)
    engaged = (log.engagement_ts <= (log.click_ts + e)[:, None]).any(axis=1)
    flips = np.isfinite(log.conv_ts)
    assert flips[negative & engaged].mean() > 3 * flips[negative & ~engaged].mean()


def write_criteo_file(path: Path, rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A file in exactly the Criteo conversion-log format: 19 tab-separated fields, empty when missing."""
    rng = np.random.default_rng(seed)
    click = np.sort(rng.integers(0, 5 * 86400, size=rows)) + 1_000
    delay = rng.exponential(20_000, size=rows).astype(np.int64)
    converts = rng.random(rows) < 0.3
    lines = []
    for i in range(rows):
        ints = [str(v) if rng.random() > 0.2 else "" for v in rng.integers(-1, 500, size=8)]
        cats = [f"{v:08X}" if rng.random() > 0.1 else "" for v in rng.integers(0, 50, size=9)]
        conv = str(click[i] + delay[i]) if converts[i] else ""
        lines.append("\t".join([str(click[i]), conv, *ints, *cats]))
    path.write_text("\n".join(lines) + "\n")
    return click, np.where(converts, click + delay, -1)


def test_criteo_loader_reads_the_conversion_log_format(tmp_path: Path) -> None:
    click, conv = write_criteo_file(tmp_path / "data.txt", rows=500)
    log = CriteoConversionLogs(str(tmp_path), cache_dir=str(tmp_path / "cache"), chunk_rows=1000).load()
    assert len(log) == 500 and log.features.shape == (500, 17)
    np.testing.assert_allclose(log.click_ts, (click - click[0]) / 3600.0)
    delay_h = (conv - click) / 3600.0
    attributed = (conv >= 0) & (delay_h <= 168.0)
    assert np.isfinite(log.conv_ts).sum() == attributed.sum()
    np.testing.assert_allclose((log.conv_ts - log.click_ts)[attributed], delay_h[attributed])
    assert np.all(log.features < np.asarray(log.cardinalities)) and np.all(log.features >= 0)
    assert (log.features[:, :8] == 0).mean() == pytest.approx(0.2, abs=0.05)  # empty integers -> bucket 0
    # Chunked reading and the cache give the same log.
    again = CriteoConversionLogs(str(tmp_path), cache_dir=str(tmp_path / "cache"), chunk_rows=1000).load()
    small_chunks = CriteoConversionLogs(str(tmp_path), chunk_rows=1000 // 7 + 1000).load()
    np.testing.assert_array_equal(again.features, log.features)
    np.testing.assert_array_equal(small_chunks.features, log.features)


def test_criteo_integer_buckets() -> None:
    values = np.array([np.nan, 0, 1, 2, 3, 100, -5, 1e9])
    np.testing.assert_array_equal(bucketise_integers(values, 63), [0, 1, 2, 3, 2, 22, 63, 63])


def test_missing_files_say_where_and_how(tmp_path: Path) -> None:
    for source, name in ((CriteoConversionLogs, "data.txt"), (TaobaoUserBehavior, "UserBehavior.csv")):
        with pytest.raises(DataNotFoundError, match=name):
            source(str(tmp_path))


needs_data = pytest.mark.skipif(data_root() is None, reason="RECSCI_DATA is not set")


@pytest.mark.data
@needs_data
def test_taobao_prefix_matches_its_source_md(tmp_path: Path) -> None:
    root = data_root() / "delayed" / "taobao_userbehavior"
    log = TaobaoUserBehavior(str(root), cache_dir=str(tmp_path), attribution_hours=1e6).load()
    # SOURCE.md: conversion rate 1.44%; delay median 0.62 h, p90 44.8 h, p99 148.8 h.
    assert log.eventual_label.mean() == pytest.approx(0.0144, abs=0.0001)
    delay = (log.conv_ts - log.click_ts)[np.isfinite(log.conv_ts)]
    assert np.quantile(delay, [0.5, 0.9, 0.99]) == pytest.approx([0.62, 44.8, 148.8], abs=0.05)
    # Engagement predicts flips; most flips had no engagement yet (SOURCE.md: 5-18%).
    for e, share in ((0.25, 0.05), (24.0, 0.17)):
        negative = ~(log.conv_ts <= log.click_ts + e)
        engaged = (log.engagement_ts <= (log.click_ts + e)[:, None]).any(axis=1)
        flips = np.isfinite(log.conv_ts)
        assert flips[negative & engaged].mean() > 5 * flips[negative & ~engaged].mean()
        assert (negative & engaged & flips).sum() / (negative & flips).sum() == pytest.approx(share, abs=0.01)
    # History features only count the past: a user's first click has no earlier views.
    first_of_user = np.unique(log.features[:, 0], return_index=True)[1]
    assert np.all(log.features[first_of_user, log.field_names.index("user_views")] == 0)


@pytest.mark.data
@needs_data
def test_talkingdata_sample_matches_its_source_md() -> None:
    log = TalkingDataClicks(str(data_root() / "tabular" / "talkingdata"), attribution_hours=1e6).load()
    assert len(log) == 100_000 and log.eventual_label.sum() == 227
    delay_min = 60 * (log.conv_ts - log.click_ts)[np.isfinite(log.conv_ts)]
    assert np.median(delay_min) == pytest.approx(3.0, abs=0.5) and delay_min.max() / 60 == pytest.approx(
        12.9, abs=0.1
    )
