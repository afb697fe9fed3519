"""Reports: collecting runs, grouping and aggregation, failed/missing runs, anchors, plots, writers,
table definitions, and one real multirun logged to W&B offline and reported end to end."""

from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from recsci.core.report.aggregate import Layout, MetricSpec, Pivot, Stat, compact_values, group_runs
from recsci.core.report.anchors import Anchors
from recsci.core.report.build import build_report
from recsci.core.report.cli import report_main, table_main
from recsci.core.report.plots import ReportData, resolve_plot
from recsci.core.report.runs import NOT_STARTED, collect_runs, planned_jobs, value_of
from recsci.core.report.table import TableDefinition, build_table_report, planned_job_count, update_readme
from tests.conftest import FAST, REPO_ROOT, compose_config
from tests.wandb_offline import offline_run_history, offline_run_summary

# -- fake run dirs ----------------------------------------------------------------------------------


def make_run(
    path: Path,
    *,
    status: str = "completed",
    metrics: dict[str, float] | None = None,
    config: dict[str, Any] | None = None,
    choices: dict[str, str] | None = None,
    overrides: list[str] | None = None,
    extra: dict[str, Any] | None = None,
    write_metrics: bool = True,
) -> Path:
    """A run dir as `recsci` writes it: metrics.json, config_resolved.yaml and .hydra/."""
    (path / ".hydra").mkdir(parents=True)
    config = {"seed": 0, "problem": "graph", **(config or {})}
    (path / "config_resolved.yaml").write_text(yaml.safe_dump(config))
    hydra = {"hydra": {"runtime": {"choices": choices or {}}}}
    (path / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides or []))
    if write_metrics:
        results = {"status": status, "seed": config["seed"], "git_commit": "abc123", "metrics": metrics or {}}
        if status == "failed":
            results["error"] = "RuntimeError: loss is nan"
        (path / "metrics.json").write_text(json.dumps({**results, **(extra or {})}))
    return path


def two_models(root: Path) -> Path:
    """Model a: 3 seeds (auc 0.5, 0.6, 0.7); model b: 2 seeds; plus one failed run of b."""
    for seed, auc in enumerate([0.5, 0.6, 0.7]):
        make_run(
            root / f"a{seed}",
            metrics={"test/auc": auc, "test/mrr": 0.1 * (seed + 1)},
            config={"seed": seed, "model": {"lr": 0.01}},
            choices={"model": "a"},
            overrides=["model=a", f"seed={seed}"],
        )
    for seed, auc in enumerate([0.8, 0.9]):
        make_run(
            root / f"b{seed}",
            metrics={"test/auc": auc, "test/mrr": 0.3},
            config={"seed": seed, "model": {"lr": 0.1}},
            choices={"model": "b"},
            overrides=["model=b", f"seed={seed}"],
        )
    make_run(
        root / "b2",
        status="failed",
        config={"seed": 2},
        choices={"model": "b"},
        overrides=["model=b", "seed=2"],
    )
    return root


LAYOUT = dict(
    by=["model"], over=["seed"], metrics=[MetricSpec("test/auc", "AUC"), MetricSpec("test/mrr", "MRR")]
)


# -- grouping and aggregation -------------------------------------------------------------------------


def test_groups_aggregate_mean_std_and_count_over_seeds(tmp_path: Path) -> None:
    runs = collect_runs(two_models(tmp_path))
    groups = group_runs(runs, ["model"])
    assert [g.key for g in groups] == [("a",), ("b",)]
    a, b = groups
    assert a.stat("test/auc") == Stat(pytest.approx(0.6), pytest.approx(0.1), 3)
    assert len(b.completed) == 2 and len(b.not_completed) == 1  # the failed run is kept, not aggregated
    files = build_report(tmp_path, Layout(**LAYOUT), plots=[])
    rows = {r[0]: r for r in files.report.results.rows}
    assert rows["a"][1:5] == ["3", "0-2", "0.6000 ± 0.1000", "0.2000 ± 0.1000"]
    assert rows["b"][1:3] == ["2", "0, 1"] and rows["b"][-1] == "ours (1 not completed)"


def test_one_run_has_no_std_and_nan_is_not_averaged() -> None:
    assert Stat.of([0.5]) == Stat(0.5, None, 1) and Stat.of([0.5]).format() == "0.5000"
    assert Stat.of([math.nan, 1.0, 3.0]).n == 2
    assert Stat.of([math.nan]) is None
    assert compact_values(["2", "0", "1"]) == "0-2" and compact_values(["0", "2"]) == "0, 2"


