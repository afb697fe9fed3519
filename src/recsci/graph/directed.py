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

from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import Tensor, nn
from torch_geometric.utils import degree, scatter

from recsci.graph.models import (
    DropoutRate,
    LastGraphCache,
    NodeEmbeddings,
    PositiveInt,
    aggregation_matrix,
    layer_blocks,
    layer_widths,
    leading_rows,
    sparse_matmul,
)

Orientation = Literal["out_to_source", "in_to_source"]


def neighbour_mean_matrix(edge_index: Tensor, num_nodes: int, edge_weight: Tensor | None = None) -> Tensor:
    """M[i, j] = w_ji / sum_{k -> i} w_ki for every edge j -> i, as a sparse CSR [N, N] matrix.

    ``M @ x`` is the (weighted) mean of each node's in-neighbours' rows, zero for a node without any.
    Weights are 1 for real edges and the visit share for walk-filled virtual neighbours; repeated edges
    count once per copy. One sparse matmul instead of a gather and scatter of per-edge messages.
    """
    dst = edge_index[1]
    weight = torch.ones(dst.numel(), device=dst.device) if edge_weight is None else edge_weight.float()
    total = scatter(weight, dst, dim=0, dim_size=num_nodes, reduce="sum")
    return aggregation_matrix(edge_index, num_nodes, weight / total[dst])


@dataclass
class RoleNeighbourhoods:
    """The two neighbourhood means one BLADE layer reads, as :func:`neighbour_mean_matrix` matrices.

    ``source_side @ h`` averages, for each node u, ``h`` over the neighbours its source role reads
    (out-neighbours with orientation ``"out_to_source"``); ``target_side`` over those its target
    role reads (in-neighbours).
    """

    source_side: Tensor
    target_side: Tensor

    @classmethod
    def build(
        cls,
        edge_index: Tensor,
        num_nodes: int,
        edge_weight: Tensor | None = None,
        orientation: Orientation = "out_to_source",
    ) -> RoleNeighbourhoods:
        # Messages flow against the edge to reach a source (u <- v), along it to reach a target (u -> v).
        out_mean = neighbour_mean_matrix(edge_index.flip(0), num_nodes, edge_weight)
        in_mean = neighbour_mean_matrix(edge_index, num_nodes, edge_weight)
        if orientation == "in_to_source":
            out_mean, in_mean = in_mean, out_mean
        return cls(source_side=out_mean, target_side=in_mean)


class DualRoleConv(nn.Module):
    """One BLADE layer: each role aggregates the other role of the neighbours on its own side.

    ``W_s s_u + W_so m_u`` is computed as one matmul of ``[s_u | m_u]`` with ``[W_s | W_so]`` (fewer,
    larger kernels: the layer is matmul-bound on CPU).
    """

    def __init__(self, in_channels: int, out_channels: int, both_sides: bool = False) -> None:
        super().__init__()
        self.both_sides = both_sides
        width = (3 if both_sides else 2) * in_channels
        self.source_update = nn.Linear(width, out_channels)
        self.target_update = nn.Linear(width, out_channels)

    def forward(
        self, source: Tensor, target: Tensor, neighbourhoods: RoleNeighbourhoods
    ) -> tuple[Tensor, Tensor]:
        source_side, target_side = neighbourhoods.source_side, neighbourhoods.target_side
        # The neighbourhoods may cover only the first rows (a trimmed layer, see layer_blocks).
        rows = source_side.size(0)
        source_parts = [source[:rows], sparse_matmul(source_side, target)]
        target_parts = [target[:rows], sparse_matmul(target_side, source)]
        if self.both_sides:
            # Extension (not in the paper): each role also sees the same role on the other side
            # (s_u from the sources citing u, t_v from the targets v cites), so a node with an empty
            # side still gets structural signal.
            source_parts.append(sparse_matmul(target_side, source))
            target_parts.append(sparse_matmul(source_side, target))
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
        self.layers = nn.ModuleList([DualRoleConv(i, o, both_sides) for i, o in widths])
        self.input_skip = nn.Linear(in_channels, 2 * out_channels) if input_skip else None
        self.dropout = dropout
        self.orientation = orientation
        # Evaluation (and full-batch training) passes the same training graph each time: build its
        # neighbourhood matrices once. Sampled subgraphs, with or without walk weights, are built per batch.
        self._neighbourhoods = LastGraphCache(self._build_neighbourhoods)

    def _build_neighbourhoods(self, edge_index: Tensor, num_nodes: int) -> RoleNeighbourhoods:
        return RoleNeighbourhoods.build(edge_index, num_nodes, orientation=self.orientation)

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor | None = None,
        num_outputs: int | None = None,
    ) -> NodeEmbeddings:
        """Both roles' embeddings of every node, or of the first ``num_outputs`` only (a sampled batch's
        seeds: each layer then computes only the rows the next one reads)."""
        num_nodes = x.size(0)
        if edge_weight is None:
            neighbourhoods = self._neighbourhoods(edge_index, num_nodes)
        else:
            neighbourhoods = RoleNeighbourhoods.build(edge_index, num_nodes, edge_weight, self.orientation)
        matrices = (neighbourhoods.source_side, neighbourhoods.target_side)
        input_rows, blocks = layer_blocks(matrices, len(self.layers), num_outputs)
        source, target = self.role_input(leading_rows(x, input_rows)).chunk(2, dim=-1)
        for layer, block in zip(self.layers, blocks, strict=True):
            source, target = self._activate(source), self._activate(target)
            source, target = layer(source, target, RoleNeighbourhoods(*block))
        if self.input_skip is not None:
            skip_source, skip_target = self.input_skip(leading_rows(x, source.size(0))).chunk(2, dim=-1)
            source, target = source + skip_source, target + skip_target
        return NodeEmbeddings(source=source, target=target)

    def _activate(self, h: Tensor) -> Tensor:
        return nn.functional.dropout(torch.relu(h), p=self.dropout, training=self.training)


