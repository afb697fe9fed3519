"""The pyarrow loaders: outputs against independent re-derivations on small generated files, and clear
errors (file named, format stated) on bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from recsci.delayed.criteo import CriteoConversionLogs
from recsci.delayed.data import DataFormatError, dictionary_hash_ids, hash_ids, hour_of_day, log_bucket
from recsci.delayed.talkingdata import TalkingDataClicks
from recsci.delayed.taobao import WINDOW_END, WINDOW_START, TaobaoUserBehavior


def test_dictionary_hashing_equals_hashing_every_string() -> None:
    strings = ["0A1B2C3D", "", None, "é-ü", "nan", "None", "0A1B2C3D", "x" * 40, None, "7"]
    column = pa.array(strings, type=pa.string()).dictionary_encode()
    expected = hash_ids(pd.Series(strings, dtype=object), 1000)
    np.testing.assert_array_equal(dictionary_hash_ids(column, 1000), expected)
    assert dictionary_hash_ids(column, 1000)[[2, 8]].tolist() == [0, 0]


# --- Taobao: a reference built row by row with pandas group-bys, on a random file -------------------------


def write_taobao_file(path: Path, rows: int, seed: int) -> pd.DataFrame:
    """Random events of few users and items (many repeated pairs), some rows outside the window."""
    rng = np.random.default_rng(seed)
    user = rng.integers(1, 15, rows)
    item = rng.integers(1, 30, rows)
    frame = pd.DataFrame(
        {
            "user": user,
            "item": item,
            "cat": item % 7 + 100,  # an item has one category
            "behavior": rng.choice(["pv", "pv", "pv", "cart", "fav", "buy"], rows),
            "ts": rng.integers(WINDOW_START - 3600, WINDOW_END + 3600, rows),
        }
    )
    frame.to_csv(path / "UserBehavior.csv", header=False, index=False)
    return frame


def reference_taobao(frame: pd.DataFrame) -> pd.DataFrame:
    """The module doc's definitions, computed pair by pair (slow, obviously right)."""
    events = frame[(frame.ts >= WINDOW_START) & (frame.ts < WINDOW_END)].copy()
    events["ts"] -= WINDOW_START
    by_user = {key: group for key, group in events.groupby("user")}
    by_item = {key: group for key, group in events.groupby("item")}
    rows = []
    for (user, item), pair in events.groupby(["user", "item"], sort=True):
        views = pair.ts[pair.behavior == "pv"]
        if views.empty:
            continue
        click = views.min()
        buys = pair.ts[pair.behavior == "buy"]
        conv = buys.min() if not buys.empty and buys.min() >= click else np.inf

        def first_after(kind: str, pair: pd.DataFrame = pair, click: int = click) -> float:
            times = pair.ts[(pair.behavior == kind) & (pair.ts >= click)]
            return times.min() if not times.empty else np.inf

        mine, its = by_user[user], by_item[item]
        before, pv = mine.ts < click, mine.behavior == "pv"
        rows.append(
            {
                "user": user,
                "item": item,
                "cat": pair.cat.iloc[0],
                "click": click,
                "conv": conv,
                "cart": first_after("cart"),
                "fav": first_after("fav"),
                "user_views": int((pv & before).sum()),
                "user_buys": int(((mine.behavior == "buy") & before).sum()),
                "user_cat_views": int((pv & before & (mine.cat == pair.cat.iloc[0])).sum()),
                "item_views": int(((its.behavior == "pv") & (its.ts < click)).sum()),
            }
        )
    return pd.DataFrame(rows).sort_values("click", kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_taobao_loader_matches_a_pair_by_pair_reference(tmp_path: Path, seed: int) -> None:
    frame = write_taobao_file(tmp_path, rows=2000, seed=seed)
    log = TaobaoUserBehavior(str(tmp_path), attribution_hours=24.0, id_buckets=4096, chunk_rows=1000).load()
    ref = reference_taobao(frame)
    assert len(log) == len(ref)
    # Every kind of outcome occurs, so the comparisons below are not vacuous.
    assert np.isfinite(log.conv_ts).sum() > 10
    assert np.isfinite(log.engagement_ts).sum(axis=0).min() > 10 and (ref.user_cat_views > 0).mean() > 0.5
    np.testing.assert_array_equal(log.click_ts, ref.click / 3600.0)
    conv = ref.conv / 3600.0
    conv[conv - ref.click / 3600.0 > 24.0] = np.inf
    np.testing.assert_array_equal(log.conv_ts, conv)
    np.testing.assert_array_equal(log.engagement_ts, np.stack([ref.cart, ref.fav], axis=1) / 3600.0)
    columns = {name: log.features[:, j] for j, name in enumerate(log.field_names)}
    np.testing.assert_array_equal(columns["user"], hash_ids(ref.user.to_numpy(np.int64), 4096))
    np.testing.assert_array_equal(columns["item"], hash_ids(ref.item.to_numpy(np.int64), 4096))
    np.testing.assert_array_equal(columns["category"], hash_ids(ref.cat.to_numpy(np.int64), 512))
    hour = hour_of_day(ref.click.to_numpy(np.int64) + WINDOW_START, utc_offset_hours=8.0)
    np.testing.assert_array_equal(columns["hour"], hour)
    for name in ("user_views", "user_buys", "user_cat_views", "item_views"):
        np.testing.assert_array_equal(columns[name], log_bucket(ref[name].to_numpy()), err_msg=name)
    # Ties in click time keep (user, item) order, so chunking and row order in the file do not matter.
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    frame.sample(frac=1.0, random_state=seed).to_csv(shuffled / "UserBehavior.csv", header=False, index=False)
    again = TaobaoUserBehavior(str(shuffled), attribution_hours=24.0, id_buckets=4096, chunk_rows=1000).load()
    np.testing.assert_array_equal(again.features[:, 3:], log.features[:, 3:])
    np.testing.assert_array_equal(again.click_ts, log.click_ts)


def test_taobao_pair_category_is_its_first_row_in_the_file(tmp_path: Path) -> None:
    rows = [
        f"1,7,300,cart,{WINDOW_START + 5}",  # the pair's first row: its category counts
        f"1,7,200,pv,{WINDOW_START + 10}",
        f"2,7,200,pv,{WINDOW_START + 20}",
    ]
    (tmp_path / "UserBehavior.csv").write_text("\n".join(rows) + "\n")
    log = TaobaoUserBehavior(str(tmp_path), id_buckets=4096).load()
    np.testing.assert_array_equal(log.features[:, 2], hash_ids(np.array([300, 200]), 512))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1,2,3,pv", "Expected 5 columns, got 4"),
        ("1,2,3,pv,100,7", "Expected 5 columns, got 6"),
        ("1,2,x3,pv,1511539300", "invalid value 'x3'"),
        ("1,2,3,view,1511539300", r"unknown behavior_type values \['view'\]"),
        ("1,3000000000,3,pv,1511539300", r"item id outside \[0, 2\^31\)"),
        ("1,2,3,pv,1400000000", "no rows inside the official window"),
    ],
)
def test_taobao_bad_lines_name_the_file_and_the_format(tmp_path: Path, line: str, message: str) -> None:
    good = f"1,2,3,pv,{WINDOW_START + 100}\n" if "window" not in message else ""
    (tmp_path / "UserBehavior.csv").write_text(good + line + "\n")
    with pytest.raises(DataFormatError, match=message) as error:
        TaobaoUserBehavior(str(tmp_path)).load()
    assert "UserBehavior.csv" in str(error.value) and "user_id,item_id,category_id" in str(error.value)


