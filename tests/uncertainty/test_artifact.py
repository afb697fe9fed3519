"""The decision-rule JSON artifact, apply_rule and the `recsci apply-rule` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsci.uncertainty.apply_cli import main as apply_main
from recsci.uncertainty.artifact import apply_rule, load_rule, rule_to_dict, save_rule
from recsci.uncertainty.errors import RuleArtifactError
from recsci.uncertainty.rules import RULES, ExactBucketDP, RejectOption
from recsci.uncertainty.simulation import ScoreSimulator


@pytest.fixture(scope="module")
def sample():
    return ScoreSimulator().sample(4000, seed=5)


@pytest.mark.parametrize("name", sorted(RULES))
def test_round_trip_gives_identical_decisions(name: str, sample, tmp_path: Path) -> None:
    params = {"n_trials": 10} if name == "optuna_search" else {}
    rule = RULES[name](precision_bound=0.4, **params).fit(sample.scores, sample.uncertainties, sample.labels)
    path = save_rule(rule, tmp_path / "rule.json", {"experiment": "test"})
    data = json.loads(path.read_text())
    assert data["format"] == "recsci-decision-rule" and data["rule"] == name
    assert len(data["thresholds"]) == len(data["uncertainty_edges"]) + 1
    assert data["provenance"]["experiment"] == "test" and "created" in data["provenance"]
    loaded = load_rule(path)
    assert type(loaded) is type(rule) and loaded.get_params() == rule.get_params()
    fresh = ScoreSimulator().sample(2000, seed=6)
    expected = rule.predict(fresh.scores, fresh.uncertainties)
    np.testing.assert_array_equal(apply_rule(path, fresh.scores, fresh.uncertainties), expected)
    np.testing.assert_array_equal(apply_rule(data, fresh.scores, fresh.uncertainties), expected)


def test_never_positive_bucket_is_null_in_json(sample) -> None:
    rng = np.random.default_rng(0)
    u = rng.random(2000)
    s = rng.random(2000)
    y = (rng.random(2000) < np.where(u > 0.7, 0.05, s)).astype(int)
    data = rule_to_dict(RejectOption(0.8).fit(s, u, y))
    assert data["thresholds"][-1] is None
    json.dumps(data, allow_nan=False)  # strict JSON: no Infinity/NaN


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"format": "other"}', "'format'"),
        (
            '{"format": "recsci-decision-rule", "version": 1, "rule": "nope", "params": {}, '
            '"uncertainty_edges": [], "thresholds": [0.5]}',
            "unknown rule",
        ),
        (
            '{"format": "recsci-decision-rule", "version": 1, "rule": "exact_dp", "params": {}, '
            '"uncertainty_edges": [0.2, 0.1], "thresholds": [0.5, 0.5, 0.5]}',
            "ascending",
        ),
        (
            '{"format": "recsci-decision-rule", "version": 1, "rule": "exact_dp", "params": {}, '
            '"uncertainty_edges": [0.1], "thresholds": [0.5]}',
            "need 2 thresholds",
        ),
        (
            '{"format": "recsci-decision-rule", "version": 1, "rule": "exact_dp", '
            '"params": {"precision_bound": 2}, "uncertainty_edges": [], "thresholds": [0.5]}',
            "bad params",
        ),
    ],
)
def test_corrupt_artifacts_name_the_file(content: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(RuleArtifactError, match=message) as info:
        load_rule(path)
    assert str(path) in str(info.value)


def test_missing_artifact_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(RuleArtifactError, match="does not exist") as info:
        load_rule(tmp_path / "missing.json")
    assert "missing.json" in str(info.value)


def test_apply_rule_command(sample, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rule = ExactBucketDP(0.4, n_buckets=4).fit(sample.scores, sample.uncertainties, sample.labels)
    rule_path = save_rule(rule, tmp_path / "rule.json")
    scored = tmp_path / "scored.csv"
    pd.DataFrame(
        {"id": range(50), "score": sample.scores[:50], "uncertainty": sample.uncertainties[:50]}
    ).to_csv(scored, index=False)
    out = tmp_path / "out" / "decisions.csv"
    assert apply_main(["--rule", str(rule_path), "--input", str(scored), "--output", str(out)]) == 0
    result = pd.read_csv(out)
    assert list(result.columns) == ["id", "score", "uncertainty", "bucket", "threshold", "decision"]
    np.testing.assert_array_equal(
        result["decision"].to_numpy(), rule.predict(sample.scores[:50], sample.uncertainties[:50])
    )
    assert "50 rows" in capsys.readouterr().out


def test_apply_rule_command_errors(sample, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rule_path = save_rule(
        ExactBucketDP(0.4).fit(sample.scores, sample.uncertainties, sample.labels), tmp_path / "r.json"
    )
    out = str(tmp_path / "o.csv")
    assert apply_main(["--rule", str(tmp_path / "nope.json"), "--input", "x.csv", "--output", out]) == 2
    assert "nope.json" in capsys.readouterr().err
    assert (
        apply_main(["--rule", str(rule_path), "--input", str(tmp_path / "absent.csv"), "--output", out]) == 2
    )
    assert "absent.csv" in capsys.readouterr().err
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("p,u\n0.1,0.2\n")
    assert apply_main(["--rule", str(rule_path), "--input", str(wrong), "--output", out]) == 2
    assert "lacks column(s) ['score', 'uncertainty']" in capsys.readouterr().err
    holes = tmp_path / "holes.csv"
    holes.write_text("score,uncertainty\n0.1,0.2\n,0.3\n")
    assert apply_main(["--rule", str(rule_path), "--input", str(holes), "--output", out]) == 2
    assert "lines [3]" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{")
    assert apply_main(["--rule", str(corrupt), "--input", str(holes), "--output", out]) == 2
    assert "corrupt.json" in capsys.readouterr().err