def test_by_keys_are_group_options_or_dotted_config_keys(tmp_path: Path) -> None:
    runs = collect_runs(two_models(tmp_path))
    assert {value_of(r, "model") for r in runs} == {"a", "b"}
    assert {value_of(r, "model.lr") for r in runs} == {"0.01", "0.1", "-"}
    # Without Hydra's record of choices, `model` falls back to the encoder's class name.
    bare = make_run(tmp_path / "bare", config={"model": {"encoder": {"_target_": "pkg.models.BLADE"}}})
    (assert_bare,) = [r for r in collect_runs(tmp_path) if r.path == bare]
    assert value_of(assert_bare, "model") == "BLADE" and value_of(assert_bare, "nope.key") == "-"


def test_failed_running_pruned_missing_and_never_started_runs_are_listed(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    make_run(sweep / "0", metrics={"test/auc": 0.7}, overrides=["seed=0"])
    again = "train=false ckpt_path=/runs/1/checkpoints/epoch_003.ckpt"
    make_run(sweep / "1", status="failed", overrides=["seed=1"], config={"seed": 1},
             extra={"evaluate_again": again})  # fmt: skip
    make_run(sweep / "2", status="running", overrides=["seed=2"], config={"seed": 2})
    make_run(sweep / "3", status="pruned", overrides=["seed=3"], config={"seed": 3})
    make_run(sweep / "4", write_metrics=False, overrides=["seed=4"], config={"seed": 4})
    (sweep / "5").mkdir()
    (sweep / "5" / "metrics.json").write_text("{not json")
    planned = {"hydra": {"sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"},
                         "overrides": {"task": ["seed=range(8)"]}}}  # fmt: skip
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(planned))
    assert len(planned_jobs(sweep / "multirun.yaml")) == 8

    files = build_report(
        sweep, Layout(by=[], over=["seed"], metrics=[MetricSpec("test/auc", "AUC")]), plots=[]
    )
    statuses = sorted(r.status for r in files.runs)
    assert statuses == [
        "completed",
        "failed",
        "missing",
        "not started",
        "not started",
        "pruned",
        "running",
        "unreadable",
    ]
    never = sorted(r.overrides[0] for r in files.runs if r.status == NOT_STARTED)
    assert never == ["seed=6", "seed=7"]  # job 5 has a dir (unreadable metrics), 6 and 7 never started
    assert files.report.results.rows[0][0] == "1"  # n counts the one completed run
    markdown = files.markdown.read_text()
    assert "## Runs not completed (7)" in markdown
    for text in (
        "RuntimeError: loss is nan",
        f"evaluate it with {again}",
        "running",
        "pruned",
        "no metrics.json",
        "not valid JSON",
        "seed=7",
    ):
        assert text in markdown
    assert report_main([str(sweep), "--over", "seed"]) == 0  # a report is still written


def test_a_job_that_never_started_is_counted_in_its_row(tmp_path: Path) -> None:
    # A multirun stopped part-way (killed at a deadline): its remaining jobs have only their overrides.
    for number, (model, seed) in enumerate([("a", 0), ("a", 1), ("b", 0)]):
        overrides = [f"model={model}", f"seed={seed}"]
        make_run(
            tmp_path / str(number),
            metrics={"test/auc": 0.5},
            config={"seed": seed},
            choices={"model": model},
            overrides=overrides,
        )
    planned = {"hydra": {"sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"},
                         "overrides": {"task": ["model=a,b", "seed=0,1"]}}}  # fmt: skip
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump(planned))
    rows = build_report(tmp_path, Layout(**LAYOUT), plots=[]).report.results.rows
    assert [(r[0], r[1], r[-1]) for r in rows] == [("a", "2", "ours"), ("b", "1", "ours (1 not completed)")]


