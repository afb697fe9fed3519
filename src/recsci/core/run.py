"""The run loop: one composed config in, trained model, ``metrics.json`` and the objective value out.

It knows nothing about any problem: the datamodule, the LightningModule and the trackers are
whatever ``_target_`` the config names.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from recsci.core.build import build
from recsci.core.callbacks import NonFiniteLossGuard
from recsci.core.checkpoints import resolve_checkpoint
from recsci.core.errors import ConfigError
from recsci.core.protocols import FitValidateTest, RunContext, RunProtocol
from recsci.core.report_console import print_config, print_metrics_table
from recsci.core.results import git_commit, write_results
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
        metrics = _run_protocol(cfg, output_dir, resolved, results)
    except BaseException as err:
        # Record the failure beside the checkpoints (which stay as they were) so reports list the run.
        # A trial stopped by an Optuna pruner is not a failure: reports should say "pruned".
        status = "pruned" if type(err).__name__ == "TrialPruned" else "failed"
        results.update(status=status, error=f"{type(err).__name__}: {err}")
        results["wall_time_s"] = time.perf_counter() - started
        if status == "failed" and results.get("best_checkpoint"):
            # Training finished and its best model is on disk: evaluating it again needs no retraining.
            results["evaluate_again"] = f"train=false ckpt_path={results['best_checkpoint']}"
            log.error("The trained model is kept; evaluate it again with: %s", results["evaluate_again"])
        write_results(output_dir, results)
        if isinstance(err, SystemExit) and not err.code:
            # Lightning stops a fit on SIGTERM by raising SystemExit() (exit status 0): a job killed before
            # it finished must not look successful to a scheduler, a shell loop or xargs.
            raise SystemExit(128 + signal.SIGTERM if type(err).__name__ == "SIGTERMException" else 1) from err
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


def _run_protocol(cfg: DictConfig, output_dir: Path, resolved: dict, results: dict) -> dict[str, float]:
    datamodule: pl.LightningDataModule = build(cfg.data)
    module: pl.LightningModule = build(cfg.model)
    protocol: RunProtocol = build(cfg.protocol) if cfg.get("protocol") else FitValidateTest()
    loggers = instantiate_loggers(cfg.get("logger"))
    log_run_config(loggers, resolved)
    ckpt_path = resolve_checkpoint(cfg.get("ckpt_path"), bool(cfg.get("resume")), output_dir)
    if ckpt_path:
        results["resumed_from"] = str(ckpt_path)
        log.info("Resuming from %s", ckpt_path)

    def make_trainer(**overrides: Any) -> pl.Trainer:
        # Fresh callbacks per trainer: checkpoint and early-stopping state must not leak between fits.
        return build(
            cfg.trainer,
            logger=loggers or False,
            callbacks=_instantiate_callbacks(cfg.get("callbacks")),
            default_root_dir=str(output_dir),
            **overrides,
        )

    context = RunContext(
        module=module,
        datamodule=datamodule,
        make_trainer=make_trainer,
        loggers=loggers,
        output_dir=output_dir,
        ckpt_path=ckpt_path,
        train=bool(cfg.get("train", True)),
        test=bool(cfg.get("test", True)),
    )
    try:
        metrics = protocol(context)
    finally:
        # Also on failure: what the protocol recorded so far (epochs, the best checkpoint) is kept.
        results.update(context.record)
    record_final_metrics(loggers, metrics)
    return metrics


def _instantiate_callbacks(callbacks_cfg: DictConfig | None) -> list[Callback]:
    callbacks: list[Callback] = [NonFiniteLossGuard()]
    for node in (callbacks_cfg or {}).values():
        if node is not None and "_target_" in node:
            callbacks.append(build(node))
    return callbacks


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
