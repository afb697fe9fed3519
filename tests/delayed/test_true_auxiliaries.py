"""experiments/delayed/true_auxiliaries.py: the simulator's true auxiliaries in place of the learned ones."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from recsci.core.errors import ConfigError
from recsci.core.run import run
from recsci.delayed.datamodule import DelayedDataModule
from recsci.delayed.methods import EngagementIS
from tests.conftest import compose_config
from tests.delayed.test_runs import SMALL

SCRIPT = Path(__file__).parents[2] / "experiments" / "delayed" / "true_auxiliaries.py"
OFFSET = ["model=delayed_engagement_is_offset", "protocol.references=[vanilla]"]


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch):
    spec = importlib.util.spec_from_file_location("true_auxiliaries", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(DelayedDataModule, "setup", module.keep_simulator(DelayedDataModule.setup))
    monkeypatch.setattr(EngagementIS, "prepare", module.true_prepare)
    return module


def _test_metrics(tmp_path: Path, name: str, *overrides: str) -> dict:
    run(compose_config([*SMALL, *overrides], output_dir=tmp_path / name))
    results = json.loads((tmp_path / name / "metrics.json").read_text())
    assert results["status"] == "completed"
    return results["metrics"]


def test_p_source_main_reads_the_main_models_p_not_the_truth(script, tmp_path: Path) -> None:
    truth = _test_metrics(tmp_path, "truth", *OFFSET)
    script.P_SOURCE = "main"
    main = _test_metrics(tmp_path, "main", *OFFSET)
    # Same run but for z's p(x): the weights differ, so the fitted main model does.
    assert main["test/auc"] != truth["test/auc"]
    assert main["test/vanilla/auc"] == truth["test/vanilla/auc"]


def test_p_source_main_without_an_offset_is_refused(script, tmp_path: Path) -> None:
    script.P_SOURCE = "main"
    with pytest.raises(ConfigError, match="model.method.flip.offset=main"):
        run(compose_config([*SMALL, "model=delayed_engagement_is"], output_dir=tmp_path / "run"))
