"""Callbacks every run gets, whatever the ``callbacks`` group says."""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch

from recsci.core.errors import NonFiniteLossError


class NonFiniteLossGuard(pl.Callback):
    """Stop training at the first NaN/inf loss, before the next checkpoint could store broken weights.

    Raising from ``on_train_batch_end`` aborts the epoch before ``ModelCheckpoint`` saves, so
    ``last.ckpt`` and the best checkpoint keep the last finite state.
    """

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        if math.isfinite(value):
            return
        checkpoint_dir = getattr(trainer.checkpoint_callback, "dirpath", None)
        kept = f" Checkpoints already written in '{checkpoint_dir}' are intact." if checkpoint_dir else ""
        raise NonFiniteLossError(
            f"Training loss became {value} at epoch {trainer.current_epoch}, step {trainer.global_step} "
            f"(batch {batch_idx}).{kept} Try a smaller model.lr, set trainer.gradient_clip_val, "
            "or check the input features for NaN/inf."
        )
