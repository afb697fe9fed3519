"""Baselines that use no graph (an MLP on features) or no learning (popularity)."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import Tensor, nn
from torch_geometric.utils import degree

from recsci.graph.models import NodeEmbeddings, PositiveInt


class FeatureMLP(nn.Module):
    """Two MLP heads on node features (source and target role): direction from features alone."""

    def __init__(
        self,
        in_channels: PositiveInt,
        hidden_channels: PositiveInt = 64,
        out_channels: PositiveInt = 64,
        dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0,
    ) -> None:
        super().__init__()

        def head() -> nn.Sequential:
            return nn.Sequential(
                nn.Linear(in_channels, hidden_channels),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden_channels, out_channels),
            )

        self.source_head, self.target_head = head(), head()

    def forward(self, x: Tensor, edge_index: Tensor) -> NodeEmbeddings:
        return NodeEmbeddings(source=self.source_head(x), target=self.target_head(x))


class InDegreePopularity(nn.Module):
    """Non-learned: score(u -> v) = log(1 + in-degree of v) in the message-passing (training) graph.

    With a dot-product decoder: source = 1, target = log1p(in-degree). Same ranking for every query.
    """

    def __init__(self, in_channels: PositiveInt | None = None) -> None:
        super().__init__()

    def forward(self, x: Tensor, edge_index: Tensor) -> NodeEmbeddings:
        popularity = torch.log1p(degree(edge_index[1], x.size(0))).unsqueeze(-1)
        return NodeEmbeddings(source=torch.ones_like(popularity), target=popularity)
