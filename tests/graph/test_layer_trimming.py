"""Tests for training batches: how their edges are served, and trimming a sampled batch's layers to the
rows they must compute (``layer_blocks``).

On a sampled subgraph only the seeds' embeddings are scored, so BLADE, GraphSAGE and GCN compute their
last layer for the seeds only and each earlier layer for the rows the next one reads. The seeds' outputs
and every gradient must be those of the untrimmed computation."""

from __future__ import annotations

import pytest
import torch

from recsci.graph.datamodule import LinkPredictionDataModule
from recsci.graph.directed import BLADE, RoleNeighbourhoods
from recsci.graph.models import GCN, GraphSAGE, layer_blocks, leading_rows, symmetric_adjacency
from recsci.graph.module import LinkPredictionModule
from recsci.graph.sampling import DegreePowerFanout, DirectedCSR, NeighborSampler, UniformFanout, WalkFill
from tests.graph.test_model_fast_paths import FixedGraph, assert_same_with_grads

N, F = 400, 24


@pytest.fixture(scope="module")
def graph_edges() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    edges = torch.randint(0, N, (2, 2400), generator=g)
    edges = edges[:, edges[0] != edges[1]]
    return torch.unique(edges, dim=1)


def sample(graph_edges: torch.Tensor, sampler: NeighborSampler, num_seeds: int = 24):
    graph = DirectedCSR.from_edge_index(graph_edges, N)
    seeds = torch.randperm(N, generator=torch.Generator().manual_seed(1))[:num_seeds]
    return sampler.sample(graph, seeds, torch.Generator().manual_seed(2))


SAMPLERS = {
    "uniform-2-hops-both": NeighborSampler(UniformFanout([3, 2]), 2),
    "adaptive-2-hops-walk-fill": NeighborSampler(
        DegreePowerFanout(c=6.0, gamma=-0.5, k_min=2, k_max=6), 2, walk_fill=WalkFill(3, 2)
    ),
    "uniform-3-hops-in": NeighborSampler(UniformFanout([3, 2, 2]), 3, direction="in"),
    "uniform-1-hop-out-with-replacement": NeighborSampler(
        UniformFanout([4]), 1, direction="out", replace=True
    ),
}


@pytest.mark.parametrize("sampler_name", list(SAMPLERS))
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_blocks_keep_whole_rows_and_read_only_earlier_rows(graph_edges, sampler_name, num_layers) -> None:
    sub = sample(graph_edges, SAMPLERS[sampler_name])
    n = sub.num_nodes
    matrices = (symmetric_adjacency(sub.edge_index, n),)
    input_rows, blocks = layer_blocks(matrices, num_layers, sub.num_seeds)
    dense = matrices[0].to_dense()
    assert blocks[-1][0].size(0) == sub.num_seeds
    rows_in = input_rows
    for (block,) in blocks:
        rows_out, cols = block.shape
        assert cols == rows_in and rows_out <= rows_in
        # Whole rows: nothing a kept row reads lies beyond the block's columns.
        torch.testing.assert_close(block.to_dense(), dense[:rows_out, :cols])
        assert dense[:rows_out, cols:].abs().sum() == 0
        rows_in = rows_out
    if sampler_name == "uniform-2-hops-both" and num_layers == 1:
        assert input_rows < n  # the second hop's nodes feed nothing a one-layer encoder outputs


def test_without_a_seed_count_every_layer_reads_the_whole_matrices(graph_edges) -> None:
    matrix = symmetric_adjacency(graph_edges, N)
    input_rows, blocks = layer_blocks((matrix,), 2, None)
    assert input_rows == N and all(block[0] is matrix for block in blocks)


def test_leading_rows_of_a_sparse_feature_matrix() -> None:
    x = (torch.rand(30, 7, generator=torch.Generator().manual_seed(3)) < 0.2).float()
    for rows in (0, 5, 30):
        torch.testing.assert_close(leading_rows(x.to_sparse_csr(), rows).to_dense(), x[:rows])


ENCODERS = {
    "blade-1-layer": lambda: BLADE(F, 16, 8, num_layers=1, input_skip=True),
    "blade-2-layers-both-sides": lambda: BLADE(F, 16, 8, num_layers=2, both_sides=True, input_skip=True),
    "blade-in-to-source": lambda: BLADE(F, 16, 8, num_layers=2, orientation="in_to_source"),
    "graphsage-2-layers": lambda: GraphSAGE(F, 16, 8, num_layers=2),
    "gcn-2-layers": lambda: GCN(F, 16, 8, num_layers=2),
}


