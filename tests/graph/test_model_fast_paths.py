"""Tests for the encoders' fast paths: sparse node features, sparse-adjacency aggregation and the per-graph
cache (recsci.graph.models / directed / datamodule). Each fast path must give what the plain per-edge
computation gives, gradients included."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.nn import GCNConv, SAGEConv
from torch_geometric.utils import degree, scatter, to_undirected

from recsci.graph.baselines import FeatureMLP
from recsci.graph.datamodule import LinkPredictionDataModule
from recsci.graph.directed import BLADE, DiGAE
from recsci.graph.models import GCN, GraphSAGE, LastGraphCache, ProjectFirstSAGEConv, symmetric_adjacency
from recsci.graph.sampling import NeighborSampler, UniformFanout

N, F = 60, 40


def bag_of_words(seed: int, density: float = 0.04) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(N, F, generator=g) < density).float()


@pytest.fixture(scope="module")
def edge_index() -> torch.Tensor:
    """Random directed graph with a self-loop, a parallel edge and a reciprocal pair."""
    g = torch.Generator().manual_seed(0)
    edges = torch.randint(0, N, (2, 300), generator=g)
    return torch.cat([edges, torch.tensor([[3, 3, 5, 6], [3, 4, 6, 5]]), edges[:, :1]], dim=1)


def assert_same_with_grads(model_a, model_b, run_a, run_b) -> None:
    out_a, out_b = run_a(model_a), run_b(model_b)
    torch.testing.assert_close(out_a, out_b, atol=1e-5, rtol=1e-5)
    out_a.pow(2).sum().backward()
    out_b.pow(2).sum().backward()
    for (name, p_a), p_b in zip(model_a.named_parameters(), model_b.parameters(), strict=True):
        torch.testing.assert_close(p_a.grad, p_b.grad, atol=1e-4, rtol=1e-4, msg=name)


@pytest.mark.parametrize("aggr", ["mean", "sum"])
def test_project_first_sage_equals_pyg_sage_conv(edge_index, aggr) -> None:
    x = torch.randn(N, F)
    torch.manual_seed(1)
    plain = SAGEConv(F, 8, aggr=aggr)
    fast = ProjectFirstSAGEConv(F, 8, aggr=aggr)
    fast.load_state_dict(plain.state_dict())  # same parameters, same keys
    assert_same_with_grads(plain, fast, lambda m: m(x, edge_index), lambda m: m(x, edge_index))


def reference_symmetric(model, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
    """The baseline as it was: PyG's own layers on the symmetrised edge_index, per-edge messages."""
    undirected = to_undirected(edge_index, num_nodes=N)
    h = x
    for depth, layer in enumerate(model.layers):
        if isinstance(layer, GCNConv):
            layer.normalize = layer.add_self_loops = True  # GCNConv's own normalisation and loops, per step
            h = layer(h, undirected)
        else:
            h = SAGEConv.forward(layer, h, undirected)  # aggregate, then project
        if depth < len(model.layers) - 1:
            h = torch.relu(h)
    return h


@pytest.mark.parametrize("model_cls", [GCN, GraphSAGE])
def test_symmetric_baselines_on_the_sparse_adjacency_match_per_edge_messages(edge_index, model_cls) -> None:
    x = torch.randn(N, F)
    torch.manual_seed(2)
    fast = model_cls(F, hidden_channels=16, out_channels=8, num_layers=2)
    plain = model_cls(F, hidden_channels=16, out_channels=8, num_layers=2)
    plain.load_state_dict(fast.state_dict())
    # edge_index has a self-loop: GCN must not count it twice, GraphSAGE must average it as a neighbour.
    assert_same_with_grads(
        plain, fast, lambda m: reference_symmetric(m, x, edge_index), lambda m: m(x, edge_index).source
    )


def reference_digae(model: DiGAE, x: torch.Tensor, edge_index: torch.Tensor) -> tuple:
    """DiGAE with explicit per-edge messages: x_i' = sum_{j -> i} d_out(j)^-a d_in(i)^-b x_j W."""

    def propagate(layer, h, edges, a, b):
        src, dst = edges
        weight = degree(src, N).clamp_min(1)[src].pow(-a) * degree(dst, N).clamp_min(1)[dst].pow(-b)
        return scatter(weight.unsqueeze(-1) * layer.linear(h)[src], dst, dim=0, dim_size=N, reduce="sum")

    source, target = x, x
    for depth, (s_layer, t_layer) in enumerate(zip(model.source_layers, model.target_layers, strict=True)):
        source, target = (
            propagate(s_layer, target, edge_index.flip(0), model.beta, model.alpha),
            propagate(t_layer, source, edge_index, model.alpha, model.beta),
        )
        if depth < len(model.source_layers) - 1:
            source, target = torch.relu(source), torch.relu(target)
    return source, target


