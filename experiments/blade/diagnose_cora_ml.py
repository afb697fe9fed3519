"""Fast validation-only loop for BLADE and baselines on one Cora-ML DirLinkBench split (no Lightning).

Used to diagnose why BLADE ranked existence near popularity (experiments/blade/cora_ml.md, "Diagnosis").
Trains with the datamodule's own batches (full batch or a `conf/sampler` sampler) and the module's loss
(`recsci.graph.module.link_loss`), evaluates
validation existence and direction metrics every ``--every`` epochs, and prints the epoch with the best
validation MRR, the epoch with the best validation Hits@100, and the last epoch. Never touches test.

    RECSCI_DATA=../shared/data python experiments/blade/diagnose_cora_ml.py --model blade --reverse-weight 0.1 \
        --encoder-kwargs '{"input_skip": true}' --sampler adaptive
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from recsci.cli import config_dir
from recsci.graph.baselines import FeatureMLP
from recsci.graph.datamodule import LinkPredictionDataModule
from recsci.graph.datasets import DirLinkBenchGraph
from recsci.graph.directed import BLADE, DiGAE
from recsci.graph.edge_set import EdgeSet
from recsci.graph.evaluate import direction_metrics, existence_metrics
from recsci.graph.models import NodeEmbeddings
from recsci.graph.module import link_loss
from recsci.graph.sampling import NeighborSampler
from recsci.graph.splits import DirLinkBenchSplit


def make_sampler(name: str) -> NeighborSampler | None:
    """The project's own ``sampler=<name>`` config (conf/sampler/<name>.yaml); ``none``: full batch."""
    if name == "none":
        return None
    return instantiate(OmegaConf.load(Path(config_dir()) / "sampler" / f"{name}.yaml"))


def make_encoder(args: argparse.Namespace, in_channels: int) -> torch.nn.Module:
    extra = json.loads(args.encoder_kwargs)
    width, depth = args.hidden, args.layers
    if args.model == "blade":
        return BLADE(in_channels, width, width, depth, args.dropout, **extra)
    if args.model == "digae":
        return DiGAE(in_channels, width, width, depth, dropout=args.dropout, **extra)
    return FeatureMLP(in_channels, width, width, args.dropout)


def score(embeddings: NodeEmbeddings, pairs: torch.Tensor) -> torch.Tensor:
    return (embeddings.source[pairs[0]] * embeddings.target[pairs[1]]).sum(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["blade", "digae", "mlp"], default="blade")
    parser.add_argument("--encoder-kwargs", default="{}", help="JSON of extra encoder arguments")
    parser.add_argument("--reverse-weight", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--negatives", type=int, default=1)
    parser.add_argument("--sampler", choices=["none", "adaptive", "uniform"], default="none")
    parser.add_argument(
        "--mask-targets", action="store_true", help="drop each batch's positives from its message graph"
    )
    parser.add_argument("--normalise-features", action="store_true", help="L2-normalise node features")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--every", type=int, default=2)
    parser.add_argument("--split", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    root = os.path.join(os.environ.get("RECSCI_DATA", "data"), "graph")
    datamodule = LinkPredictionDataModule(
        DirLinkBenchGraph(root, "cora_ml"),
        sampler=make_sampler(args.sampler),
        num_negatives=args.negatives,
        split_source=DirLinkBenchSplit(root, "cora_ml", args.split),
    )
    datamodule.setup()
    if args.normalise_features:
        datamodule.x = torch.nn.functional.normalize(datamodule.x, dim=1)
    encoder = make_encoder(args, datamodule.num_features)
    optimiser = torch.optim.Adam(encoder.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    val, num_nodes = datamodule.split.val, datamodule.split.num_nodes
    best_mrr = best_hits = metrics = None
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        encoder.train()
        for batch in datamodule.train_dataloader():
            edge_index, edge_weight = batch.edge_index, batch.edge_weight
            if args.mask_targets:
                edges = batch.node_ids[edge_index]
                keep = ~EdgeSet(batch.node_ids[batch.pos], num_nodes).contains(edges[0], edges[1])
                edge_index = edge_index[:, keep]
                edge_weight = edge_weight[keep] if edge_weight is not None else None
            inputs = (batch.x, edge_index) + ((edge_weight,) if edge_weight is not None else ())
            embeddings = encoder(*inputs)
            reverse = (
                score(embeddings, batch.reverse)
                if args.reverse_weight > 0 and batch.reverse.numel()
                else None
            )
            loss = link_loss(
                score(embeddings, batch.pos), score(embeddings, batch.neg), reverse, args.reverse_weight
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if epoch % args.every:
            continue
        encoder.eval()
        with torch.no_grad():
            embeddings = encoder(datamodule.x, datamodule.split.train_pos)
            metrics = existence_metrics(score(embeddings, val.pos), score(embeddings, val.neg), ks=(20, 100))
            forward = score(embeddings, val.pos[:, val.one_way])
            metrics |= direction_metrics(forward, score(embeddings, val.reverse))
        metrics["epoch"] = epoch
        if best_mrr is None or metrics["mrr"] > best_mrr["mrr"]:
            best_mrr = metrics
        if best_hits is None or metrics["hits@100"] > best_hits["hits@100"]:
            best_hits = metrics

    def show(m: dict[str, float]) -> str:
        keys = ("mrr", "hits@20", "hits@100", "auc", "direction_auc")
        return f"@{m['epoch']} " + " ".join(f"{k} {100 * m[k]:.1f}" for k in keys)

    print(
        f"best val mrr {show(best_mrr)} | best val hits@100 {show(best_hits)} | last {show(metrics)} | "
        f"{time.perf_counter() - start:.0f}s"
    )


if __name__ == "__main__":
    main()
