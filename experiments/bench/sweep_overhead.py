"""Per-trial overhead of the optuna sweeper + Hydra vs a plain ``study.optimize`` loop.

Both sides optimize the same trivial objective (``quadratic`` of tests/sweeper/app/my_app.py) with
the same search space and ``RandomSampler``, so the difference is the framework cost per trial:
ask/tell bookkeeping, composing each job's config (twice: validation + launch), Hydra's per-job
logging setup and the files Hydra writes per job (.hydra/*.yaml, metrics.json of the app).

The sweeper side runs the tiny app in a subprocess (basic in-process launcher) with N_small and
N_large trials; per-trial cost = (T_large - T_small) / (N_large - N_small), which cancels the
fixed start-up cost (interpreter, imports, plugin scan), reported separately. Hydra's own basic
sweeper running as many jobs of the same app gives the pure Hydra per-job cost for reference.
All times are CPU seconds (user + system), so other load on a shared machine hardly moves them.

    python experiments/bench/sweep_overhead.py                  # ~1 min on 2 cores
    python experiments/bench/sweep_overhead.py --storage sqlite --repeats 1
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[2]
APP_DIR = REPO / "tests" / "sweeper" / "app"
sys.path.insert(0, str(APP_DIR))
from my_app import quadratic  # noqa: E402  (the app is not a package)


def plain_loop_seconds_per_trial(n_trials: int, storage: str | None) -> float:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -5, 5)
        y = trial.suggest_int("y", -3, 2)
        choice = trial.suggest_categorical("choice", ["a", "b", "c"])
        return quadratic(x, float(y), str(choice))

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), storage=storage)
    start = time.process_time()
    study.optimize(objective, n_trials=n_trials)
    return (time.process_time() - start) / n_trials


def _run_app(overrides: list[str], work_dir: Path) -> float:
    """CPU seconds (user + system) of one app run: robust to other load on a shared machine,
    unlike wall time; the app is single-threaded here, so the two agree on an idle machine."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = [sys.executable, str(APP_DIR / "my_app.py"), "--multirun", *overrides]
    subprocess.run(command, cwd=work_dir, env=env, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def basic_sweeper_seconds(n_jobs_total: int, work_dir: Path) -> float:
    """Hydra's own basic sweeper running the same number of jobs: the pure Hydra per-job cost."""
    xs = ",".join(f"{-5 + 10 * i / n_jobs_total:.4f}" for i in range(n_jobs_total))
    sweep_dir = work_dir / f"basic-{n_jobs_total}-{time.monotonic_ns()}"
    return _run_app([f"hydra.sweep.dir={sweep_dir}", f"x={xs}"], work_dir)


def sweep_seconds(n_trials: int, n_jobs: int, storage: str | None, work_dir: Path) -> float:
    sweep_dir = work_dir / f"sweep-{n_trials}-{time.monotonic_ns()}"
    overrides = [
        "hydra/sweeper=optuna",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=0",
        f"hydra.sweep.dir={sweep_dir}",
        f"hydra.sweeper.n_trials={n_trials}",
        f"hydra.sweeper.n_jobs={n_jobs}",
        "x=interval(-5,5)",
        "y=range(-3,3)",
        "choice=a,b,c",
    ]
    if storage:
        overrides.append(f"hydra.sweeper.storage={storage}")
        overrides.append(f"hydra.sweeper.study_name=bench-{time.monotonic_ns()}")
    return _run_app(overrides, work_dir)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=10, help="trials of the short sweep")
    parser.add_argument("--large", type=int, default=60, help="trials of the long sweep")
    parser.add_argument("--n-jobs", type=int, default=1, help="trials per launched batch")
    parser.add_argument("--storage", choices=["memory", "sqlite"], default="memory")
    parser.add_argument("--repeats", type=int, default=3, help="median over this many repeats")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        work_dir = Path(tmp)
        storage = f"sqlite:///{work_dir / 'bench.db'}" if args.storage == "sqlite" else None
        per_trial, startup, plain, basic = [], [], [], []
        n_extra = args.large - args.small
        for _ in range(args.repeats):
            small = sweep_seconds(args.small, args.n_jobs, storage, work_dir)
            large = sweep_seconds(args.large, args.n_jobs, storage, work_dir)
            per_trial.append((large - small) / n_extra)
            startup.append(small - args.small * per_trial[-1])
            basic_small = basic_sweeper_seconds(args.small, work_dir)
            basic_large = basic_sweeper_seconds(args.large, work_dir)
            basic.append((basic_large - basic_small) / n_extra)
            plain.append(plain_loop_seconds_per_trial(args.large, storage))

    def runs(values: list[float]) -> str:
        return ", ".join(f"{v * 1e3:.1f}" for v in values)

    sweep_ms = statistics.median(per_trial) * 1e3
    plain_ms = statistics.median(plain) * 1e3
    basic_ms = statistics.median(basic) * 1e3
    print(
        f"storage={args.storage} n_jobs={args.n_jobs} trials={args.small}/{args.large} repeats={args.repeats}"
    )
    print(f"optuna sweeper + Hydra  : {sweep_ms:7.1f} ms/trial  (runs: {runs(per_trial)})")
    print(f"plain study.optimize    : {plain_ms:7.2f} ms/trial  (runs: {runs(plain)})")
    print(f"Hydra basic sweeper     : {basic_ms:7.1f} ms/job    (runs: {runs(basic)})")
    print(f"overhead vs plain loop  : {sweep_ms - plain_ms:7.1f} ms/trial")
    print(
        f"  of which Hydra per job: {basic_ms:7.1f} ms, optuna sweeper itself: {sweep_ms - basic_ms:.1f} ms"
    )
    print(
        f"sweep start-up          : {statistics.median(startup):7.2f} s (interpreter, imports, plugin scan)"
    )


if __name__ == "__main__":
    main()
