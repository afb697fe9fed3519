"""Streaming and batch protocols for delayed feedback (the ``protocol`` group).

Both run the same steps:

1. pretrain the main model on ``[start, start + pretrain_hours)`` with the labels known at the window's end
   (plain cross-entropy; the same for every method, so the *Pretrained* reference is shared);
2. method warm-up (DFM's delay head) and the method's auxiliary models, fitted on the same window with
   labels known at its end (counterfactual cuts for the flip model);
3. train on windows of what was observable (records from :func:`recsci.delayed.streams.stream_records`),
   first updating the auxiliary models (``aux_updates``) on the clicks that matured since their last
   update, with the labels known at the window's end;
4. evaluate on later windows with eventual labels.

Auxiliary updates are short continuations of the auxiliary models' training (:meth:`AuxiliaryModel.update`:
a plain loop, the optimiser state kept from the first fit), every ``aux_update_every`` training windows, with
at most ``aux_update_steps`` batches of ``aux_update_batch_size`` per model and update (a random subsample of
the matured examples when there are more; null: all of them). The budget bounds the cost of an interval
whatever the stream's rate: at the streaming defaults (64 batches of 256) an update on the 100 k-click
simulator uses every matured example, one on the 1 M-click stream about a third of the p_dp examples and
a sixth of the flip examples (``experiments/bench/delayed_stream.py``).

Streaming (ES-DFM/DEFER/DEFUSE protocol): train on interval k, test on interval k + 1; the first
``val_intervals`` evaluations are ``val/*`` (for tuning), the rest ``test/*``; metrics are averaged over
intervals weighted by their number of clicks. Batch: train once on everything observed by the cut time,
validate on the next ``val_hours``, test on the ``test_hours`` after that.

Auxiliary models with a logit offset (``offset: main | vanilla``, :mod:`recsci.delayed.auxiliary`) read it
from the named learner's current state whenever their columns are built: during the pretraining fit that is
the pretrained model, afterwards the learner as trained on the windows so far (:meth:`_Runner.attach_offsets`).

References trained alongside on the same windows (``references``): Vanilla and Oracle, plus the frozen
Pretrained model, so RI is computed inside one run and one seed. With ground truth (simulator) the
true probabilities are scored as ``*/truth/*`` too.

``num_threads`` (default 1): torch intra-op threads during the run. These models are tiny, and on a
shared 2-core machine two OpenMP threads per step were 25x slower than one (measured: 46 vs 1.6 ms/step).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, ModelSummary
from pydantic import Field

from recsci.core.errors import ConfigError
from recsci.core.protocols import RunContext
from recsci.delayed.auxiliary import AuxiliaryModel
from recsci.delayed.data import ClickLog
from recsci.delayed.datamodule import DelayedDataModule
from recsci.delayed.methods import EPS, FIRST, Method, Oracle, Pretrained, Vanilla
from recsci.delayed.metrics import (
    RI_METRICS,
    binary_metrics,
    calibration_bins,
    relative_improvement,
    weighted_mean,
)
from recsci.delayed.module import DelayedFeedbackModule
from recsci.delayed.streams import Records, auxiliary_examples, clicks_in, stream_records

log = logging.getLogger(__name__)

Hours = Annotated[float, Field(gt=0.0)]
NonNegativeHours = Annotated[float, Field(ge=0.0)]
Reference = Literal["pretrained", "vanilla", "oracle"]
Count = Annotated[int, Field(ge=1)]


@dataclass
class Step:
    """Train on ``train`` (a [start, end) window, or None) for ``epochs``, then evaluate ``evaluate``."""

    train: tuple[float, float] | None
    epochs: int
    evaluate: list[tuple[float, float, str]]  # (start, end, "val" | "test")


class _DelayedProtocol:
    def __init__(
        self,
        pretrain_hours: Hours,
        wait_hours: NonNegativeHours,
        pretrain_epochs: int,
        aux_maturity_hours: NonNegativeHours,
        start_hours: NonNegativeHours,
        references: Sequence[Reference],
        flip_diagnostics: bool,
        num_threads: int | None,
        aux_updates: bool,
        aux_update_every: int,
        aux_update_steps: int | None,
        aux_update_batch_size: int,
    ) -> None:
        self.num_threads, self.aux_updates = num_threads, aux_updates
        self.aux_update_every, self.aux_update_steps = aux_update_every, aux_update_steps
        self.aux_update_batch_size = aux_update_batch_size
        self.pretrain_hours, self.wait_hours, self.pretrain_epochs = (
            pretrain_hours,
            wait_hours,
            pretrain_epochs,
        )
        self.aux_maturity_hours, self.start_hours = aux_maturity_hours, start_hours
        self.references = tuple(references)
        self.flip_diagnostics = flip_diagnostics

    def steps(self, log: ClickLog) -> list[Step]:
        raise NotImplementedError

    def __call__(self, context: RunContext) -> dict[str, float]:
        if not isinstance(context.module, DelayedFeedbackModule) or not isinstance(
            context.datamodule, DelayedDataModule
        ):
            raise ConfigError(
                f"protocol {type(self).__name__} needs a delayed-feedback model and data "
                "(model=delayed_*, data=delayed_*); got "
                f"{type(context.module).__name__} and {type(context.datamodule).__name__}"
            )
        threads = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        try:
            return _Runner(self, context).run()
        finally:
            torch.set_num_threads(threads)


class StreamingProtocol(_DelayedProtocol):
    """Pretrain, then train on interval k and test on interval k + 1 (see the module doc)."""

    def __init__(
        self,
        pretrain_hours: Hours = 72.0,
        interval_hours: Hours = 6.0,
        num_intervals: Annotated[int, Field(ge=1)] | None = None,
        val_intervals: Annotated[int, Field(ge=0)] = 4,
        wait_hours: NonNegativeHours = 0.25,
        pretrain_epochs: Annotated[int, Field(ge=1)] = 2,
        epochs_per_interval: Annotated[int, Field(ge=1)] = 1,
        aux_maturity_hours: NonNegativeHours = 24.0,
        start_hours: NonNegativeHours = 0.0,
        references: Sequence[Reference] = ("pretrained", "vanilla", "oracle"),
        flip_diagnostics: bool = True,
        num_threads: Annotated[int, Field(ge=1)] | None = 1,
        aux_updates: bool = True,
        aux_update_every: Count = 1,
        aux_update_steps: Count | None = 64,
        aux_update_batch_size: Count = 256,
    ) -> None:
        super().__init__(
            pretrain_hours,
            wait_hours,
            pretrain_epochs,
            aux_maturity_hours,
            start_hours,
            references,
            flip_diagnostics,
            num_threads,
            aux_updates,
            aux_update_every,
            aux_update_steps,
            aux_update_batch_size,
        )
        self.interval_hours, self.num_intervals = interval_hours, num_intervals
        self.val_intervals, self.epochs_per_interval = val_intervals, epochs_per_interval

    def steps(self, log: ClickLog) -> list[Step]:
        begin = self.start_hours + self.pretrain_hours
        available = int(math.floor((log.span_hours - begin) / self.interval_hours + 1e-9)) - 1
        count = self.num_intervals if self.num_intervals is not None else available
        if count < 1 or count > available:
            raise ConfigError(
                f"protocol: {count} streaming intervals of {self.interval_hours} h after {begin} h of pretraining "
                f"need {begin + (count + 1) * self.interval_hours:.1f} h of clicks; {log.name} spans "
                f"{log.span_hours:.1f} h ({max(available, 0)} intervals fit). Lower protocol.num_intervals, "
                "protocol.interval_hours or protocol.pretrain_hours."
            )
        if self.val_intervals >= count:
            raise ConfigError(
                f"protocol.val_intervals={self.val_intervals} leaves no test interval of {count}"
            )
        steps = []
        for k in range(count):
            s = begin + k * self.interval_hours
            e = s + self.interval_hours
            split = "val" if k < self.val_intervals else "test"
            steps.append(Step((s, e), self.epochs_per_interval, [(e, e + self.interval_hours, split)]))
        return steps


class BatchProtocol(_DelayedProtocol):
    """Pretrain, train once on what was observed by ``cut_hours``, validate then test on later windows."""

    def __init__(
        self,
        pretrain_hours: Hours = 72.0,
        cut_hours: Hours = 240.0,
        val_hours: Hours = 24.0,
        test_hours: Hours = 48.0,
        wait_hours: NonNegativeHours = 0.25,
        pretrain_epochs: Annotated[int, Field(ge=1)] = 2,
        epochs: Annotated[int, Field(ge=1)] = 2,
        aux_maturity_hours: NonNegativeHours = 24.0,
        start_hours: NonNegativeHours = 0.0,
        references: Sequence[Reference] = ("pretrained", "vanilla", "oracle"),
        flip_diagnostics: bool = True,
        num_threads: Annotated[int, Field(ge=1)] | None = 1,
        aux_updates: bool = True,
        aux_update_every: Count = 1,
        aux_update_steps: Count | None = None,
        aux_update_batch_size: Count = 256,
    ) -> None:
        super().__init__(
            pretrain_hours,
            wait_hours,
            pretrain_epochs,
            aux_maturity_hours,
            start_hours,
            references,
            flip_diagnostics,
            num_threads,
            aux_updates,
            aux_update_every,
            aux_update_steps,
            aux_update_batch_size,
        )
        self.cut_hours, self.val_hours, self.test_hours, self.epochs = (
            cut_hours,
            val_hours,
            test_hours,
            epochs,
        )

    def steps(self, log: ClickLog) -> list[Step]:
        begin = self.start_hours + self.pretrain_hours
        end = self.cut_hours + self.val_hours + self.test_hours
        if not begin < self.cut_hours or end > log.span_hours + 1e-9:
            raise ConfigError(
                f"protocol: pretraining ends at {begin} h, the cut is at {self.cut_hours} h and testing ends at "
                f"{end} h, but {log.name} spans {log.span_hours:.1f} h: need pretraining end < cut and the test "
                "window inside the log."
            )
        cut, val_end = self.cut_hours, self.cut_hours + self.val_hours
        return [Step((begin, cut), self.epochs, [(cut, val_end, "val"), (val_end, end, "test")])]


def _served_logits(learner: DelayedFeedbackModule) -> Callable[[torch.Tensor], torch.Tensor]:
    """Features -> logit of ``learner``'s served probability (no gradient, batched). Only the conversion
    model is put in eval mode and back (not the whole learner, whose method holds the auxiliary models)."""

    def logits(x: torch.Tensor, batch_size: int = 65536) -> torch.Tensor:
        model, was_training = learner.model, learner.model.training
        model.eval()
        with torch.no_grad():
            p = torch.cat(
                [
                    learner.method.probability(model(x[i : i + batch_size]))
                    for i in range(0, x.size(0), batch_size)
                ]
                or [torch.zeros(0)]
            )
        model.train(was_training)
        return torch.logit(p.clamp(EPS, 1.0 - EPS))

    return logits


class _Runner:
    """One delayed-feedback run: the steps of a protocol applied to a module and its references."""

    def __init__(self, protocol: _DelayedProtocol, context: RunContext) -> None:
        self.protocol, self.context = protocol, context
        self.datamodule: DelayedDataModule = context.datamodule
        self.module: DelayedFeedbackModule = context.module
        self.last_trainer: pl.Trainer | None = None

    # -- training helpers --------------------------------------------------------------------------

    def fit(self, module: pl.LightningModule, columns: dict[str, torch.Tensor], epochs: int) -> None:
        if columns["x"].size(0) == 0:
            return
        trainer = self.context.make_trainer(max_epochs=epochs, min_epochs=1, enable_progress_bar=False)
        # Each window is one short fit: per-fit checkpoints, early stopping and summaries do not apply
        # (there is no validation loop inside a window). The final model is saved at the end.
        trainer.callbacks = [
            cb
            for cb in trainer.callbacks
            if not isinstance(cb, (ModelCheckpoint, EarlyStopping, ModelSummary))
        ]
        trainer.fit(module, train_dataloaders=self.datamodule.loader(columns))
        if module is self.module:
            self.last_trainer = trainer

    def wait_for(self, method: Method) -> float:
        return self.protocol.wait_hours if method.wait is None else method.wait

    def window_columns(self, method: Method, window: tuple[float, float]) -> dict[str, torch.Tensor]:
        log, p = self.log, self.protocol
        records = stream_records(
            log,
            method.stream,
            *window,
            wait=self.wait_for(method),
            first_click=self.pretrain_end,
            duplicates_from=p.start_hours,
        )
        return self.datamodule.record_columns(records, method.prepare(log, records) if len(records) else {})

    def auxiliary_columns(
        self, aux: AuxiliaryModel, wait: float, rng: np.random.Generator, first: float, observe: float
    ) -> dict[str, torch.Tensor] | None:
        """Training columns of ``aux`` from the clicks in [first, observe - maturity), with the labels
        (and, at the counterfactual cuts, the engagement) known at ``observe``; None if no click is
        mature enough."""
        p = self.protocol
        if observe - p.aux_maturity_hours <= first:
            return None
        records = auxiliary_examples(
            self.log,
            aux.target,
            first,
            observe,
            p.aux_maturity_hours,
            wait,
            aux.cut,
            aux.cuts_per_example,
            aux.min_cut_hours,
            aux.max_cut_hours,
            rng,
        )
        columns = aux.inputs(self.log, records)
        columns["label"] = torch.from_numpy(records.label)
        return columns

    def fit_auxiliary(self, aux: AuxiliaryModel, wait: float, rng: np.random.Generator) -> None:
        """Fit ``aux`` on the pretraining window (``aux.epochs`` epochs, labels known at its end)."""
        if aux.net is None:
            aux.build(self.log)
        columns = self.auxiliary_columns(aux, wait, rng, self.protocol.start_hours, self.pretrain_end)
        if columns is None:
            return
        aux.unfreeze()
        self.fit(aux, columns, aux.epochs)
        aux.freeze()
        aux.train()  # frozen (no gradient), but in the same mode as its parent during the main fits

    def attach_offsets(
        self, auxiliaries: dict[str, AuxiliaryModel], sources: dict[str, DelayedFeedbackModule | None]
    ) -> None:
        """Give each auxiliary model with an ``offset`` the served logit of its source learner, read
        without gradient whenever the auxiliary model runs (so always the learner's current state, which
        has seen only what was observable by then)."""
        for name, aux in auxiliaries.items():
            if aux.offset == "none":
                continue
            source = sources.get(aux.offset)
            if source is None and aux.offset == "vanilla" and isinstance(self.module.method, Vanilla):
                source = self.module  # the method is its own Vanilla reference
            if source is None:
                raise ConfigError(
                    f"model.method.{name}.offset={aux.offset!r} needs the Vanilla reference: add 'vanilla' to "
                    "protocol.references or use offset=main"
                )
            aux.set_offset(_served_logits(source))

    def update_auxiliaries(
        self, auxiliaries: dict[str, AuxiliaryModel], wait: float, rng: np.random.Generator, observe: float
    ) -> dict[str, float]:
        """At time ``observe`` (the end of a training window), train each auxiliary model further on the
        clicks that matured since the last fit or update, [matured_until, observe - maturity), with the
        labels known at ``observe``; returns each model's mean update loss."""
        p = self.protocol
        first = self.aux_matured_until
        losses = {}
        for name, aux in auxiliaries.items():
            columns = self.auxiliary_columns(aux, wait, rng, first, observe)
            if columns is None:
                continue
            aux.unfreeze()
            losses[name] = aux.update(columns, p.aux_update_batch_size, p.aux_update_steps, rng)
            aux.freeze()
            aux.train()
        self.aux_matured_until = max(first, observe - p.aux_maturity_hours)
        return losses

    # -- the run -------------------------------------------------------------------------------------

    def run(self) -> dict[str, float]:
        p, context = self.protocol, self.context
        self.datamodule.setup("fit")
        self.log = log = self.datamodule.clicks
        steps = p.steps(log)
        self.pretrain_end = p.start_hours + p.pretrain_hours
        module, method = self.module, self.module.method
        module.build(log)

        # 1. Pretraining (shared by all methods).
        pretrain = stream_records(
            log, "observed", p.start_hours, self.pretrain_end, first_click=p.start_hours
        )
        module.set_phase("pretrain")
        self.fit(module, self.datamodule.record_columns(pretrain), p.pretrain_epochs)
        pretrained_model = copy.deepcopy(module.model).eval()

        # 2. Method warm-up and auxiliary models, from the pretraining window only.
        if method.has_warmup:
            module.set_phase("warmup")
            self.fit(module, self.datamodule.record_columns(pretrain), p.pretrain_epochs)
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,))))
        auxiliaries = dict(method.auxiliaries())
        flip = auxiliaries.get("flip")
        if p.flip_diagnostics and flip is not None and flip.hparams.signals not in ("none", [], ()):
            # The same flip model without engagement, fitted and updated alike: calibration with vs without.
            auxiliaries["flip_no_engagement"] = flip.variant(signals="none")
        # Offsets (flip models with ``offset`` set): during the pretraining fit every source is the model
        # that was just pretrained on the same window; afterwards each follows its own learner.
        self.attach_offsets(auxiliaries, {"main": module, "vanilla": module})
        for aux in auxiliaries.values():
            self.fit_auxiliary(aux, self.wait_for(method), rng)
        # Clicks before this have been used by the auxiliary models (or were never mature in time).
        self.aux_matured_until = max(p.start_hours, self.pretrain_end - p.aux_maturity_hours)
        module.set_phase("stream")

        learners: dict[str, DelayedFeedbackModule] = {"method": module}
        for name in p.references:
            if name == "pretrained":
                continue
            ref_method = Vanilla() if name == "vanilla" else Oracle()
            if type(method) is type(ref_method) and method.stream == ref_method.stream:
                continue  # the method is its own reference
            ref = DelayedFeedbackModule(module.backbone_factory, ref_method, **module.hparams)
            ref.model = copy.deepcopy(pretrained_model).train()
            ref.set_phase("stream")
            learners[name] = ref
        self.attach_offsets(auxiliaries, {"main": module, "vanilla": learners.get("vanilla")})

        # 3-4. Train on each window, evaluate on the next.
        per_window: list[dict] = []
        self.flip_scores: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]] = {}
        for k, step in enumerate(steps):
            if step.train is not None:
                if p.aux_updates and (k + 1) % p.aux_update_every == 0:
                    losses = self.update_auxiliaries(auxiliaries, self.wait_for(method), rng, step.train[1])
                    for logger in context.loggers if losses else ():
                        logger.log_metrics({f"aux/{n}/update_loss": v for n, v in losses.items()}, step=k)
                if p.flip_diagnostics:
                    self.score_flip_models(step, auxiliaries, method)
                for learner in learners.values():
                    if learner.method.stream is None:
                        continue
                    self.fit(learner, self.window_columns(learner.method, step.train), step.epochs)
            for a, b, split in step.evaluate:
                rows = clicks_in(log, a, b)
                result = {"step": k, "split": split, "start": a, "end": b, "n": int(rows.size)}
                result.update(self.evaluate(rows, learners, pretrained_model, method))
                per_window.append(result)
                self.log_window(k, split, result)

        metrics = self.aggregate(per_window, learners, method)
        if p.flip_diagnostics:
            metrics.update(self.flip_report())
        context.record["delayed"] = {
            "method": method.name,
            "clicks": len(log),
            "pretrain_clicks": len(pretrain),
            "windows": per_window,
            "references": list(p.references),
        }
        self.save_final_checkpoint()
        return metrics

    # -- evaluation ----------------------------------------------------------------------------------

    def evaluate(
        self, rows: np.ndarray, learners: dict, pretrained_model: torch.nn.Module, method: Method
    ) -> dict:
        log = self.log
        x = torch.from_numpy(np.ascontiguousarray(log.features[rows]))
        y = log.eventual_label[rows]
        out = {"method": binary_metrics(learners["method"].predict_proba(x).numpy(), y)}
        refs = self.protocol.references
        if "pretrained" in refs:
            with torch.no_grad():
                out["pretrained"] = binary_metrics(torch.sigmoid(pretrained_model(x)).numpy(), y)
        for name in ("vanilla", "oracle"):
            if name in refs:
                learner = learners.get(name)
                out[name] = (
                    binary_metrics(learner.predict_proba(x).numpy(), y)
                    if learner is not None
                    else out["method"]
                )
        if isinstance(method, Pretrained) and "pretrained" in out:
            out["method"] = out["pretrained"]
        if log.p_true is not None:
            out["truth"] = binary_metrics(log.p_true[rows], y)
        return out

    def aggregate(self, per_window: list[dict], learners: dict, method: Method) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for split in ("val", "test"):
            rows = [w for w in per_window if w["split"] == split]
            if not rows:
                continue
            summary = {
                name: weighted_mean((w["n"], w[name]) for w in rows)
                for name in rows[0]
                if isinstance(rows[0][name], dict)
            }
            for name, values in summary.items():
                prefix = f"{split}/" if name == "method" else f"{split}/{name}/"
                metrics.update({prefix + k: v for k, v in values.items()})
            metrics[f"{split}/clicks"] = float(sum(w["n"] for w in rows))
            x = summary["method"]
            for ref_low, tag in (("vanilla", "ri"), ("pretrained", "ri_pretrained")):
                if ref_low in summary and "oracle" in summary:
                    for m in RI_METRICS:
                        metrics[f"{split}/{tag}_{m}"] = relative_improvement(
                            x.get(m, math.nan),
                            summary[ref_low].get(m, math.nan),
                            summary["oracle"].get(m, math.nan),
                        )
        return metrics

    def score_flip_models(self, step: Step, auxiliaries: dict[str, AuxiliaryModel], method: Method) -> None:
        """Score the flip models on the observed negatives of ``step``'s training window (label: converts
        later) in their state at this moment: after the auxiliary update and before the main fit, so the
        same z (and, with an offset, the same main-model logit) that the method's weights use."""
        models = {k: auxiliaries[k] for k in ("flip", "flip_no_engagement") if k in auxiliaries}
        if not models or method.stream is None:
            return
        records = stream_records(
            self.log,
            method.stream,
            *step.train,
            wait=self.wait_for(method),
            first_click=self.pretrain_end,
            duplicates_from=self.protocol.start_hours,
        )
        negatives = (records.kind == FIRST) & (records.label == 0)
        records = Records(*(getattr(records, f)[negatives] for f in Records.__dataclass_fields__))
        if not len(records):
            return
        flipped = np.isfinite(self.log.conv_ts[records.index]).astype(np.float64)
        split = step.evaluate[0][2]
        for name, model in models.items():
            z = model.predict_records(self.log, records).numpy()
            self.flip_scores.setdefault(split, {}).setdefault(name, []).append((z, flipped))

    def flip_report(self) -> dict:
        """Calibration of the flip models on the stream's observed negatives (eventual flip as label), each
        window scored as its weights were built (:meth:`score_flip_models`), pooled per split."""
        metrics: dict[str, float] = {}
        tables = {}
        for split, models in self.flip_scores.items():
            for name, parts in models.items():
                z = np.concatenate([part[0] for part in parts])
                flipped = np.concatenate([part[1] for part in parts])
                values = binary_metrics(z, flipped)
                for key in ("auc", "nll", "ece", "mean_pred", "pos_rate"):
                    metrics[f"{split}/{name}/{key}"] = values[key]
                tables[f"{split}/{name}"] = calibration_bins(z, flipped)
        if tables:
            self.context.record["flip_calibration"] = tables
        return metrics

    def log_window(self, k: int, split: str, result: dict) -> None:
        flat = {
            f"window/{split}/{name}/{key}": value
            for name, values in result.items()
            if isinstance(values, dict)
            for key, value in values.items()
            if key in ("auc", "nll", "pr_auc")
        }
        for logger in self.context.loggers:
            logger.log_metrics(flat, step=k)

    def save_final_checkpoint(self) -> None:
        if self.last_trainer is None:
            return
        path = Path(self.context.output_dir) / "checkpoints" / "last.ckpt"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.last_trainer.save_checkpoint(path)
        self.context.record["final_checkpoint"] = str(path)
