"""The same runs on a CUDA device: every model of the three problems trains and evaluates on `trainer=gpu`,
with metrics close to the CPU run of the same seed, and the sampler draws on device tensors.

Skipped where no GPU is visible (CI and the development boxes are CPU-only); run them with
``pytest -m gpu`` on a machine with one. Tolerances are loose on purpose: GPU kernels (scatter, cuBLAS)
round differently from the CPU ones, so metrics drift a little, but a device mix-up (a tensor left on the
CPU, a model evaluated before it moved) fails outright or moves metrics by far more.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from recsci.core.run import run
from recsci.graph.sampling import DegreePowerFanout, DirectedCSR, NeighborSampler, UniformFanout, WalkFill
from tests.conftest import CONFIG_DIR, FAST, compose_config
from tests.delayed.test_runs import SMALL as DELAYED_CPU_SMALL
from tests.graph.test_layer_trimming import ENCODERS, SAMPLERS
from tests.uncertainty.test_end_to_end import FAST as UNCERTAINTY_FAST

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none visible here)"),
]

GRAPH_EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment" / "graph").glob("synthetic_*.yaml"))
DELAYED_METHODS = sorted(p.stem for p in (CONFIG_DIR / "model").glob("delayed_*.yaml"))
UNCERTAINTY_MODELS = sorted(p.stem for p in (CONFIG_DIR / "model").glob("uncertainty_*.yaml"))

# The short runs of the CPU end-to-end tests, without loggers (they would only slow the comparison).
DELAYED_SMALL = [*DELAYED_CPU_SMALL, "protocol.references=[pretrained]"]
UNCERTAINTY_SMALL = [*UNCERTAINTY_FAST, "logger=none", "trainer.enable_progress_bar=false"]


def run_on(tmp_path: Path, device: str, overrides: list[str]) -> dict:
    """Run once with ``trainer=gpu`` (device "gpu") or the default CPU trainer; returns metrics.json."""
    extra = ["trainer=gpu"] if device == "gpu" else []
    run(compose_config([*overrides, *extra], output_dir=tmp_path / device))
    results = json.loads((tmp_path / device / "metrics.json").read_text())
    assert results["status"] == "completed", results
    return results["metrics"]


def one_random_stream(overrides: list[str]) -> list[str]:
    """The overrides with the graph encoder's dropout off, for a same-seed comparison of the two devices.

    Negatives and sampled neighbourhoods are drawn on the CPU from the global generator. On the CPU,
    dropout draws from that generator too, so every later batch differs from the GPU run's (whose dropout
    draws from the CUDA generator): with BLADE's dropout 0.2 the synthetic runs drifted 0.05-0.15 val AUC
    apart on an H200 (2026-11-28) from random streams alone. Dropout on the GPU stays covered by
    test_blade_trains_on_gpu_from_sampling_workers, which compares at a wider tolerance.
    """
    if OmegaConf.select(compose_config(overrides), "model.encoder.dropout", default=0):
        return [*overrides, "model.encoder.dropout=0"]
    return overrides


def assert_close(gpu: dict, cpu: dict, keys: list[str], tol: float) -> None:
    for key in keys:
        assert key in gpu, f"{key} missing from the GPU run"
        assert abs(gpu[key] - cpu[key]) <= tol, f"{key}: GPU {gpu[key]:.4f} vs CPU {cpu[key]:.4f}"


@pytest.mark.parametrize("replace", [False, True])
def test_sampler_draws_on_device_tensors(replace: bool) -> None:
    g = torch.Generator().manual_seed(0)
    num_nodes = 2000
    src = torch.multinomial(torch.rand(num_nodes, generator=g).pow(-1.2), 30_000, True, generator=g)
    dst = torch.multinomial(torch.rand(num_nodes, generator=g).pow(-1.2), 30_000, True, generator=g)
    edge_index = torch.stack([src, dst]).cuda()
    csr = DirectedCSR.from_edge_index(edge_index, num_nodes)
    assert csr.device.type == "cuda"
    schedule = DegreePowerFanout(c=12, gamma=-0.5, k_min=2, k_max=9)
    seeds = torch.randperm(num_nodes, generator=g)[:500].cuda()
    cuda_gen = torch.Generator(device="cuda").manual_seed(1)
    sub = NeighborSampler(schedule, 1, "in", replace).sample(csr, seeds, cuda_gen)
    assert sub.edge_index.is_cuda and sub.nodes.is_cuda
    # Every sampled edge is the original edge its id names, and each seed gets its exact fan-out.
    assert torch.equal(sub.nodes[sub.edge_index], edge_index[:, sub.edge_ids])
    deg = csr.in_degree[seeds]
    k = schedule(0, deg)
    counts = torch.bincount(sub.edge_index[1], minlength=seeds.numel())[: seeds.numel()]
    expected = torch.minimum(k, deg) if not replace else torch.where(deg > 0, k, 0)
    assert torch.equal(counts, expected)
    if not replace:
        assert sub.edge_ids.unique().numel() == sub.num_edges
    # Two hops, both directions, reproducible from the device generator.
    two_hop = NeighborSampler(UniformFanout([5, 3]), 2, "both", replace)
    a = two_hop.sample(csr, seeds, torch.Generator(device="cuda").manual_seed(7))
    b = two_hop.sample(csr, seeds, torch.Generator(device="cuda").manual_seed(7))
    assert torch.equal(a.edge_ids, b.edge_ids) and torch.equal(a.edge_index, b.edge_index)


@pytest.mark.parametrize("side", ["in", "out"])
def test_walk_fill_on_device_tensors_keeps_what_it_keeps_on_cpu(side: str) -> None:
    # Different random streams on the two devices: compare what the fill keeps in distribution (its
    # total weight and count per call) and check each kept pair (never self or a direct neighbour).
    g = torch.Generator().manual_seed(0)
    num_nodes = 3000
    src = torch.multinomial(torch.rand(num_nodes, generator=g).pow(-1.2), 20_000, True, generator=g)
    dst = torch.multinomial(torch.rand(num_nodes, generator=g).pow(-1.2), 20_000, True, generator=g)
    edge_index = torch.stack([src, dst])
    nodes = torch.randperm(num_nodes, generator=g)[:2000]
    kept = {}
    for device in ("cpu", "cuda"):
        csr = DirectedCSR.from_edge_index(edge_index.to(device), num_nodes)
        budget = torch.full((nodes.numel(),), 12, device=device)
        row, other, weight = WalkFill(3, 4).fill(
            csr, nodes.to(device), side, budget, torch.Generator(device=device).manual_seed(1)
        )
        assert row.device.type == device
        center = nodes.to(device)[row]
        source, target = (center, other) if side == "out" else (other, center)
        assert not bool(csr.has_edges(source, target).any()) and not bool((center == other).any())
        kept[device] = (row.numel(), float(weight.sum()))
    assert abs(kept["cuda"][0] - kept["cpu"][0]) <= 0.1 * kept["cpu"][0]
    assert abs(kept["cuda"][1] - kept["cpu"][1]) <= 0.1 * kept["cpu"][1]


@pytest.mark.parametrize("experiment", GRAPH_EXPERIMENTS)
def test_graph_models_train_on_gpu_like_on_cpu(experiment: str, tmp_path: Path) -> None:
    overrides = one_random_stream([*FAST, f"experiment=graph/{experiment}", "logger=none"])
    gpu, cpu = run_on(tmp_path, "gpu", overrides), run_on(tmp_path, "cpu", overrides)
    assert_close(gpu, cpu, ["val/auc", "test/auc", "test/direction_auc", "test/ap"], tol=0.03)


@pytest.mark.parametrize("model", ["blade", "digae", "gcn", "graphsage", "mlp"])
def test_sparse_features_and_adjacencies_train_on_gpu_like_on_cpu(model: str, tmp_path: Path) -> None:
    # Sparse CSR features (forced: the synthetic ones are dense) and the sparse-adjacency aggregation on
    # CUDA, where torch has no reduce kernel for sparse matmuls (recsci.graph.models.sparse_matmul).
    sampler = "adaptive" if model == "blade" else "full_batch"
    overrides = [*FAST, f"model={model}", f"sampler={sampler}", "data.sparse_features=true", "logger=none"]
    overrides = one_random_stream(overrides)
    gpu, cpu = run_on(tmp_path, "gpu", overrides), run_on(tmp_path, "cpu", overrides)
    assert_close(gpu, cpu, ["val/auc", "test/auc", "test/direction_auc", "test/ap"], tol=0.03)


@pytest.mark.parametrize("sparse_features", [False, True])
def test_blade_trains_on_gpu_from_sampling_workers(sparse_features: bool, tmp_path: Path) -> None:
    # Batches built in DataLoader workers (CPU), CSR features rebuilt from their parts, then moved to
    # the GPU. Other random streams than the CPU run without workers, hence the wider tolerance.
    overrides = [*FAST, "model=blade", "sampler=adaptive", "logger=none",
                 f"data.sparse_features={str(sparse_features).lower()}"]  # fmt: skip
    gpu = run_on(tmp_path, "gpu", [*overrides, "data.num_workers=2"])
    cpu = run_on(tmp_path, "cpu", overrides)
    assert_close(gpu, cpu, ["val/auc", "test/auc", "test/direction_auc"], tol=0.05)


@pytest.mark.parametrize("sparse_features", [False, True])
@pytest.mark.parametrize("sampler_name", ["uniform-2-hops-both", "adaptive-2-hops-walk-fill"])
@pytest.mark.parametrize("encoder_name", list(ENCODERS))
def test_trimmed_encoders_on_gpu_give_the_seeds_their_cpu_embeddings(
    encoder_name: str, sampler_name: str, sparse_features: bool
) -> None:
    # Layer trimming cuts CSR blocks (`layer_blocks`, `leading_rows`) and runs the sparse products on the
    # cut blocks: on CUDA the seeds' embeddings must be those of the untrimmed CPU forward pass.
    g = torch.Generator().manual_seed(0)
    num_nodes, channels = 400, 24
    edges = torch.randint(0, num_nodes, (2, 2400), generator=g)
    edges = torch.unique(edges[:, edges[0] != edges[1]], dim=1)
    graph = DirectedCSR.from_edge_index(edges, num_nodes)
    seeds = torch.randperm(num_nodes, generator=g)[:24]
    sub = SAMPLERS[sampler_name].sample(graph, seeds, torch.Generator().manual_seed(2))
    x = (torch.rand(sub.num_nodes, channels, generator=g) < 0.1).float()
    weight = sub.edge_weight if encoder_name.startswith("blade") else None
    torch.manual_seed(5)
    encoder = ENCODERS[encoder_name]().eval()

    def seed_embeddings(device: str, num_outputs: int | None) -> torch.Tensor:
        model = encoder.to(device)
        features = x.to(device).to_sparse_csr() if sparse_features else x.to(device)
        extra = () if weight is None else (weight.to(device),)
        emb = model(features, sub.edge_index.to(device), *extra, num_outputs=num_outputs)
        return torch.cat([emb.source, emb.target], dim=1)[: sub.num_seeds].cpu()

    with torch.no_grad():
        reference = seed_embeddings("cpu", None)
        trimmed = seed_embeddings("cuda", sub.num_seeds)
    assert trimmed.shape == reference.shape
    torch.testing.assert_close(trimmed, reference, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("model", UNCERTAINTY_MODELS)
def test_uncertainty_estimators_train_on_gpu_like_on_cpu(model: str, tmp_path: Path) -> None:
    extra = {"uncertainty_mc_dropout": ["model.mc_samples=5"], "uncertainty_ensemble": ["model.n_members=2"]}
    overrides = [*UNCERTAINTY_SMALL, f"model={model}", *extra.get(model, [])]
    gpu, cpu = run_on(tmp_path, "gpu", overrides), run_on(tmp_path, "cpu", overrides)
    assert_close(gpu, cpu, ["test/auc"], tol=0.03)


@pytest.mark.parametrize("model", DELAYED_METHODS)
def test_delayed_methods_stream_on_gpu_like_on_cpu(model: str, tmp_path: Path) -> None:
    overrides = [*DELAYED_SMALL, f"model={model}"]
    gpu, cpu = run_on(tmp_path, "gpu", overrides), run_on(tmp_path, "cpu", overrides)
    assert_close(gpu, cpu, ["val/auc", "test/auc", "test/nll"], tol=0.02)
