"""Structured config of the ``optuna`` sweeper (``hydra/sweeper=optuna``).

This module is imported by Hydra's plugin scan on every start-up, so it must stay cheap: only
dataclasses and ConfigStore registrations, no optuna import.
"""

# No `from __future__ import annotations` here: Hydra's plugin scan executes this module before it
# is in sys.modules, where dataclasses cannot resolve string annotations (and OmegaConf needs real
# types for structured configs anyway).
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

SWEEPER_TARGET = "hydra_plugins.recsci_optuna_sweeper.sweeper.OptunaSweeper"


@dataclass
class SamplerConf:
    """A node instantiated with ``hydra.utils.instantiate``: any class of ``optuna.samplers``."""

    _target_: str = "optuna.samplers.TPESampler"
    seed: int | None = None


@dataclass
class TPESamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.TPESampler"
    n_startup_trials: int = 10
    multivariate: bool = False
    # Set to true when several workers share a study: running trials get a pessimistic "lie"
    # so that workers do not all sample the same promising region.
    constant_liar: bool = False


@dataclass
class RandomSamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.RandomSampler"


@dataclass
class NSGAIISamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.NSGAIISampler"
    population_size: int = 50


@dataclass
class CmaEsSamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.CmaEsSampler"
    n_startup_trials: int = 1


@dataclass
class QMCSamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.QMCSampler"
    qmc_type: str = "sobol"


@dataclass
class GPSamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.GPSampler"
    n_startup_trials: int = 10


@dataclass
class BruteForceSamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.BruteForceSampler"


@dataclass
class OptunaSweeperConf:
    """Config of the Optuna sweeper. See ``docs/sweeps.md`` for the user-facing description."""

    _target_: str = SWEEPER_TARGET
    # The sweeper instantiates sampler/pruner itself, so that a bad `_target_` gives an error naming
    # the config key instead of Hydra's generic plugin-instantiation failure.
    _recursive_: bool = False
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])

    # A node with `_target_` naming an optuna sampler class and its keyword arguments.
    sampler: Any = MISSING
    # A node with `_target_` naming an optuna pruner class (e.g. optuna.pruners.MedianPruner), or null.
    pruner: Any = None

    # "minimize" / "maximize", or a list of them for multi-objective optimization.
    direction: Any = "minimize"
    # Study name in the storage; null -> the Hydra job name (hydra.job.name).
    study_name: str | None = None
    # null (in-memory), an RDB URL (sqlite:///x.db, postgresql://..., mysql://...), or an Optuna
    # journal file ("journal:PATH", or a path ending in .log / .journal).
    storage: str | None = None

    # Total number of finished (COMPLETE + PRUNED) trials the study should reach, across restarts
    # and workers. Each worker stops once the study has that many.
    n_trials: int = 20
    # Trials launched per batch through the Hydra launcher.
    n_jobs: int = 2

    # Search space: override key -> expression, e.g. {lr: "tag(log, interval(1e-4, 1e-1))"}.
    params: dict[str, Any] = field(default_factory=dict)
    # Optional dotted path of a function (cfg: DictConfig, trial: optuna.Trial) -> None that
    # suggests extra parameters (define-by-run); each suggested parameter becomes an override.
    custom_search_space: str | None = None
    # Only when the task returns a dict: the key (or list of keys, one per direction) to optimize.
    objective: Any = None

    # Heartbeat of running trials for persistent storages, in seconds (null disables it). A
    # RUNNING trial whose heartbeat is older than grace_period (null -> 2 * heartbeat_interval)
    # is marked FAIL and retried.
    heartbeat_interval: int | None = 60
    grace_period: int | None = None
    # How many times a FAIL trial (job error, missing result, stale heartbeat) is re-run with the
    # same parameters before its parameters are given up.
    max_retries_failed: int = 1
    # A proposal whose overrides equal those of a COMPLETE trial of the study (samplers repeat
    # themselves in small categorical spaces) is not run again: it is recorded as COMPLETE with that
    # trial's values (user attr `duplicate_of`). Right for seeded, deterministic jobs; set false when
    # jobs draw their own seed and a repeat is a new measurement.
    reuse_duplicates: bool = True


def register_configs() -> None:
    """Register the sweeper node and the sampler presets (hydra/sweeper/sampler=tpe|random|...)."""
    store = ConfigStore.instance()
    store.store(
        group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="recsci_optuna_sweeper"
    )
    presets = {
        "tpe": TPESamplerConf,
        "random": RandomSamplerConf,
        "nsgaii": NSGAIISamplerConf,
        "cmaes": CmaEsSamplerConf,
        "qmc": QMCSamplerConf,
        "gp": GPSamplerConf,
        "bruteforce": BruteForceSamplerConf,
    }
    for name, node in presets.items():
        store.store(group="hydra/sweeper/sampler", name=name, node=node, provider="recsci_optuna_sweeper")


register_configs()
