"""Protocols: what a run does with its datamodule, module and trainer (the ``protocol`` group).

The default, :class:`FitValidateTest`, trains once, then validates and tests the best checkpoint.
A problem whose evaluation is not "fit once, test once" (streaming over time intervals, fitting a
decision rule on held-out predictions) provides its own protocol class with the same call signature,
so the core run loop stays problem-agnostic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger

from recsci.core.results import to_float_dict


@dataclass
class RunContext:
    """Everything a protocol may use; ``record`` entries are written to ``metrics.json``."""

    module: pl.LightningModule
    datamodule: pl.LightningDataModule
    make_trainer: Callable[..., pl.Trainer]  # keyword overrides of the trainer config -> a fresh Trainer
    loggers: list[Logger]
    output_dir: Path
    ckpt_path: str | None
    train: bool = True
    test: bool = True
    record: dict[str, Any] = field(default_factory=dict)


class RunProtocol(Protocol):
    def __call__(self, context: RunContext) -> dict[str, float]:
        """Run the protocol; return the final flat metrics (``val/...``, ``test/...``)."""
        ...


class FitValidateTest:
    """Fit once (resuming from ``ckpt_path`` if given), then validate and test the best checkpoint."""

    def __call__(self, context: RunContext) -> dict[str, float]:
        trainer = context.make_trainer()
        module, datamodule = context.module, context.datamodule
        metrics: dict[str, float] = {}
        best_path = context.ckpt_path  # without training, evaluate the given checkpoint
        if context.train:
            trainer.fit(module, datamodule=datamodule, ckpt_path=context.ckpt_path)
            best_path = best_checkpoint(trainer)
            context.record.update(epochs_completed=trainer.current_epoch, global_step=trainer.global_step)
        # Recorded before evaluating: if evaluation fails, metrics.json still names the model it evaluated.
        context.record["best_checkpoint"] = best_path
        # Validation metrics of the model that is tested (the best checkpoint when there is one). Each
        # call loads that checkpoint's weights into the module, so subclasses can keep using it after.
        for row in trainer.validate(module, datamodule=datamodule, ckpt_path=best_path, verbose=False):
            metrics.update(to_float_dict(row))
        if context.test:
            for row in trainer.test(module, datamodule=datamodule, ckpt_path=best_path, verbose=False):
                metrics.update(to_float_dict(row))
        return metrics


def best_checkpoint(trainer: pl.Trainer) -> str | None:
    """Path of the best checkpoint the trainer's ``ModelCheckpoint`` kept, if any."""
    callback = trainer.checkpoint_callback
    if isinstance(callback, ModelCheckpoint) and callback.best_model_path:
        return callback.best_model_path
    return None