def test_a_tables_jobs_run_one_by_one_still_count_the_ones_never_started(tmp_path: Path) -> None:
    # Jobs launched as single runs (a job array, a script) leave no multirun.yaml: the table definition
    # still knows every job, so the ones with no run are listed instead of silently missing.
    definition = tmp_path / "tiny.yaml"
    sweep = {"name": "rows", "overrides": ["model=a,b", "seed=0,1"]}
    spec = {
        "name": "tests/one_by_one",
        "problem": "graph",
        "sweeps": [sweep],
        "by": ["model"],
        "over": ["seed"],
    }
    definition.write_text(yaml.safe_dump({**spec, "metrics": ["test/auc"]}))
    sweep_dir = tmp_path / "sweep"
    for model, seed in [("a", 0), ("a", 1), ("b", 0)]:
        make_run(
            sweep_dir / "rows" / f"{model}{seed}",
            metrics={"test/auc": 0.5},
            config={"seed": seed},
            choices={"model": model},
            overrides=[f"model={model}", f"seed={seed}", "experiment_name=tests/one_by_one"],
        )
    files = build_table_report(TableDefinition.load(definition), sweep_dir, [], wandb=False)
    rows = files.report.results.rows
    assert [(r[0], r[1], r[-1]) for r in rows] == [("a", "2", "ours"), ("b", "1", "ours (1 not completed)")]
    (missing,) = [r for r in files.runs if r.status == NOT_STARTED]
    assert sorted(missing.overrides) == ["model=b", "seed=1"]


def test_jobs_match_their_runs_however_a_value_is_spelled(tmp_path: Path) -> None:
    # Hydra plans `flag=false` as `flag=False` and `lr=1e-3` as `lr=0.001`; a run launched by hand
    # records the spelling typed. Both are the same job: it must not read as never started.
    definition = tmp_path / "tiny.yaml"
    spec = {"name": "tests/spelling", "problem": "graph", "by": ["model"], "over": ["seed"],
            "sweeps": [{"name": "rows", "overrides": ["model=a", "seed=0,1", "lr=1e-3"]}]}  # fmt: skip
    definition.write_text(yaml.safe_dump({**spec, "metrics": ["test/auc"]}))
    for seed in (0, 1):
        make_run(
            tmp_path / "sweep" / "rows" / str(seed),
            metrics={"test/auc": 0.5},
            config={"seed": seed},
            choices={"model": "a"},
            overrides=["model=a", f"seed={seed}", "lr=1e-3", "flag=false", "experiment_name=tests/spelling"],
        )
    files = build_table_report(
        TableDefinition.load(definition), tmp_path / "sweep", ["flag=false"], wandb=False
    )
    assert [r.status for r in files.runs] == ["completed", "completed"]
    assert [(r[0], r[1], r[-1]) for r in files.report.results.rows] == [("a", "2", "ours")]


def test_a_never_started_job_takes_row_values_its_overrides_do_not_name_from_its_siblings(
    tmp_path: Path,
) -> None:
    # `model.lr` is a config default, not an override: the job with no run borrows it from the runs that
    # differ from it in one override (the other seeds), so it lands in its row instead of a row of "-".
    definition = tmp_path / "tiny.yaml"
    spec = {"name": "tests/defaults", "problem": "graph", "sweeps": [{"name": "rows",
            "overrides": ["model=a,b", "seed=0,1"]}], "by": ["model", "model.lr"], "over": ["seed"]}  # fmt: skip
    definition.write_text(yaml.safe_dump({**spec, "metrics": ["test/auc"]}))
    for model, seed, lr in [("a", 0, 0.1), ("a", 1, 0.1), ("b", 0, 0.01)]:
        make_run(
            tmp_path / "sweep" / "rows" / f"{model}{seed}",
            metrics={"test/auc": 0.5},
            config={"seed": seed, "model": {"lr": lr}},
            choices={"model": model},
            overrides=[f"model={model}", f"seed={seed}", "experiment_name=tests/defaults"],
        )
    files = build_table_report(TableDefinition.load(definition), tmp_path / "sweep", [], wandb=False)
    rows = files.report.results.rows
    assert [(r[0], r[1], r[2], r[-1]) for r in rows] == [
        ("a", "0.1", "2", "ours"),
        ("b", "0.01", "1", "ours (1 not completed)"),
    ]