def test_digae_sparse_adjacency_matches_per_edge_messages(edge_index) -> None:
    x = torch.randn(N, F)
    torch.manual_seed(3)
    fast = DiGAE(F, hidden_channels=16, out_channels=8, num_layers=2, alpha=0.3, beta=0.8)
    plain = DiGAE(F, hidden_channels=16, out_channels=8, num_layers=2, alpha=0.3, beta=0.8)
    plain.load_state_dict(fast.state_dict())

    def run_fast(m):
        emb = m(x, edge_index)
        return torch.cat([emb.source, emb.target], dim=1)

    assert_same_with_grads(
        plain, fast, lambda m: torch.cat(reference_digae(m, x, edge_index), dim=1), run_fast
    )


def test_last_graph_cache_rebuilds_only_for_a_new_graph(edge_index) -> None:
    calls = []

    def build(edges, n):
        calls.append(n)
        return symmetric_adjacency(edges, n)

    cache = LastGraphCache(build)
    first = cache(edge_index, N)
    assert cache(edge_index, N) is first and len(calls) == 1  # same tensor: reused
    assert cache(edge_index.clone(), N) is not first and len(calls) == 2  # equal values, new tensor: rebuilt
    copy = edge_index.clone()
    cache(copy, N)
    copy[0, 0] = (copy[0, 0] + 1) % N  # in-place edit bumps the version
    rebuilt = cache(copy, N)
    assert len(calls) == 4
    assert torch.equal(rebuilt.to_dense(), symmetric_adjacency(copy, N).to_dense())
    cache(copy, N + 1)
    assert calls[-1] == N + 1


def test_last_graph_cache_builds_fresh_for_inference_tensors(edge_index) -> None:
    # Lightning evaluates under inference mode, and a batch moved to the GPU there is an inference tensor:
    # it has no version counter to key on (reading it raised, failing every GPU graph run at validation).
    calls = []
    cache = LastGraphCache(lambda edges, n: calls.append(n) or symmetric_adjacency(edges, n))
    with torch.inference_mode():
        moved = edge_index.clone()
        first = cache(moved, N)
        assert cache(moved, N) is not first and len(calls) == 2
        torch.testing.assert_close(first.to_dense(), symmetric_adjacency(edge_index, N).to_dense())
    assert cache(edge_index, N) is cache(edge_index, N) and len(calls) == 3  # ordinary tensors still cached


class FixedGraph:
    def __init__(self, x: torch.Tensor, edge_index: torch.Tensor) -> None:
        self.data = Data(x=x, edge_index=edge_index, num_nodes=x.size(0))

    def load(self) -> Data:
        return self.data


def directed_graph_without_loops(edge_index: torch.Tensor) -> torch.Tensor:
    keep = edge_index[0] != edge_index[1]
    return torch.unique(edge_index[:, keep], dim=1)


@pytest.mark.parametrize(
    ("density", "setting", "expect_sparse"),
    [
        (0.04, None, True),  # bag of words below the threshold: automatic
        (0.40, None, False),  # dense enough that sparse matmuls would be slower
        (0.40, True, True),  # forced either way
        (0.04, False, False),
    ],
)
def test_datamodule_stores_sparse_features_when_sparse_enough(
    edge_index, density, setting, expect_sparse
) -> None:
    x = bag_of_words(4, density)
    dm = LinkPredictionDataModule(
        FixedGraph(x, directed_graph_without_loops(edge_index)), batch_size=64, sparse_features=setting
    )
    dm.setup()
    assert (dm.x.layout == torch.sparse_csr) is expect_sparse
    assert torch.equal(dm.x.to_dense() if expect_sparse else dm.x, x)


