"""Sampled training batches built in DataLoader worker processes (``data.num_workers``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from recsci.core.run import run
from recsci.graph.datamodule import LinkBatch, LinkPredictionDataModule
from recsci.graph.sampling import DegreePowerFanout, NeighborSampler, WalkFill
from recsci.graph.synthetic import SyntheticProductGraph


def datamodule(num_workers: int, sparse_features: bool, sampled: bool = True) -> LinkPredictionDataModule:
    sampler = NeighborSampler(DegreePowerFanout(c=8, gamma=-0.5, k_min=2, k_max=8), 2, walk_fill=WalkFill())
    dm = LinkPredictionDataModule(
        SyntheticProductGraph(num_nodes=300, seed=1),
        sampler=sampler if sampled else None,
        batch_size=128,
        sparse_features=sparse_features,
        num_workers=num_workers,
    )
    dm.setup()
    return dm


def epoch_batches(dm: LinkPredictionDataModule, seed: int) -> list[LinkBatch]:
    pl.seed_everything(seed, workers=True, verbose=False)  # as every run seeds itself
    return [dm.on_before_batch_transfer(batch, 0) for batch in dm.train_dataloader()]


@pytest.mark.parametrize("sparse_features", [False, True])
def test_worker_batches_are_complete_and_reproducible(sparse_features: bool) -> None:
    dm = datamodule(num_workers=2, sparse_features=sparse_features)
    first, again = epoch_batches(dm, seed=3), epoch_batches(dm, seed=3)
    assert len(first) == len(dm.train_dataloader())
    dense = dm.x.to_dense() if sparse_features else dm.x
    train = {tuple(e) for e in dm.split.train_pos.t().tolist()}
    seen = set()
    for batch, repeat in zip(first, again, strict=True):
        # Features reach the model in the datamodule's own layout (CSR after the worker's COO hand-over).
        assert batch.x.layout == (torch.sparse_csr if sparse_features else torch.strided)
        x = batch.x.to_dense() if sparse_features else batch.x
        assert torch.equal(x, dense[batch.node_ids])
        assert batch.edge_weight is not None and batch.edge_weight.numel() == batch.edge_index.size(1)
        seen |= {tuple(e) for e in batch.node_ids[batch.pos].t().tolist()}
        for name in ("pos", "neg", "reverse", "edge_index", "node_ids", "edge_weight"):
            assert torch.equal(getattr(batch, name), getattr(repeat, name)), name
    assert seen == train  # one epoch over the workers still visits every training edge once
    other = epoch_batches(dm, seed=4)
    assert not torch.equal(other[0].pos, first[0].pos)


def test_full_batch_training_says_it_does_not_use_workers(caplog) -> None:
    dm = datamodule(num_workers=2, sparse_features=False, sampled=False)
    with caplog.at_level(logging.WARNING):
        loader = dm.train_dataloader()
    assert loader.num_workers == 0
    assert "data.num_workers=2 is not used" in caplog.text


def test_blade_trains_with_sampling_workers(make_config, tmp_path: Path) -> None:
    overrides = ["experiment=graph/synthetic_blade", "trainer.max_epochs=3", "data.dataset.num_nodes=400"]
    run(make_config(*overrides, "data.num_workers=2", "data.sparse_features=true"))
    results = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert results["status"] == "completed" and results["metrics"]["test/direction_auc"] > 0.7