def test_pivot_spreads_metric_names_over_rows(tmp_path: Path) -> None:
    for seed in (0, 1):
        metrics = {
            "test/single_threshold/recall@p0.5": 0.4 + seed * 0.1,
            "test/exact_dp/recall@p0.5": 0.6,
            "test/exact_dp/precision@p0.5": 0.5,
            "test/exact_dp/recall@p0.6": 0.3,
            "test/auc": 0.8,
        }
        make_run(tmp_path / str(seed), metrics=metrics, config={"seed": seed}, choices={"model": "pn"})
    pivot = Pivot("test/{rule}/{metric}@p{bound}", ("bound", "rule"))
    layout = Layout(
        ["model"], ["seed"], [MetricSpec("recall", "recall"), MetricSpec("precision", "prec")], pivot
    )
    rows = build_report(tmp_path, layout, plots=[]).report.results.rows
    assert [r[:3] for r in rows] == [
        ["pn", "0.5", "exact_dp"],
        ["pn", "0.5", "single_threshold"],
        ["pn", "0.6", "exact_dp"],
    ]
    assert rows[1][5:7] == ["0.4500 ± 0.0707", "-"]
    with pytest.raises(ValueError, match="metric"):
        Pivot("test/{rule}", ("rule",))


def test_published_anchor_rows_are_converted_and_marked(tmp_path: Path) -> None:
    two_models(tmp_path / "runs")
    anchors_file = tmp_path / "anchors.yaml"
    anchors_file.write_text(
        "source: Paper, Table 2\nunit: percent\nrows:\n"
        "  - {label: SDGAE-F, n: 10 splits, metrics: {test/auc: 97.24}}\n"
    )
    anchors = Anchors.load(anchors_file)
    assert anchors.rows[0].metrics["test/auc"] == pytest.approx(0.9724)
    layout = Layout(**LAYOUT, scale=100.0, digits=2)
    files = build_report(tmp_path / "runs", layout, anchors=anchors, plots=[])
    published = files.report.results.rows[-1]
    assert files.report.results.kinds[-1] == "published"
    assert published[:5] == ["SDGAE-F", "10 splits", "-", "97.24", ""]
    assert published[-1] == "published" and ("published rows", "Paper, Table 2") in files.report.facts
    assert "| a | 3 | 0-2 | 60.00 ± 10.00 |" in files.markdown.read_text()  # ours in % too
    assert "| *SDGAE-F* | *10 splits* |" in files.markdown.read_text()
    assert 'class="published"' in files.html.read_text()


