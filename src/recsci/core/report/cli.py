"""``recsci report`` and ``recsci table``: argument parsing and exit codes (wired in ``recsci.cli``)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from recsci.core.report.aggregate import Layout, MetricSpec
from recsci.core.report.anchors import Anchors
from recsci.core.report.build import build_report
from recsci.core.report.paired import Comparison, check_comparisons
from recsci.core.report.resume import MergeOutcome, merge_runs, pending_jobs, rerun_overrides, resume_sweeps
from recsci.core.report.runs import COMPLETED, collect_runs, default_by
from recsci.core.report.table import (
    ParallelLauncherMissing,
    SweepDirBusy,
    TableDefinition,
    build_table_report,
    data_available,
    extra_overrides,
    latest_sweep_dir,
    launcher_overrides,
    new_sweep_dir,
    planned_job_count,
    run_sweeps,
    update_readme,
)


def _keys(values: list[str] | None) -> list[str] | None:
    # `--by model data` and `--by model,data` both work.
    if values is None:
        return None
    return [k for v in values for k in v.split(",") if k]


def report_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recsci report",
        description="Aggregate the runs under a multirun/outputs dir into report/report.md and report.html.",
    )
    parser.add_argument("dir", type=Path, help="a multirun dir, an outputs dir, or one run dir")
    parser.add_argument(
        "--by",
        nargs="+",
        help="row keys: a config group (model, data, sampler: the option chosen) or a dotted config key "
        "(model.lr). Default: the overrides that vary between runs, minus --over",
    )
    parser.add_argument("--over", nargs="+", default=["seed"], help="keys aggregated over (default: seed)")
    parser.add_argument(
        "--metrics", nargs="+", help="metric keys (default: the test/* metrics all runs have)"
    )
    parser.add_argument("--anchors", type=Path, help="YAML of published rows to show beside ours")
    parser.add_argument(
        "--compare",
        nargs=2,
        action="append",
        metavar=("A", "B"),
        help="paired differences A - B over the --over keys, e.g. --compare model=gcn model=graphsage "
        "(key=value[,key=value] of --by keys); repeatable",
    )
    parser.add_argument("--plot", action="append", help="plot function (name or dotted path); repeatable")
    parser.add_argument("--out", type=Path, help="output dir (default: <dir>/report)")
    parser.add_argument("--title")
    parser.add_argument(
        "--percent",
        action="store_true",
        help="show fractions as percentages (metrics with a value outside [0, 1], e.g. counts and "
        "thresholds, are shown as recorded)",
    )
    wandb = parser.add_mutually_exclusive_group()
    wandb.add_argument("--wandb", action="store_true", default=None, help="log plots and tables to W&B")
    wandb.add_argument("--no-wandb", dest="wandb", action="store_false", help="never log to W&B")
    parser.add_argument("--wandb-group", help="W&B group (default: the runs' group)")
    return parser


def report_main(argv: list[str]) -> int:
    args = report_parser().parse_args(argv)
    if not args.dir.is_dir():
        print(f"recsci report: {args.dir} is not a directory", file=sys.stderr)
        return 2
    over = _keys(args.over) or []
    by = _keys(args.by)
    if by is None:
        by = default_by(args.dir, collect_runs(args.dir), over)
    try:
        comparisons = [Comparison.from_cli(a, b) for a, b in args.compare or []]
        check_comparisons(comparisons, Layout(by=by, over=over, metrics=[]))
    except ValueError as err:
        print(f"recsci report: {err}", file=sys.stderr)
        return 2
    layout = Layout(
        by=by,
        over=over,
        metrics=[MetricSpec(m, m) for m in _keys(args.metrics) or []],
        scale=100.0 if args.percent else 1.0,
        digits=2 if args.percent else 4,
    )
    try:
        anchors = Anchors.load(args.anchors) if args.anchors else None
        files = build_report(
            args.dir,
            layout,
            title=args.title,
            anchors=anchors,
            plots=args.plot or ["metric_bars"],
            out_dir=args.out,
            facts=[("command", "recsci report " + shlex.join(argv))],
            wandb=args.wandb,
            wandb_group=args.wandb_group,
            comparisons=comparisons,
            check_keys=True,
        )
    except (ValueError, OSError) as err:
        print(f"recsci report: {err}", file=sys.stderr)
        return 2
    return _summarise(files.runs, files.markdown, files.html)


def _summarise(runs: list, markdown: Path, html: Path) -> int:
    completed = sum(r.status == COMPLETED for r in runs)
    print(f"{completed} of {len(runs)} runs completed")
    for run in runs:
        if run.status != COMPLETED:
            where = run.path or " ".join(run.overrides)
            print(f"  {run.status}: {where}" + (f" ({run.error})" if run.error else ""))
    print(f"Markdown: {markdown}\nHTML:     {html}")
    # Exit 0 with a report even when runs failed: the report says so; 1 when there is nothing to report.
    return 0 if completed else 1


def table_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recsci table",
        description="Rerun a table's multiruns (experiments/<problem>/<table>.yaml) and rebuild its report "
        "and README section. Overrides after the definition (or after --) are added to every job, "
        "e.g. `recsci table def.yaml trainer.max_epochs=1` for a smoke run.",
    )
    parser.add_argument("definition", type=Path)
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every job")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and job counts only")
    parser.add_argument(
        "--report-only", action="store_true", help="rebuild from the latest (or --sweep-dir) runs"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="finish the latest (or --sweep-dir) runs: rerun only the jobs without a completed run (a "
        "failed or unfinished one is moved to <sweep>/.superseded/), then rebuild the report",
    )
    parser.add_argument(
        "--merge-from",
        type=Path,
        metavar="DIR",
        help="copy the completed runs of DIR (a sweep dir's layout, e.g. runs a GPU machine finished) into "
        "the latest (or --sweep-dir) runs, job by job, then rebuild the report",
    )
    parser.add_argument(
        "--sweep-dir", type=Path, help="where the runs go (default: outputs/tables/<name>/<time>)"
    )
    parser.add_argument(
        "--sweeps",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        metavar="NAME[,NAME]",
        help="run (or resume) only these sweeps of the table, in this order; the report and README still "
        "cover every sweep's runs in the sweep dir",
    )
    parser.add_argument("--no-readme", action="store_true", help="do not update the table's README section")
    parser.add_argument(
        "-j",
        "--jobs",
        type=_positive_int,
        default=1,
        help="run this many jobs of each sweep at a time (Hydra's joblib launcher; default 1)",
    )
    wandb = parser.add_mutually_exclusive_group()
    wandb.add_argument("--wandb", action="store_true", default=None, help="log plots and tables to W&B")
    wandb.add_argument("--no-wandb", dest="wandb", action="store_false", help="never log to W&B")
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def table_main(argv: list[str]) -> int:
    args = table_parser().parse_intermixed_args(argv)
    try:
        definition = TableDefinition.load(args.definition)
    except ValueError as err:
        print(f"recsci table: {err}", file=sys.stderr)
        return 2
    extra = list(args.overrides)
    try:
        to_run = definition.only(args.sweeps) if args.sweeps else definition
    except ValueError as err:
        print(f"recsci table --sweeps: {err}", file=sys.stderr)
        return 2
    modes = [flag for flag, on in (("--report-only", args.report_only), ("--resume", args.resume),
                                   ("--merge-from", args.merge_from)) if on]  # fmt: skip
    if len(modes) > 1:
        print(f"recsci table: {' and '.join(modes)} do different things: pick one", file=sys.stderr)
        return 2
    if modes:
        sweep_dir = args.sweep_dir or latest_sweep_dir(definition)
        if sweep_dir is None or not sweep_dir.is_dir():
            print(f"recsci table: no runs of {definition.name} yet; run without {modes[0]}", file=sys.stderr)
            return 2
    else:
        sweep_dir = args.sweep_dir or new_sweep_dir(definition)
    sweep_dir = sweep_dir.resolve()  # Hydra jobs and the report must agree on it whatever their cwd
    try:
        launcher = launcher_overrides(args.jobs)
    except ParallelLauncherMissing as err:
        print(f"recsci table --jobs {args.jobs}: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        if args.resume:
            return _dry_run_resume(to_run, sweep_dir, extra)
        return _dry_run(to_run, sweep_dir, extra, launcher)
    if definition.needs_data and not (args.report_only or args.merge_from) and not data_available(extra):
        print(
            f"recsci table: {definition.name} needs the real datasets: set RECSCI_DATA=<datasets folder> "
            "(or pass paths.data_dir=<folder>); see shared/data/README.md",
            file=sys.stderr,
        )
        return 2
    if args.merge_from:
        if not args.merge_from.is_dir():
            print(f"recsci table --merge-from: {args.merge_from} is not a directory", file=sys.stderr)
            return 2
        try:
            _print_merge(merge_runs(definition, args.merge_from, sweep_dir), sweep_dir)
        except SweepDirBusy as err:
            print(f"recsci table: {err}", file=sys.stderr)
            return 2
    if args.report_only or args.merge_from:
        ran = []
    elif args.resume:
        try:
            ran = resume_sweeps(to_run, sweep_dir, extra, args.jobs)
        except (ValueError, SweepDirBusy) as err:
            print(f"recsci table: {err}", file=sys.stderr)
            return 2
    else:
        try:
            ran = run_sweeps(to_run, sweep_dir, extra, args.jobs)
        except SweepDirBusy as err:
            print(f"recsci table: {err}", file=sys.stderr)
            return 2
    failed = [(name, code) for name, code in ran if code]
    files = build_table_report(definition, sweep_dir, extra, args.wandb)
    extra = extra_overrides(definition, sweep_dir, extra, every_value=True)  # what the runs really used
    if not args.no_readme and (readme := update_readme(definition, files, extra)):
        print(f"README:   {readme}")
    for name, code in failed:
        print(f"sweep {name!r} exited with {code}: see the report's 'Runs not completed'", file=sys.stderr)
    status = _summarise(files.runs, files.markdown, files.html)
    return 1 if failed else status


def _dry_run(definition: TableDefinition, sweep_dir: Path, extra: list[str], launcher: list[str]) -> int:
    total = 0
    for sweep in definition.sweeps:
        jobs = planned_job_count([*sweep.overrides, *extra])
        total += jobs
        command = definition.command(sweep, sweep_dir, [*extra, *launcher])
        print(f"# {sweep.name}: {jobs} jobs\n{shlex.join(['recsci', *command[3:]])}")
    print(f"# {total} jobs in all, into {sweep_dir}; report: {sweep_dir}/report/report.html")
    if definition.needs_data and not data_available(extra):
        print("# needs RECSCI_DATA (not set here)")
    return 0


def _dry_run_resume(definition: TableDefinition, sweep_dir: Path, extra: list[str]) -> int:
    pending, unstarted = pending_jobs(definition, sweep_dir)
    for job in pending:
        print(f"# {job.sweep}/{job.number}\n{shlex.join(['recsci', *rerun_overrides(job.overrides, extra)])}")
    inherited = extra_overrides(definition, sweep_dir, extra)
    for sweep in unstarted:
        jobs = planned_job_count([*sweep.overrides, *inherited])
        print(
            f"# {sweep.name}: never started, {jobs} jobs, with {shlex.join(inherited) or 'no extra overrides'}"
        )
    print(f"# {len(pending)} job(s) to rerun in {sweep_dir}, {len(unstarted)} sweep(s) to start")
    return 0


def _print_merge(outcome: MergeOutcome, sweep_dir: Path) -> None:
    print(
        f"[recsci table] merged {len(outcome.merged)} run(s) into {sweep_dir}; kept {len(outcome.kept_local)} "
        f"completed run(s) already there; left out {len(outcome.left_out)}",
        flush=True,
    )
    for path, why in outcome.left_out:
        print(f"  left out {path}: {why}", flush=True)
