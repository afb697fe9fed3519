"""Implementation of :class:`OptunaPruningCallback` (imported lazily: it needs Lightning)."""

from __future__ import annotations

import logging
import math

import lightning.pytorch as pl
import optuna

from ._context import PRUNED_AT_STEP_ATTR, current_trial

log = logging.getLogger(__name__)


class OptunaPruningCallback(pl.Callback):
    """Report ``monitor`` to the current Optuna trial after each validation; prune when told to.

    Outside a sweep (no trial in the job's environment) the callback does nothing, so it can stay
    in a training config permanently. Single-process training only: under DDP only one rank would
    raise ``TrialPruned``.
    """

    def __init__(self, monitor: str) -> None:
        super().__init__()
        self.monitor = monitor
        self._trial: optuna.trial.Trial | None = None
        self._warned_missing = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._trial = current_trial()
        if self._trial is not None and len(self._trial.study.directions) > 1:
            log.warning("OptunaPruningCallback: pruning is not supported for multi-objective studies; off")
            self._trial = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._trial is None or trainer.sanity_checking:
            return
        score = trainer.callback_metrics.get(self.monitor)
        if score is None:
            self._warn_missing(trainer)
            return
        value = float(score)
        step = trainer.current_epoch
        if not math.isfinite(value):
            return  # Optuna ignores non-finite intermediate values for pruning anyway
        self._trial.report(value, step=step)
        if self._trial.should_prune():
            # Recorded before raising so the sweeper marks the trial PRUNED even if the task
            # catches the exception and returns normally.
            self._trial.set_user_attr(PRUNED_AT_STEP_ATTR, step)
            raise optuna.TrialPruned(
                f"trial {self._trial.number} pruned at epoch {step} ({self.monitor}={value})"
            )

    def _warn_missing(self, trainer: pl.Trainer) -> None:
        if not self._warned_missing:
            available = sorted(trainer.callback_metrics)
            log.warning(
                "OptunaPruningCallback: metric '%s' was not logged; available: %s", self.monitor, available
            )
            self._warned_missing = True