@pytest.mark.parametrize("sampled", [False, True])
@pytest.mark.parametrize("model_name", ["blade", "digae", "gcn", "graphsage", "mlp"])
def test_sparse_features_give_the_dense_results(edge_index, sampled, model_name) -> None:
    x = bag_of_words(5)
    graph = directed_graph_without_loops(edge_index)
    batches = {}
    for sparse in (False, True):
        sampler = NeighborSampler(UniformFanout([4, 3]), 2) if sampled else None
        dm = LinkPredictionDataModule(
            FixedGraph(x, graph), sampler=sampler, batch_size=64, sparse_features=sparse
        )
        dm.setup()
        torch.manual_seed(6)  # same shuffles, negatives and neighbourhoods for both
        batches[sparse] = next(iter(dm.train_dataloader()))
    dense_batch, sparse_batch = batches[False], batches[True]
    assert sparse_batch.x.layout == torch.sparse_csr
    assert torch.equal(sparse_batch.x.to_dense(), dense_batch.x)
    assert torch.equal(sparse_batch.edge_index, dense_batch.edge_index)

    def make():
        torch.manual_seed(7)
        return {
            "blade": lambda: BLADE(F, 16, 8, num_layers=2, input_skip=True),
            "digae": lambda: DiGAE(F, 16, 8),
            "gcn": lambda: GCN(F, 16, 8),
            "graphsage": lambda: GraphSAGE(F, 16, 8),
            "mlp": lambda: FeatureMLP(F, 16, 8),
        }[model_name]()

    def embed(batch):
        def run(model):
            emb = model(batch.x, batch.edge_index)
            return torch.cat([emb.source, emb.target], dim=1)

        return run

    assert_same_with_grads(make(), make(), embed(dense_batch), embed(sparse_batch))


def reference_blade(model: BLADE, x: torch.Tensor, edge_index: torch.Tensor, weight: torch.Tensor | None):
    """BLADE with explicit per-edge messages: weighted scatter means along and against the edges."""
    w = torch.ones(edge_index.size(1)) if weight is None else weight

    def mean(h, edges):
        src, dst = edges
        total = scatter(w.unsqueeze(-1) * h[src], dst, dim=0, dim_size=N, reduce="sum")
        return total / scatter(w, dst, dim=0, dim_size=N, reduce="sum").clamp_min(1e-12).unsqueeze(-1)

    along, against = edge_index, edge_index.flip(0)
    if model.orientation == "in_to_source":
        along, against = against, along
    source, target = model.role_input(x).chunk(2, dim=-1)
    for layer in model.layers:
        source, target = torch.relu(source), torch.relu(target)
        source_parts = [source, mean(target, against)]
        target_parts = [target, mean(source, along)]
        if layer.both_sides:
            source_parts.append(mean(source, along))
            target_parts.append(mean(target, against))
        source, target = (
            layer.source_update(torch.cat(source_parts, dim=-1)),
            layer.target_update(torch.cat(target_parts, dim=-1)),
        )
    skip_source, skip_target = model.input_skip(x).chunk(2, dim=-1)
    return torch.cat([source + skip_source, target + skip_target], dim=1)


@pytest.mark.parametrize("orientation", ["out_to_source", "in_to_source"])
@pytest.mark.parametrize("both_sides", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_blade_neighbourhood_matrices_match_per_edge_messages(edge_index, orientation, both_sides, weighted):
    x = torch.randn(N, F)
    weight = torch.rand(edge_index.size(1), generator=torch.Generator().manual_seed(8)) if weighted else None
    torch.manual_seed(9)
    kwargs = dict(num_layers=2, orientation=orientation, both_sides=both_sides, input_skip=True)
    fast, plain = BLADE(F, 16, 8, **kwargs), BLADE(F, 16, 8, **kwargs)
    plain.load_state_dict(fast.state_dict())

    def run_fast(m):
        emb = m(x, edge_index, weight)
        return torch.cat([emb.source, emb.target], dim=1)

    assert_same_with_grads(plain, fast, lambda m: reference_blade(m, x, edge_index, weight), run_fast)


def test_a_pickled_encoder_starts_with_an_empty_graph_cache(edge_index) -> None:
    import pickle

    model = GCN(F, 16, 8)
    x = torch.randn(N, F)
    expected = model(x, edge_index).source
    assert model._adjacency._value is not None
    restored = pickle.loads(pickle.dumps(model))  # as DDP spawn sends the module to its workers
    assert restored._adjacency._value is None
    torch.testing.assert_close(restored(x, edge_index).source, expected)
