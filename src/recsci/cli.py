"""Command-line entry points: ``recsci [hydra overrides]`` trains and tests one configured run.

Every Hydra flag works as usual: ``-m`` for multiruns, ``--cfg job``, ``--help``, ``experiment=...``.
"""

from __future__ import annotations

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig


def config_dir() -> str:
    """The ``conf/`` tree: ``RECSCI_CONFIG_DIR`` if set, else the one beside this source checkout."""
    configured = os.environ.get("RECSCI_CONFIG_DIR")
    if configured:
        return str(Path(configured).resolve())
    return str(Path(__file__).resolve().parents[2] / "conf")


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def train(cfg: DictConfig) -> float | None:
    """Train, validate and test one run; return ``optimized_metric`` for sweepers."""
    # Imported here so `recsci --help` and config errors answer without loading torch.
    from recsci.core.run import run

    return run(cfg)


def main() -> None:
    """Console-script entry point (Hydra handles the arguments and the exit status)."""
    train()


if __name__ == "__main__":
    main()
