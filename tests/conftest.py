"""Shared fixtures: compose the real config tree exactly as `recsci` does, with fast settings."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from recsci.cli import config_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = Path(config_dir())

# Small graph, two epochs: each end-to-end run takes seconds.
FAST = [
    "trainer.max_epochs=2",
    "data.dataset.num_nodes=300",
    "data.batch_size=256",
    "trainer.enable_progress_bar=false",
    "callbacks.model_summary=null",
]


def data_root() -> Path | None:
    """The real datasets folder (RECSCI_DATA), or None when it is not available here."""
    root = os.environ.get("RECSCI_DATA")
    return Path(root) if root and Path(root).is_dir() else None


def compose_config(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """Compose ``conf/config.yaml`` with overrides; ``hydra:`` interpolations resolve like in a run."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    if output_dir is not None:
        cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


@pytest.fixture
def make_config(tmp_path: Path) -> Iterator[Callable[..., DictConfig]]:
    """``make_config(*overrides, name="run")`` -> a fast config writing into ``tmp_path/name``."""

    def factory(*overrides: str, name: str = "run", fast: bool = True) -> DictConfig:
        return compose_config([*(FAST if fast else []), *overrides], output_dir=tmp_path / name)

    yield factory
    GlobalHydra.instance().clear()
