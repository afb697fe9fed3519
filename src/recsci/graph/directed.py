"""Dual-embedding encoders for directed graphs: BLADE and DiGAE.

Every node v has a source-role embedding s_v (v as the query, the tail of v -> w) and a
target-role embedding t_v (v as the recommendation, the head of u -> v). With orientation
``"out_to_source"`` (BLADE's, the default) one layer computes

    s_u' = W_s s_u + W_so mean_{v : u -> v} t_v      (u's out-neighbours, in their target role)
    t_v' = W_t t_v + W_ti mean_{u : u -> v} s_u      (v's in-neighbours, in their source role)

so "phone -> case" makes the phone's source embedding look like the case's target embedding and
not the reverse. ``"in_to_source"`` swaps the neighbourhoods (s_u from in-neighbours, t_v from
out-neighbours), the convention of some public re-implementations; both are tested.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import degree, scatter

from recsci.graph.models import DropoutRate, NodeEmbeddings, PositiveInt, layer_widths

Orientation = Literal["out_to_source", "in_to_source"]


class NeighbourMean(MessagePassing):
    """sum_{j -> i} w_ji x_j / sum_{j -> i} w_ji: the (weighted) neighbourhood mean along the edges.

    Weights are 1 for real edges and the visit share for walk-filled virtual neighbours; without
    weights this is PyG's plain mean aggregation (no per-edge multiply).
    """

    def __init__(self) -> None:
        super().__init__(aggr="mean")

    def forward(
        self, x: Tensor, edge_index: Tensor, num_nodes: int, edge_weight: Tensor | None = None
    ) -> Tensor:
        if edge_weight is None:
            return self.propagate(edge_index, x=x, size=(num_nodes, num_nodes))
        src, dst = edge_index
        total = scatter(edge_weight.unsqueeze(-1) * x[src], dst, dim=0, dim_size=num_nodes, reduce="sum")
        norm = scatter(edge_weight, dst, dim=0, dim_size=num_nodes, reduce="sum")
        return total / norm.clamp_min(1e-12).unsqueeze(-1)


class DualRoleConv(nn.Module):
    """One BLADE layer: each role aggregates the other role of the neighbours on its own side.

    ``W_s s_u + W_so m_u`` is computed as one matmul of ``[s_u | m_u]`` with ``[W_s | W_so]`` (fewer,
    larger kernels: the layer is matmul-bound on CPU).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        orientation: Orientation = "out_to_source",
        both_sides: bool = False,
    ) -> None:
        super().__init__()
        self.orientation = orientation
        self.both_sides = both_sides
        width = (3 if both_sides else 2) * in_channels
        self.source_update = nn.Linear(width, out_channels)
        self.target_update = nn.Linear(width, out_channels)
        self.mean = NeighbourMean()

    def forward(
        self, source: Tensor, target: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        n = source.size(0)
        forward_edges, backward_edges = edge_index, edge_index.flip(0)
        if self.orientation == "in_to_source":
            forward_edges, backward_edges = backward_edges, forward_edges
        # Messages flow against the edge to reach a source (u <- v), along it to reach a target (u -> v).
        from_out_neighbours = self.mean(target, backward_edges, n, edge_weight)
        from_in_neighbours = self.mean(source, forward_edges, n, edge_weight)
        source_parts, target_parts = [source, from_out_neighbours], [target, from_in_neighbours]
        if self.both_sides:
            # Extension (not in the paper): each role also sees the same role on the other side
            # (s_u from the sources citing u, t_v from the targets v cites), so a node with an empty
            # side still gets structural signal.
            source_parts.append(self.mean(source, forward_edges, n, edge_weight))
            target_parts.append(self.mean(target, backward_edges, n, edge_weight))
        new_source = self.source_update(torch.cat(source_parts, dim=-1))
        new_target = self.target_update(torch.cat(target_parts, dim=-1))
        return new_source, new_target


class BLADE(nn.Module):
    """BLADE encoder (Virinchi & Saladi, WSDM 2023): stacked :class:`DualRoleConv` layers.

    The two roles start from separate projections of the node input, so even a node with no
    neighbours has distinct source and target embeddings. Neighbourhood sampling (degree-adaptive
    or uniform) is the datamodule's job; the encoder runs on whatever subgraph it is given.

    ``input_skip`` (ours, not in the paper): add a separate linear projection of the node input to
    each role's output, ``s_u = GNN(u)_s + P_s x_u`` (same for t). Without it the node's own
    features reach the output only through the stacked layers, mixed with neighbour means that are
    zero for the many nodes with an empty out- or in-side; on Cora-ML (DirLinkBench) the encoder then
    ranks existence barely above in-degree popularity, with it it matches or beats a feature MLP.
    """

    def __init__(
        self,
        in_channels: PositiveInt,
        hidden_channels: PositiveInt = 64,
        out_channels: PositiveInt = 64,
        num_layers: PositiveInt = 2,
        dropout: DropoutRate = 0.0,
        orientation: Orientation = "out_to_source",
        both_sides: bool = False,
        input_skip: bool = False,
    ) -> None:
        super().__init__()
        # One projection to both roles' starting points (split below): one matmul instead of two.
        self.role_input = nn.Linear(in_channels, 2 * hidden_channels)
        widths = layer_widths(hidden_channels, hidden_channels, out_channels, num_layers)
        self.layers = nn.ModuleList([DualRoleConv(i, o, orientation, both_sides) for i, o in widths])
        self.input_skip = nn.Linear(in_channels, 2 * out_channels) if input_skip else None
        self.dropout = dropout

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> NodeEmbeddings:
        source, target = self.role_input(x).chunk(2, dim=-1)
        for layer in self.layers:
            source, target = self._activate(source), self._activate(target)
            source, target = layer(source, target, edge_index, edge_weight)
        if self.input_skip is not None:
            skip_source, skip_target = self.input_skip(x).chunk(2, dim=-1)
            source, target = source + skip_source, target + skip_target
        return NodeEmbeddings(source=source, target=target)

    def _activate(self, h: Tensor) -> Tensor:
        return nn.functional.dropout(torch.relu(h), p=self.dropout, training=self.training)


class DiGAEConv(MessagePassing):
    """DiGAE's propagation (Kollias et al., 2022): x_i' = sum_{j -> i} d_out(j)^-a d_in(i)^-b x_j W."""

    def __init__(self, in_channels: int, out_channels: int, alpha: float, beta: float) -> None:
        super().__init__(aggr="add")
        self.linear = nn.Linear(in_channels, out_channels)
        self.alpha, self.beta = alpha, beta

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        n = x.size(0)
        src, dst = edge_index
        out_deg = degree(src, n).clamp_min(1)
        in_deg = degree(dst, n).clamp_min(1)
        weight = out_deg[src].pow(-self.alpha) * in_deg[dst].pow(-self.beta)
        return self.propagate(edge_index, x=self.linear(x), weight=weight, size=(n, n))

    def message(self, x_j: Tensor, weight: Tensor) -> Tensor:
        return weight.unsqueeze(-1) * x_j


class DiGAE(nn.Module):
    """DiGAE encoder: s = Â t W_s and t = Âᵀ s W_t alternately, full graph, no self term, no sampling."""

    def __init__(
        self,
        in_channels: PositiveInt,
        hidden_channels: PositiveInt = 64,
        out_channels: PositiveInt = 64,
        num_layers: PositiveInt = 2,
        alpha: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5,
        beta: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5,
        dropout: DropoutRate = 0.0,
    ) -> None:
        super().__init__()
        widths = layer_widths(in_channels, hidden_channels, out_channels, num_layers)
        # Source of u gathers targets of its out-neighbours (messages v -> u on the flipped graph).
        self.source_layers = nn.ModuleList([DiGAEConv(i, o, beta, alpha) for i, o in widths])
        self.target_layers = nn.ModuleList([DiGAEConv(i, o, alpha, beta) for i, o in widths])
        self.dropout = dropout

    def forward(self, x: Tensor, edge_index: Tensor) -> NodeEmbeddings:
        source, target = x, x
        flipped = edge_index.flip(0)
        for depth, (source_layer, target_layer) in enumerate(
            zip(self.source_layers, self.target_layers, strict=True)
        ):
            source, target = source_layer(target, flipped), target_layer(source, edge_index)
            if depth < len(self.source_layers) - 1:
                source = nn.functional.dropout(torch.relu(source), p=self.dropout, training=self.training)
                target = nn.functional.dropout(torch.relu(target), p=self.dropout, training=self.training)
        return NodeEmbeddings(source=source, target=target)
