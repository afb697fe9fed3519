"""The link-prediction module: its loss uses reverse-edge negatives; every model runs end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from recsci.core.errors import ConfigError
from recsci.core.run import run
from recsci.graph.datamodule import LinkBatch
from recsci.graph.directed import BLADE
from recsci.graph.evaluate import dot_product_rows, recommendation_metrics
from recsci.graph.models import NodeEmbeddings, RelatednessDotProductDecoder
from recsci.graph.module import LinkPredictionModule


def batch() -> LinkBatch:
    return LinkBatch(
        x=torch.eye(4),
        edge_index=torch.tensor([[0, 1], [1, 2]]),
        pos=torch.tensor([[0, 1], [1, 2]]),
        neg=torch.tensor([[3], [0]]),
        reverse=torch.tensor([[1, 2], [0, 1]]),
        node_ids=torch.arange(4),
    )


def module_with(reverse_weight: float) -> LinkPredictionModule:
    module = LinkPredictionModule(
        encoder=lambda in_channels: BLADE(in_channels, 8, 8), reverse_negative_weight=reverse_weight
    )
    torch.manual_seed(0)
    module.encoder = module.encoder_factory(in_channels=4)
    module.log = lambda *args, **kwargs: None
    return module


def test_reverse_edges_enter_the_loss_as_negatives() -> None:
    torch.manual_seed(0)
    without = module_with(0.0).training_step(batch(), 0)
    with_reverse = module_with(1.0)
    loss = with_reverse.training_step(batch(), 0)
    emb = with_reverse.encoder(batch().x, batch().edge_index)
    reverse_scores = with_reverse.decoder(emb, batch().reverse[0], batch().reverse[1])
    expected_extra = torch.nn.functional.binary_cross_entropy_with_logits(reverse_scores, torch.zeros(2))
    assert loss.item() == pytest.approx(without.item() + expected_extra.item(), rel=1e-5)


def test_relatedness_decoder_adds_a_term_equal_both_ways_and_ranks_like_pairwise_scoring() -> None:
    g = torch.Generator().manual_seed(0)
    emb = NodeEmbeddings(source=torch.randn(12, 6, generator=g), target=torch.randn(12, 6, generator=g))
    torch.manual_seed(1)
    decoder = RelatednessDotProductDecoder(in_channels=6, relatedness_channels=3)
    u, v = torch.randint(0, 12, (2, 40), generator=g)
    directed = (emb.source[u] * emb.target[v]).sum(-1)
    reverse_directed = (emb.source[v] * emb.target[u]).sum(-1)
    related = decoder(emb, u, v) - directed
    torch.testing.assert_close(related, decoder(emb, v, u) - reverse_directed)  # the same both ways
    r = decoder.relatedness(torch.cat([emb.source, emb.target], dim=1))
    torch.testing.assert_close(related, (r[u] * r[v]).sum(-1))  # by hand: r_u . r_v
    assert related.abs().max() > 0.1 and not torch.allclose(decoder(emb, u, v), decoder(emb, v, u))
    # Ranking every node through the augmented rows gives the metrics of scoring pair by pair.
    train, held_out = torch.randint(0, 12, (2, 20), generator=g), torch.randint(0, 12, (2, 15), generator=g)
    with torch.no_grad():
        fast = recommendation_metrics(
            held_out, train, 12, score_rows=dot_product_rows(*decoder.ranking_embeddings(emb)), ks=(3,)
        )
        slow = recommendation_metrics(held_out, train, 12, lambda s, d: decoder(emb, s, d), ks=(3,))
    assert fast == pytest.approx(slow, nan_ok=True)


def test_blade_with_the_relatedness_term_runs_end_to_end(make_config, tmp_path: Path) -> None:
    run(make_config("experiment=graph/synthetic_blade", "model=blade_relatedness", "trainer.max_epochs=3",
                    "data.dataset.num_nodes=400"))  # fmt: skip
    results = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert results["status"] == "completed" and results["metrics"]["test/direction_auc"] > 0.7
    assert results["metrics"]["test/rec_hits@10"] > 0


MODELS = {
    "graph/synthetic_blade": 0.7,
    "graph/synthetic_blade_uniform": 0.7,
    "graph/synthetic_digae": 0.5,
    "graph/synthetic_mlp": 0.6,
    "graph/synthetic_popularity": 0.6,
    "graph/synthetic_gcn": None,
    "graph/synthetic_sage": None,
}


@pytest.mark.parametrize("experiment", sorted(MODELS))
def test_each_model_runs_end_to_end(experiment: str, make_config, tmp_path: Path) -> None:
    run(make_config(f"experiment={experiment}", "trainer.max_epochs=3", "data.dataset.num_nodes=400"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]
    direction = metrics["test/direction_auc"]
    minimum = MODELS[experiment]
    if minimum is None:
        assert direction == pytest.approx(0.5)  # symmetric models cannot tell direction
    else:
        assert direction > minimum


@pytest.mark.parametrize("sparse_features", [False, True])
@pytest.mark.parametrize("experiment", sorted(MODELS))
def test_models_evaluate_batches_moved_under_inference_mode(
    experiment: str, sparse_features: bool, make_config, tmp_path: Path, monkeypatch
) -> None:
    # On a GPU, Lightning copies each evaluation batch to the device inside inference mode, so the encoder
    # sees inference tensors there; on the CPU the transfer is a no-op. Copying here reproduces that path.
    from lightning.fabric.utilities.apply_func import apply_to_collection

    def copy_to_device(self, batch, device, dataloader_idx):
        return apply_to_collection(batch, torch.Tensor, lambda t: t.clone())

    monkeypatch.setattr(LinkPredictionModule, "transfer_batch_to_device", copy_to_device)
    overrides = [f"experiment={experiment}", "trainer.max_epochs=2", "data.dataset.num_nodes=300"]
    run(make_config(*overrides, f"data.sparse_features={str(sparse_features).lower()}"))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "completed"


def test_free_embeddings_replace_features(make_config, tmp_path: Path) -> None:
    run(
        make_config("experiment=graph/synthetic_blade", "model.free_embedding_dim=16", "trainer.max_epochs=1")
    )
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "completed"


def test_blade_paper_config_keeps_the_published_settings(make_config) -> None:
    # model=blade carries our defaults (input skip, reverse negatives at 0.1); blade_paper the paper's.
    ours = make_config("experiment=graph/synthetic_blade").model
    paper = make_config("experiment=graph/synthetic_blade", "model=blade_paper").model
    assert ours.encoder.input_skip and ours.reverse_negative_weight == pytest.approx(0.1)
    assert not paper.encoder.input_skip and paper.reverse_negative_weight == pytest.approx(1.0)
    assert paper.encoder.num_layers == 2 and paper.encoder.dropout == 0.0
    assert paper.encoder._target_ == ours.encoder._target_ == "recsci.graph.directed.BLADE"


def test_cosine_schedule_decays_the_learning_rate_each_epoch(make_config, tmp_path: Path) -> None:
    cosine = "{_target_:torch.optim.lr_scheduler.CosineAnnealingLR,_partial_:true,T_max:4,eta_min:0.0}"
    run(
        make_config(
            "experiment=graph/synthetic_blade",
            f"+model.scheduler={cosine}",
            "trainer.max_epochs=4",
            "data.dataset.num_nodes=300",
            "callbacks.early_stopping=null",
        )
    )
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    (scheduler,) = last["lr_schedulers"]
    epochs = scheduler["last_epoch"]
    assert epochs >= 1
    # the checkpointed learning rate is the cosine's value after that many epoch steps
    expected = 0.01 * (1 + math.cos(math.pi * epochs / 4)) / 2
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(expected)


def test_plateau_schedule_needs_a_monitor() -> None:
    module = module_with(0.1)
    module.scheduler_factory = lambda optimizer: torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max"
    )
    with pytest.raises(ConfigError, match="model.scheduler_monitor"):
        module.configure_optimizers()
    module.hparams.scheduler_monitor = "val/mrr"
    assert module.configure_optimizers()["lr_scheduler"]["monitor"] == "val/mrr"
