"""The run loop: one composed config in, trained model, ``metrics.json`` and the objective value out.

It knows nothing about any problem: the datamodule, the LightningModule and the trackers are
whatever ``_target_`` the config names.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from recsci.core.build import build
from recsci.core.callbacks import NonFiniteLossGuard
from recsci.core.checkpoints import resolve_checkpoint
from recsci.core.errors import ConfigError
from recsci.core.report_console import print_config, print_metrics_table
from recsci.core.results import git_commit, to_float_dict, write_results
from recsci.core.seeding import seed_everything
from recsci.core.tracking import finish_trackers, instantiate_loggers, log_run_config, record_final_metrics
from recsci.core.validation import validate_config

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> float | None:
    """Train and test as configured; return the value of ``cfg.optimized_metric`` (None when unset)."""
    validate_config(cfg)
    _route_lightning_logs_to_root()
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    seed = seed_everything(cfg.get("seed"))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    OmegaConf.save(cfg, output_dir / "config_resolved.yaml", resolve=True)
    if cfg.get("extras") and cfg.extras.get("print_config"):
        print_config(cfg)
    results: dict[str, Any] = {
        "status": "running",
        "seed": seed,
        "git_commit": git_commit(),
        "experiment_name": cfg.get("experiment_name"),
        "output_dir": str(output_dir),
    }
    write_results(output_dir, results)
    try:
        metrics = _fit_and_test(cfg, output_dir, resolved, results)
    except BaseException as err:
        # Record the failure beside the checkpoints (which stay as they were) so reports list the run.
        results.update(status="failed", error=f"{type(err).__name__}: {err}")
        results["wall_time_s"] = time.perf_counter() - started
        write_results(output_dir, results)
        raise
    finally:
        finish_trackers()
    results.update(status="completed", metrics=metrics, wall_time_s=time.perf_counter() - started)
    objective = _objective(cfg.get("optimized_metric"), metrics)
    results["optimized_metric"] = cfg.get("optimized_metric")
    results["objective"] = objective
    write_results(output_dir, results)
    print_metrics_table(metrics, title=f"{cfg.get('experiment_name')} (seed {seed})")
    log.info("Outputs in %s", output_dir)
    return objective


def _route_lightning_logs_to_root() -> None:
    # `import lightning` attaches its own console handler; under Hydra the root logger already has
    # console and file handlers, so every Lightning message would print twice and miss the run log.
    lightning_logger = logging.getLogger("lightning")
    if logging.getLogger().handlers:
        lightning_logger.handlers.clear()
        lightning_logger.propagate = True


def _fit_and_test(cfg: DictConfig, output_dir: Path, resolved: dict, results: dict) -> dict[str, float]:
    datamodule: pl.LightningDataModule = build(cfg.data)
    module: pl.LightningModule = build(cfg.model)
    loggers = instantiate_loggers(cfg.get("logger"))
    callbacks = _instantiate_callbacks(cfg.get("callbacks"))
    trainer: pl.Trainer = build(
        cfg.trainer, logger=loggers or False, callbacks=callbacks, default_root_dir=str(output_dir)
    )
    log_run_config(loggers, resolved)
    ckpt_path = resolve_checkpoint(cfg.get("ckpt_path"), bool(cfg.get("resume")), output_dir)
    if ckpt_path:
        results["resumed_from"] = str(ckpt_path)
        log.info("Resuming from %s", ckpt_path)

    metrics: dict[str, float] = {}
    best_path: str | None = None
    if cfg.get("train", True):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        best_path = _best_checkpoint(trainer)
        results.update(epochs_completed=trainer.current_epoch, global_step=trainer.global_step)
        # Validation metrics of the model that will be tested (the best checkpoint when there is one).
        for row in trainer.validate(module, datamodule=datamodule, ckpt_path=best_path, verbose=False):
            metrics.update(to_float_dict(row))
    if cfg.get("test", True):
        test_ckpt = best_path if cfg.get("train", True) else ckpt_path
        for row in trainer.test(module, datamodule=datamodule, ckpt_path=test_ckpt, verbose=False):
            metrics.update(to_float_dict(row))
    results["best_checkpoint"] = best_path
    record_final_metrics(loggers, metrics)
    return metrics


def _instantiate_callbacks(callbacks_cfg: DictConfig | None) -> list[Callback]:
    callbacks: list[Callback] = [NonFiniteLossGuard()]
    for node in (callbacks_cfg or {}).values():
        if node is not None and "_target_" in node:
            callbacks.append(build(node))
    return callbacks


def _best_checkpoint(trainer: pl.Trainer) -> str | None:
    callback = trainer.checkpoint_callback
    if isinstance(callback, ModelCheckpoint) and callback.best_model_path:
        return callback.best_model_path
    return None


def _objective(name: str | None, metrics: dict[str, float]) -> float | None:
    if not name:
        return None
    if name not in metrics:
        raise ConfigError(
            f"optimized_metric={name!r} was not produced by this run. Available metrics: "
            f"{', '.join(sorted(metrics)) or '(none)'}"
        )
    value = metrics[name]
    if not math.isfinite(value):
        log.warning("optimized_metric %s is %s", name, value)
    return value
