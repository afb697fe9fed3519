"""The shared backbone: one embedding per categorical field, concatenated, then an MLP to one logit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch
from pydantic import Field
from torch import Tensor, nn


class FieldMLP(nn.Module):
    """``logit = MLP([emb_1(x_1), ..., emb_F(x_F), extra])``.

    ``extra_dim`` continuous inputs are for auxiliary models only (elapsed time, engagement flags); the
    main conversion model is built with ``extra_dim = 0`` and its ``forward`` has no such argument.
    """

    def __init__(
        self,
        cardinalities: Sequence[int],
        embed_dim: Annotated[int, Field(ge=1)] = 8,
        hidden: tuple[Annotated[int, Field(ge=1)], ...] = (64, 32),
        dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0,
        extra_dim: Annotated[int, Field(ge=0)] = 0,
    ) -> None:
        super().__init__()
        self.cardinalities = tuple(int(c) for c in cardinalities)
        offsets = torch.tensor([0, *self.cardinalities[:-1]]).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)
        self.embedding = nn.Embedding(sum(self.cardinalities), embed_dim)
        nn.init.normal_(self.embedding.weight, std=0.05)
        self.extra_dim = extra_dim
        layers: list[nn.Module] = []
        width = embed_dim * len(self.cardinalities) + extra_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: Tensor, extra: Tensor | None = None) -> Tensor:
        embedded = self.embedding(x.long() + self.offsets).flatten(1)
        if self.extra_dim:
            if extra is None or extra.size(1) != self.extra_dim:
                raise ValueError(f"this model needs {self.extra_dim} extra inputs")
            embedded = torch.cat([embedded, extra], dim=1)
        return self.mlp(embedded).squeeze(-1)


class ConversionModel(nn.Module):
    """The main model: features in, conversion logit out. Elapsed time and engagement cannot enter it."""

    def __init__(self, net: FieldMLP) -> None:
        super().__init__()
        if net.extra_dim:
            raise ValueError("the main conversion model takes features only (extra_dim must be 0)")
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