def test_percent_scales_only_fractions_not_counts_or_degree_thresholds(tmp_path: Path) -> None:
    # The graph recommendation metrics as the link-prediction module writes them: shares, a query count,
    # and the degree edges of the buckets (out-degree <= 2 is "low"). --percent must show 30 and 2, not 200.
    for split, hits in enumerate([0.3, 0.5]):
        metrics = {
            "test/rec_hits@10": hits,
            "test/rec_queries": 828.0,
            "test/rec_bucket_edge_low_mid": 2.0,
            "test/rec_bucket_edge_mid_high": 1.0 + 3.0 * split,  # 1 on one split: inside [0, 1] alone
        }
        make_run(tmp_path / str(split), metrics=metrics, config={"seed": split}, choices={"model": "gcn"})
    keys = [
        "test/rec_hits@10",
        "test/rec_queries",
        "test/rec_bucket_edge_low_mid",
        "test/rec_bucket_edge_mid_high",
    ]
    assert report_main([str(tmp_path), "--by", "model", "--percent", "--no-wandb", "--metrics", *keys]) == 0
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| gcn | 2 | 0, 1 | 40.00 ± 14.14 | 828.00 ± 0.00 | 2.00 ± 0.00 | 2.50 ± 2.12 | ours |" in markdown
    assert "Not fractions, shown as recorded: test/rec_queries, test/rec_bucket_edge_low_mid" in markdown

    # A threshold whose every value lies in [0, 1] cannot be told apart by value: a table declares it.
    make_run(tmp_path / "sparse", metrics={"test/edge": 1.0, "test/auc": 0.9}, choices={"model": "mlp"})
    definition = tmp_path / "def.yaml"
    definition.write_text(
        "name: t\nsweeps: [{name: s, overrides: [seed=0]}]\nby: [model]\ndisplay: percent\n"
        "metrics: [{key: test/edge, unit: value}, {key: test/auc, unit: fraction}]\n"
    )
    layout = TableDefinition.load(definition).layout
    rows = build_report(tmp_path / "sparse", layout, plots=[]).report.results.rows
    assert rows[0][3:5] == ["1.00", "90.00"]
    definition.write_text(definition.read_text().replace("unit: value", "unit: percent"))
    with pytest.raises(ValueError, match=r"test/edge.*unit.*'fraction', 'value'.*'percent'"):
        TableDefinition.load(definition)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--by", "modle"], "by key 'modle': none of the 5 completed runs has it.*did you mean 'model'"),
        (["--by", "model", "--over", "sede"], "over key 'sede'.*did you mean 'seed'"),
        (["--by", "model", "--over", "lr"], "over key 'lr'.*did you mean 'model.lr'"),
        (["--by", "model", "--metrics", "test/acu"], "metric 'test/acu': no completed run recorded it.*'test/auc'"),
        (["--by", "model", "--anchors", "absent.yaml"], "absent.yaml"),
    ],
)  # fmt: skip
def test_a_report_key_no_run_has_is_refused_before_anything_is_written(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # Otherwise a typo gives a table of '-' cells, or one row of every run, that looks like a result.
    two_models(tmp_path)
    assert report_main([str(tmp_path), *flags, "--no-wandb"]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "report").exists()
    assert report_main([str(tmp_path), "--by", "model.lr", "--metrics", "test/mrr", "--no-wandb"]) == 0


def test_html_is_self_contained_and_escaped(tmp_path: Path) -> None:
    two_models(tmp_path)
    make_run(tmp_path / "odd", metrics={"test/auc": 0.1}, choices={"model": "<script>x</script>"})
    plots = ["metric_bars", {"_target_": "metric_bars", "metrics": ["test/auc"]}]
    files = build_report(tmp_path, Layout(**LAYOUT), plots=plots)
    html = files.html.read_text()
    assert html.count("data:image/png;base64,") == 2 and 'src="plots/' not in html
    assert [p.path.name for p in files.report.plots] == ["metric_bars.png", "metric_bars_2.png"]
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html
    assert (files.markdown.parent / "plots" / "metric_bars.png").stat().st_size > 1000
    assert "![Metrics per group](plots/metric_bars.png)" in files.markdown.read_text()


# -- plots ------------------------------------------------------------------------------------------------


def test_plots_resolve_by_name_path_or_target_and_failures_are_listed(tmp_path: Path) -> None:
    two_models(tmp_path)
    name, function, options = resolve_plot(
        {"_target_": "recsci.graph.plots.hits_by_degree_bucket", "metric": "m"}
    )
    assert function.__name__ == "hits_by_degree_bucket" and options == {"metric": "m"}
    assert resolve_plot("metric_bars")[0] == "metric_bars"
    specs = ["metric_bars", "recsci.graph.plots.hits_by_degree_bucket", "no_such_plot", "nowhere.module.fn"]
    files = build_report(tmp_path, Layout(**LAYOUT), plots=specs)
    skipped = "\n".join(files.report.skipped_plots)
    assert [p.name for p in files.report.plots] == ["metric_bars"]
    assert "no completed run records test/rec_hits@10_<low|mid|high>" in skipped
    assert "unknown plot 'no_such_plot'" in skipped and "cannot import plot 'nowhere.module.fn'" in skipped


def _graph_runs(root: Path) -> None:
    adaptive = compose_config(["sampler=adaptive"]).sampler
    uniform = compose_config(["sampler=uniform"]).sampler
    from omegaconf import OmegaConf

    for model, sampler, option in [
        ("blade", adaptive, "adaptive"),
        ("sage", uniform, "uniform"),
        ("gcn", None, "full_batch"),
    ]:
        for seed in (0, 1):
            metrics = {
                f"test/rec_hits@10_{b}": 0.1 * (i + 1) + 0.01 * seed
                for i, b in enumerate(["low", "mid", "high"])
            }
            config = {
                "seed": seed,
                "sampler": OmegaConf.to_container(sampler) if sampler is not None else None,
            }
            make_run(
                root / f"{model}{seed}",
                metrics=metrics,
                config=config,
                choices={"model": model, "sampler": option},
            )


def test_graph_plots_from_metrics_and_sampler_configs(tmp_path: Path) -> None:
    from recsci.graph.plots import _distinct_samplers, _sampled, fanout_by_degree, hits_by_degree_bucket

    _graph_runs(tmp_path)
    runs = collect_runs(tmp_path)
    data = ReportData(tmp_path, runs, group_runs(runs, ["model"]), Layout(["model"], ["seed"], []))
    assert len(hits_by_degree_bucket(data)) == 1
    samplers = _distinct_samplers(data)
    assert set(samplers) == {"adaptive (blade)", "uniform (sage)", "full_batch (gcn)"}
    import torch

    degrees = torch.tensor([1, 4, 100, 400])
    # BLADE's schedule: clip(round(20 d^-0.5), 3, 25), filled up to the budget by walks.
    assert _sampled(samplers["adaptive (blade)"], degrees, 0).tolist() == [20, 10, 3, 3]
    assert _sampled(samplers["uniform (sage)"], degrees, 0).tolist() == [1, 4, 10, 10]
    assert _sampled(samplers["full_batch (gcn)"], degrees, 0).tolist() == [1, 4, 100, 400]
    assert len(fanout_by_degree(data, max_degree=50)) == 1


def test_delayed_plots_from_windows_and_flip_calibration(tmp_path: Path) -> None:
    from recsci.delayed.plots import flip_calibration, metric_per_interval

    for model in ("delayed_vanilla", "delayed_engagement_is"):
        for seed in (0, 1):
            windows = [
                {
                    "start": 72.0 + 24 * k,
                    "split": "test",
                    "method": {"auc": 0.7 + 0.01 * k},
                    "vanilla": {"auc": 0.69},
                }
                for k in range(3)
            ]
            calibration = {
                "test/flip": [{"bin": 0.1, "count": 10, "mean_pred": 0.12, "rate": 0.1}],
                "test/flip_no_engagement": [{"bin": 0.1, "count": 10, "mean_pred": 0.15, "rate": 0.1}],
            }
            extra = {"delayed": {"windows": windows}}
            if model == "delayed_engagement_is":
                extra["flip_calibration"] = calibration
            make_run(
                tmp_path / f"{model}{seed}", config={"seed": seed}, choices={"model": model}, extra=extra
            )
    runs = collect_runs(tmp_path)
    data = ReportData(tmp_path, runs, group_runs(runs, ["model"]), Layout(["model"], ["seed"], []))
    assert [p.name for p in metric_per_interval(data, metric="auc")] == ["auc_per_interval"]
    (plot,) = flip_calibration(data)
    assert len(plot.figure.axes) == 1  # only the method with a flip model gets a panel


def test_uncertainty_plots_embed_run_pngs_and_draw_recall_at_bounds(tmp_path: Path) -> None:
    from recsci.core.report.plots import new_figure
    from recsci.uncertainty.plots import recall_at_bounds, run_plots

    for seed in (1, 0):
        run = make_run(
            tmp_path / str(seed),
            metrics={
                "test/mist/recall@p0.5": 0.5,
                "test/mist/recall@p0.6": 0.3,
                "test/single_threshold/recall@p0.5": 0.4,
            },
            config={"seed": seed},
            choices={"model": "pn"},
        )
        (run / "plots").mkdir()
        new_figure(2, 2).savefig(run / "plots" / "precision_recall.png")
    runs = collect_runs(tmp_path)
    data = ReportData(tmp_path, runs, group_runs(runs, ["model"]), Layout(["model"], ["seed"], []))
    (embedded,) = run_plots(data)
    assert embedded.path == tmp_path / "0" / "plots" / "precision_recall.png"  # the lowest seed's
    assert len(recall_at_bounds(data)) == 1


def test_core_report_never_imports_a_problem_package() -> None:
    problem = ("recsci.graph", "recsci.delayed", "recsci.uncertainty")
    for path in (REPO_ROOT / "src" / "recsci" / "core" / "report").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.startswith(problem) for n in names), f"{path.name} imports {names}"


