"""Bad input fails at start-up with a message that names the key or file and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException

from recsci.core.build import build
from recsci.core.errors import ConfigError, DataNotFoundError
from recsci.core.run import run
from recsci.core.validation import validate_config
from tests.conftest import compose_config


def test_unknown_group_option_lists_the_available_ones(tmp_path: Path) -> None:
    with pytest.raises(MissingConfigException) as err:
        compose_config(["model=nope"], output_dir=tmp_path)
    assert "model/nope" in str(err.value)
    assert "graphsage" in str(err.value) and "gcn" in str(err.value)


def test_misspelled_key_on_the_command_line_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigCompositionException) as err:
        compose_config(["trainer.max_epoch=3"], output_dir=tmp_path)
    assert "trainer.max_epoch" in str(err.value) + str(err.value.__cause__)


def test_appended_unknown_key_is_caught_with_a_suggestion(tmp_path: Path) -> None:
    cfg = compose_config(["+trainer.max_epoch=3"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"trainer\.max_epoch: unknown key.*Did you mean 'max_epochs'"):
        validate_config(cfg)


def test_unknown_top_level_key_is_caught(tmp_path: Path) -> None:
    cfg = compose_config(["+sead=3"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match="sead: unknown key.*Did you mean 'seed'"):
        validate_config(cfg)


def test_negative_learning_rate_names_key_and_range(tmp_path: Path) -> None:
    cfg = compose_config(["model.lr=-0.1"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"model\.lr=-0\.1: .*greater than 0.*float > 0"):
        validate_config(cfg)


def test_zero_fanout_names_key_and_range(tmp_path: Path) -> None:
    cfg = compose_config(["sampler=uniform", "sampler.schedule.fanouts=[10,0]"], output_dir=tmp_path)
    with pytest.raises(
        ConfigError, match=r"sampler\.schedule\.fanouts=\[10, 0\].*greater than or equal to 1"
    ):
        validate_config(cfg)


def test_wrong_type_names_key(tmp_path: Path) -> None:
    cfg = compose_config(["data.batch_size=many"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"data\.batch_size='many': .*valid integer"):
        validate_config(cfg)


def test_negative_seed_is_rejected(tmp_path: Path) -> None:
    cfg = compose_config(["seed=-1"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match="seed=-1: must be an integer >= 0"):
        validate_config(cfg)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    cfg = compose_config(["model.lr=-1", "data.val_ratio=2.0"], output_dir=tmp_path)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert "model.lr" in str(err.value) and "data.val_ratio" in str(err.value)


def test_missing_data_root_names_path_layout_and_source(tmp_path: Path) -> None:
    cfg = compose_config(
        ["data=cora_ml", f"paths.data_dir={tmp_path / 'nowhere'}"], output_dir=tmp_path / "run"
    )
    with pytest.raises(DataNotFoundError) as err:
        build(cfg.data)
    message = str(err.value)
    assert str(tmp_path / "nowhere" / "graph" / "cora_ml" / "raw" / "cora_ml.npz") in message
    assert "Expected layout" in message and "RECSCI_DATA" in message and "CitationFull" in message


def test_root_without_expected_files_is_named(tmp_path: Path) -> None:
    (tmp_path / "data" / "graph" / "cora_ml" / "raw").mkdir(parents=True)
    cfg = compose_config(["data=cora_ml", f"paths.data_dir={tmp_path / 'data'}"], output_dir=tmp_path / "run")
    with pytest.raises(DataNotFoundError, match="cora_ml.npz"):
        build(cfg.data)


def test_bad_config_fails_before_writing_outputs(tmp_path: Path) -> None:
    cfg = compose_config(["model.lr=-1"], output_dir=tmp_path / "run")
    with pytest.raises(ConfigError):
        run(cfg)
    assert not (tmp_path / "run").exists()
