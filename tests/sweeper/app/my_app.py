"""Tiny Hydra app with trivial objectives, used by tests/sweeper and experiments/bench."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

CHOICE_BONUS = {"a": 0.0, "b": 0.5, "c": 1.0}


def quadratic(x: float, y: float, choice: str = "a") -> float:
    """The benchmark objective: minimum 0 at x=2, y=-1, choice=a."""
    return (x - 2.0) ** 2 + (y + 1.0) ** 2 + CHOICE_BONUS.get(choice, 2.0)


def _write_metrics(value: float) -> None:
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    (output_dir / "metrics.json").write_text(
        json.dumps({"metrics": {"loss": value, "double_loss": 2 * value}})
    )


def run_lightning(cfg: DictConfig) -> float:
    """A real (tiny) Lightning fit whose val_loss grows with x, with the pruning callback."""
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from hydra_plugins.recsci_optuna_sweeper.pruning import OptunaPruningCallback

    badness = float(cfg.x)

    class Model(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(1, 1)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            (features,) = batch
            return self.layer(features).pow(2).mean()

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            # Deterministic curve: larger x -> worse at every epoch, so the median pruner bites.
            self.log("val_loss", badness * (1.0 + 1.0 / (self.current_epoch + 1)))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    data = DataLoader(TensorDataset(torch.randn(8, 1)), batch_size=4)
    trainer = pl.Trainer(
        max_epochs=int(cfg.epochs),
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[OptunaPruningCallback(monitor="val_loss")],
    )
    trainer.fit(Model(), train_dataloaders=data, val_dataloaders=data)
    return float(trainer.callback_metrics["val_loss"])


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> Any:
    value = quadratic(float(cfg.x), float(cfg.y), str(cfg.choice))
    if cfg.mode == "quadratic":
        _write_metrics(value)
        return value
    if cfg.mode == "none":
        return None
    if cfg.mode == "multi":
        return [value, float(cfg.x)]
    if cfg.mode == "dict":
        return {"loss": value, "x": float(cfg.x)}
    if cfg.mode == "flaky":
        marker = Path(str(cfg.marker_dir)) / f"seen_{cfg.x}"
        if not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
            raise RuntimeError(f"flaky failure for x={cfg.x}")
        return value
    if cfg.mode == "sleepy":
        time.sleep(float(cfg.sleep_s))
        return value
    if cfg.mode == "lightning":
        return run_lightning(cfg)
    raise ValueError(f"unknown mode {cfg.mode}")


if __name__ == "__main__":
    main()