# -- table definitions ------------------------------------------------------------------------------


# Table definitions are the YAML files under experiments/<problem>/ with sweeps (not anchors or other configs).
def _is_definition(path: Path) -> bool:
    loaded = yaml.safe_load(path.read_text())
    return isinstance(loaded, dict) and "sweeps" in loaded


DEFINITIONS = sorted(p for p in (REPO_ROOT / "experiments").glob("*/*.yaml") if _is_definition(p))


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_table_definitions_load_and_their_jobs_compose(path: Path, capsys: pytest.CaptureFixture) -> None:
    definition = TableDefinition.load(path)
    assert definition.name and definition.sweeps and definition.layout.metrics
    for spec in definition.plots:
        resolve_plot(spec)  # every plot function exists
    for sweep in definition.sweeps:
        assert planned_job_count(list(sweep.overrides)) >= 2
        # The first job of each sweep composes against the real config tree (options and keys exist).
        # Hydra expands the sweep, so list values such as fanouts=[10,5,5] stay whole.
        parsed = OverridesParser.create().parse_overrides(list(sweep.overrides))
        first = list(BasicSweeper.split_arguments(parsed, None)[0][0])
        compose_config(first)
    assert table_main([str(path), "--dry-run"]) == 0
    assert "jobs in all" in capsys.readouterr().out
    # Its README exists and already holds its marked section (a moved section would be appended anew).
    if definition.readme is not None:
        assert f"<!-- recsci-table: {definition.name} -->" in definition.readme.read_text()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: t\nsweeps: [{name: s, overrides: [seed=0]}]\nby: [model]\ncomapre: []\n",
         r"comapre: unknown key for a table definition. Did you mean 'compare'\?"),
        ("name: t\nsweeps: [{name: s, override: [seed=0]}]\nby: [model]\n",
         r"sweeps\[0\] needs a name and a list of overrides"),
        ("name: t\nsweeps: [{name: s, overrides: [seed=0], tag: x}]\nby: [model]\n",
         r"sweeps\[0\].tag: unknown key for a sweep. Valid keys: name, overrides"),
        ("name: t\nsweeps: []\nby: [model]\n", "sweeps must be a non-empty list"),
        ("name: t\nby: [model]\n", r"missing required keys \['sweeps'\]"),
        ("name: [t\n", "not valid YAML"),
        ("- name: t\n", "a mapping of keys, got list"),
    ],
)  # fmt: skip
def test_a_bad_table_definition_is_named_with_the_fix(
    text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "def.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        TableDefinition.load(path)
    # The command says so in one line and starts nothing.
    assert table_main([str(path), "--sweep-dir", str(tmp_path / "sweep")]) == 2
    assert capsys.readouterr().err.startswith(f"recsci table: {path}: ")
    assert not (tmp_path / "sweep").exists()
    assert table_main([str(tmp_path / "absent.yaml"), "--dry-run"]) == 2
    assert "no such table definition" in capsys.readouterr().err


def test_cora_ml_anchors_are_the_published_numbers() -> None:
    rows = {
        a.label: a.metrics
        for a in Anchors.load(REPO_ROOT / "experiments/blade/anchors/dirlinkbench_cora_ml.yaml").rows
    }
    assert rows["SDGAE-D"] == {"test/hits@100": pytest.approx(0.614), "test/mrr": pytest.approx(0.1421)}
    assert rows["SDGAE-F"]["test/auc"] == pytest.approx(0.9724) and rows["STRAP"] == {
        "test/mrr": pytest.approx(0.3091)
    }


def test_a_typo_in_an_anchors_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text("unit: percent\nrow:\n  - {label: X, metrics: {test/auc: 90}}\n")
    with pytest.raises(
        ValueError, match=r"anchors.yaml: row: unknown key for an anchors file. Did you mean 'rows'"
    ):
        Anchors.load(path)
    path.write_text("unit: percent\nrows:\n  - {label: X, metric: {test/auc: 90}}\n")
    with pytest.raises(
        ValueError, match=r"rows\[0\].metric: unknown key for an anchor row. Did you mean 'metrics'"
    ):
        Anchors.load(path)


def test_table_refuses_to_start_without_the_data_it_needs(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("RECSCI_DATA", raising=False)
    code = table_main(
        [str(REPO_ROOT / "experiments/blade/existence_cora_ml.yaml"), "--sweep-dir", str(tmp_path)]
    )
    assert code == 2 and "RECSCI_DATA" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# -- one real multirun, logged to W&B offline ---------------------------------------------------------------


@pytest.fixture
def offline_wandb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline must be the default
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))


