"""The Hydra ``Sweeper`` plugin class (selected with ``hydra/sweeper=optuna``).

Hydra's plugin scan imports this module on every start-up; the implementation (and optuna) is
imported only when the sweeper is actually instantiated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from . import config as _config  # noqa: F401  (registers hydra/sweeper=optuna in the ConfigStore)


class OptunaSweeper(Sweeper):
    """Hydra sweeper backed by Optuna; the keyword arguments are the fields of ``OptunaSweeperConf``."""

    def __init__(
        self,
        sampler: Any,
        pruner: Any = None,
        direction: Any = "minimize",
        study_name: str | None = None,
        storage: str | None = None,
        n_trials: int = 20,
        n_jobs: int = 2,
        params: Any = None,
        custom_search_space: str | None = None,
        objective: Any = None,
        heartbeat_interval: int | None = 60,
        grace_period: int | None = None,
        max_retries_failed: int = 1,
        reuse_duplicates: bool = True,
    ) -> None:
        from ._impl import OptunaSweeperImpl, SweeperSettings

        self._impl = OptunaSweeperImpl(
            SweeperSettings(
                sampler=sampler,
                pruner=pruner,
                direction=direction,
                study_name=study_name,
                storage=storage,
                n_trials=n_trials,
                n_jobs=n_jobs,
                params=params,
                custom_search_space=custom_search_space,
                objective=objective,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                max_retries_failed=max_retries_failed,
                reuse_duplicates=reuse_duplicates,
            )
        )

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self._impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        return self._impl.sweep(arguments)
