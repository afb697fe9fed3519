"""Experiment trackers: CSV (always), TensorBoard and Weights & Biases, built from the ``logger`` group."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from omegaconf import DictConfig

from recsci.core.build import build

WandbMode = Literal["online", "offline", "disabled"]


def wandb_logger(
    project: str,
    save_dir: str,
    group: str | None = None,
    job_type: str | None = None,
    tags: Sequence[str] | None = None,
    extra_tags: Sequence[str | None] | None = None,
    name: str | None = None,
    entity: str | None = None,
    mode: WandbMode | None = None,
    log_model: bool = False,
) -> WandbLogger:
    """A W&B logger that is offline unless the user asked for online mode.

    ``mode`` wins; else ``WANDB_MODE`` from the environment (what ``wandb online``/``wandb offline``
    users set); else offline, so no test or CI run ever needs the network. The mode is passed to
    ``wandb.init`` for this run only, unlike ``WandbLogger(offline=True)`` which changes it for the
    whole process.
    """
    chosen = mode or os.environ.get("WANDB_MODE") or "offline"
    if chosen == "dryrun":  # wandb's old name for offline
        chosen = "offline"
    os.makedirs(save_dir, exist_ok=True)
    all_tags = list(dict.fromkeys([*(tags or []), *(t for t in (extra_tags or []) if t)]))
    return WandbLogger(
        project=project,
        save_dir=save_dir,
        group=group,
        job_type=job_type,
        tags=all_tags,
        name=name,
        entity=entity,
        mode=chosen,
        log_model=log_model,
    )


class _AppendingExperimentWriter(ExperimentWriter):
    """Lightning's CSV writer, safe when several writers share one ``metrics.csv``.

    Under ``ddp_spawn`` every ``fit``/``validate``/``test`` runs in fresh processes, each with its own
    writer over the same file. Lightning's writer deletes an existing ``metrics.csv`` when it starts
    and forgets columns another writer added; this one keeps the file and merges its header.
    """

    def _check_log_dir_exists(self) -> None:
        pass  # never delete logs already written (each run or restart has its own version dir anyway)

    def _record_new_keys(self) -> set[str]:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                header = next(csv.reader(file), [])
            self.metrics_keys.extend(key for key in header if key not in self.metrics_keys)
            self.metrics_keys.sort()
        return super()._record_new_keys()


class AppendingCSVLogger(CSVLogger):
    """``CSVLogger`` whose writer never deletes or clobbers rows other processes wrote."""

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingExperimentWriter(log_dir=self.log_dir)
        return self._experiment


def instantiate_loggers(logger_cfg: DictConfig | None) -> list[Logger]:
    """One logger per entry of the ``logger`` group (a mapping of name -> config)."""
    if not logger_cfg:
        return []
    return [build(node) for node in logger_cfg.values() if node is not None and "_target_" in node]


def log_run_config(loggers: Sequence[Logger], config: Mapping[str, Any]) -> None:
    """The resolved config as each tracker's hyperparameters (the W&B run config)."""
    for logger in loggers:
        logger.log_hyperparams(dict(config))


def record_final_metrics(loggers: Sequence[Logger], metrics: Mapping[str, float]) -> None:
    """Final metrics as the W&B run summary; file loggers already hold them from the test loop."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(dict(metrics))


def finish_trackers() -> None:
    """Close the W&B run so the next job of a multirun starts its own (wandb reuses an open run)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()