@pytest.mark.slow
def test_table_reruns_a_multirun_and_reports_it_to_markdown_html_and_wandb(
    tmp_path: Path, offline_wandb
) -> None:
    definition = tmp_path / "tiny.yaml"
    definition.write_text(
        yaml.safe_dump(
            {
                "name": "tests/tiny",
                "problem": "graph",
                "tags": ["graph"],
                "sweeps": [
                    {
                        "name": "sage",
                        "overrides": ["seed=0,1", "logger=wandb", "trainer.max_epochs=1", *FAST[1:]],
                    }
                ],
                "by": ["model"],
                "over": ["seed"],
                "metrics": [{"key": "test/auc", "label": "AUC"}, "test/rec_hits@10"],
                "plots": ["metric_bars", "recsci.graph.plots.hits_by_degree_bucket"],
                "readme": "README.md",
            }
        )
    )
    sweep_dir = tmp_path / "sweep"
    assert table_main([str(definition), "--sweep-dir", str(sweep_dir)]) == 0

    jobs = [sweep_dir / "sage" / str(i) for i in (0, 1)]
    results = [json.loads((job / "metrics.json").read_text()) for job in jobs]
    assert [r["status"] for r in results] == ["completed", "completed"]
    # Each job's W&B run: shared group (the table), job_type = problem, tags name data and model,
    # the resolved config as run config, the final metrics as summary.
    for job, result in zip(jobs, results, strict=True):
        (run_file,) = (job / "wandb").glob("offline-run-*/run-*.wandb")
        recorded = offline_run_summary(run_file)
        assert recorded["group"] == "tests/tiny" and recorded["job_type"] == "graph"
        assert recorded["tags"] == ["graph", "synthetic_products", "graphsage"]
        assert recorded["config"]["seed"] == result["seed"]
        assert recorded["summary"]["test/auc"] == pytest.approx(result["metrics"]["test/auc"])

    # The report: aggregated over both seeds, Markdown + HTML, plots; and logged to W&B in the same group.
    report_dir = sweep_dir / "report"
    markdown = (report_dir / "report.md").read_text()
    mean = sum(r["metrics"]["test/auc"] for r in results) / 2
    assert f"| graphsage | 2 | 0, 1 | {mean:.4f} ± " in markdown
    assert (report_dir / "plots" / "hits_by_degree_bucket.png").is_file()
    (report_file,) = (report_dir / "wandb").glob("offline-run-*/run-*.wandb")
    recorded = offline_run_summary(report_file)
    assert recorded["group"] == "tests/tiny" and recorded["job_type"] == "report"
    (logged,) = offline_run_history(report_file)
    images = {k: v for k, v in logged.items() if isinstance(v, dict) and v.get("_type") == "image-file"}
    assert set(images) == {"plots/metric_bars", "plots/hits_by_degree_bucket"}
    for image in images.values():
        assert (report_file.parent / "files" / image["path"]).is_file()
    assert (
        logged["tables/results"]["_type"] == "table-file" and logged["tables/runs"]["_type"] == "table-file"
    )
    # The table's README section has the latest numbers with seeds and commit.
    readme = (tmp_path / "README.md").read_text()
    assert (
        "<!-- recsci-table: tests/tiny -->" in readme and "seeds 0, 1" in readme and f"{mean:.4f}" in readme
    )


