"""Where the streaming protocol's validation intervals sit (``protocol.val_placement``): the assignment, the
coverage of the stream, and that every interval is still evaluated before it is trained on."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from recsci.core.errors import ConfigError
from recsci.delayed.protocols import StreamingProtocol
from tests.delayed.test_runs import run_small

# 240 h of clicks (last one just before 240 h): 72 h of pretraining, then 12 intervals of 12 h are trained
# and evaluated (the 13th would need the window after it).
LOG = SimpleNamespace(span_hours=239.99, name="log")


def splits(**settings: object) -> list[str]:
    protocol = StreamingProtocol(pretrain_hours=72.0, interval_hours=12.0, **settings)
    return [split for step in protocol.steps(LOG) for *_, split in step.evaluate]


def test_first_placement_is_the_first_intervals() -> None:
    assert splits(val_intervals=4) == ["val"] * 4 + ["test"] * 8
    assert splits(val_intervals=4, val_placement="first") == splits(val_intervals=4)


@pytest.mark.parametrize(
    ("val_intervals", "expected"),
    [
        (6, [1, 3, 5, 7, 9, 11]),  # half of the intervals: every other one
        (4, [1, 4, 7, 10]),  # one in the middle of each block of 3
        (3, [2, 6, 10]),  # blocks of 4
        (1, [6]),
        (11, [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]),  # all but one: still distinct, one test interval left
    ],
)
def test_interleaved_placement_spreads_the_val_intervals(val_intervals: int, expected: list[int]) -> None:
    placed = splits(val_intervals=val_intervals, val_placement="interleaved")
    assert [k for k, split in enumerate(placed) if split == "val"] == expected
    assert placed.count("test") == 12 - val_intervals


@pytest.mark.parametrize("placement", ["first", "interleaved"])
def test_val_and_test_windows_tile_the_stream_and_follow_training(placement: str) -> None:
    protocol = StreamingProtocol(
        pretrain_hours=72.0, interval_hours=12.0, val_intervals=5, val_placement=placement
    )
    steps = protocol.steps(LOG)
    windows = [(a, b) for step in steps for a, b, _ in step.evaluate]
    # Disjoint and contiguous: from the end of the first training interval to the end of the last evaluation.
    assert windows == [(84.0 + 12.0 * k, 96.0 + 12.0 * k) for k in range(12)]
    val = {(a, b) for step in steps for a, b, split in step.evaluate if split == "val"}
    test = {(a, b) for step in steps for a, b, split in step.evaluate if split == "test"}
    assert len(val) == 5 and len(test) == 7 and not val & test
    for k, step in enumerate(steps):
        # Evaluated on the interval after the one just trained, and trained on it only in the next step.
        (_, end), (a, _, _) = step.train, step.evaluate[0]
        assert a >= end
        if k + 1 < len(steps):
            assert steps[k + 1].train == step.evaluate[0][:2]


def test_a_run_reports_each_window_to_its_split(tmp_path: Path) -> None:
    # SMALL: 3 intervals of 24 h after 48 h of pretraining; one val interval, in the middle when interleaved.
    for placement, expected in (("first", ["val", "test", "test"]), ("interleaved", ["test", "val", "test"])):
        run_small(
            tmp_path,
            f"protocol.val_placement={placement}",
            "protocol.references=[pretrained]",
            name=placement,
        )
        record = json.loads((tmp_path / placement / "metrics.json").read_text())
        assert [w["split"] for w in record["delayed"]["windows"]] == expected
        clicks = {
            s: sum(w["n"] for w in record["delayed"]["windows"] if w["split"] == s) for s in ("val", "test")
        }
        assert (
            record["metrics"]["val/clicks"] == clicks["val"]
            and record["metrics"]["test/clicks"] == clicks["test"]
        )


def test_a_bad_placement_is_refused_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="protocol.val_placement"):
        run_small(tmp_path, "protocol.val_placement=middle")
