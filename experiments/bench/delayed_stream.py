"""Streaming throughput of delayed-feedback methods: Vanilla vs the engagement-aware method (issue #5).

Usage::

    python experiments/bench/delayed_stream.py                          # 1 M clicks, ABBA x 1 (~3 min)
    python experiments/bench/delayed_stream.py --repeats 2              # ABBA x 2 (~5 min)
    python experiments/bench/delayed_stream.py --num-clicks 100000 --repeats 1   # quick check (~1 min)
    python experiments/bench/delayed_stream.py --set protocol.aux_updates=false  # frozen auxiliary models
    python experiments/bench/delayed_stream.py --set protocol.aux_update_steps=null  # no step budget

Each measured run is a real ``recsci`` run (``recsci.core.run.run`` on the composed config
``experiment=delayed/sim_streaming model=<method> data.source.num_clicks=<N>``, by default 1 M clicks over
10 days: 72 h of pretraining, then 12 intervals of 12 h), so the timed code is the streaming protocol
the experiments use, not a re-implementation. Timers are wrapped around the protocol's own steps
(``Runner.update_auxiliaries``, ``AuxiliaryModel.update``, ``Runner.window_columns``, the method's
``prepare``, ``Runner.fit``):

- ``aux update``: per interval, building the auxiliary examples of the clicks that matured since the last
  update (counterfactual cuts for the flip model) and each auxiliary model's update (at most
  ``protocol.aux_update_steps`` batches of ``protocol.aux_update_batch_size``);
- ``records``: the interval's training records (``stream_records``) and their batch columns;
- ``aux predict``: the method's per-record constants (p_dp and z, predicted once per window);
- ``main fit``: one Lightning fit of the conversion model on the interval (the weighted loss).

"Training/weighting time" per interval is the sum of the four; throughput is the interval's main-model
training records divided by it. Pretraining, the initial auxiliary fits and evaluation are timed but
reported apart (they are one-off, or not training). Torch runs on one thread (``protocol.num_threads=1``,
the default). The test AUC and NLL of every run are printed too (the step budget trades them for time).
Both wall and CPU (process) seconds are kept: the ratio of CPU seconds is the robust one on
a shared machine. Methods alternate A B B A in one process, after an untimed warm-up run, so load drifts
hit both alike; the report gives the median and the best (minimum) of each method's runs and the ratio of
each. References (Vanilla/Oracle trained alongside) and the flip diagnostics are off by
default: they are extra learners, not part of a method (``--references``, ``--flip-diagnostics``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import json
import logging
import os
import resource
import statistics
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from recsci.cli import config_dir
from recsci.core.run import run
from recsci.delayed.auxiliary import AuxiliaryModel
from recsci.delayed.module import DelayedFeedbackModule
from recsci.delayed.runner import Runner

PARTS = ("aux update", "records", "aux predict", "main fit")


def aux_name(aux: AuxiliaryModel) -> str:
    """``dp``, ``flip`` or ``flip+<signals>`` (the auxiliary model's target and inputs, for the report)."""
    short = {"delayed_positive": "dp", "flip": "flip", "observed_given_positive": "observed"}[aux.target]
    signals = aux.hparams.signals
    if signals not in ("none", [], ()):
        short += "+" + (signals if isinstance(signals, str) else ",".join(signals))
    return short + ("+elapsed" if aux.use_elapsed else "")


@dataclass
class Interval:
    """Seconds (wall, CPU) per part of one streaming interval, and its record counts."""

    window: tuple[float, float]
    wall: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    records: int = 0  # main-model training records
    aux_examples: int = 0  # matured auxiliary examples built for the updates (all auxiliary models)
    aux_trained: int = 0  # of those, the ones the updates trained on (the step budget may cut the pass)
    fits: int = 0  # main-model Lightning fits and auxiliary updates
    aux_rows: dict[str, int] = field(default_factory=dict)  # examples trained on, per auxiliary model

    def total(self, kind: str) -> float:
        return sum((self.wall if kind == "wall" else self.cpu).values())

    def part(self, kind: str, name: str) -> float:
        """Seconds of ``name``; ``aux update`` includes its auxiliary fits (``aux fit <model>``)."""
        values = self.wall if kind == "wall" else self.cpu
        if name == "aux update":
            return sum(v for k, v in values.items() if k == name or k.startswith("aux fit "))
        return values.get(name, 0.0)


@dataclass
class RunTimes:
    """What one instrumented run measured."""

    method: str
    intervals: dict[tuple[float, float], Interval] = field(default_factory=dict)
    other_wall: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    other_cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    run_wall: float = 0.0
    run_cpu: float = 0.0
    quality: dict[str, float] = field(default_factory=dict)  # the run's test AUC and NLL (metrics.json)

    def interval(self, window: tuple[float, float]) -> Interval:
        return self.intervals.setdefault(window, Interval(window))

    def totals(self) -> dict[str, float]:
        rows = list(self.intervals.values())
        out = {
            "records": float(sum(r.records for r in rows)),
            "aux_examples": sum(r.aux_examples for r in rows),
            "aux_trained": sum(r.aux_trained for r in rows),
        }
        names = sorted({k for r in rows for k in r.cpu if k.startswith("aux fit ")})
        for kind in ("wall", "cpu"):
            for part in (*PARTS, *names):
                out[f"{kind}/{part}"] = sum(r.part(kind, part) for r in rows)
            out[f"{kind}/aux examples"] = sum(
                (r.wall if kind == "wall" else r.cpu).get("aux update", 0.0) for r in rows
            )
            out[f"{kind}/total"] = sum(r.total(kind) for r in rows)
        for name in names:
            out[f"rows/{name}"] = sum(r.aux_rows.get(name.removeprefix("aux fit "), 0) for r in rows)
        return out


class Instrument:
    """Wraps the streaming protocol's steps with timers while active (class-level patches, undone after).

    Sections nest; each keeps its exclusive time (a nested section's time is taken out of its parent's).
    """

    def __init__(self) -> None:
        self.times: RunTimes | None = None
        self.window: tuple[float, float] | None = None
        self.stack: list[list[float]] = []  # per open section: [wall, cpu] spent in nested sections

    @contextlib.contextmanager
    def timed(self, name: str, window: tuple[float, float] | None) -> Iterator[None]:
        self.stack.append([0.0, 0.0])
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            nested = self.stack.pop()
            if self.stack:
                self.stack[-1][0] += wall
                self.stack[-1][1] += cpu
            wall, cpu = wall - nested[0], cpu - nested[1]
            if window is not None:
                interval = self.times.interval(window)
                interval.wall[name] += wall
                interval.cpu[name] += cpu
            else:
                self.times.other_wall[name] += wall
                self.times.other_cpu[name] += cpu

    @contextlib.contextmanager
    def patched(self, times: RunTimes) -> Iterator[None]:
        self.times = times
        runner = Runner
        originals = {
            n: getattr(runner, n)
            for n in ("fit", "fit_auxiliary", "update_auxiliaries", "window_columns", "evaluate")
        }
        original_update = AuxiliaryModel.update
        instrument = self

        @functools.wraps(originals["fit_auxiliary"])
        def fit_auxiliary(self: Any, aux: AuxiliaryModel, wait: float, rng: Any) -> None:
            instrument.window = None
            with instrument.timed("aux fit (pretraining window)", None):
                return originals["fit_auxiliary"](self, aux, wait, rng)

        @functools.wraps(originals["update_auxiliaries"])
        def update_auxiliaries(self: Any, auxiliaries: dict, wait: float, rng: Any, observe: float) -> dict:
            # The update at the end of a training window [s, e) is part of that window's interval.
            instrument.window = next(w for w in instrument.steps(self) if w[1] == observe)
            with instrument.timed("aux update", instrument.window):
                return originals["update_auxiliaries"](self, auxiliaries, wait, rng, observe)

        @functools.wraps(original_update)
        def update(aux: AuxiliaryModel, columns: dict, *args: Any, **kwargs: Any) -> float:
            rows = int(columns["label"].size(0))
            bound = inspect.signature(original_update).bind(aux, columns, *args, **kwargs).arguments
            trained = (
                rows if bound["max_steps"] is None else min(rows, bound["max_steps"] * bound["batch_size"])
            )
            interval = instrument.times.interval(instrument.window)
            interval.aux_examples += rows
            interval.aux_trained += trained
            interval.fits += 1
            name = aux_name(aux)
            interval.aux_rows[name] = interval.aux_rows.get(name, 0) + trained
            with instrument.timed(f"aux fit {name}", instrument.window):
                return original_update(aux, columns, *args, **kwargs)

        @functools.wraps(originals["window_columns"])
        def window_columns(self: Any, method: Any, window: tuple[float, float]) -> dict[str, torch.Tensor]:
            instrument.window = window
            if "prepare" not in vars(method):  # time the method's per-record constants on their own
                prepare = method.prepare

                def timed_prepare(*args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
                    with instrument.timed("aux predict", instrument.window):
                        return prepare(*args, **kwargs)

                object.__setattr__(method, "prepare", timed_prepare)
            with instrument.timed("records", window):
                return originals["window_columns"](self, method, window)

        @functools.wraps(originals["fit"])
        def fit(self: Any, module: Any, columns: dict[str, torch.Tensor], epochs: int) -> None:
            rows = int(columns["x"].size(0))
            if isinstance(module, AuxiliaryModel):  # the pretraining-window fit, inside its own section
                return originals["fit"](self, module, columns, epochs)
            if isinstance(module, DelayedFeedbackModule) and module.phase == "stream":
                interval = instrument.times.interval(instrument.window)
                interval.records += rows
                interval.fits += 1
                with instrument.timed("main fit", instrument.window):
                    return originals["fit"](self, module, columns, epochs)
            with instrument.timed(f"{module.phase} fit", None):
                return originals["fit"](self, module, columns, epochs)

        @functools.wraps(originals["evaluate"])
        def evaluate(self: Any, *args: Any, **kwargs: Any) -> dict:
            with instrument.timed("evaluate", None):
                return originals["evaluate"](self, *args, **kwargs)

        patches = {
            "fit": fit,
            "fit_auxiliary": fit_auxiliary,
            "update_auxiliaries": update_auxiliaries,
            "window_columns": window_columns,
            "evaluate": evaluate,
        }
        for name, wrapper in patches.items():
            setattr(runner, name, wrapper)
        AuxiliaryModel.update = update
        try:
            yield
        finally:
            for name, original in originals.items():
                setattr(runner, name, original)
            AuxiliaryModel.update = original_update
            self.times = None

    @staticmethod
    def steps(runner: Any) -> list[tuple[float, float]]:
        """The run's training windows."""
        return [step.train for step in runner.protocol.steps(runner.log) if step.train is not None]


def compose_run_config(overrides: list[str], output_dir: Path) -> DictConfig:
    """The config ``recsci <overrides>`` would run, writing into ``output_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def run_method(model: str, args: argparse.Namespace, work: Path, num_clicks: int) -> RunTimes:
    overrides = [
        "experiment=delayed/sim_streaming",
        f"model={model}",
        f"data.source.num_clicks={num_clicks}",
        f"data.source.days={args.days}",
        f"protocol.references=[{','.join(args.references)}]",
        f"protocol.flip_diagnostics={str(args.flip_diagnostics).lower()}",
        f"logger={args.logger}",
        "trainer.enable_progress_bar=false",
        "callbacks.model_summary=null",
        f"seed={args.seed}",
        *args.set,
    ]
    output = work / f"{model}-{time.monotonic_ns()}"
    cfg = compose_run_config(overrides, output)
    times = RunTimes(model)
    with Instrument().patched(times):
        wall, cpu = time.perf_counter(), time.process_time()
        run(cfg)
        times.run_wall, times.run_cpu = time.perf_counter() - wall, time.process_time() - cpu
    metrics = json.loads((output / "metrics.json").read_text())["metrics"]
    times.quality = {k: metrics[k] for k in ("test/auc", "test/nll") if k in metrics}
    return times


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def print_report(runs: list[RunTimes], args: argparse.Namespace, loads: list[str]) -> dict:
    by_method: dict[str, list[RunTimes]] = defaultdict(list)
    for r in runs:
        by_method[r.method].append(r)
    summary: dict[str, dict[str, Any]] = {}
    print(
        f"\nclicks {args.num_clicks:,}, {args.days} days; load averages (1/5/15 min) at each run start: {loads}"
    )
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s) outside runs; runs use protocol.num_threads"
    )
    for method, rs in by_method.items():
        totals = [r.totals() for r in rs]
        s: dict[str, Any] = {
            "runs": len(rs),
            "records": totals[0]["records"],
            "aux_examples": totals[0]["aux_examples"],
            "aux_trained": totals[0]["aux_trained"],
        }
        for key in totals[0]:
            if key.startswith(("rows/", "wall/aux", "cpu/aux")):
                s[key] = statistics.median(t.get(key, 0.0) for t in totals)
        for kind in ("wall", "cpu"):
            for part in (*PARTS, "total"):
                s[f"{kind}/{part}"] = statistics.median(t[f"{kind}/{part}"] for t in totals)
            s[f"{kind}/all"] = [round(t[f"{kind}/total"], 2) for t in totals]
            s[f"{kind}/examples_per_s"] = s["records"] / s[f"{kind}/total"]
            s[f"{kind}/best"] = min(t[f"{kind}/total"] for t in totals)
            s[f"{kind}/best_examples_per_s"] = s["records"] / s[f"{kind}/best"]
            per_interval = [
                statistics.median(iv.total(kind) for iv in r.intervals.values()) for r in rs if r.intervals
            ]
            s[f"{kind}/median_interval_s"] = statistics.median(per_interval)
        s["intervals"] = len(rs[0].intervals)
        s["fits_per_interval"] = statistics.median(iv.fits for iv in rs[0].intervals.values())
        for name in sorted({k for r in rs for k in r.other_cpu}):
            s[f"one-off cpu/{name}"] = statistics.median(r.other_cpu.get(name, 0.0) for r in rs)
        s["run wall"] = statistics.median(r.run_wall for r in rs)
        s["quality"] = [r.quality for r in rs]
        s["run cpu"] = statistics.median(r.run_cpu for r in rs)
        summary[method] = s

    header = "| method | records | intervals | aux examples (trained on / matured) | "
    header += " | ".join(f"{p} (s)" for p in PARTS)
    header += " | train+weight (s) | examples/s/core | median s/interval |"
    print("\nStreaming part (sum over intervals, median over runs), CPU seconds [wall seconds]:\n")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for method, s in summary.items():
        cells = [f"{s[f'cpu/{p}']:.2f} [{s[f'wall/{p}']:.2f}]" for p in PARTS]
        print(
            f"| {method} | {s['records']:,.0f} | {s['intervals']} | "
            f"{s['aux_trained']:,.0f} / {s['aux_examples']:,.0f} | "
            + " | ".join(cells)
            + f" | {s['cpu/total']:.2f} [{s['wall/total']:.2f}] | {s['cpu/examples_per_s']:,.0f} "
            f"[{s['wall/examples_per_s']:,.0f}] | {s['cpu/median_interval_s']:.3f} [{s['wall/median_interval_s']:.3f}] |"
        )
    methods = list(summary)
    if len(methods) == 2:
        a, b = summary[methods[0]], summary[methods[1]]
        for kind in ("cpu", "wall"):
            ratio = b[f"{kind}/total"] / a[f"{kind}/total"]
            pairs = [round(y / x, 3) for x, y in zip(a[f"{kind}/all"], b[f"{kind}/all"], strict=False)]
            print(f"\n{methods[1]} / {methods[0]} ({kind}): {ratio:.3f}  (per ABBA pair: {pairs})")
            print(
                f"  best of {a['runs']} vs {b['runs']} runs: {b[f'{kind}/best'] / a[f'{kind}/best']:.3f} "
                f"({a[f'{kind}/best_examples_per_s']:,.0f} vs {b[f'{kind}/best_examples_per_s']:,.0f} examples/s)"
            )
        extra = b["cpu/total"] - a["cpu/total"]
        if extra > 0:
            print(f"where the extra {extra:.2f} CPU s go:")
            for part in PARTS:
                d = b[f"cpu/{part}"] - a.get(f"cpu/{part}", 0.0)
                print(f"  {part:12s} {d:+8.2f} s  ({100 * d / extra:5.1f}%)")
                if part == "aux update":
                    for key in ["cpu/aux examples", *(k for k in b if k.startswith("cpu/aux fit "))]:
                        name = key.removeprefix("cpu/")
                        rows = b.get(f"rows/{name}")
                        detail = (
                            f", {rows:,.0f} examples trained on, {rows / b[key]:,.0f}/s"
                            if rows
                            else " (building them)"
                        )
                        print(f"    {name:28s} {b[key]:8.2f} s{detail}")
    print("\nTest metrics of each run (one seed):")
    for method, s in summary.items():
        print(
            f"  {method}: " + "; ".join(", ".join(f"{k} {v:.4f}" for k, v in q.items()) for q in s["quality"])
        )
    print("\nOne-off and untimed-by-interval parts (CPU s, median over runs):")
    for method, s in summary.items():
        parts = {k.split("/", 1)[1]: v for k, v in s.items() if k.startswith("one-off cpu/")}
        print(
            f"  {method}: "
            + ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
            + f"; whole run {s['run cpu']:.1f} CPU s / {s['run wall']:.1f} wall s"
        )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-clicks", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=10.0, help="simulated days (the experiment's default)")
    parser.add_argument("--methods", nargs=2, default=["delayed_vanilla", "delayed_engagement_is"])
    parser.add_argument("--repeats", type=int, default=1, help="ABBA blocks (each runs both methods twice)")
    parser.add_argument("--references", nargs="*", default=[], choices=["pretrained", "vanilla", "oracle"])
    parser.add_argument("--flip-diagnostics", action="store_true")
    parser.add_argument("--logger", default="csv", help="logger group option (csv: the runs' default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup-clicks", type=int, default=20_000, help="untimed warm-up run (0: none)")
    parser.add_argument("--set", nargs="*", default=[], help="extra Hydra overrides for both methods")
    parser.add_argument("--json", type=Path, help="write the summary here")
    args = parser.parse_args()

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    a, b = args.methods
    runs: list[RunTimes] = []
    loads: list[str] = []
    with tempfile.TemporaryDirectory(prefix="delayed_stream_") as tmp:
        work = Path(tmp)
        if args.warmup_clicks:
            for model in (a, b):
                run_method(model, args, work, args.warmup_clicks)
        for _ in range(args.repeats):
            for model in (a, b, b, a):
                loads.append(load_average())
                runs.append(run_method(model, args, work, args.num_clicks))
                t = runs[-1].totals()
                print(
                    f"[{model}] train+weight {t['cpu/total']:.2f} CPU s / {t['wall/total']:.2f} wall s over "
                    f"{t['records']:,.0f} records; run {runs[-1].run_wall:.1f} s; load {loads[-1]}",
                    flush=True,
                )
    runs.sort(key=lambda r: r.method != a)  # first method first, order within a method kept
    summary = print_report(runs, args, loads)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak resident memory of the process: {peak:.2f} GiB")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"args": vars(args) | {"json": str(args.json)}, "summary": summary, "loads": loads},
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