@pytest.mark.parametrize("sparse_features", [False, True])
@pytest.mark.parametrize("sampler_name", list(SAMPLERS))
@pytest.mark.parametrize("encoder_name", list(ENCODERS))
def test_trimmed_encoders_give_the_seeds_the_untrimmed_embeddings_and_gradients(
    graph_edges, encoder_name, sampler_name, sparse_features
) -> None:
    sub = sample(graph_edges, SAMPLERS[sampler_name])
    x = (torch.rand(sub.num_nodes, F, generator=torch.Generator().manual_seed(4)) < 0.1).float()
    x = x.to_sparse_csr() if sparse_features else x
    weight = sub.edge_weight if encoder_name.startswith("blade") and sub.edge_weight is not None else None
    extra = (weight,) if weight is not None else ()

    def make():
        torch.manual_seed(5)
        return ENCODERS[encoder_name]()

    def embed(num_outputs):
        def run(model):
            emb = model(x, sub.edge_index, *extra, num_outputs=num_outputs)
            return torch.cat([emb.source, emb.target], dim=1)[: sub.num_seeds]

        return run

    trimmed = make()
    out = trimmed(x, sub.edge_index, *extra, num_outputs=sub.num_seeds)
    assert out.source.size(0) == sub.num_seeds  # only the seeds were computed
    assert_same_with_grads(make(), trimmed, embed(None), embed(sub.num_seeds))


def test_role_neighbourhoods_cut_to_blocks_keep_their_roles(graph_edges) -> None:
    sub = sample(graph_edges, SAMPLERS["uniform-2-hops-both"])
    hoods = RoleNeighbourhoods.build(sub.edge_index, sub.num_nodes)
    _, [(source_side, target_side)] = layer_blocks((hoods.source_side, hoods.target_side), 1, sub.num_seeds)
    seeds = sub.num_seeds
    cols = source_side.size(1)
    torch.testing.assert_close(source_side.to_dense(), hoods.source_side.to_dense()[:seeds, :cols])
    torch.testing.assert_close(target_side.to_dense(), hoods.target_side.to_dense()[:seeds, :cols])


@pytest.mark.parametrize("model_name", ["blade", "graphsage"])
def test_a_sampled_training_step_trims_to_the_batch_seeds_and_keeps_its_loss(graph_edges, model_name) -> None:
    x = torch.randn(N, F)
    sampler = NeighborSampler(UniformFanout([3, 2]), 2)
    dm = LinkPredictionDataModule(FixedGraph(x, graph_edges), sampler=sampler, batch_size=32)
    dm.setup()
    torch.manual_seed(6)
    batch = next(iter(dm.train_dataloader()))
    assert batch.num_seeds is not None and batch.num_seeds < batch.node_ids.numel()
    pairs = torch.cat([batch.pos, batch.neg, batch.reverse], dim=1)
    assert int(pairs.max()) < batch.num_seeds  # what makes trimming to the seeds safe

    encoder = {"blade": lambda **kw: BLADE(**kw, hidden_channels=16, out_channels=8, num_layers=2),
               "graphsage": lambda **kw: GraphSAGE(**kw, hidden_channels=16, out_channels=8)}[model_name]  # fmt: skip
    torch.manual_seed(7)
    module = LinkPredictionModule(encoder, reverse_negative_weight=0.5)
    module.encoder = encoder(in_channels=F)
    module.log = lambda *args, **kwargs: None  # no trainer attached
    seen = []
    module.encoder.register_forward_hook(lambda _m, _args, out: seen.append(out.source.size(0)))
    loss = module.training_step(batch, 0)
    untrimmed = module.training_step(type(batch)(**{**vars(batch), "num_seeds": None}), 0)
    assert seen == [batch.num_seeds, batch.node_ids.numel()]
    torch.testing.assert_close(loss, untrimmed)


def test_training_batches_are_shuffled_positions_also_under_a_distributed_sampler(graph_edges) -> None:
    from lightning.pytorch.utilities.data import _update_dataloader
    from torch.utils.data import DataLoader, DistributedSampler

    dm = LinkPredictionDataModule(FixedGraph(torch.randn(N, F), graph_edges), batch_size=32)
    dm.setup()
    num_train = dm.split.train_pos.size(1)
    positions = dm.train_dataloader()
    positions.collate_fn = lambda batch: batch  # the edge positions each batch would train on
    torch.manual_seed(8)
    batches = list(positions)
    torch.manual_seed(8)
    plain = list(DataLoader(torch.arange(num_train), batch_size=32, shuffle=True))
    assert all(torch.equal(ours, theirs) for ours, theirs in zip(batches, plain, strict=True))
    # DDP: Lightning swaps in a DistributedSampler and keeps the batch size; each rank gets half the edges.
    ranks = [
        list(_update_dataloader(positions, DistributedSampler(positions.dataset, num_replicas=2, rank=rank)))
        for rank in (0, 1)
    ]
    assert all(batch.shape == (32,) for batch in ranks[0][:-1])
    seen = torch.cat([torch.cat(batches) for batches in ranks])
    assert torch.equal(torch.unique(seen), torch.arange(num_train))
