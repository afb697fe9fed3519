"""Stream construction: nothing observed before it happens, and each stream has the records it promises."""

from __future__ import annotations

import numpy as np
import pytest

from recsci.delayed.data import ClickLog
from recsci.delayed.simulator import DelayedFeedbackSimulator
from recsci.delayed.streams import (
    DELAYED_POSITIVE,
    FINAL,
    FIRST,
    auxiliary_examples,
    stream_records,
)

STREAMS = ["observed", "waiting", "waiting_real_negatives"]
WAIT = 0.5


@pytest.fixture(scope="module")
def log() -> ClickLog:
    return DelayedFeedbackSimulator(num_clicks=4000, days=6.0, attribution_hours=24.0, seed=3).load()


def erase_after(log: ClickLog, time: float) -> ClickLog:
    """The log as known at ``time``: later conversions and engagement are not known (inf)."""
    copy = log.subset(np.arange(len(log)))
    copy.conv_ts = np.where(log.conv_ts <= time, log.conv_ts, np.inf)
    copy.engagement_ts = np.where(log.engagement_ts <= time, log.engagement_ts, np.inf)
    return copy


@pytest.mark.parametrize("stream", STREAMS)
def test_labels_are_read_no_later_than_the_window_end(log: ClickLog, stream: str) -> None:
    start, end = 40.0, 52.0
    records = stream_records(log, stream, start, end, wait=WAIT, first_click=24.0, duplicates_from=0.0)
    assert len(records) > 0
    assert np.all((records.ingest_ts >= start) & (records.ingest_ts < end))
    assert np.all(records.observe_ts <= end)
    positive = records.label > 0
    assert np.all(log.conv_ts[records.index][positive] <= records.observe_ts[positive])


@pytest.mark.parametrize("stream", STREAMS)
def test_no_future_label_or_engagement_leaks_into_a_window(log: ClickLog, stream: str) -> None:
    # Fails if any eventual label (or engagement) is visible before it happens: erasing everything
    # after the window end must leave the window's records, labels, elapsed times and engagement unchanged.
    start, end = 40.0, 52.0
    known = erase_after(log, end)
    full = stream_records(log, stream, start, end, wait=WAIT, first_click=24.0, duplicates_from=0.0)
    past = stream_records(known, stream, start, end, wait=WAIT, first_click=24.0, duplicates_from=0.0)
    for field in ("index", "ingest_ts", "observe_ts", "label", "kind"):
        np.testing.assert_array_equal(getattr(full, field), getattr(past, field))
    np.testing.assert_array_equal(full.engagement(log, [0, 1]), past.engagement(known, [0, 1]))
    np.testing.assert_array_equal(full.elapsed(log), past.elapsed(known))


def test_the_oracle_stream_does_see_the_future(log: ClickLog) -> None:
    full = stream_records(log, "oracle", 40.0, 52.0)
    past = stream_records(erase_after(log, 52.0), "oracle", 40.0, 52.0)
    assert full.label.sum() > past.label.sum()


def _whole_stream(log: ClickLog, stream: str) -> np.ndarray:
    edges = np.arange(0.0, log.span_hours + log.attribution_hours + 2.0, 7.0)
    parts = [stream_records(log, stream, a, b, wait=WAIT) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return parts


def test_waiting_stream_has_each_click_once_plus_its_delayed_positive(log: ClickLog) -> None:
    parts = _whole_stream(log, "waiting")
    kinds = np.concatenate([p.kind for p in parts])
    index = np.concatenate([p.index for p in parts])
    first = index[kinds == FIRST]
    assert np.array_equal(np.sort(first), np.arange(len(log)))
    delayed = np.sort(index[kinds == DELAYED_POSITIVE])
    expected = np.flatnonzero(log.conv_ts > log.click_ts + WAIT)
    expected = expected[np.isfinite(log.conv_ts[expected])]
    assert np.array_equal(delayed, expected)
    first_labels = np.concatenate([p.label for p in parts])[kinds == FIRST]
    assert first_labels.sum() == np.sum(log.conv_ts <= log.click_ts + WAIT)


def test_defer_stream_has_every_click_exactly_twice(log: ClickLog) -> None:
    parts = _whole_stream(log, "waiting_real_negatives")
    index = np.concatenate([p.index for p in parts])
    assert np.array_equal(np.bincount(index, minlength=len(log)), np.full(len(log), 2))
    kinds = np.concatenate([p.kind for p in parts])
    labels = np.concatenate([p.label for p in parts])
    final = index[kinds == FINAL]
    # FINAL records carry the final label of clicks that were not delayed positives.
    np.testing.assert_array_equal(labels[kinds == FINAL], np.isfinite(log.conv_ts[final]).astype(np.float32))


def test_pretraining_clicks_come_back_only_as_delayed_positives(log: ClickLog) -> None:
    records = stream_records(log, "waiting", 24.0, 48.0, wait=WAIT, first_click=24.0, duplicates_from=0.0)
    early = log.click_ts[records.index] < 24.0
    assert early.any()
    assert np.all(records.kind[early] == DELAYED_POSITIVE)


@pytest.mark.parametrize("target", ["delayed_positive", "flip", "observed_given_positive"])
def test_auxiliary_examples_use_no_label_after_the_pretraining_window(log: ClickLog, target: str) -> None:
    # The ES-DFM pretraining leak: labelling pretraining examples with conversions that happen later.
    kwargs = dict(start=0.0, observe=48.0, maturity=12.0, wait=WAIT, cut="random", cuts_per_example=2)
    full = auxiliary_examples(log, target, **kwargs, min_cut=0.1, max_cut=12.0, rng=np.random.default_rng(0))
    past = auxiliary_examples(
        erase_after(log, 48.0), target, **kwargs, min_cut=0.1, max_cut=12.0, rng=np.random.default_rng(0)
    )
    np.testing.assert_array_equal(full.label, past.label)
    np.testing.assert_array_equal(full.index, past.index)
    assert np.all(log.click_ts[full.index] < 36.0)  # only clicks matured for 12 h
    assert np.all(full.observe_ts <= 48.0)
