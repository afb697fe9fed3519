"""Every hparams_search config composes with the Optuna sweeper; the default one sweeps end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from tests.conftest import CONFIG_DIR, FAST
from tests.test_cli import recsci

SEARCHES = sorted(p.stem for p in (CONFIG_DIR / "hparams_search").glob("*.yaml"))


@pytest.mark.parametrize("search", SEARCHES)
def test_every_search_composes_with_the_optuna_sweeper(search: str) -> None:
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose("config", overrides=[f"hparams_search={search}"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.startswith("hydra_plugins.recsci_optuna_sweeper")
    assert sweeper.params, "a search must declare its search space"
    assert cfg.optimized_metric.startswith("val/"), "sweeps tune on validation, never on test"


@pytest.mark.slow
def test_default_search_runs_trials_and_writes_the_best_overrides(tmp_path: Path) -> None:
    result = recsci(
        "-m",
        "hparams_search=graph_default",
        "hydra.sweeper.n_trials=2",
        *FAST,
        "trainer.max_epochs=1",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "outputs" / "default" / "multiruns").iterdir()
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert (sweep_dir / "best_overrides.txt").read_text().strip()
    runs = [json.loads(p.read_text()) for p in sweep_dir.glob("*/metrics.json")]
    assert len(runs) == 2 and all(r["status"] == "completed" for r in runs)
    assert max(r["objective"] for r in runs) == pytest.approx(best["best_value"])
