"""The table of final metrics printed at the end of a run."""

from __future__ import annotations

from collections.abc import Mapping

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table


def print_metrics_table(
    metrics: Mapping[str, float], title: str = "metrics", console: Console | None = None
) -> None:
    """Print metrics grouped by split (``val/...``, ``test/...``) as one table, one row per metric."""
    table = Table(title=title)
    table.add_column("split")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(metrics, key=lambda k: (k.split("/")[0] != "val", k)):
        split, _, name = key.rpartition("/")
        table.add_row(split or "-", name, f"{metrics[key]:.4f}")
    (console or Console()).print(table)


def print_config(cfg: DictConfig, console: Console | None = None) -> None:
    """Print the resolved config as highlighted YAML."""
    (console or Console()).print(Syntax(OmegaConf.to_yaml(cfg, resolve=True), "yaml"))
