"""LightningModule for directed link prediction: any encoder, any decoder, one loss, one protocol."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Literal

import lightning.pytorch as pl
import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn.functional import binary_cross_entropy_with_logits

from recsci.core.errors import ConfigError
from recsci.graph.datamodule import EvalBatch, LinkBatch
from recsci.graph.evaluate import directed_link_metrics, dot_product_rows
from recsci.graph.models import DotProductDecoder, NodeEmbeddings

EncoderFactory = Callable[..., nn.Module]  # called with in_channels=<number of node features>
# called with the optimizer, e.g. a partial of torch.optim.lr_scheduler.CosineAnnealingLR
SchedulerFactory = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]


def link_loss(pos: Tensor, neg: Tensor, reverse: Tensor | None = None, reverse_weight: float = 0.0) -> Tensor:
    """Cross-entropy of positive and negative pair logits, plus ``reverse_weight`` times that of the
    reversed one-directional positives as hard negatives (``reverse`` None: no reverse term)."""
    loss = binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
    loss = loss + binary_cross_entropy_with_logits(neg, torch.zeros_like(neg))
    if reverse is not None:
        loss = loss + reverse_weight * binary_cross_entropy_with_logits(reverse, torch.zeros_like(reverse))
    return loss


@functools.cache  # asked at every training step: one signature inspection per encoder class
def _can_trim(encoder_class: type[nn.Module]) -> bool:
    """Whether the encoder can compute its layers for a batch's leading rows only (``num_outputs``)."""
    return "num_outputs" in inspect.signature(encoder_class.forward).parameters


class LinkPredictionModule(pl.LightningModule):
    """Trains ``decoder(encoder(x, graph))`` to score observed edges above negatives.

    Evaluation (``recsci.graph.evaluate.directed_link_metrics``): existence against all split
    negatives (DirLinkBench's Hits@K, MRR, AUC, AP), direction (AUC and accuracy of u -> v against
    v -> u) and, per ``recommendation_eval`` (default: at test only, since it ranks every node for
    every query), the all-node recommendation protocol with query-degree buckets.

    ``scheduler``: an optional learning-rate schedule, stepped once per epoch (a partial taking the
    optimizer; ``ReduceLROnPlateau`` reads ``scheduler_monitor``, a logged metric such as ``val/mrr``).

    ``free_embedding_dim``: learn a free input vector per node instead of reading node features
    (BLADE's non-attributed setting). Models without trainable parameters (popularity) skip training.

    Loss: binary cross-entropy of observed edges against random pairs, plus
    ``reverse_negative_weight`` times the cross-entropy of the reverse v -> u of one-directional
    edges as hard negatives (0 for the symmetric baselines, which cannot tell them apart anyway).
    The encoder is built in :meth:`setup` because its input width is only known from the data.
    """

    def __init__(
        self,
        encoder: EncoderFactory,
        decoder: nn.Module | None = None,
        lr: Annotated[float, Field(gt=0.0)] = 0.01,
        weight_decay: Annotated[float, Field(ge=0.0)] = 0.0,
        reverse_negative_weight: Annotated[float, Field(ge=0.0)] = 0.0,
        free_embedding_dim: Annotated[int, Field(ge=1)] | None = None,
        hits_ks: tuple[int, ...] = (20, 50, 100),
        rec_ks: tuple[int, ...] = (10,),
        recommendation_eval: Literal["test", "always", "never"] = "test",
        scheduler: SchedulerFactory | None = None,
        scheduler_monitor: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["encoder", "decoder", "scheduler"], logger=False)
        self.encoder_factory = encoder
        self.scheduler_factory = scheduler
        self.encoder: nn.Module | None = None
        self.node_embedding: nn.Embedding | None = None
        self.decoder = decoder if decoder is not None else DotProductDecoder()

    def setup(self, stage: str) -> None:
        if self.encoder is not None:
            return
        datamodule = self.trainer.datamodule
        in_channels = datamodule.num_features
        if self.hparams.free_embedding_dim:
            self.node_embedding = nn.Embedding(datamodule.num_nodes, self.hparams.free_embedding_dim)
            in_channels = self.hparams.free_embedding_dim
        self.encoder = self.encoder_factory(in_channels=in_channels)

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        node_ids: Tensor | None = None,
        edge_weight: Tensor | None = None,
        num_outputs: int | None = None,
    ) -> NodeEmbeddings:
        """Node embeddings; ``num_outputs``: only the first nodes' are needed (a sampled batch's seeds),
        which encoders that can trim their layers to them (BLADE, GraphSAGE, GCN) use to skip the rest."""
        if self.node_embedding is not None:
            x = self.node_embedding(node_ids)
        options: dict[str, object] = {}
        if edge_weight is not None:
            # Only encoders that weight messages (BLADE) accept edge weights from walk-filled neighbourhoods.
            options["edge_weight"] = edge_weight
        if num_outputs is not None and _can_trim(type(self.encoder)):
            options["num_outputs"] = num_outputs
        return self.encoder(x, edge_index, **options)

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())

    def score(self, embeddings: NodeEmbeddings, pairs: Tensor) -> Tensor:
        return self.decoder(embeddings, pairs[0], pairs[1])

    def training_step(self, batch: LinkBatch, batch_idx: int) -> Tensor | None:
        if not self.trainable:
            return None  # non-learned baselines: nothing to fit
        embeddings = self(batch.x, batch.edge_index, batch.node_ids, batch.edge_weight, batch.num_seeds)
        weight = self.hparams.reverse_negative_weight
        reverse = self.score(embeddings, batch.reverse) if weight > 0 and batch.reverse.numel() else None
        loss = link_loss(
            self.score(embeddings, batch.pos), self.score(embeddings, batch.neg), reverse, weight
        )
        self.log("train/loss", loss, prog_bar=True, batch_size=batch.pos.size(1))
        return loss

    def validation_step(self, batch: EvalBatch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: EvalBatch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: EvalBatch, split: str) -> None:
        embeddings = self(batch.x, batch.edge_index, batch.node_ids)
        mode = self.hparams.recommendation_eval
        device = embeddings.source.device  # the evaluation protocol hands over node ids on the CPU
        metrics = directed_link_metrics(
            lambda src, dst: self.decoder(embeddings, src.to(device), dst.to(device)),
            batch.edges,
            batch.edge_index,
            batch.node_ids.numel(),
            hits_ks=self.hparams.hits_ks,
            rec_ks=self.hparams.rec_ks,
            recommendation=mode == "always" or (mode == "test" and split == "test"),
            # A decoder that is a dot product of per-node rows scores a query against every node in one matmul.
            score_rows=dot_product_rows(*self.decoder.ranking_embeddings(embeddings))
            if hasattr(self.decoder, "ranking_embeddings")
            else None,
            exclude_edges=batch.known_edges,
        )
        self.log_dict(
            {f"{split}/{k}": v for k, v in metrics.items()},
            prog_bar=split == "val",
            batch_size=1,
            sync_dist=True,
        )

    def configure_optimizers(self) -> torch.optim.Optimizer | dict | None:
        if not self.trainable:
            return None
        optimizer = torch.optim.Adam(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        monitor = self.hparams.scheduler_monitor
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and monitor is None:
            raise ConfigError(
                "model.scheduler is ReduceLROnPlateau, which steps on a metric: set model.scheduler_monitor "
                "to a logged one, e.g. model.scheduler_monitor=val/mrr (and the scheduler's mode to max)"
            )
        schedule = {"scheduler": scheduler, "interval": "epoch"}
        if monitor is not None:
            schedule["monitor"] = monitor
        return {"optimizer": optimizer, "lr_scheduler": schedule}
