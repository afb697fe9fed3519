"""LightningModule for conversion prediction under delayed feedback: one backbone, one method.

``forward(x)`` takes the click's features only. Elapsed time and engagement reach training only through
the method's per-record weights, which are constants (computed without gradient before the window is
trained, or from a detached prediction).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import lightning.pytorch as pl
import torch
from pydantic import Field
from torch import Tensor
from torch.nn.functional import binary_cross_entropy_with_logits

from recsci.delayed.data import ClickLog
from recsci.delayed.methods import Method
from recsci.delayed.models import ConversionModel, FieldMLP

Phase = Literal["pretrain", "warmup", "stream"]


class DelayedFeedbackModule(pl.LightningModule):
    """Trains ``ConversionModel(backbone)`` with ``method``'s loss on the records a protocol feeds it.

    Phases (set by the protocol): ``pretrain`` (plain cross-entropy on labels observed at the end of the
    pretraining window; identical for every method), ``warmup`` (method-specific heads, e.g. DFM's
    delay model, with the conversion model fixed), ``stream`` (the method's loss). The optimiser is
    kept across the windows of one phase (a stream is one long training run) and reset between phases.
    """

    def __init__(
        self,
        backbone: Callable[..., FieldMLP],
        method: Method,
        lr: Annotated[float, Field(gt=0.0)] = 1e-3,
        weight_decay: Annotated[float, Field(ge=0.0)] = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["backbone", "method"], logger=False)
        self.backbone_factory = backbone
        self.method = method
        self.model: ConversionModel | None = None
        self.phase: Phase = "pretrain"
        self._optimizer: torch.optim.Optimizer | None = None

    def build(self, log: ClickLog) -> None:
        """Create the networks once the data's fields are known (the backbone first, for seeding)."""
        if self.model is None:
            self.model = ConversionModel(self.backbone_factory(cardinalities=log.cardinalities))
            self.method.build(log)

    def set_phase(self, phase: Phase) -> None:
        if phase != self.phase:
            self._optimizer = None
        self.phase = phase

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    @torch.no_grad()
    def predict_proba(self, x: Tensor, batch_size: int = 65536) -> Tensor:
        """Served conversion probabilities for feature rows ``x`` (eval mode, batched)."""
        was_training = self.training
        self.eval()
        out = [self.method.probability(self(x[i : i + batch_size])) for i in range(0, x.size(0), batch_size)]
        self.train(was_training)
        return torch.cat(out) if out else torch.zeros(0)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        logits = self(batch["x"])
        if self.phase == "pretrain":
            loss = binary_cross_entropy_with_logits(logits, batch["label"])
        elif self.phase == "warmup":
            loss = self.method.warmup_loss(logits, batch)
        else:
            loss = self.method.loss(logits, batch)
        self.log(f"train/{self.phase}_loss", loss, batch_size=logits.numel())
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # The auxiliary models are children of the method but are fitted separately: never optimised here.
        if self._optimizer is None:
            params = list(self.model.parameters()) + self.method.trainable_parameters()
            self._optimizer = torch.optim.Adam(
                params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
            )
        return self._optimizer
