"""Write ``optimization_results.yaml`` and ``best_overrides.txt`` into the sweep directory."""

from __future__ import annotations

import logging
import shlex
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

from ._search_space import format_override

log = logging.getLogger(__name__)

RESULTS_FILE = "optimization_results.yaml"
BEST_OVERRIDES_FILE = "best_overrides.txt"
# Trial user attr with the override strings the trial was launched with (its swept params only).
SWEPT_OVERRIDES_ATTR = "swept_overrides"


def trial_overrides(trial: FrozenTrial) -> list[str]:
    recorded = trial.user_attrs.get(SWEPT_OVERRIDES_ATTR)
    if isinstance(recorded, list):
        return [str(item) for item in recorded]
    return [format_override(name, value) for name, value in trial.params.items()]


def override_line(trial: FrozenTrial) -> str:
    """Shell-ready override string: ``recsci <fixed overrides> $(cat best_overrides.txt)``."""
    return " ".join(shlex.quote(item) for item in trial_overrides(trial))


def write_results(
    sweep_dir: Path, study: optuna.Study, fixed_overrides: Sequence[str], storage_description: str
) -> dict[str, Any]:
    """Write both files and return the results mapping. Multi-objective: the Pareto front."""
    trials = study.get_trials(deepcopy=False)
    states = Counter(trial.state.name for trial in trials)
    results: dict[str, Any] = {
        "name": "optuna",
        "study_name": study.study_name,
        "storage": storage_description,
        "directions": [direction.name.lower() for direction in study.directions],
        "trial_counts": {state.name: states.get(state.name, 0) for state in TrialState},
        "fixed_overrides": list(fixed_overrides),
    }
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    lines: list[str] = []
    if not complete:
        log.warning("optuna sweeper: no COMPLETE trial, so no best trial to report")
    elif len(study.directions) == 1:
        best = study.best_trial
        results.update(_describe(best, single=True))
        lines = [override_line(best)]
    else:
        front = sorted(study.best_trials, key=lambda trial: trial.number)
        results["pareto_front"] = [_describe(trial, single=False) for trial in front]
        lines = [override_line(trial) for trial in front]

    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(results), sweep_dir / RESULTS_FILE)
    (sweep_dir / BEST_OVERRIDES_FILE).write_text("".join(line + "\n" for line in lines))
    return results


def _describe(trial: FrozenTrial, single: bool) -> dict[str, Any]:
    prefix = "best_" if single else ""
    described: dict[str, Any] = {
        f"{prefix}trial_number": trial.number,
        f"{prefix}params": dict(trial.params),
        f"{prefix}overrides": override_line(trial),
    }
    if single:
        described["best_value"] = trial.value
    else:
        described["values"] = list(trial.values)
    if "output_dir" in trial.user_attrs:
        described[f"{prefix}output_dir"] = trial.user_attrs["output_dir"]
    return described
