"""Command-line entry points.

``recsci [hydra overrides]`` trains and tests one configured run; every Hydra flag works as usual
(``-m`` for multiruns, ``--cfg job``, ``--help``, ``experiment=...``). ``recsci apply-rule ...`` applies
a fitted uncertainty decision rule to scored data.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from importlib import import_module
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


# Subcommands that are not Hydra runs: name -> "module:function" taking argv and returning an exit code.
SUBCOMMANDS: dict[str, str] = {
    "apply-rule": "recsci.uncertainty.apply_cli:main",
    "report": "recsci.core.report.cli:report_main",
    "table": "recsci.core.report.cli:table_main",
}


def _subcommand(name: str) -> Callable[[list[str]], int]:
    module, function = SUBCOMMANDS[name].split(":")
    return getattr(import_module(module), function)


def main() -> None:
    """Console-script entry point: a subcommand, or a Hydra run (Hydra handles arguments and exit status)."""
    if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
        sys.exit(_subcommand(sys.argv[1])(sys.argv[2:]))
    missing = missing_config_message()
    if missing:
        print(missing, file=sys.stderr)
        sys.exit(2)
    train()


def missing_config_message() -> str | None:
    """Why no run can start when the ``conf/`` tree is not where :func:`config_dir` looks, else None.

    The configs live beside the source (``conf/`` at the repository's top level), which an editable
    install keeps; a plain ``pip install .`` copies only the package (Hydra would say only "primary
    config directory not found").
    """
    found = Path(config_dir())
    if (found / "config.yaml").is_file():
        return None
    where = "RECSCI_CONFIG_DIR" if os.environ.get("RECSCI_CONFIG_DIR") else "the source checkout"
    return (
        f"recsci: no config.yaml in {found} (from {where}). Install from a checkout with "
        "`pip install -e .` (the configs stay in its conf/), or point RECSCI_CONFIG_DIR at a copy of "
        "the repository's conf/ folder."
    )


if __name__ == "__main__":
    main()
