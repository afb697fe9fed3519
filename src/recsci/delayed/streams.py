"""What a training system could observe at a given time: the streams of training records.

A *record* is one training example derived from a click: its features, a label read at ``observe_ts``
(never later than the time it is trained), and a kind. Methods differ in which records they train on:

``oracle``
    every click once, at its click time, with its eventual label (the ceiling; it sees the future).
``observed``
    every click once, labelled with what is known at the end of the window it is trained in
    (DFM, FSIW; elapsed time = window end - click time).
``waiting``
    every click enters after a waiting window ``w`` with the label seen by then (FIRST record); a click that
    converts after ``w`` is re-ingested as a positive at its conversion time (DELAYED_POSITIVE record)
    (FNW/FNC with ``w = 0``, ES-DFM, DEFUSE, the engagement-aware method, Vanilla).
``waiting_real_negatives``
    ``waiting`` plus, for every click that was not a delayed positive, a second copy at the end of the
    attribution window with its final label (FINAL record), so every click appears exactly twice (DEFER).

Training window ``[start, end)`` gets the records whose ``ingest_ts`` falls in it; each record's label and
engagement are read at its ``observe_ts <= end``. No conversion later than ``observe_ts`` is visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from recsci.delayed.data import ClickLog

StreamKind = Literal["oracle", "observed", "waiting", "waiting_real_negatives"]

FIRST, DELAYED_POSITIVE, FINAL = 0, 1, 2


@dataclass
class Records:
    """Training records: rows of a :class:`ClickLog` with the time each label was read."""

    index: np.ndarray  # [R] int64 click rows
    ingest_ts: np.ndarray  # [R] float64 when the record becomes available
    observe_ts: np.ndarray  # [R] float64 when its label and engagement were read
    label: np.ndarray  # [R] float32 label as observed at observe_ts (eventual label for oracle)
    kind: np.ndarray  # [R] int8 FIRST / DELAYED_POSITIVE / FINAL

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @staticmethod
    def concat(parts: list[Records]) -> Records:
        return Records(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in Records.__dataclass_fields__)
        )

    def elapsed(self, log: ClickLog) -> np.ndarray:
        """Hours between the click and the time the record was observed."""
        return self.observe_ts - log.click_ts[self.index]

    def engagement(self, log: ClickLog, columns: list[int]) -> np.ndarray:
        """[R, len(columns)] 1.0 where the engagement signal had happened by ``observe_ts``."""
        if not columns:
            return np.zeros((len(self), 0), dtype=np.float32)
        seen = log.engagement_ts[self.index][:, columns] <= self.observe_ts[:, None]
        return seen.astype(np.float32)

    def delay(self, log: ClickLog) -> np.ndarray:
        """Conversion delay (hours) of records labelled positive, 0 elsewhere (only observed delays)."""
        delay = log.conv_ts[self.index] - log.click_ts[self.index]
        return np.where(self.label > 0, delay, 0.0)


def clicks_in(log: ClickLog, start: float, end: float) -> np.ndarray:
    """Rows of clicks with ``start <= click_ts < end`` (the log is sorted, so a slice)."""
    lo, hi = np.searchsorted(log.click_ts, [start, end], side="left")
    return np.arange(lo, hi, dtype=np.int64)


def stream_records(
    log: ClickLog,
    stream: StreamKind,
    start: float,
    end: float,
    wait: float = 0.0,
    first_click: float = 0.0,
    duplicates_from: float | None = None,
) -> Records:
    """Records that become available during ``[start, end)`` under ``stream`` (see the module doc).

    ``first_click``: clicks before it get no FIRST record (they were in the pretraining window, labelled at
    its end); ``duplicates_from`` (default ``first_click``): clicks before it get no DELAYED_POSITIVE or
    FINAL record either. A stream after a pretraining window [s, T) passes ``first_click=T,
    duplicates_from=s``: pretraining clicks that convert later still come back as delayed positives.
    """
    dup_from = first_click if duplicates_from is None else duplicates_from
    if end < start:
        raise ValueError(f"window end {end} precedes its start {start}")
    t, c = log.click_ts, log.conv_ts
    if stream == "oracle":
        index = clicks_in(log, max(first_click, start), end)
        return _records(index, t[index], t[index], np.isfinite(c[index]), FIRST)
    if stream == "observed":
        index = clicks_in(log, max(first_click, start), end)
        observe = np.full(index.shape, float(end))
        return _records(index, t[index], observe, c[index] <= end, FIRST)
    if stream not in ("waiting", "waiting_real_negatives"):
        raise ValueError(f"unknown stream {stream!r}")
    parts = []
    # FIRST: the click enters after the waiting window with the label seen by then.
    index = clicks_in(log, max(first_click, start - wait), end - wait)
    ingest = t[index] + wait
    keep = (ingest >= start) & (ingest < end)
    index, ingest = index[keep], ingest[keep]
    parts.append(_records(index, ingest, ingest, c[index] <= ingest, FIRST))
    # DELAYED_POSITIVE: a conversion after the window re-enters the stream when it happens.
    # Conversions happen within the attribution window, so only clicks after start - A can convert now.
    index = clicks_in(log, max(dup_from, start - log.attribution_hours), end)
    converted = (c[index] > t[index] + wait) & (c[index] >= start) & (c[index] < end)
    index = index[converted]
    parts.append(_records(index, c[index], c[index], np.ones(index.shape, dtype=bool), DELAYED_POSITIVE))
    if stream == "waiting_real_negatives":
        # FINAL: clicks that were not delayed positives come back at the end of the attribution window.
        horizon = log.attribution_hours
        index = clicks_in(log, max(dup_from, start - horizon), end - horizon)
        final = t[index] + horizon
        delayed = np.isfinite(c[index]) & (c[index] > t[index] + wait)
        keep = (final >= start) & (final < end) & ~delayed
        index, final = index[keep], final[keep]
        parts.append(_records(index, final, final, c[index] <= t[index] + wait, FINAL))
    return Records.concat(parts)


def _records(
    index: np.ndarray, ingest: np.ndarray, observe: np.ndarray, label: np.ndarray, kind: int
) -> Records:
    return Records(
        index=index.astype(np.int64),
        ingest_ts=np.asarray(ingest, dtype=np.float64),
        observe_ts=np.asarray(observe, dtype=np.float64),
        label=np.asarray(label, dtype=np.float32),
        kind=np.full(index.shape, kind, dtype=np.int8),
    )


AuxTarget = Literal["delayed_positive", "flip", "observed_given_positive"]


def auxiliary_examples(
    log: ClickLog,
    target: AuxTarget,
    start: float,
    observe: float,
    maturity: float,
    wait: float,
    cut: Literal["wait", "random"],
    cuts_per_example: int,
    min_cut: float,
    max_cut: float,
    rng: np.random.Generator,
) -> Records:
    """Training examples for an auxiliary model, from what is known at ``observe`` (no later label).

    Only clicks at least ``maturity`` hours old at ``observe`` are used, and their "eventual" label is
    the one known at ``observe``: the pretraining-window models never see a conversion after it (the
    label leak of some public ES-DFM pretraining code, which labels with the full log).

    - ``delayed_positive``: all clicks; label = converts after the waiting window (``t + w < c <= observe``).
    - ``flip``: counterfactual cuts: for each click, elapsed times ``e`` (``w`` itself, or
      ``cuts_per_example`` draws log-uniform in ``[min_cut, max_cut]``); keep the cuts where it had not
      converted by ``t + e``; label = converts by ``observe``. ``observe_ts = t + e``: the engagement and
      elapsed inputs are those seen at the cut.
    - ``observed_given_positive``: eventual positives only, cuts as above; label = converted by ``t + e``.
    The returned records' ``label`` is the auxiliary target and ``observe_ts`` the cut time.
    """
    t, c = log.click_ts, log.conv_ts
    index = clicks_in(log, start, observe - maturity)
    if index.size == 0:
        raise ValueError(
            f"no click in [{start}, {observe - maturity}) h is mature enough to train an auxiliary model: "
            "lengthen the pretraining window or shorten aux_maturity_hours"
        )
    known = c[index] <= observe
    if target == "delayed_positive":
        label = known & (c[index] > t[index] + wait)
        at = t[index] + wait
        return _records(index, at, np.minimum(at, observe), label, FIRST)
    if target == "observed_given_positive":
        index = index[known]
    if cut == "wait":
        rows, elapsed = index, np.full(index.shape, float(wait))
    else:
        rows = np.repeat(index, cuts_per_example)
        low, high = np.log(min_cut), np.log(max_cut)
        elapsed = np.exp(rng.uniform(low, high, size=rows.shape))
    cut_ts = np.minimum(t[rows] + elapsed, observe)
    if target == "flip":
        alive = ~(c[rows] <= cut_ts)
        rows, cut_ts = rows[alive], cut_ts[alive]
        label = c[rows] <= observe
    else:
        label = c[rows] <= cut_ts
    return _records(rows, cut_ts, cut_ts, label, FIRST)
