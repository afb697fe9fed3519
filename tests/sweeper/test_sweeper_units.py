"""Unit tests of the optuna sweeper's parsing rules (no Hydra app run)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hydra_plugins.recsci_optuna_sweeper._outcome import ObjectiveError, objective_values
from hydra_plugins.recsci_optuna_sweeper._search_space import (
    SearchSpaceError,
    build_search_space,
    format_override,
)
from hydra_plugins.recsci_optuna_sweeper._storage import StorageError, StorageSpec, mask_url, parse_storage


def space_of(params: dict[str, object], arguments: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    return build_search_space(params, list(arguments), OverridesParser.create())


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("choice(a,b,c)", CategoricalDistribution(["a", "b", "c"])),
        ("a,b,c", CategoricalDistribution(["a", "b", "c"])),
        ("choice(1,2.5,true)", CategoricalDistribution([1, 2.5, True])),
        ("range(1,10)", IntDistribution(1, 9)),
        ("range(0,10,step=2)", IntDistribution(0, 8, step=2)),
        ("range(0,1,step=0.25)", FloatDistribution(0.0, 0.75, step=0.25)),
        ("interval(0.1,1.0)", FloatDistribution(0.1, 1.0)),
        ("int(interval(1,10))", IntDistribution(1, 10)),
        ("tag(log, interval(1e-4,1e-1))", FloatDistribution(1e-4, 1e-1, log=True)),
        ("tag(log, int(interval(1,1024)))", IntDistribution(1, 1024, log=True)),
    ],
)
def test_each_expression_form_maps_to_its_distribution(expression: str, expected: object) -> None:
    space = space_of({"model.p": expression})
    assert space.distributions == {"model.p": expected}
    assert space.fixed_overrides == []


def test_plain_values_become_fixed_overrides_and_command_line_wins() -> None:
    space = space_of({"a": 5, "b": "interval(0,1)", "c": "x,y"}, ("c=choice(p,q)", "d=hello"))
    assert space.fixed_overrides == ["a=5", "d=hello"]
    assert space.distributions["c"] == CategoricalDistribution(["p", "q"])
    assert set(space.distributions) == {"b", "c"}


def test_prefixed_keys_keep_their_prefix_in_the_override() -> None:
    space = space_of({}, ("+model.dropout=interval(0,0.5)",))
    param = space.params["model.dropout"]
    assert param.key_element == "+model.dropout"
    assert format_override(param.key_element, 0.25) == "+model.dropout=0.25"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("interval(0.1", "cannot parse"),
        ("choice(", "cannot parse"),
        ("tag(log, interval(0, 1))", "positive lower bound"),
        ("tag(log, choice(a,b))", "does not apply to choice"),
        ("tag(fancy, interval(0.1, 1))", "unsupported tag"),
        ("range(5,1)", "is empty"),
        ("tag(log, range(0,1,step=0.1))", "does not apply"),
        ("choice([1,2],[3])", "choice values must be"),
    ],
)
def test_malformed_expression_error_names_the_param_key(expression: str, message: str) -> None:
    with pytest.raises(SearchSpaceError) as raised:
        space_of({"optim.lr": expression})
    assert "hydra.sweeper.params.optim.lr" in str(raised.value)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    "value", ["plain", "with space", "it's", "a,b", "1.5", "null", "true", 3, 2.5e-05, True]
)
def test_format_override_reads_back_as_the_same_value(value: object) -> None:
    parsed = OverridesParser.create().parse_override(format_override("k", value))
    assert not parsed.is_sweep_override()
    assert parsed.value() == value
    assert type(parsed.value()) is type(value)


def test_storage_rule(tmp_path: Path) -> None:
    assert parse_storage(None, tmp_path) == StorageSpec("memory")
    assert parse_storage("", tmp_path) == StorageSpec("memory")
    assert parse_storage("journal:runs/s.txt", tmp_path) == StorageSpec(
        "journal", str(tmp_path / "runs/s.txt")
    )
    assert parse_storage("study.log", tmp_path) == StorageSpec("journal", str(tmp_path / "study.log"))
    assert parse_storage("/abs/x.journal", tmp_path) == StorageSpec("journal", "/abs/x.journal")
    assert parse_storage("sqlite:///s.db", tmp_path) == StorageSpec("rdb", f"sqlite:///{tmp_path / 's.db'}")
    assert parse_storage("sqlite:////abs/s.db", tmp_path) == StorageSpec("rdb", "sqlite:////abs/s.db")
    url = "postgresql://u:secret@db:5432/x"
    assert parse_storage(url, tmp_path) == StorageSpec("rdb", url)
    with pytest.raises(StorageError, match=r"hydra\.sweeper\.storage"):
        parse_storage("study.db", tmp_path)


def test_mask_url_hides_the_password() -> None:
    assert mask_url("postgresql://user:s3cr:et@host:5432/db") == "postgresql://user:***@host:5432/db"
    assert mask_url("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("value", "n_objectives", "keys", "expected"),
    [
        (1.5, 1, None, [1.5]),
        (3, 1, None, [3.0]),
        ([1.0, 2.0], 2, None, [1.0, 2.0]),
        ((1, 2), 2, None, [1.0, 2.0]),
        ({"loss": 0.5, "acc": 0.9}, 2, ["loss", "acc"], [0.5, 0.9]),
    ],
)
def test_objective_values_accepts_floats_and_sequences(
    value: object, n_objectives: int, keys: list[str] | None, expected: list[float]
) -> None:
    assert objective_values(value, n_objectives, keys) == expected


@pytest.mark.parametrize(
    ("value", "n_objectives", "keys", "message"),
    [
        (None, 1, None, "must return the optimized metric"),
        ([1.0, 2.0], 1, None, "returned 2 value(s)"),
        (1.0, 2, None, "returned 1 value(s)"),
        (math.nan, 1, None, "NaN"),
        ("0.5", 1, None, "string"),
        ({"loss": 1.0}, 1, None, "hydra.sweeper.objective"),
        ({"loss": 1.0}, 1, ["acc"], "not in the task's returned keys"),
    ],
)
def test_objective_values_rejects_bad_returns(
    value: object, n_objectives: int, keys: list[str] | None, message: str
) -> None:
    with pytest.raises(ObjectiveError) as raised:
        objective_values(value, n_objectives, keys)
    assert message in str(raised.value)
