"""Heartbeats for trials run through a Hydra launcher, stale-trial detection, and retries.

Optuna records heartbeats only inside ``Study.optimize``; with ``ask``/``tell`` (which a sweeper
must use, since the launcher runs the job) nobody does. So the sweeper runs its own thread while a
batch is launched, calling the public ``RDBStorage.record_heartbeat(trial_id)``; stale trials are
failed with the public ``optuna.storages.fail_stale_trials(study)``, which then calls our
``retry_failed_trial`` (registered as the storage's ``heartbeat_stale_trial_callback``).

Optuna 5's ``JournalStorage`` has no heartbeat support at all. For it, the same thread writes a
timestamp into the trial's system attrs (``recsci:heartbeat``), and ``fail_stale_journal_trials``
fails RUNNING trials whose latest timestamp (or start time) is older than the grace period.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)

JOURNAL_HEARTBEAT_ATTR = "recsci:heartbeat"
# Same system-attr names as optuna.storages.RetryHeartbeatStaleTrialCallback, so its public
# helpers (retried_trial_number, retry_history) work on our retries too.
FAILED_TRIAL_ATTR = "failed_trial"
RETRY_HISTORY_ATTR = "retry_history"


class BatchHeartbeat:
    """Context manager: while open, record a heartbeat for each trial of a launched batch."""

    def __init__(self, storage: BaseStorage | None, trial_ids: Sequence[int], interval_s: int | None) -> None:
        self._storage = storage
        self._trial_ids = list(trial_ids)
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> BatchHeartbeat:
        if self._storage is not None and self._interval_s and self._trial_ids:
            self._beat_once()  # the first beat must exist before anyone can judge the trial stale
            self._thread = threading.Thread(target=self._run, name="recsci-optuna-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        assert self._interval_s
        while not self._stop.wait(self._interval_s):
            try:
                self._beat_once()
            except Exception:  # a transient storage error must not kill the heartbeat for good
                log.warning("optuna sweeper: failed to record a heartbeat", exc_info=True)

    def _beat_once(self) -> None:
        for trial_id in self._trial_ids:
            record_heartbeat(self._storage, trial_id)


def record_heartbeat(storage: BaseStorage | None, trial_id: int) -> None:
    if isinstance(storage, RDBStorage):
        storage.record_heartbeat(trial_id)
    elif isinstance(storage, JournalStorage):
        storage.set_trial_system_attr(trial_id, JOURNAL_HEARTBEAT_ATTR, time.time())


def fail_stale_trials(
    study: optuna.Study, storage: BaseStorage | None, grace_period_s: float | None, on_stale: RetryStaleTrial
) -> None:
    """Mark RUNNING trials of dead workers FAIL and enqueue their retries (no-op without heartbeat).

    For RDB storages ``on_stale`` must be the callback the storage was created with (Optuna calls it).
    """
    if isinstance(storage, RDBStorage):
        if storage.heartbeat_interval is None:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    elif isinstance(storage, JournalStorage) and grace_period_s:
        fail_stale_journal_trials(study, storage, grace_period_s, on_stale)


def fail_stale_journal_trials(
    study: optuna.Study, storage: JournalStorage, grace_period_s: float, on_stale: RetryStaleTrial
) -> None:
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        last_beat = trial.system_attrs.get(JOURNAL_HEARTBEAT_ATTR)
        if last_beat is None and trial.datetime_start is not None:
            last_beat = _local_timestamp(trial.datetime_start)
        if last_beat is None or now - float(last_beat) <= grace_period_s:
            continue
        try:
            # FrozenTrial has no public trial id; _trial_id is what Optuna's own helpers use.
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker finished or failed it first
        on_stale(study, storage.get_trial(trial._trial_id))


def retry_failed_trial(study: optuna.Study, trial: FrozenTrial, max_retries: int) -> bool:
    """Enqueue a WAITING copy of ``trial`` (same params) unless it was retried ``max_retries`` times.

    Unlike Optuna's RetryHeartbeatStaleTrialCallback this does not copy user attrs, so the error
    and output dir of the failed attempt do not leak into the retry. Returns whether it enqueued.
    """
    history = [*trial.system_attrs.get(RETRY_HISTORY_ATTR, []), trial.number]
    if len(history) > max_retries:
        log.warning(
            "optuna sweeper: trial %d failed and its params were already tried %d time(s); giving up on %s",
            trial.number,
            len(history),
            trial.params,
        )
        return False
    if _already_retried(study, trial.number):
        return False  # another worker enqueued the retry first
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            system_attrs={FAILED_TRIAL_ATTR: history[0], RETRY_HISTORY_ATTR: history},
        )
    )
    log.info("optuna sweeper: trial %d failed; enqueued a retry with the same params", trial.number)
    return True


@dataclass(frozen=True)
class RetryStaleTrial:
    """``heartbeat_stale_trial_callback``: log the stale trial, then retry it with the same params."""

    max_retries: int

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        log.warning(
            "optuna sweeper: trial %d had no heartbeat within the grace period (worker killed?); marked FAIL",
            trial.number,
        )
        retry_failed_trial(study, trial, self.max_retries)


def _already_retried(study: optuna.Study, trial_number: int) -> bool:
    for other in study.get_trials(deepcopy=False):
        if other.system_attrs.get(RETRY_HISTORY_ATTR, [None])[-1] == trial_number:
            return True
    return False


def _local_timestamp(moment: datetime) -> float:
    # Optuna stores naive datetimes in local time.
    return moment.timestamp()