class DiGAEConv(nn.Module):
    """DiGAE's propagation (Kollias et al., 2022): X' = Â X W, Â[i, j] = d_out(j)^-a d_in(i)^-b for j -> i.

    Â comes from :meth:`normalised_adjacency` as a sparse matrix, so the sum over in-neighbours is one
    sparse matmul (squirrel, 174 k edges, 64 wide: ~10x faster than per-edge messages).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_channels, out_channels)

    @staticmethod
    def normalised_adjacency(edge_index: Tensor, num_nodes: int, alpha: float, beta: float) -> Tensor:
        """Â as a sparse CSR [N, N] matrix, row i = target of the edges j -> i."""
        src, dst = edge_index
        out_deg = degree(src, num_nodes).clamp_min(1)
        in_deg = degree(dst, num_nodes).clamp_min(1)
        weight = out_deg[src].pow(-alpha) * in_deg[dst].pow(-beta)
        return aggregation_matrix(edge_index, num_nodes, weight)

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        return sparse_matmul(adjacency, self.linear(x))


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
        self.source_layers = nn.ModuleList([DiGAEConv(i, o) for i, o in widths])
        self.target_layers = nn.ModuleList([DiGAEConv(i, o) for i, o in widths])
        self.alpha, self.beta = alpha, beta
        self.dropout = dropout
        self._adjacencies = LastGraphCache(self._normalised_adjacencies)

    def _normalised_adjacencies(self, edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
        # Source of u gathers targets of its out-neighbours: messages v -> u on the flipped graph, whose
        # out-degree is the original in-degree, hence the swapped exponents.
        flipped = edge_index.flip(0)
        to_source = DiGAEConv.normalised_adjacency(flipped, num_nodes, self.beta, self.alpha)
        to_target = DiGAEConv.normalised_adjacency(edge_index, num_nodes, self.alpha, self.beta)
        return to_source, to_target

    def forward(self, x: Tensor, edge_index: Tensor) -> NodeEmbeddings:
        to_source, to_target = self._adjacencies(edge_index, x.size(0))
        source, target = x, x
        for depth, (source_layer, target_layer) in enumerate(
            zip(self.source_layers, self.target_layers, strict=True)
        ):
            source, target = source_layer(target, to_source), target_layer(source, to_target)
            if depth < len(self.source_layers) - 1:
                source = nn.functional.dropout(torch.relu(source), p=self.dropout, training=self.training)
                target = nn.functional.dropout(torch.relu(target), p=self.dropout, training=self.training)
        return NodeEmbeddings(source=source, target=target)
