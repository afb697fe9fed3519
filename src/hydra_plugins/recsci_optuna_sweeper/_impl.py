"""The sweep loop: ask Optuna for trials, launch them through Hydra's launcher, tell the results.

Budget rule: the study is done when it holds ``n_trials`` finished trials, COMPLETE + PRUNED.
FAIL trials do not count; a failed trial is re-enqueued with the same params up to
``max_retries_failed`` times, and a worker gives up (raises) when the study holds more FAIL trials
than ``n_trials``. Several workers may share a study: each asks for at most
``n_trials - finished - running`` trials, and a trial asked concurrently beyond the budget
(decided by trial number, see :meth:`OptunaSweeperImpl._is_surplus`) is not run but closed as FAIL
with user attr ``surplus=True``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import hydra.utils
import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from ._context import PRUNED_AT_STEP_ATTR, live_study, trial_env_overrides
from ._heartbeat import BatchHeartbeat, RetryStaleTrial, fail_stale_trials, retry_failed_trial
from ._outcome import OBJECTIVE_KEY, TrialOutcome, interpret_job
from ._results import SWEPT_OVERRIDES_ATTR, write_results
from ._search_space import SearchSpace, build_search_space, format_override, format_value
from ._storage import StorageSpec, open_storage, parse_storage

log = logging.getLogger(__name__)

KEY = "hydra.sweeper"
SURPLUS_ATTR = "surplus"
# User attr of a trial closed with the values of an earlier COMPLETE trial with the same overrides.
DUPLICATE_OF_ATTR = "duplicate_of"
# Hydra's default per-job subdir; replaced by the trial number so that workers sharing a sweep dir,
# and restarts reusing one, never write into the same job directory.
_DEFAULT_SUBDIR = "${hydra.job.num}"
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
_IDLE_POLL_S = 1.0


class SweeperConfigError(ValueError):
    """Bad ``hydra.sweeper.*`` setting, detected before any trial runs."""


class SweepAbortedError(RuntimeError):
    """The sweep cannot make progress (e.g. every trial fails the same way)."""


@dataclass(frozen=True)
class SweeperSettings:
    """The ``hydra.sweeper`` node as given (sampler/pruner still un-instantiated config nodes)."""

    sampler: Any
    pruner: Any
    direction: Any
    study_name: str | None
    storage: str | None
    n_trials: int
    n_jobs: int
    params: Mapping[str, Any] | None
    custom_search_space: str | None
    objective: Any
    heartbeat_interval: int | None
    grace_period: int | None
    max_retries_failed: int
    reuse_duplicates: bool = True


@dataclass
class _Plan:
    """Everything validated at start-up."""

    study: optuna.Study
    storage: optuna.storages.BaseStorage
    storage_spec: StorageSpec
    space: SearchSpace
    custom_space: Callable[[DictConfig, optuna.Trial], None] | None
    objective_keys: list[str] | None
    retry_stale: RetryStaleTrial
    heartbeat_enabled: bool


@dataclass
class _LaunchItem:
    trial: optuna.Trial
    swept_overrides: list[str]
    job_overrides: list[str]


class OptunaSweeperImpl:
    def __init__(self, settings: SweeperSettings) -> None:
        self.settings = settings
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Launcher | None = None
        self._job_idx = 0
        self._space_exhausted = False
        self._composable: set[tuple[str, ...]] = set()  # categorical combinations known to compose

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # ----------------------------------------------------------------------------------------
    # start-up: every check that can fail happens here, before any trial runs
    # ----------------------------------------------------------------------------------------

    def _prepare(self, arguments: Sequence[str]) -> _Plan:
        assert self.config is not None and self.hydra_context is not None
        settings = self.settings
        directions = parse_directions(settings.direction)
        _check_positive_int(settings.n_trials, "n_trials")
        _check_positive_int(settings.n_jobs, "n_jobs")
        if not isinstance(settings.max_retries_failed, int) or settings.max_retries_failed < 0:
            raise SweeperConfigError(f"{KEY}.max_retries_failed must be an integer >= 0")
        if settings.heartbeat_interval is not None:
            _check_positive_int(settings.heartbeat_interval, "heartbeat_interval")
        if settings.grace_period is not None:
            _check_positive_int(settings.grace_period, "grace_period")
        if not isinstance(settings.reuse_duplicates, bool):
            raise SweeperConfigError(f"{KEY}.reuse_duplicates must be true or false")
        objective_keys = parse_objective_keys(settings.objective, len(directions))

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        space = build_search_space(_plain(settings.params), arguments, parser)
        custom_space = _load_custom_space(settings.custom_search_space)
        if not space.params and custom_space is None:
            log.warning(
                "optuna sweeper: no swept parameter (hydra.sweeper.params is empty); trials are identical"
            )

        sampler = instantiate_component(
            settings.sampler, f"{KEY}.sampler", optuna.samplers, optuna.samplers.BaseSampler
        )
        pruner = instantiate_component(
            settings.pruner, f"{KEY}.pruner", optuna.pruners, optuna.pruners.BasePruner
        )

        spec = parse_storage(settings.storage, Path.cwd())
        retry_stale = RetryStaleTrial(settings.max_retries_failed)
        heartbeat_interval = settings.heartbeat_interval if spec.is_persistent else None
        storage = open_storage(spec, heartbeat_interval, settings.grace_period, retry_stale)
        study_name = settings.study_name or str(self.config.hydra.job.name)
        study = optuna.create_study(
            study_name=study_name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            directions=directions,
            load_if_exists=True,
        )
        existing = [direction.name.lower() for direction in study.directions]
        if existing != directions:
            raise SweeperConfigError(
                f"{KEY}.direction is {directions} but study '{study_name}' in {spec.describe()} "
                f"was created with {existing}; use another {KEY}.study_name"
            )
        return _Plan(
            study=study,
            storage=storage,
            storage_spec=spec,
            space=space,
            custom_space=custom_space,
            objective_keys=objective_keys,
            retry_stale=retry_stale,
            heartbeat_enabled=heartbeat_interval is not None,
        )

    # ----------------------------------------------------------------------------------------
    # the loop
    # ----------------------------------------------------------------------------------------

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        assert self.config is not None and self.launcher is not None
        plan = self._prepare(arguments)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        self._log_start(plan)

        returns: list[Sequence[JobReturn]] = []
        with live_study(plan.study):
            first_batch = True
            while (size := self._next_batch_size(plan)) is not None:
                if size == 0:
                    time.sleep(self._wait_seconds())  # other workers run the rest of the budget
                    continue
                items = self._ask_batch(plan, size)
                if not items:
                    continue
                results, outcomes = self._run_batch(plan, items)
                returns.append(results)
                if first_batch:
                    _raise_if_all_failed_alike(outcomes)
                    first_batch = False

        results_summary = write_results(
            sweep_dir, plan.study, plan.space.fixed_overrides, plan.storage_spec.describe()
        )
        log.info("optuna sweeper: done; results in %s", sweep_dir / "optimization_results.yaml")
        if "best_value" in results_summary:
            log.info(
                "optuna sweeper: best value %s with %s",
                results_summary["best_value"],
                results_summary["best_overrides"],
            )
        return returns

    def _next_batch_size(self, plan: _Plan) -> int | None:
        """None when the budget is met, 0 when others' running trials may still meet it."""
        if self._space_exhausted:
            return None
        fail_stale_trials(plan.study, plan.storage, self._grace_period(plan), plan.retry_stale)
        trials = plan.study.get_trials(deepcopy=False)
        finished = sum(trial.state in _FINISHED for trial in trials)
        if finished >= self.settings.n_trials:
            return None
        failed = sum(
            trial.state == TrialState.FAIL and not trial.user_attrs.get(SURPLUS_ATTR) for trial in trials
        )
        if failed > self.settings.n_trials:
            raise SweepAbortedError(
                f"optuna sweeper: study '{plan.study.study_name}' has {failed} FAIL trials, more than "
                f"n_trials={self.settings.n_trials}; giving up (see the trials' `error` user attr "
                "and the logs)"
            )
        running = sum(trial.state == TrialState.RUNNING for trial in trials) if plan.heartbeat_enabled else 0
        return max(0, min(self.settings.n_jobs, self.settings.n_trials - finished - running))

    def _ask_batch(self, plan: _Plan, size: int) -> list[_LaunchItem]:
        items: list[_LaunchItem] = []
        for _ in range(size):
            trial = self._ask(plan)
            if self._is_surplus(plan, trial):
                trial.set_user_attr(SURPLUS_ATTR, True)
                plan.study.tell(trial, state=TrialState.FAIL)
                log.info(
                    "optuna sweeper: trial %d is beyond the budget (another worker was faster)", trial.number
                )
                break
            item = self._launch_item(plan, trial)
            if self.settings.reuse_duplicates and (twin := _complete_twin(plan.study, item)) is not None:
                self._reuse(plan, item, twin)
                continue
            items.append(item)
        return items

    def _reuse(self, plan: _Plan, item: _LaunchItem, twin: FrozenTrial) -> None:
        """Close a repeated proposal with its COMPLETE twin's values instead of running it again."""
        trial = item.trial
        trial.set_user_attr(DUPLICATE_OF_ATTR, twin.number)
        for attr in ("output_dir", "metrics"):
            if attr in twin.user_attrs:
                trial.set_user_attr(attr, twin.user_attrs[attr])
        outcome = TrialOutcome(TrialState.COMPLETE, values=list(twin.values))
        frozen = self._tell(plan, trial, outcome)
        log.info(
            "optuna sweeper: trial %d repeats trial %d (%s): reused its value %s without running it "
            "(hydra.sweeper.reuse_duplicates=false runs repeats)",
            frozen.number,
            twin.number,
            " ".join(item.swept_overrides),
            list(twin.values),
        )

    def _ask(self, plan: _Plan) -> optuna.Trial:
        with warnings.catch_warnings():
            # Optuna warns that heartbeats are meant for Study.optimize; we record them ourselves.
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            trial = plan.study.ask(fixed_distributions=plan.space.distributions)
        if plan.custom_space is not None:
            assert self.config is not None
            plan.custom_space(self.config, trial)
        return trial

    def _is_surplus(self, plan: _Plan, trial: optuna.Trial) -> bool:
        """Whether ``n_trials`` trials numbered before this one may still finish.

        Trial numbers are assigned atomically by the storage, so this gives every worker the same
        answer about which trials are inside the budget.
        """
        counted = {TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING}
        if plan.heartbeat_enabled:
            counted.add(TrialState.RUNNING)
        before = sum(
            other.number < trial.number and other.state in counted
            for other in plan.study.get_trials(deepcopy=False)
        )
        return before >= self.settings.n_trials

    def _launch_item(self, plan: _Plan, trial: optuna.Trial) -> _LaunchItem:
        swept: list[str] = []
        for name, value in trial.params.items():
            param = plan.space.params.get(name)
            swept.append(format_override(param.key_element if param else name, value))
        job_overrides = [*plan.space.fixed_overrides, *swept, *self._hydra_overrides(plan, trial)]
        trial.set_user_attr(SWEPT_OVERRIDES_ATTR, swept)
        trial.set_user_attr("overrides", [*plan.space.fixed_overrides, *swept])
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        return _LaunchItem(trial=trial, swept_overrides=swept, job_overrides=job_overrides)

    def _hydra_overrides(self, plan: _Plan, trial: optuna.Trial) -> list[str]:
        overrides = trial_env_overrides(plan.study.study_name, _trial_id(trial))
        assert self.config is not None
        raw_subdir = OmegaConf.to_container(self.config.hydra.sweep, resolve=False).get("subdir")  # type: ignore[union-attr]
        if raw_subdir == _DEFAULT_SUBDIR:
            overrides.append(f"hydra.sweep.subdir={format_value(str(trial.number))}")
        return overrides

    def _run_batch(
        self, plan: _Plan, items: list[_LaunchItem]
    ) -> tuple[Sequence[JobReturn], list[TrialOutcome]]:
        outcomes: list[TrialOutcome] = []
        launchable: list[_LaunchItem] = []
        for item in items:
            composition_error = self._composition_error(item)
            if composition_error is None:
                launchable.append(item)
                continue
            outcome = TrialOutcome(TrialState.FAIL, error=composition_error)
            self._finish(plan, item, outcome, retry=False)  # a config error would fail again
            outcomes.append(outcome)
        if not launchable:
            return [], outcomes

        assert self.launcher is not None
        trial_ids = [_trial_id(item.trial) for item in launchable]
        try:
            with BatchHeartbeat(
                plan.storage, trial_ids, self.settings.heartbeat_interval if plan.heartbeat_enabled else None
            ):
                results = self.launcher.launch(
                    [item.job_overrides for item in launchable], initial_job_idx=self._job_idx
                )
        except BaseException as error:  # includes KeyboardInterrupt: close the trials, then re-raise
            for item in launchable:
                self._finish(
                    plan, item, TrialOutcome(TrialState.FAIL, error=f"launch failed: {error!r}"), retry=True
                )
            raise
        self._job_idx += len(launchable)

        fresh = {trial.number: trial for trial in plan.study.get_trials(deepcopy=False)}
        for item, result in zip(launchable, results, strict=True):
            pruned_mark = PRUNED_AT_STEP_ATTR in fresh[item.trial.number].user_attrs
            outcome = interpret_job(result, len(plan.study.directions), plan.objective_keys, pruned_mark)
            self._finish(plan, item, outcome, retry=True)
            outcomes.append(outcome)
        return results, outcomes

    def _composition_error(self, item: _LaunchItem) -> str | None:
        """Compose the job's config here, so a bad override fails its trial instead of the launch.

        Composing costs as much as the launcher's own composition (~0.1 s), so it is done once per
        combination of categorical values: only those can change which configs get composed (a
        config-group choice) or whether a value fits its field; the numeric values of one
        distribution are all of one type.
        """
        assert self.hydra_context is not None and self.config is not None
        params = item.trial.params
        key = tuple(
            f"{name}={params[name]!r}"
            for name, distribution in item.trial.distributions.items()
            if isinstance(distribution, CategoricalDistribution)
        )
        if key in self._composable:
            return None
        try:
            self.hydra_context.config_loader.load_sweep_config(
                master_config=self.config, sweep_overrides=list(item.job_overrides)
            )
        except Exception as error:
            return f"config composition failed: {type(error).__name__}: {error}"
        self._composable.add(key)
        return None

    def _finish(self, plan: _Plan, item: _LaunchItem, outcome: TrialOutcome, retry: bool) -> None:
        """Record attrs, tell Optuna, log; enqueue a retry of a FAIL trial when asked to."""
        trial = item.trial
        try:
            if outcome.output_dir:
                trial.set_user_attr("output_dir", outcome.output_dir)
            if outcome.metrics:
                trial.set_user_attr("metrics", outcome.metrics)
            if outcome.error:
                trial.set_user_attr("error", outcome.error)
            frozen = self._tell(plan, trial, outcome)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker judged the trial stale (our heartbeat lagged) and failed it already.
            log.warning("optuna sweeper: trial %d was already closed by another worker", trial.number)
            return
        _log_outcome(frozen, outcome, " ".join(item.swept_overrides))
        if outcome.state == TrialState.FAIL and retry:
            retry_failed_trial(plan.study, frozen, self.settings.max_retries_failed)

    def _tell(self, plan: _Plan, trial: optuna.Trial, outcome: TrialOutcome) -> FrozenTrial:
        try:
            return plan.study.tell(trial, outcome.values, state=outcome.state)
        except RuntimeError as error:
            # Samplers that finish a finite space (GridSampler, BruteForceSampler) call study.stop()
            # from after_trial, which Optuna only allows inside Study.optimize and otherwise raises
            # this RuntimeError. The trial's state is stored before (Optuna's tell stores it in a
            # `finally`), so treat it as "search space exhausted": end the sweep after this batch.
            if "Study.stop" not in str(error):
                raise
            if not self._space_exhausted:
                log.info("optuna sweeper: the sampler has exhausted the search space; stopping")
            self._space_exhausted = True
            return plan.study.get_trials(deepcopy=False)[trial.number]

    # ----------------------------------------------------------------------------------------
    # small helpers
    # ----------------------------------------------------------------------------------------

    def _grace_period(self, plan: _Plan) -> int | None:
        if not plan.heartbeat_enabled or self.settings.heartbeat_interval is None:
            return None
        return self.settings.grace_period or 2 * self.settings.heartbeat_interval

    @staticmethod
    def _wait_seconds() -> float:
        # A worker with nothing to ask waits for other workers' running trials to finish (or go
        # stale). One cheap storage query per second and idle worker is negligible for a database.
        return _IDLE_POLL_S

    def _log_start(self, plan: _Plan) -> None:
        finished = len(plan.study.get_trials(deepcopy=False, states=_FINISHED))
        log.info(
            "optuna sweeper: study '%s' (%s), %d/%d trials finished, %d per batch",
            plan.study.study_name,
            plan.storage_spec.describe(),
            finished,
            self.settings.n_trials,
            self.settings.n_jobs,
        )
        for name, param in plan.space.params.items():
            log.info("optuna sweeper:   %s: %s", name, param.distribution)


