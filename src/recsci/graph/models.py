"""Node encoders and edge decoders for link prediction.

An encoder maps node features and a message-passing graph to :class:`NodeEmbeddings`: a source-role
and a target-role embedding per node. Symmetric encoders (GraphSAGE, GCN) return the same tensor for
both roles; directed encoders (BLADE) return two. A decoder scores u -> v from ``source[u]`` and
``target[v]``; with a symmetric encoder and a symmetric decoder, score(u -> v) == score(v -> u).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import Tensor, nn
from torch_geometric.nn import GCNConv, SAGEConv
from torch_geometric.utils import to_undirected

PositiveInt = Annotated[int, Field(ge=1)]
DropoutRate = Annotated[float, Field(ge=0.0, lt=1.0)]


@dataclass
class NodeEmbeddings:
    source: Tensor  # [N, d] embedding of each node as a query (edge tail)
    target: Tensor  # [N, d] embedding of each node as a recommendation (edge head)


class SymmetricGNN(nn.Module):
    """A stack of undirected message-passing layers; one embedding per node used for both roles.

    The graph is symmetrised first: these are the GraphSAGE/GCN baselines that ignore direction.
    """

    def __init__(self, layers: list[nn.Module], dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.dropout = dropout

    def forward(self, x: Tensor, edge_index: Tensor) -> NodeEmbeddings:
        edge_index = to_undirected(edge_index, num_nodes=x.size(0))
        h = x
        for depth, layer in enumerate(self.layers):
            h = layer(h, edge_index)
            if depth < len(self.layers) - 1:
                h = torch.relu(h)
                h = nn.functional.dropout(h, p=self.dropout, training=self.training)
        return NodeEmbeddings(source=h, target=h)


def layer_widths(
    in_channels: int, hidden_channels: int, out_channels: int, num_layers: int
) -> list[tuple[int, int]]:
    dims = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
    return list(zip(dims[:-1], dims[1:], strict=True))


class GraphSAGE(SymmetricGNN):
    """GraphSAGE (Hamilton et al., 2017) with mean aggregation over the symmetrised graph."""

    def __init__(
        self,
        in_channels: PositiveInt,
        hidden_channels: PositiveInt = 64,
        out_channels: PositiveInt = 64,
        num_layers: PositiveInt = 2,
        dropout: DropoutRate = 0.0,
        aggr: str = "mean",
    ) -> None:
        widths = layer_widths(in_channels, hidden_channels, out_channels, num_layers)
        super().__init__([SAGEConv(i, o, aggr=aggr) for i, o in widths], dropout)


class GCN(SymmetricGNN):
    """GCN (Kipf & Welling, 2017) over the symmetrised graph."""

    def __init__(
        self,
        in_channels: PositiveInt,
        hidden_channels: PositiveInt = 64,
        out_channels: PositiveInt = 64,
        num_layers: PositiveInt = 2,
        dropout: DropoutRate = 0.0,
    ) -> None:
        widths = layer_widths(in_channels, hidden_channels, out_channels, num_layers)
        super().__init__([GCNConv(i, o) for i, o in widths], dropout)


class DotProductDecoder(nn.Module):
    """score(u -> v) = <source[u], target[v]>."""

    def forward(self, embeddings: NodeEmbeddings, src: Tensor, dst: Tensor) -> Tensor:
        return (embeddings.source[src] * embeddings.target[dst]).sum(-1)


class HadamardMLPDecoder(nn.Module):
    """score(u -> v) = MLP(source[u] * target[v]): symmetric when the two roles share one embedding."""

    def __init__(self, in_channels: PositiveInt = 64, hidden_channels: PositiveInt = 64) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_channels, hidden_channels), nn.ReLU(), nn.Linear(hidden_channels, 1)
        )

    def forward(self, embeddings: NodeEmbeddings, src: Tensor, dst: Tensor) -> Tensor:
        return self.mlp(embeddings.source[src] * embeddings.target[dst]).squeeze(-1)
