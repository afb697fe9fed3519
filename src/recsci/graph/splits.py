"""Seeded link splits for directed link prediction, with the negatives each protocol needs.

For every evaluation split we keep two kinds of negatives:
- random pairs (u, w) that are not edges: existence (Hits@K and MRR against all of them, AUC, AP);
- the reverse (v, u) of every one-directional positive: direction AUC (can the model tell phone ->
  case from case -> phone?). A symmetric model scores both the same and gets exactly 0.5.
The recommendation protocol needs no sampled negatives: it ranks every node for each query
(``recsci.graph.evaluate``).

Two split sources build a :class:`LinkSplit` for the datamodule (its ``split_source``):
:class:`RandomSplit` (seeded random 80/5/15 by default, random non-edges as negatives) and
:class:`DirLinkBenchSplit` (the 10 published DirLinkBench splits of Cora-ML and CiteSeer-3312, read
from ``<root>/dirlinkbench/split/<dataset>/<i>/``, with the published negatives).

DirLinkBench split files index the nodes of the graph AFTER the benchmark's preprocessing (largest
weakly connected component of the raw graph, self-loops removed, kept nodes renumbered in sorted order
of their original ids), i.e. exactly :class:`recsci.graph.datasets.DirLinkBenchGraph` /
``largest_weakly_connected_component``, not the raw ids (Cora-ML: 2,810 of 2,995 nodes, 8,229 edges;
CiteSeer-3312: 2,110 of 3,312 nodes, 3,705 edges). Pairs are stored in the raw file's row -> column
orientation: citing -> cited for Cora-ML but cited -> citing for CiteSeer, so CiteSeer pairs are flipped
on load (``orientation="normalised"``) to match our query -> recommended convention.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Protocol

import numpy as np
import torch
from pydantic import Field
from torch import Tensor
from torch_geometric.data import Data

from recsci.core.errors import DataNotFoundError
from recsci.graph.edge_set import EdgeSet

Ratio = Annotated[float, Field(gt=0.0, lt=1.0)]


@dataclass
class EvalEdges:
    """Positives of one evaluation split and their negatives (all global node ids)."""

    pos: Tensor  # [2, P]
    neg: Tensor  # [2, P] random non-edges
    one_way: Tensor  # [P] bool: the reverse of this positive is not an edge
    reverse: Tensor  # [2, sum(one_way)] reverse of the one-directional positives


@dataclass
class LinkSplit:
    train_pos: Tensor  # [2, E_train]; also the message-passing graph
    val: EvalEdges
    test: EvalEdges
    num_nodes: int
    train_neg: Tensor | None = None  # [2, E_train] fixed training negatives, where the source publishes them


def clean_edges(edge_index: Tensor) -> Tensor:
    """Drop self-loops and duplicate edges (sorted by source, then target)."""
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    return torch.unique(edge_index, dim=1)


def random_non_edges(
    edges: EdgeSet, count: int, generator: torch.Generator, src: Tensor | None = None
) -> Tensor:
    """``count`` uniform random pairs that are neither edges nor self-loops (sources fixed when given)."""
    n = edges.num_nodes
    if src is None:
        src = torch.randint(0, n, (count,), generator=generator)
    dst = torch.randint(0, n, (count,), generator=generator)
    bad = edges.contains(src, dst) | (src == dst)
    # Redraw only the rejected targets; dense graphs would need many rounds, so cap them.
    for _ in range(100):
        if not bad.any():
            break
        dst[bad] = torch.randint(0, n, (int(bad.sum()),), generator=generator)
        bad = edges.contains(src, dst) | (src == dst)
    return torch.stack([src, dst])


def split_links(
    edge_index: Tensor,
    num_nodes: int,
    val_ratio: float,
    test_ratio: float,
    generator: torch.Generator,
    keep_connected: bool = False,
) -> LinkSplit:
    """Split edges at random into train/val/test and draw the evaluation negatives.

    ``keep_connected``: as DirLinkBench's ``maintain_connect``, the edges of a spanning forest of the
    undirected graph (both directions where both exist) always stay in training, so the training graph
    has the components of the whole graph; val/test are drawn from the other edges.
    """
    edge_index = clean_edges(edge_index)
    num_edges = edge_index.size(1)
    num_val, num_test = int(round(val_ratio * num_edges)), int(round(test_ratio * num_edges))
    kept = (
        spanning_forest_mask(edge_index, num_nodes)
        if keep_connected
        else torch.zeros(num_edges, dtype=torch.bool)
    )
    if (
        num_edges - num_val - num_test < 1
        or num_val < 1
        or num_test < 1
        or num_val + num_test > int((~kept).sum())
    ):
        raise ValueError(
            f"Cannot split {num_edges} edges with val_ratio={val_ratio}, test_ratio={test_ratio}"
            f"{f' keeping {int(kept.sum())} spanning-forest edges in training' if keep_connected else ''}: "
            "each split needs at least one edge."
        )
    if keep_connected:
        free = (~kept).nonzero().flatten()
        perm = torch.cat([free[torch.randperm(free.numel(), generator=generator)], kept.nonzero().flatten()])
    else:
        perm = torch.randperm(num_edges, generator=generator)
    val_idx, test_idx, train_idx = (
        perm[:num_val],
        perm[num_val : num_val + num_test],
        perm[num_val + num_test :],
    )
    all_edges = EdgeSet(edge_index, num_nodes)
    return LinkSplit(
        train_pos=edge_index[:, train_idx.sort().values],
        val=_eval_edges(edge_index[:, val_idx], all_edges, random_non_edges(all_edges, num_val, generator)),
        test=_eval_edges(
            edge_index[:, test_idx], all_edges, random_non_edges(all_edges, num_test, generator)
        ),
        num_nodes=num_nodes,
    )


def spanning_forest_mask(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Edges (u, v) whose undirected pair {u, v} is in a spanning forest of the symmetrised graph."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import minimum_spanning_tree

    row, col = edge_index.numpy()
    lo, hi = np.minimum(row, col), np.maximum(row, col)
    undirected = sp.coo_matrix((np.ones(len(lo)), (lo, hi)), shape=(num_nodes, num_nodes)).tocsr()
    undirected.data[:] = 1.0  # duplicates (u -> v and v -> u) summed: every tree is minimal again
    forest = minimum_spanning_tree(undirected).tocoo()
    tree = EdgeSet(torch.from_numpy(np.stack([forest.row, forest.col]).astype(np.int64)), num_nodes)
    return tree.contains(torch.from_numpy(lo).long(), torch.from_numpy(hi).long())


def _eval_edges(pos: Tensor, all_edges: EdgeSet, neg: Tensor) -> EvalEdges:
    """``pos`` with its random non-edges ``neg`` and the reverses of its one-directional pairs."""
    one_way = ~all_edges.contains(pos[1], pos[0])
    return EvalEdges(pos=pos, neg=neg, one_way=one_way, reverse=pos[:, one_way].flip(0))


# ----------------------------------------------------------------------------------------------
# DirLinkBench fixed splits
# ----------------------------------------------------------------------------------------------

DIRLINKBENCH_DATASETS = ("cora_ml", "citeseer")
# Orientation of the pairs in the published files (= the raw adjacency's rows -> columns).
DIRLINKBENCH_FILE_DIRECTION = {"cora_ml": "citing_to_cited", "citeseer": "cited_to_citing"}
_SPLIT_FILES = tuple(
    f"{kind}_{part}_edges.npy" for kind in ("pos", "neg") for part in ("train", "val", "test")
) + ("observed_graph.npy",)


def dirlinkbench_split_dir(root: str | Path, dataset: str, index: int) -> Path:
    """``<root>/dirlinkbench/split/<dataset>/<index>``, checked: raises DataNotFoundError if incomplete."""
    folder = Path(root) / "dirlinkbench" / "split" / dataset / str(index)
    for name in _SPLIT_FILES:
        if not (folder / name).is_file():
            raise DataNotFoundError(
                str(folder / name),
                f"  {root}/\n    dirlinkbench/\n      split/{dataset}/<0..9>/\n        "
                + "\n        ".join(_SPLIT_FILES),
                "the split/ folder of ivam-he/DirLinkBench-SDGAE; the offline copy is in "
                "shared/data/graph/dirlinkbench (see its SOURCE.md).",
            )
    return folder


def load_dirlinkbench_split(
    root: str | Path,
    dataset: Literal["cora_ml", "citeseer"],
    index: int,
    *,
    num_nodes: int | None = None,
    orientation: Literal["normalised", "file"] = "normalised",
) -> LinkSplit:
    """One published DirLinkBench split as a :class:`LinkSplit`.

    ``root`` holds ``dirlinkbench/split/<dataset>/<index>/`` (``pos_*_edges.npy`` / ``neg_*_edges.npy``:
    E x 2; ``observed_graph.npy``: 2 x E, equal to the training positives). Node ids are those of the
    preprocessed graph (see the module docstring); ``num_nodes`` defaults to the largest id + 1, which
    is the preprocessed node count (every node of a connected component has an edge).

    ``EvalEdges.neg`` are the published negatives (non-edges of the whole graph, as many as positives);
    ``one_way`` and ``reverse`` are computed as in :func:`split_links`, against the union of all
    positives (the whole graph).
    ``train_neg`` holds the published training negatives (non-edges of the observed graph only).
    With ``orientation="normalised"`` CiteSeer pairs are flipped to citing -> cited.
    """
    if dataset not in DIRLINKBENCH_FILE_DIRECTION:
        raise ValueError(f"dataset={dataset!r}: DirLinkBench splits exist for {DIRLINKBENCH_DATASETS}")
    folder = dirlinkbench_split_dir(root, dataset, index)
    flip = orientation == "normalised" and DIRLINKBENCH_FILE_DIRECTION[dataset] == "cited_to_citing"

    def pairs(name: str) -> Tensor:
        edges = torch.from_numpy(np.load(folder / name).astype(np.int64)).t().contiguous()
        return edges.flip(0) if flip else edges

    pos = {part: pairs(f"pos_{part}_edges.npy") for part in ("train", "val", "test")}
    neg = {part: pairs(f"neg_{part}_edges.npy") for part in ("train", "val", "test")}
    observed = torch.from_numpy(np.load(folder / "observed_graph.npy").astype(np.int64))
    if not torch.equal(observed.flip(0) if flip else observed, pos["train"]):
        raise ValueError(f"{folder}: observed_graph.npy differs from pos_train_edges.npy")
    all_pos = torch.cat(list(pos.values()), dim=1)
    implied = int(torch.cat([all_pos, *neg.values()], dim=1).max()) + 1
    num_nodes = implied if num_nodes is None else num_nodes
    if implied > num_nodes:
        raise ValueError(f"{folder}: node id {implied - 1} >= num_nodes={num_nodes}")
    all_edges = EdgeSet(all_pos, num_nodes)
    return LinkSplit(
        train_pos=pos["train"],
        val=_eval_edges(pos["val"], all_edges, neg["val"]),
        test=_eval_edges(pos["test"], all_edges, neg["test"]),
        num_nodes=num_nodes,
        train_neg=neg["train"],
    )


# ----------------------------------------------------------------------------------------------
# Split sources: what the datamodule's ``split_source`` config node builds
# ----------------------------------------------------------------------------------------------


class SplitSource(Protocol):
    """What a ``split_source`` config node builds: turns the loaded graph into a :class:`LinkSplit`."""

    def make_split(self, data: Data, generator: torch.Generator) -> LinkSplit: ...


class RandomSplit:
    """Seeded random split of the (cleaned) edges into train/val/test with random negatives
    (:func:`split_links`). With a ``largest_component`` loader this is DirLinkBench's protocol applied to
    graphs without published splits: LCC, no self-loops, 80/5/15 by default, random non-edges as val/test
    negatives, and (``keep_connected``, default on as in DirLinkBench) a spanning forest kept in training.
    Without a ``split_source`` the datamodule calls :func:`split_links` without ``keep_connected``."""

    def __init__(
        self, val_ratio: Ratio = 0.05, test_ratio: Ratio = 0.15, keep_connected: bool = True
    ) -> None:
        if not (0 < val_ratio < 1 and 0 < test_ratio < 1 and val_ratio + test_ratio < 1):
            raise ValueError(f"val_ratio={val_ratio}, test_ratio={test_ratio}: need 0 < each, sum < 1")
        self.val_ratio, self.test_ratio, self.keep_connected = val_ratio, test_ratio, keep_connected

    def make_split(self, data: Data, generator: torch.Generator) -> LinkSplit:
        ratios = (self.val_ratio, self.test_ratio)
        n = int(data.num_nodes)
        return split_links(data.edge_index, n, *ratios, generator, self.keep_connected)


class DirLinkBenchSplit:
    """Published DirLinkBench split ``split_index`` (0..9) of ``dataset``, read from
    ``<root>/dirlinkbench/split/<dataset>/<split_index>/``. Pair it with
    :class:`recsci.graph.datasets.DirLinkBenchGraph` (same ``orientation``): :meth:`make_split` checks
    that the split's positives are exactly the loaded graph's edges."""

    def __init__(
        self,
        root: str,
        dataset: Literal["cora_ml", "citeseer"],
        split_index: Annotated[int, Field(ge=0)] = 0,
        orientation: Literal["normalised", "file"] = "normalised",
    ) -> None:
        self.root, self.dataset, self.split_index, self.orientation = root, dataset, split_index, orientation
        dirlinkbench_split_dir(root, dataset, split_index)

    def make_split(self, data: Data, generator: torch.Generator) -> LinkSplit:
        """The published split (``generator`` is unused: nothing is drawn)."""
        num_nodes = int(data.num_nodes)
        split = load_dirlinkbench_split(
            self.root, self.dataset, self.split_index, num_nodes=num_nodes, orientation=self.orientation
        )
        graph = torch.unique(data.edge_index[0] * num_nodes + data.edge_index[1])
        published = torch.cat([split.train_pos, split.val.pos, split.test.pos], dim=1)
        published = torch.unique(published[0] * num_nodes + published[1])
        if not torch.equal(graph, published):
            raise ValueError(
                f"DirLinkBench split {self.dataset}/{self.split_index} does not index the loaded graph "
                f"({data.num_nodes} nodes, {data.edge_index.size(1)} edges; split: {published.numel()} edges). "
                "Load it with recsci.graph.datasets.DirLinkBenchGraph (largest weakly connected component, "
                "sorted renumbering) with the same orientation."
            )
        return split