def parse_directions(direction: Any) -> list[str]:
    values = list(direction) if isinstance(direction, (list, tuple, ListConfig)) else [direction]
    allowed = ("minimize", "maximize")
    if not values or any(str(value).lower() not in allowed for value in values):
        raise SweeperConfigError(
            f"{KEY}.direction must be 'minimize', 'maximize' or a list of them, got {direction!r}"
        )
    return [str(value).lower() for value in values]


def parse_objective_keys(objective: Any, n_directions: int) -> list[str] | None:
    if objective is None:
        return None
    keys = (
        [str(key) for key in objective]
        if isinstance(objective, (list, tuple, ListConfig))
        else [str(objective)]
    )
    if len(keys) != n_directions:
        raise SweeperConfigError(
            f"{OBJECTIVE_KEY} names {len(keys)} key(s) but there are {n_directions} direction(s)"
        )
    return keys


def instantiate_component(node: Any, key: str, module: ModuleType, base: type) -> Any:
    """Instantiate a sampler/pruner node, with errors that name ``key`` and list the choices."""
    if node is None:
        return None
    if not isinstance(node, (Mapping, DictConfig)) or "_target_" not in node:
        raise SweeperConfigError(
            f"{key}: expected a node with `_target_` (e.g. {_choices(module, base)[0]}), got {node!r}"
        )
    target = str(node["_target_"])
    try:
        cls = hydra.utils.get_class(target)
    except Exception:
        raise SweeperConfigError(
            f"{key}._target_: cannot find '{target}'. Available: {', '.join(_choices(module, base))}"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise SweeperConfigError(f"{key}._target_: '{target}' is not a {base.__module__}.{base.__name__}")
    try:
        return hydra.utils.instantiate(node, _convert_="all")
    except Exception as error:
        cause = error.__cause__ or error
        raise SweeperConfigError(f"{key}: cannot instantiate {target}: {cause}") from error


def _choices(module: ModuleType, base: type) -> list[str]:
    names = []
    for name in sorted(getattr(module, "__all__", [])):
        member = getattr(module, name, None)
        if isinstance(member, type) and issubclass(member, base) and not name.startswith("Base"):
            names.append(f"{module.__name__}.{name}")
    return names


def _load_custom_space(path: str | None) -> Callable[[DictConfig, optuna.Trial], None] | None:
    if not path:
        return None
    try:
        return hydra.utils.get_method(path)
    except Exception as error:
        raise SweeperConfigError(f"{KEY}.custom_search_space: cannot import '{path}': {error}") from None


def _check_positive_int(value: Any, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise SweeperConfigError(f"{KEY}.{name} must be a positive integer, got {value!r}")


def _plain(params: Any) -> dict[str, Any] | None:
    if params is None:
        return None
    if isinstance(params, DictConfig):
        return OmegaConf.to_container(params, resolve=False)  # type: ignore[return-value]
    return dict(params)


def _complete_twin(study: optuna.Study, item: _LaunchItem) -> FrozenTrial | None:
    """The first COMPLETE trial launched with exactly the overrides ``item`` would be launched with.

    Overrides, not params, decide: a study resumed with other fixed overrides (another dataset,
    split or seed) shares params with earlier trials but not their jobs.
    """
    overrides = item.trial.user_attrs.get("overrides")
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.number != item.trial.number and trial.user_attrs.get("overrides") == overrides:
            return trial
    return None


def _trial_id(trial: optuna.Trial) -> int:
    # Optuna exposes no public trial id, but reconnecting from a job (optuna.trial.Trial(study,
    # trial_id)) needs it; every Optuna helper uses this attribute.
    return trial._trial_id


def _log_outcome(trial: FrozenTrial, outcome: TrialOutcome, overrides: str) -> None:
    if trial.state == TrialState.COMPLETE:
        log.info("optuna sweeper: trial %d COMPLETE %s <- %s", trial.number, trial.values, overrides)
    elif trial.state == TrialState.PRUNED:
        log.info("optuna sweeper: trial %d PRUNED <- %s", trial.number, overrides)
    else:
        log.warning("optuna sweeper: trial %d FAIL (%s) <- %s", trial.number, outcome.error, overrides)


def _raise_if_all_failed_alike(outcomes: list[TrialOutcome]) -> None:
    """A first batch that fails entirely with one error is a setup problem: stop instead of retrying."""
    if not outcomes or any(outcome.state != TrialState.FAIL for outcome in outcomes):
        return
    errors = {outcome.error for outcome in outcomes}
    if len(errors) != 1:
        return
    error = errors.pop()
    raise SweepAbortedError(
        f"optuna sweeper: every trial of the first batch ({len(outcomes)}) failed with the same error, "
        f"stopping: {error}"
    ) from outcomes[0].exception