def test_readme_section_is_replaced_not_appended(tmp_path: Path) -> None:
    two_models(tmp_path / "runs")
    (tmp_path / "README.md").write_text("# Tables\n\nIntro.\n")
    (tmp_path / "def.yaml").write_text(
        "name: t\nsweeps: [{name: s, overrides: [seed=0]}]\nby: [model]\nreadme: README.md\n"
    )
    definition = TableDefinition.load(tmp_path / "def.yaml")
    definition.layout.metrics = [MetricSpec("test/auc", "AUC")]
    files = build_report(tmp_path / "runs", definition.layout, plots=[])
    update_readme(definition, files, [])
    update_readme(definition, files, ["trainer.max_epochs=1"])
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("# Tables\n\nIntro.\n") and text.count("<!-- recsci-table: t -->") == 1
    assert "Extra overrides:** `trainer.max_epochs=1`" in text
    # Sweeps finished on two machines: the rerun command stays runnable (one value a key) and says so.
    update_readme(definition, files, ["logger=csv", "trainer=default", "trainer=gpu"])
    text = (tmp_path / "README.md").read_text()
    assert "recsci table " in text and " -- logger=csv\n```" in text
    assert "Runs differ in:** `trainer=default trainer=gpu`" in text


def test_recsci_report_command_groups_by_the_varying_overrides(tmp_path: Path) -> None:
    import subprocess
    import sys

    two_models(tmp_path)
    command = [str(Path(sys.executable).parent / "recsci"), "report", str(tmp_path), "--metrics", "test/auc"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "5 of 6 runs completed" in result.stdout and "failed: " in result.stdout
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "- **grouped by:** model" in markdown  # seed varies too, but it is what --over aggregates
    assert "| a | 3 | 0-2 | 0.6000 ± 0.1000 | ours |" in markdown
