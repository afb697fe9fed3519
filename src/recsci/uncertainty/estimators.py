"""Estimators: LightningModules that return a score and an uncertainty per example.

All share a tabular backbone (an embedding per categorical column, concatenated with the standardised
numeric features, then an MLP). :meth:`UncertaintyEstimator.score_uncertainty` returns the positive
probability corrected for the datamodule's negative downsampling (``q -> w q / (w q + 1 - q)``) and an
uncertainty:

- :class:`PlainClassifier`: sigmoid output, no uncertainty (a constant 0): the baseline.
- :class:`MCDropoutClassifier`: dropout kept on at prediction; ``mc_samples`` passes; uncertainty =
  std of the probabilities, or the mutual information (BALD), or the predictive entropy.
- :class:`DeepEnsembleClassifier`: ``n_members`` independently initialised MLPs trained side by side;
  uncertainty = std of member probabilities (or mutual information / entropy).
- :class:`PosteriorNetworkClassifier`: a Beta posterior (Charpentier et al. 2020, as used by Arora et
  al. 2023): a latent code, a class-conditional density per class (diagonal Gaussian) and evidence
  ``alpha = 1 + N_1 p(z|1)``, ``beta = 1 + N_0 p(z|0)``, trained with the uncertainty-aware
  cross-entropy (expected log-likelihood under the Beta) minus an entropy bonus. Score = Beta mean;
  uncertainty = its differential entropy or variance.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn.functional import binary_cross_entropy, binary_cross_entropy_with_logits

from recsci.core.metrics import roc_auc

Batch = tuple[Tensor, Tensor, Tensor]
Lr = Annotated[float, Field(gt=0.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
Dropout = Annotated[float, Field(ge=0.0, lt=1.0)]


def correct_probability(q: Tensor, rate: float) -> Tensor:
    """Undo negative downsampling at ``rate``: ``w q / (w q + 1 - q)`` (identity for ``rate = 1``)."""
    if rate >= 1.0:
        return q
    return rate * q / (rate * q + 1.0 - q).clamp_min(1e-12)


class TabularBackbone(nn.Module):
    """Embeddings for categorical columns + numeric features -> MLP -> ``out_dim`` outputs."""

    def __init__(
        self, num_numeric: int, cardinalities: list[int], hidden: list[int], dropout: float, out_dim: int
    ) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(
            nn.Embedding(card, min(16, max(2, round(1.6 * card**0.56)))) for card in cardinalities
        )
        width = num_numeric + sum(e.embedding_dim for e in self.embeddings)
        layers: list[nn.Module] = []
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, out_dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, numeric: Tensor, categorical: Tensor) -> Tensor:
        parts = [numeric] + [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        return self.mlp(torch.cat(parts, dim=1))


class UncertaintyEstimator(pl.LightningModule):
    """Base: builds the network in ``setup`` (input widths come from the data), logs AUC and log loss."""

    def __init__(
        self,
        hidden: list[int] | tuple[int, ...] = (64, 32),
        dropout: Dropout = 0.0,
        lr: Lr = 3e-3,
        weight_decay: NonNegative = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.net: nn.Module | None = None
        self.register_buffer("negative_sampling_rate", torch.tensor(1.0))
        self._outputs: list[tuple[Tensor, Tensor]] = []

    # -- building -------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule
        if self.net is None:
            spec = datamodule.feature_spec
            self.net = self.build_network(spec.num_numeric, spec.cardinalities)
        self.negative_sampling_rate.fill_(float(getattr(datamodule, "negative_sampling_rate", 1.0)))

    def build_network(self, num_numeric: int, cardinalities: list[int]) -> nn.Module:
        return self._backbone(num_numeric, cardinalities, out_dim=1)

    def _backbone(self, num_numeric: int, cardinalities: list[int], out_dim: int) -> TabularBackbone:
        hp = self.hparams
        return TabularBackbone(num_numeric, cardinalities, list(hp.hidden), hp.dropout, out_dim)

    # -- what subclasses define -----------------------------------------------------------------------
    def loss(self, numeric: Tensor, categorical: Tensor, labels: Tensor) -> Tensor:
        return binary_cross_entropy_with_logits(self.net(numeric, categorical).squeeze(-1), labels)

    def raw_probability(self, numeric: Tensor, categorical: Tensor) -> Tensor:
        """Probability under the training (downsampled) class balance, deterministic."""
        return torch.sigmoid(self.net(numeric, categorical).squeeze(-1))

    def score_uncertainty(self, numeric: Tensor, categorical: Tensor) -> tuple[Tensor, Tensor]:
        """(probability corrected for downsampling, uncertainty); the plain model has no uncertainty."""
        score = correct_probability(self.raw_probability(numeric, categorical), self.rate)
        return score, torch.zeros_like(score)

    @property
    def rate(self) -> float:
        return float(self.negative_sampling_rate)

    # -- Lightning hooks ------------------------------------------------------------------------------
    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        numeric, categorical, labels = batch
        loss = self.loss(numeric, categorical, labels)
        self.log("train/loss", loss, prog_bar=True, batch_size=labels.numel())
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._collect(batch)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._collect(batch)

    def _collect(self, batch: Batch) -> None:
        numeric, categorical, labels = batch
        score = correct_probability(self.raw_probability(numeric, categorical), self.rate)
        self._outputs.append((score.detach(), labels))

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def _log_epoch(self, split: str) -> None:
        if not self._outputs:
            return
        scores = torch.cat([s for s, _ in self._outputs]).double()
        labels = torch.cat([y for _, y in self._outputs]).double()
        self._outputs.clear()
        metrics = {
            f"{split}/auc": roc_auc(scores[labels == 1], scores[labels == 0]),
            f"{split}/logloss": float(binary_cross_entropy(scores.clamp(1e-7, 1 - 1e-7), labels)),
        }
        self.log_dict(metrics, prog_bar=split == "val", batch_size=1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class PlainClassifier(UncertaintyEstimator):
    """An MLP with a sigmoid output and no uncertainty (uncertainty = 0): per-bucket rules collapse to one."""


SampleUncertainty = Literal["std", "mutual_info", "entropy"]


def _sample_uncertainty(probs: Tensor, kind: str) -> Tensor:
    """Uncertainty from probability samples ``[S, N]``: std, mutual information or predictive entropy."""
    mean = probs.mean(0)
    if kind == "std":
        return probs.std(0, unbiased=False)

    def entropy(p: Tensor) -> Tensor:
        p = p.clamp(1e-7, 1 - 1e-7)
        return -(p * p.log() + (1 - p) * (1 - p).log())

    if kind == "entropy":
        return entropy(mean)
    return entropy(mean) - entropy(probs).mean(0)


class MCDropoutClassifier(UncertaintyEstimator):
    """MC dropout (Gal & Ghahramani 2016): dropout stays on at prediction; ``mc_samples`` passes."""

    def __init__(
        self,
        hidden: list[int] | tuple[int, ...] = (64, 32),
        dropout: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2,
        lr: Lr = 3e-3,
        weight_decay: NonNegative = 0.0,
        mc_samples: Annotated[int, Field(ge=2)] = 20,
        uncertainty: SampleUncertainty = "std",
    ) -> None:
        super().__init__(hidden, dropout, lr, weight_decay)

    def score_uncertainty(self, numeric: Tensor, categorical: Tensor) -> tuple[Tensor, Tensor]:
        was_training = self.net.training
        self.net.train()  # dropout on (the backbone has no batch norm, so nothing else changes)
        try:
            samples = torch.stack(
                [
                    correct_probability(torch.sigmoid(self.net(numeric, categorical).squeeze(-1)), self.rate)
                    for _ in range(self.hparams.mc_samples)
                ]
            )
        finally:
            self.net.train(was_training)
        return samples.mean(0), _sample_uncertainty(samples, self.hparams.uncertainty)


class _Ensemble(nn.Module):
    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, numeric: Tensor, categorical: Tensor) -> Tensor:
        return torch.stack([m(numeric, categorical).squeeze(-1) for m in self.members])  # [M, N] logits


class DeepEnsembleClassifier(UncertaintyEstimator):
    """Deep ensemble (Lakshminarayanan et al. 2017): ``n_members`` MLPs from different initialisations,
    trained on the same batches (sum of their losses); score = mean member probability."""

    def __init__(
        self,
        hidden: list[int] | tuple[int, ...] = (64, 32),
        dropout: Dropout = 0.0,
        lr: Lr = 3e-3,
        weight_decay: NonNegative = 0.0,
        n_members: Annotated[int, Field(ge=2, le=50)] = 5,
        uncertainty: SampleUncertainty = "std",
    ) -> None:
        super().__init__(hidden, dropout, lr, weight_decay)

    def build_network(self, num_numeric: int, cardinalities: list[int]) -> nn.Module:
        return _Ensemble(
            [self._backbone(num_numeric, cardinalities, 1) for _ in range(self.hparams.n_members)]
        )

    def loss(self, numeric: Tensor, categorical: Tensor, labels: Tensor) -> Tensor:
        logits = self.net(numeric, categorical)
        return binary_cross_entropy_with_logits(logits, labels.expand_as(logits)) * logits.size(0)

    def raw_probability(self, numeric: Tensor, categorical: Tensor) -> Tensor:
        return torch.sigmoid(self.net(numeric, categorical)).mean(0)

    def score_uncertainty(self, numeric: Tensor, categorical: Tensor) -> tuple[Tensor, Tensor]:
        samples = correct_probability(torch.sigmoid(self.net(numeric, categorical)), self.rate)
        return samples.mean(0), _sample_uncertainty(samples, self.hparams.uncertainty)


class _PosteriorHead(nn.Module):
    """Backbone -> latent z (batch-normalised) -> log-density of z under each class's diagonal Gaussian."""

    def __init__(self, backbone: nn.Module, latent_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.norm = nn.BatchNorm1d(latent_dim, affine=False)
        self.means = nn.Parameter(torch.randn(2, latent_dim) * 0.5)
        self.log_scales = nn.Parameter(torch.zeros(2, latent_dim))

    def forward(self, numeric: Tensor, categorical: Tensor) -> Tensor:
        z = self.norm(self.backbone(numeric, categorical))  # [N, D]
        diff = (z[:, None, :] - self.means[None]) / self.log_scales.exp()[None]
        d = z.size(1)
        return -0.5 * (diff**2).sum(-1) - self.log_scales.sum(-1)[None] - 0.5 * d * math.log(2 * math.pi)


class PosteriorNetworkClassifier(UncertaintyEstimator):
    """Posterior network with a Beta output: ``alpha = 1 + N_1 p(z|1)``, ``beta = 1 + N_0 p(z|0)``.

    ``N_c`` are the training class counts (after downsampling) — the certainty budget — and the class
    densities are diagonal Gaussians on a batch-normalised latent code (a flow with no layers). Loss:
    ``-E_{p~Beta}[y log p + (1-y) log(1-p)] - entropy_weight * H(Beta)``.
    """

    def __init__(
        self,
        hidden: list[int] | tuple[int, ...] = (64, 32),
        dropout: Dropout = 0.0,
        lr: Lr = 3e-3,
        weight_decay: NonNegative = 0.0,
        latent_dim: Annotated[int, Field(ge=1, le=64)] = 4,
        entropy_weight: NonNegative = 1e-4,
        uncertainty: Literal["entropy", "variance"] = "entropy",
    ) -> None:
        super().__init__(hidden, dropout, lr, weight_decay)
        self.register_buffer("class_counts", torch.ones(2))

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit":
            labels = self.trainer.datamodule.split_tensors("train")[2]
            positives = float(labels.sum())
            self.class_counts.copy_(torch.tensor([labels.numel() - positives, positives]))

    def build_network(self, num_numeric: int, cardinalities: list[int]) -> nn.Module:
        backbone = self._backbone(num_numeric, cardinalities, self.hparams.latent_dim)
        return _PosteriorHead(backbone, self.hparams.latent_dim)

    def beta_parameters(self, numeric: Tensor, categorical: Tensor) -> tuple[Tensor, Tensor]:
        log_density = self.net(numeric, categorical)  # [N, 2]: class 0 (negative), class 1 (positive)
        log_evidence = (log_density + self.class_counts.clamp_min(1).log()[None]).clamp(-30.0, 30.0)
        evidence = log_evidence.exp()
        return 1.0 + evidence[:, 1], 1.0 + evidence[:, 0]

    def loss(self, numeric: Tensor, categorical: Tensor, labels: Tensor) -> Tensor:
        alpha, beta = self.beta_parameters(numeric, categorical)
        digamma_total = torch.digamma(alpha + beta)
        expected_ll = labels * (torch.digamma(alpha) - digamma_total) + (1 - labels) * (
            torch.digamma(beta) - digamma_total
        )
        return (-expected_ll - self.hparams.entropy_weight * beta_entropy(alpha, beta)).mean()

    def raw_probability(self, numeric: Tensor, categorical: Tensor) -> Tensor:
        alpha, beta = self.beta_parameters(numeric, categorical)
        return alpha / (alpha + beta)

    def score_uncertainty(self, numeric: Tensor, categorical: Tensor) -> tuple[Tensor, Tensor]:
        alpha, beta = self.beta_parameters(numeric, categorical)
        score = correct_probability(alpha / (alpha + beta), self.rate)
        if self.hparams.uncertainty == "variance":
            total = alpha + beta
            return score, alpha * beta / (total**2 * (total + 1))
        return score, beta_entropy(alpha, beta)


def beta_entropy(alpha: Tensor, beta: Tensor) -> Tensor:
    """Differential entropy of Beta(alpha, beta)."""
    total = alpha + beta
    log_b = torch.lgamma(alpha) + torch.lgamma(beta) - torch.lgamma(total)
    return (
        log_b
        - (alpha - 1) * torch.digamma(alpha)
        - (beta - 1) * torch.digamma(beta)
        + (total - 2) * torch.digamma(total)
    )


@torch.no_grad()
def predict_split(module: UncertaintyEstimator, datamodule, split: str) -> dict[str, np.ndarray]:
    """Scores, uncertainties and labels of one split, in the module's eval mode, as numpy arrays."""
    module.eval()
    numeric, categorical, labels = datamodule.split_tensors(split)
    device = module.device
    scores, uncertainties = [], []
    for start in range(0, labels.numel(), 8192):
        stop = start + 8192
        s, u = module.score_uncertainty(numeric[start:stop].to(device), categorical[start:stop].to(device))
        scores.append(s.double().cpu())
        uncertainties.append(u.double().cpu())
    return {
        "scores": torch.cat(scores).numpy(),
        "uncertainties": torch.cat(uncertainties).numpy(),
        "labels": labels.numpy().astype(np.int64),
    }