# --- Criteo --------------------------------------------------------------------------------------------------


def criteo_line(click: int, conv: str = "", ints: str = "\t".join(["1"] * 8), cats: str = "") -> str:
    return "\t".join([str(click), conv, ints, cats or "\t".join(["AB"] * 9)])


def test_criteo_reads_unsorted_files_in_click_order(tmp_path: Path) -> None:
    lines = [
        criteo_line(5000, "9000"),
        criteo_line(1000),
        criteo_line(3000, "3600", cats="\t".join(["C"] * 9)),
    ]
    (tmp_path / "data.txt").write_text("\n".join(lines) + "\n")
    log = CriteoConversionLogs(str(tmp_path)).load()
    np.testing.assert_allclose(log.click_ts, [0.0, 2000 / 3600, 4000 / 3600])
    np.testing.assert_allclose(log.conv_ts, [np.inf, 2600 / 3600, 8000 / 3600])
    assert log.features[1, 8] == hash_ids(np.array(["C"], dtype=object), 1_000_000)[0]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1000\t\t1\t2", "Expected 19 columns, got 4"),
        (criteo_line(1000, ints="\t".join(["1"] * 7 + ["abc"])), "invalid value 'abc'"),
        (criteo_line(1000, conv="soon"), "invalid value 'soon'"),
        ("\t" + criteo_line(1000)[5:], "empty click timestamp"),
    ],
)
def test_criteo_bad_lines_name_the_file_and_the_format(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "data.txt").write_text(criteo_line(500) + "\n" + line + "\n")
    with pytest.raises(DataFormatError, match=message) as error:
        CriteoConversionLogs(str(tmp_path)).load()
    assert "data.txt" in str(error.value) and "19 tab-separated fields" in str(error.value)


def test_criteo_empty_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("")
    with pytest.raises(DataFormatError, match="Empty CSV file"):
        CriteoConversionLogs(str(tmp_path)).load()


# --- TalkingData ---------------------------------------------------------------------------------------------


def test_talkingdata_reads_times_and_rejects_bad_ones(tmp_path: Path) -> None:
    header = "ip,app,device,os,channel,click_time,attributed_time,is_attributed\n"
    (tmp_path / "train_sample.csv").write_text(
        header + "1,2,3,4,5,2017-11-07 10:00:00,,0\n1,2,3,4,5,2017-11-07 09:00:00,2017-11-07 09:30:00,1\n"
    )
    log = TalkingDataClicks(str(tmp_path)).load()
    np.testing.assert_allclose(log.click_ts, [0.0, 1.0])
    np.testing.assert_allclose(log.conv_ts, [0.5, np.inf])
    assert log.features[:, -1].tolist() == [9, 10]
    (tmp_path / "train_sample.csv").write_text(header + "1,2,3,4,5,yesterday,,0\n")
    with pytest.raises(DataFormatError, match="train_sample.csv") as error:
        TalkingDataClicks(str(tmp_path)).load()
    assert "yesterday" in str(error.value) and "click_time" in str(error.value)
