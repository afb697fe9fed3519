"""How a job finds "its" Optuna trial (used by the pruning callback).

Protocol, the same for every launcher:

* the sweeper adds ``++hydra.job.env_set.RECSCI_OPTUNA_STUDY=<name>`` and
  ``++hydra.job.env_set.RECSCI_OPTUNA_TRIAL_ID=<id>`` to each job's overrides; Hydra's ``run_job``
  sets these environment variables around the task function, wherever the launcher runs it, and
  restores the environment afterwards;
* in the job, :func:`current_trial` returns ``None`` when the variables are absent (a plain run,
  not a sweep). Otherwise it uses the sweeper's live study if the job runs in the sweeper's own
  process (the basic launcher: the only way an in-memory study can be reached), or reconnects to
  the storage named by the job's Hydra config (``hydra.sweeper.storage``, resolved against
  ``hydra.runtime.cwd``) with the pruner of ``hydra.sweeper.pruner``.

The only process-global state is :data:`_LIVE_STUDIES`, filled by the sweeper for the duration of
a sweep (:func:`live_study`) and read here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # keep this module import-cheap: it is loaded inside every job
    import optuna

STUDY_ENV = "RECSCI_OPTUNA_STUDY"
TRIAL_ID_ENV = "RECSCI_OPTUNA_TRIAL_ID"
# Trial user attr set by the pruning callback right before it raises TrialPruned, so that the
# sweeper marks the trial PRUNED even if the task swallowed the exception.
PRUNED_AT_STEP_ATTR = "pruned_at_step"

_LIVE_STUDIES: dict[str, optuna.Study] = {}


class TrialContextError(RuntimeError):
    """The job is part of a sweep but cannot reach its trial."""


@contextmanager
def live_study(study: optuna.Study) -> Iterator[None]:
    """Make ``study`` reachable by jobs that run in this process while the sweep runs."""
    _LIVE_STUDIES[study.study_name] = study
    try:
        yield
    finally:
        _LIVE_STUDIES.pop(study.study_name, None)


def trial_env_overrides(study_name: str, trial_id: int) -> list[str]:
    """The per-job Hydra overrides that carry the trial identity into the job's environment."""
    from ._search_space import format_value

    return [
        f"++hydra.job.env_set.{STUDY_ENV}={format_value(study_name)}",
        f"++hydra.job.env_set.{TRIAL_ID_ENV}={trial_id}",
    ]


def current_trial() -> optuna.trial.Trial | None:
    """The Optuna trial of the running job, or ``None`` when the job is not run by the sweeper."""
    study_name = os.environ.get(STUDY_ENV)
    trial_id_text = os.environ.get(TRIAL_ID_ENV)
    if not study_name or not trial_id_text:
        return None
    import optuna

    study = _LIVE_STUDIES.get(study_name) or _reconnect(study_name)
    return optuna.trial.Trial(study, int(trial_id_text))


def _reconnect(study_name: str) -> optuna.Study:
    import hydra.utils
    import optuna
    from hydra.core.hydra_config import HydraConfig

    from ._storage import open_storage, parse_storage

    if not HydraConfig.initialized():
        raise TrialContextError(f"{STUDY_ENV} is set but there is no Hydra config to find the storage in")
    hydra_cfg = HydraConfig.get()
    spec = parse_storage(hydra_cfg.sweeper.get("storage"), Path(hydra_cfg.runtime.cwd))
    if not spec.is_persistent:
        raise TrialContextError(
            "this job runs outside the sweeper's process, so it can only reach its Optuna trial "
            "through a persistent hydra.sweeper.storage (sqlite/postgresql/journal), not in-memory"
        )
    # No heartbeat here: the sweeper process records it for the whole batch.
    storage = open_storage(spec, heartbeat_interval=None, grace_period=None, stale_trial_callback=None)
    pruner_cfg = hydra_cfg.sweeper.get("pruner")
    pruner = hydra.utils.instantiate(pruner_cfg) if pruner_cfg else None
    # The sampler is never used to sample here; RandomSampler has no side effects on the study.
    return optuna.load_study(
        study_name=study_name, storage=storage, sampler=optuna.samplers.RandomSampler(), pruner=pruner
    )
