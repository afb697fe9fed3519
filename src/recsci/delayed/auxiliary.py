"""Auxiliary models the weights need: delayed-positive, flip and observed-given-positive probabilities.

Each is a small LightningModule over the same feature fields, plus (optionally) elapsed time and
engagement flags as *extra* inputs: those exist at training time, so they may shape the weights, but
never reach the main model. They are fitted on the pretraining window, from labels known at its end
(:func:`recsci.delayed.streams.auxiliary_examples`), then frozen.

- ``delayed_positive``: p_dp(x) = P(converts after the waiting window | x)        (ES-DFM, DEFER, DEFUSE)
- ``flip``: z(x[, e, g]) = P(eventually converts | not converted by elapsed e, x[, engagement by e])
  (ES-DFM's p_rn = 1 - z with e = w; FSIW's P(y=0 | not yet, x, e) = 1 - z; the engagement-aware z)
- ``observed_given_positive``: P(converted by e | converts, x, e)                   (FSIW)

Offset (``offset``: ``main`` or ``vanilla``, the in-run Vanilla reference; flip and delayed-positive models):
p(x) = P(y=1 | x) is what the main model estimates from the whole stream, while these models see only
matured clicks, so their feature part is stale. With o = stopgrad(logit of that learner's p(x)) and r the
network's output:

- flip: logit z = o + r(x[, e, g]). By Bayes, logit z(x, e, g) = logit p(x) + log[P(not converted by e, g |
  y=1, x) / P(g | y=0, x)], so r learns the delay/engagement likelihood ratio; r = 0 gives z = p(x).
- delayed_positive: p_dp = sigmoid(o) * sigmoid(r), since p_dp(x) = P(y=1 | x) P(delay > w | y=1, x); r
  learns the delay's survival at the waiting window.

Label horizon (``label_horizon``; flip and delayed-positive models): their labels are read when the clicks
are only ``aux_maturity_hours`` old or a little older (24-36 h in the streaming updates, 24-72 h in the
pretraining fit), and a conversion after that is still counted as "never": the label is censored, and more
for feature values with long delays. With the flag, log1p(hours from the click to the label's reading) is
one more input, so the network learns P(converts by that horizon | ...); predictions ask for the attribution
window, i.e. the eventual label the weights need.

The protocol supplies the offset function (:meth:`AuxiliaryModel.set_offset`); ``forward`` evaluates it
without gradient on the rows at hand (fitting, updating and predicting alike), so only rows that are used
cost a main-model pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from pydantic import Field
from torch import Tensor
from torch.nn.functional import binary_cross_entropy_with_logits, logsigmoid

from recsci.delayed.data import ClickLog
from recsci.delayed.models import FieldMLP
from recsci.delayed.streams import AuxTarget, Records

Signals = str | list[str]
OffsetSource = Literal["none", "main", "vanilla"]


def product_logit(a: Tensor, b: Tensor) -> Tensor:
    """logit(sigmoid(a) * sigmoid(b)), stable: with l = log sigmoid(a) + log sigmoid(b) < 0, the logit is
    l - log(1 - e^l), and log(1 - e^l) is taken by expm1 near 0 and log1p far from it."""
    log_p = (logsigmoid(a) + logsigmoid(b)).clamp(max=-1e-7)
    log_not_p = torch.where(log_p > -0.6931, torch.log(-torch.expm1(log_p)), torch.log1p(-torch.exp(log_p)))
    return log_p - log_not_p


class AuxiliaryModel(pl.LightningModule):
    """A binary classifier over (features[, log1p(elapsed hours)][, engagement flags]); see module doc."""

    def __init__(
        self,
        target: AuxTarget,
        signals: Signals = "none",
        use_elapsed: bool = False,
        cut: Literal["wait", "random"] = "wait",
        cuts_per_example: Annotated[int, Field(ge=1)] = 2,
        min_cut_hours: Annotated[float, Field(gt=0.0)] = 0.05,
        max_cut_hours: Annotated[float, Field(gt=0.0)] = 48.0,
        embed_dim: Annotated[int, Field(ge=1)] = 8,
        hidden: tuple[Annotated[int, Field(ge=1)], ...] | Annotated[int, Field(ge=1)] = (32,),
        lr: Annotated[float, Field(gt=0.0)] = 3e-3,
        epochs: Annotated[int, Field(ge=1)] = 2,
        offset: OffsetSource = "none",
        label_horizon: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        if offset != "none" and target == "observed_given_positive":
            raise ValueError(f"offset={offset!r}: target='observed_given_positive' has no p(x) factor")
        if label_horizon and target == "observed_given_positive":
            raise ValueError(
                "label_horizon=true: target='observed_given_positive' reads its label at the cut"
            )
        if cut == "random" and not use_elapsed:
            raise ValueError("cut='random' draws several elapsed times: set use_elapsed=true to use them")
        if target == "delayed_positive" and (use_elapsed or signals not in ("none", [], ())):
            raise ValueError("target='delayed_positive' is a function of the features only")
        if min_cut_hours >= max_cut_hours:
            raise ValueError("min_cut_hours must be below max_cut_hours")
        self.target, self.signals, self.use_elapsed = target, signals, use_elapsed
        self.cut, self.cuts_per_example = cut, cuts_per_example
        self.min_cut_hours, self.max_cut_hours = min_cut_hours, max_cut_hours
        hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)  # an int: one hidden layer that wide
        self.embed_dim, self.hidden, self.lr, self.epochs = embed_dim, hidden, lr, epochs
        self.net: FieldMLP | None = None
        self.columns: list[int] = []
        self.offset, self.label_horizon = offset, label_horizon
        # A plain callable, not a submodule: the main model's parameters must stay out of this model's
        # freeze/unfreeze, optimiser and state dict.
        self.offset_fn: Callable[[Tensor], Tensor] | None = None
        self._optimizer: torch.optim.Optimizer | None = None

    def variant(self, **changes: object) -> AuxiliaryModel:
        """A fresh, unfitted model with the same settings except ``changes``."""
        return AuxiliaryModel(**{**self.hparams, **changes})

    def build(self, log: ClickLog) -> None:
        self.columns = log.signal_columns(self.signals)
        extra = int(self.use_elapsed) + len(self.columns) + int(self.label_horizon)
        self.net = FieldMLP(log.cardinalities, self.embed_dim, self.hidden, extra_dim=extra)

    def set_offset(self, offset_fn: Callable[[Tensor], Tensor] | None) -> None:
        """The logit offset's source (features -> logits), called (without gradient) whenever the model runs."""
        if self.offset != "none" and offset_fn is None:
            raise ValueError(f"offset={self.offset!r} needs an offset function")
        # Into __dict__ directly: a module passed here (nn.Module.__setattr__ would register it) must not
        # become a submodule, or this model's freeze() would freeze the main model too.
        self.__dict__["offset_fn"] = offset_fn

    def inputs(self, log: ClickLog, records: Records, horizon: np.ndarray | None = None) -> dict[str, Tensor]:
        """Features and extra inputs of ``records``, read at their ``observe_ts``. ``horizon``: hours from
        each click to the reading of its label (training examples); None: the attribution window (the
        eventual label, for predictions). Used only with ``label_horizon``."""
        extra = [records.engagement(log, self.columns)]
        if self.use_elapsed:
            extra.insert(0, np.log1p(np.maximum(records.elapsed(log), 0.0)).astype(np.float32)[:, None])
        if self.label_horizon:
            hours = np.full(len(records), log.attribution_hours) if horizon is None else horizon
            extra.append(np.log1p(np.maximum(hours, 0.0)).astype(np.float32)[:, None])
        return {
            "x": torch.from_numpy(np.ascontiguousarray(log.features[records.index])),
            "extra": torch.from_numpy(np.concatenate(extra, axis=1).astype(np.float32)),
        }

    def offset_logits(self, x: Tensor) -> Tensor:
        """The detached offset o(x) (see the module doc)."""
        if self.offset_fn is None:
            raise RuntimeError(f"offset={self.offset!r}: call set_offset before using the model")
        with torch.no_grad():
            return self.offset_fn(x).detach().reshape(-1).float()

    def forward(self, x: Tensor, extra: Tensor) -> Tensor:
        """The logit of this model's probability (with ``offset``: the forms of the module doc)."""
        logits = self.net(x, extra if self.net.extra_dim else None)
        if self.offset == "none":
            return logits
        offset = self.offset_logits(x)
        if self.target == "delayed_positive":
            return product_logit(offset, logits)
        return logits + offset

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = binary_cross_entropy_with_logits(self(batch["x"], batch["extra"]), batch["label"])
        self.log(f"aux/{self.target}/loss", loss, batch_size=batch["label"].numel())
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # One optimiser for the model's life: the first fit and every streaming update continue the same
        # Adam moments (a warm start; a fresh Adam would take lr-sized steps again at each update).
        # Fused Adam (one kernel over all parameters; on CPU since torch 2.4) makes a step of these tiny
        # networks ~20% cheaper.
        if self._optimizer is None:
            fused = torch.__version__ >= "2.4"
            self._optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr, fused=fused)
        # The moments follow the parameters: the first fit may have run on a GPU (Lightning moves the
        # model back to the CPU after it, but leaves a fused Adam's `step` counters behind on the GPU).
        device = next(self.net.parameters()).device
        for state in self._optimizer.state.values():
            for key, value in state.items():
                if isinstance(value, Tensor) and value.device != device:
                    state[key] = value.to(device)
        return self._optimizer

    def update(
        self,
        columns: dict[str, Tensor],
        batch_size: int,
        max_steps: int | None,
        rng: np.random.Generator,
    ) -> float:
        """Continue training on ``columns`` (``x``, ``extra``, ``label``): one pass in a random order, cut
        after ``max_steps`` batches (None: the whole pass), with the optimiser of the first fit. Returns
        the mean loss.

        A plain loop, not a Trainer: a streaming update is a short fit of a tiny network, where building a
        Trainer and Lightning's per-step logging cost more than the arithmetic. The caller makes the
        parameters trainable (``unfreeze``) around it.
        """
        rows = int(columns["label"].size(0))
        take = rows if max_steps is None else min(rows, max_steps * batch_size)
        if take == 0:
            return float("nan")
        order = torch.from_numpy(rng.permutation(rows)[:take])
        x, extra, label = (columns[key][order] for key in ("x", "extra", "label"))
        optimizer = self.configure_optimizers()
        was_training = self.training
        self.train()
        total = torch.zeros(())
        with torch.enable_grad():
            for start in range(0, take, batch_size):
                end = min(start + batch_size, take)
                optimizer.zero_grad(set_to_none=True)
                logits = self(x[start:end], extra[start:end])
                loss = binary_cross_entropy_with_logits(logits, label[start:end])
                loss.backward()
                optimizer.step()
                total += loss.detach() * (end - start)
        self.train(was_training)
        return float(total) / take

    @torch.no_grad()
    def predict_records(self, log: ClickLog, records: Records, batch_size: int = 65536) -> Tensor:
        """Probabilities for ``records`` (no gradient: the weights built from them are constants)."""
        was_training = self.training
        self.eval()
        inputs = self.inputs(log, records)
        out = [
            torch.sigmoid(self(inputs["x"][i : i + batch_size], inputs["extra"][i : i + batch_size]))
            for i in range(0, len(records), batch_size)
        ]
        self.train(was_training)
        return torch.cat(out) if out else torch.zeros(0)
