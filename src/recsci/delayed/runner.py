"""The run behind the delayed-feedback protocols (:mod:`recsci.delayed.protocols`).

A :class:`Runner` applies a protocol's steps to the run's module and its references: pretraining,
fitting and updating the auxiliary models (with optional logit offsets from a learner), training on each
window of observable records, evaluating on later windows with eventual labels, aggregating per-window
metrics (RI against the in-run references) and scoring the flip models as they were at use time. The
protocol classes hold the configuration and the timeline; this module holds the mechanics.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, ModelSummary

from recsci.core.errors import ConfigError
from recsci.core.protocols import RunContext
from recsci.delayed.auxiliary import AuxiliaryModel
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

if TYPE_CHECKING:  # annotations only: protocols imports this module
    from recsci.delayed.protocols import DelayedProtocol, Step

log = logging.getLogger(__name__)


def served_logits(learner: DelayedFeedbackModule) -> Callable[[torch.Tensor], torch.Tensor]:
    """Features -> logit of ``learner``'s served probability (no gradient, batched). Only the conversion
    model is put in eval mode and back (not the whole learner, whose method holds the auxiliary models)."""

    def logits(x: torch.Tensor, batch_size: int = 65536) -> torch.Tensor:
        model, was_training = learner.model, learner.model.training
        # The caller may sit on another device (an auxiliary model's fit on a GPU asks for offsets):
        # compute where the model is, answer where the features are.
        device = next(model.parameters()).device
        model.eval()
        with torch.no_grad():
            p = torch.cat(
                [
                    learner.method.probability(model(x[i : i + batch_size].to(device)))
                    for i in range(0, x.size(0), batch_size)
                ]
                or [torch.zeros(0, device=device)]
            )
        model.train(was_training)
        return torch.logit(p.clamp(EPS, 1.0 - EPS)).to(x.device)

    return logits


class Runner:
    """One delayed-feedback run: the steps of a protocol applied to a module and its references."""

    def __init__(self, protocol: DelayedProtocol, context: RunContext) -> None:
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
        horizon = None
        if aux.label_horizon:
            # Labels are read at ``observe``; no later than the attribution window, after which none can change.
            horizon = np.minimum(observe - self.log.click_ts[records.index], self.log.attribution_hours)
        columns = aux.inputs(self.log, records, horizon)
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
            aux.set_offset(served_logits(source))

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
