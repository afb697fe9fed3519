"""Lightning datamodule for directed link prediction: full-batch or neighbourhood-sampled batches."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Literal, Protocol

import lightning.pytorch as pl
import torch
from pydantic import Field
from torch import Tensor
from torch.utils.data import DataLoader, get_worker_info
from torch_geometric.data import Data
from torch_geometric.utils import degree

from recsci.graph.edge_set import EdgeSet
from recsci.graph.models import PositiveInt, quiet_sparse_construction
from recsci.graph.sampling import DirectedCSR, NeighborSampler
from recsci.graph.splits import EvalEdges, LinkSplit, SplitSource, split_links

Ratio = Annotated[float, Field(gt=0.0, lt=1.0)]
FeatureKind = Literal["raw", "degree", "raw+degree"]

# Below this share of non-zero entries, node features are stored sparse. Measured for a [5000, 1000] input
# projected to 256 wide, forward + backward, one core: sparse CSR is 4x faster at 2% non-zero, 2x at 5%,
# level at 10% and 5x slower at 35% (Amazon Photo's bag of words).
SPARSE_FEATURE_DENSITY = 0.05

log = logging.getLogger(__name__)


class GraphSource(Protocol):
    """What a dataset config builds: an object whose ``load()`` returns a PyG ``Data``."""

    def load(self) -> Data: ...


@dataclass
class CSRParts:
    """A sparse CSR matrix as its plain tensors, the form in which it crosses from a DataLoader worker.

    torch can send the sparse tensor itself, but rebuilds it on arrival with its once-per-process notices
    (CSR support is "beta", invariant checks are off), one in every run's log; the datamodule rebuilds
    these quietly before the batch is transferred.
    """

    crow_indices: Tensor
    col_indices: Tensor
    values: Tensor
    size: tuple[int, int]

    @classmethod
    def of(cls, matrix: Tensor) -> CSRParts:
        return cls(matrix.crow_indices(), matrix.col_indices(), matrix.values(), tuple(matrix.shape))

    def matrix(self) -> Tensor:
        with quiet_sparse_construction():
            return torch.sparse_csr_tensor(self.crow_indices, self.col_indices, self.values, self.size)


@dataclass
class LinkBatch:
    """One training step: a message-passing graph and the supervised pairs, in local node ids."""

    # [n, F] features of the batch's nodes: sparse CSR when the datamodule stores them sparse (as its plain
    # tensors, CSRParts, when a DataLoader worker hands it over; rebuilt before the batch reaches the model)
    x: Tensor | CSRParts
    edge_index: Tensor  # [2, E] message-passing edges (original direction)
    pos: Tensor  # [2, B] observed edges
    neg: Tensor  # [2, B * num_negatives] random pairs
    reverse: Tensor  # [2, R] reverses of one-directional observed edges (hard negatives)
    node_ids: Tensor  # [n] global id of each local node
    edge_weight: Tensor | None = None  # [E] message weights (walk-filled virtual edges < 1); None = all 1
    # The pairs use only local ids below this (a sampled batch's seeds come first); None: any node.
    num_seeds: int | None = None


@dataclass
class EvalBatch:
    """A whole evaluation split, scored on the full training graph."""

    x: Tensor
    edge_index: Tensor
    edges: EvalEdges
    node_ids: Tensor  # [N] all nodes (for free embeddings)
    known_edges: Tensor  # [2, K] held-out edges of earlier splits: true links, never ranked as candidates


class _Positions:
    """The positions 0..size-1 of the training edges, fetched a batch at a time as one tensor.

    The same shuffled batches as a ``DataLoader`` over ``torch.arange(size)`` (also when Lightning swaps
    in a distributed sampler), but the loader's ``__getitems__`` fetch builds each batch in one call
    instead of one 0-d tensor per edge (4.6 -> 0.8 ms a batch of 2,048).
    """

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, position: int) -> int:
        return position

    def __getitems__(self, positions: list[int]) -> Tensor:
        return torch.as_tensor(positions)


class LinkPredictionDataModule(pl.LightningDataModule):
    """Splits a directed graph into train/val/test links and serves training batches.

    With ``sampler=None`` every batch passes messages over the whole training graph; with a
    :class:`NeighborSampler` each batch passes messages over the sampled neighbourhood of its
    endpoints. Evaluation always runs on the full training graph. ``split_seed`` fixes the split
    independently of the training seed, so seeds vary the model, not the data.

    ``split_source`` (e.g. :class:`recsci.graph.splits.DirLinkBenchSplit`) replaces the default seeded
    random split (``val_ratio``/``test_ratio`` and ``split_seed`` are then unused).

    ``sparse_features``: serve node features as sparse CSR matrices, so every encoder's input projection
    is a sparse matmul (bag-of-words inputs: CiteSeer, squirrel and chameleon have under 1% non-zero
    entries, Cora-ML 2%). ``None`` decides from the data: sparse when at most
    ``SPARSE_FEATURE_DENSITY`` of the entries are non-zero. Results are the same up to float rounding.

    ``num_workers``: build sampled training batches (negatives, neighbourhood sampling, feature rows) in
    this many DataLoader worker processes, kept for the whole fit, so sampling overlaps the training
    step; ``0`` builds them in the training process. Worth it when a core is free beside the training
    process, above all with a GPU, whose step is short next to the sampling. Reproducible for a given
    seed and ``num_workers``, but each worker draws from its own random stream, so the batches differ
    from those of another ``num_workers``. Full-batch training (no sampler) has nothing to overlap and
    builds its batches in the training process whatever this says.
    """

    def __init__(
        self,
        dataset: GraphSource,
        sampler: NeighborSampler | None = None,
        val_ratio: Ratio = 0.05,
        test_ratio: Ratio = 0.15,
        batch_size: PositiveInt = 1024,
        num_negatives: PositiveInt = 1,
        features: FeatureKind = "raw",
        split_seed: Annotated[int, Field(ge=0)] = 0,
        split_source: SplitSource | None = None,
        sparse_features: bool | None = None,
        num_workers: Annotated[int, Field(ge=0)] = 0,
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.sampler = sampler
        self.val_ratio, self.test_ratio = val_ratio, test_ratio
        self.batch_size = batch_size
        self.num_negatives = num_negatives
        self.features = features
        self.split_seed = split_seed
        self.split_source = split_source
        self.sparse_features = sparse_features
        self.num_workers = num_workers
        self.split: LinkSplit | None = None

    # Set up once: fit, validate and test of one run share the same split.
    def setup(self, stage: str | None = None) -> None:
        if self.split is not None:
            return
        data = self.dataset.load()
        generator = torch.Generator().manual_seed(self.split_seed)
        if self.split_source is not None:
            self.split = self.split_source.make_split(data, generator)
        else:
            ratios = (self.val_ratio, self.test_ratio)
            self.split = split_links(data.edge_index, data.num_nodes, *ratios, generator)
        train = self.split.train_pos
        self.x = self._node_features(data, train)
        self._x_rows: Tensor | None = None  # COO copy of sparse features, for selecting a batch's rows
        if self._store_sparse(self.x):
            self._x_rows = self.x.to_sparse_coo().coalesce()
            with quiet_sparse_construction():
                self.x = self._x_rows.to_sparse_csr()
        self.train_edge_set = EdgeSet(train, data.num_nodes)
        self.train_one_way = ~self.train_edge_set.contains(train[1], train[0])
        self.graph = DirectedCSR.from_edge_index(train, data.num_nodes) if self.sampler is not None else None

    @property
    def num_features(self) -> int:
        self.setup()
        return int(self.x.size(1))

    @property
    def num_nodes(self) -> int:
        self.setup()
        return self.split.num_nodes

    def train_dataloader(self) -> DataLoader:
        num_train = self.split.train_pos.size(1)
        workers = self.num_workers if self.sampler is not None else 0
        if self.num_workers and not workers:
            log.warning(
                "data.num_workers=%d is not used: full-batch training (sampler=full_batch) passes the whole "
                "graph every step and has no sampling to overlap; set data.num_workers=0 to silence this.",
                self.num_workers,
            )
        return DataLoader(
            _Positions(num_train),
            batch_size=self.batch_size,
            shuffle=True,
            collate_fn=self._train_batch,
            num_workers=workers,
            persistent_workers=workers > 0,  # workers keep their copy of the graph from epoch to epoch
        )

    def on_before_batch_transfer(self, batch: object, dataloader_idx: int) -> object:
        if isinstance(batch, LinkBatch) and isinstance(batch.x, CSRParts):
            batch.x = batch.x.matrix()
        return batch

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.split.val, known_edges=torch.empty(2, 0, dtype=torch.long))

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.split.test, known_edges=self.split.val.pos)

    def _eval_loader(self, edges: EvalEdges, known_edges: Tensor) -> DataLoader:
        batch = EvalBatch(
            x=self.x,
            edge_index=self.split.train_pos,
            edges=edges,
            node_ids=torch.arange(self.split.num_nodes),
            known_edges=known_edges,
        )
        return DataLoader([batch], batch_size=None)

    def _train_batch(self, edge_ids: Tensor) -> LinkBatch:
        pos = self.split.train_pos[:, edge_ids]
        num_nodes = self.split.num_nodes
        # Uniform random pairs as negatives; true edges among them are rare and left in (standard practice).
        neg = torch.randint(0, num_nodes, (2, pos.size(1) * self.num_negatives))
        reverse = pos[:, self.train_one_way[edge_ids]].flip(0)
        if self.sampler is None:
            return LinkBatch(self.x, self.split.train_pos, pos, neg, reverse, torch.arange(num_nodes))
        seeds, local = torch.unique(torch.cat([pos, neg, reverse], dim=1), return_inverse=True)
        sub = self.sampler.sample(self.graph, seeds)
        local_pos, local_neg, local_rev = local.split([pos.size(1), neg.size(1), reverse.size(1)], dim=1)
        weight = sub.edge_weight if self.sampler.walk_fill is not None else None
        features = self._feature_rows(sub.nodes)
        return LinkBatch(
            features, sub.edge_index, local_pos, local_neg, local_rev, sub.nodes, weight, sub.num_seeds
        )

    def _store_sparse(self, x: Tensor) -> bool:
        if self.sparse_features is not None:
            return self.sparse_features
        return x.numel() > 0 and torch.count_nonzero(x).item() <= SPARSE_FEATURE_DENSITY * x.numel()

    def _feature_rows(self, nodes: Tensor) -> Tensor:
        if self._x_rows is None:
            return self.x[nodes]
        # CSR has no row gather in torch; COO does, and converting the gathered rows back costs ~nnz.
        rows = self._x_rows.index_select(0, nodes).to_sparse_csr()
        return CSRParts.of(rows) if get_worker_info() is not None else rows

    def _node_features(self, data: Data, train_edges: Tensor) -> Tensor:
        # Degree features come from training edges only, so held-out links do not leak into inputs.
        n = data.num_nodes
        log_degrees = torch.stack(
            [torch.log1p(degree(train_edges[0], n)), torch.log1p(degree(train_edges[1], n))], dim=1
        )
        if self.features == "degree":
            return log_degrees
        if data.x is None:
            raise ValueError(f"features={self.features!r} needs node features, but this dataset has none.")
        raw = data.x.float()
        return raw if self.features == "raw" else torch.cat([raw, log_degrees], dim=1)
