"""Paired differences between two report rows, matched split by split (recsci.core.report.paired)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from recsci.core.report.aggregate import Layout, MetricSpec
from recsci.core.report.build import build_report
from recsci.core.report.cli import report_main
from recsci.core.report.paired import Comparison, PairedStat
from recsci.core.report.table import TableDefinition, build_table_report, readme_section
from tests.core.test_report import make_run, offline_wandb  # noqa: F401  (fixture)
from tests.wandb_offline import offline_run_history


def model_runs(root: Path) -> Path:
    """Models a and b under samplers x and y over split seeds 0-3, with the awkward cases in it.

    Sampler x: a - b = +0.10, +0.20, -0.10 on splits 0-2 (a's split 2 run twice: 0.55 and 0.65, mean
    0.60); split 3 of a failed and b has split 4 alone (neither is a pair). Sampler y: one split, +0.05.
    """
    auc = {
        ("a", "x", 0): [0.6], ("b", "x", 0): [0.5],
        ("a", "x", 1): [0.9], ("b", "x", 1): [0.7],
        ("a", "x", 2): [0.55, 0.65], ("b", "x", 2): [0.7],
        ("b", "x", 3): [0.8], ("b", "x", 4): [0.8],
        ("a", "y", 0): [0.45], ("b", "y", 0): [0.4],
    }  # fmt: skip
    for (model, sampler, split), values in auc.items():
        for rerun, value in enumerate(values):
            make_run(
                root / f"{model}_{sampler}_{split}_{rerun}",
                metrics={"test/auc": value, "test/loss": 1 - value},
                config={"seed": 0, "split": split},
                choices={"model": model, "sampler": sampler},
            )
    make_run(
        root / "a_x_3_failed",
        status="failed",
        config={"seed": 0, "split": 3},
        choices={"model": "a", "sampler": "x"},
    )
    return root


LAYOUT = dict(
    by=["model", "sampler"],
    over=["split"],
    metrics=[MetricSpec("test/auc", "AUC"), MetricSpec("test/loss", "loss")],
)


def test_differences_are_matched_per_split_within_each_other_row_key(tmp_path: Path) -> None:
    comparison = Comparison.parse({"a": {"model": "a"}, "b": {"model": "b"}})
    files = build_report(model_runs(tmp_path), Layout(**LAYOUT), plots=[], comparisons=[comparison])
    table = files.report.paired
    assert table.header == ["comparison", "sampler", "pairs", "AUC", "loss"]
    rows = {row[1]: row for row in table.rows}
    # Sampler x: diffs +0.1, +0.2, -0.1 -> mean 0.0667, sd 0.1528, t = 0.0667 / (0.1528 / sqrt 3) = 0.76.
    diffs = [0.1, 0.2, -0.1]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    assert rows["x"][:3] == ["model=a - model=b", "x", "3"]
    assert rows["x"][3] == f"+{mean:.4f} (2/3, t {mean / (sd / math.sqrt(3)):.1f})" == "+0.0667 (2/3, t 0.8)"
    assert rows["x"][4] == "-0.0667 (1/3, t -0.8)"  # loss = 1 - auc: the other way round
    assert rows["y"][2:4] == ["1", "+0.0500 (1/1)"]  # one pair: no t
    markdown = files.markdown.read_text()
    assert "## Paired differences" in markdown and "A higher on k of the n pairs" in markdown
    assert 'id="paired"' in files.html.read_text()


def test_paired_statistics_by_hand() -> None:
    stat = PairedStat.of([0.02, 0.04, 0.0])
    assert stat.n == 3 and stat.higher == 2 and stat.mean == pytest.approx(0.02)
    assert stat.t == pytest.approx(0.02 / (0.02 / math.sqrt(3)))
    assert stat.format(100.0, 1) == "+2.0 (2/3, t 1.7)"
    assert PairedStat.of([0.1, 0.1]).t == math.inf and PairedStat.of([0.0, 0.0]).t == 0.0
    assert PairedStat.of([]) is None


def test_a_side_must_name_row_keys_and_differ_from_the_other() -> None:
    layout = Layout(**LAYOUT)
    with pytest.raises(ValueError, match=r"\['split'\] not among the row keys"):
        Comparison.parse({"a": {"split": "0"}, "b": {"split": "1"}}).check(layout)
    with pytest.raises(ValueError, match="two different"):
        Comparison.parse({"a": {"model": "a"}, "b": {"model": "a"}})
    with pytest.raises(ValueError, match="a comparison is"):
        Comparison.parse({"a": "model=a", "b": {"model": "b"}})
    with pytest.raises(ValueError, match="key=value"):
        Comparison.from_cli("model", "model=b")


def test_report_command_compares_rows(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = model_runs(tmp_path / "runs")
    args = [str(root), "--by", "model", "sampler", "--over", "split", "--metrics", "test/auc"]
    assert report_main([*args, "--compare", "model=a", "model=b", "--percent"]) == 0
    markdown = (root / "report" / "report.md").read_text()
    assert "| model=a - model=b | x | 3 | +6.67 (2/3, t 0.8) |" in markdown
    assert "percentage points" in markdown
    assert report_main([*args, "--compare", "split=0", "split=1"]) == 2
    assert "not among the row keys" in capsys.readouterr().err


def test_table_definition_compare_is_checked_on_load(tmp_path: Path) -> None:
    definition = {
        "name": "tests/paired",
        "sweeps": [{"name": "s", "overrides": ["model=gcn,graphsage", "seed=0,1"]}],
        "by": ["model"],
        "over": ["seed"],
        "compare": [{"a": {"model": "gcn"}, "b": {"model": "graphsage"}, "label": "gcn - sage"}],
    }
    path = tmp_path / "paired.yaml"
    path.write_text(yaml.safe_dump(definition))
    loaded = TableDefinition.load(path)
    assert loaded.comparisons[0].title == "gcn - sage"
    sweep_dir = tmp_path / "sweep"
    for job, (model, seed, mrr) in enumerate([("gcn", 0, 0.3), ("gcn", 1, 0.5), ("graphsage", 0, 0.2),
                                              ("graphsage", 1, 0.1)]):  # fmt: skip
        make_run(sweep_dir / "s" / str(job), metrics={"test/mrr": mrr}, config={"seed": seed},
                 choices={"model": model}, overrides=[f"model={model}", f"seed={seed}"])  # fmt: skip
    files = build_table_report(loaded, sweep_dir, [], wandb=False)
    section = readme_section(loaded, files, [])
    assert "Paired differences:" in section and "| gcn - sage | 2 | +0.2500 (2/2, t 1.7) |" in section
    definition["compare"] = [{"a": {"seed": "0"}, "b": {"seed": "1"}}]
    path.write_text(yaml.safe_dump(definition))
    with pytest.raises(ValueError, match="paired.yaml: compare:.*not among the row keys"):
        TableDefinition.load(path)


@pytest.mark.usefixtures("offline_wandb")
def test_paired_differences_are_logged_to_wandb_with_the_report(tmp_path: Path) -> None:
    comparison = Comparison.parse({"a": {"model": "a"}, "b": {"model": "b"}})
    files = build_report(
        model_runs(tmp_path / "runs"), Layout(**LAYOUT), plots=[], comparisons=[comparison], wandb=True
    )
    (report_file,) = files.wandb_dir.glob("run-*.wandb")
    (logged,) = offline_run_history(report_file)
    assert logged["tables/paired"]["_type"] == "table-file"
