"""Adapter that plugs :class:`NeighborSampler` into PyG's ``NodeLoader`` and ``LinkLoader``."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.sampler import (
    BaseSampler,
    EdgeSamplerInput,
    NegativeSampling,
    NodeSamplerInput,
    SamplerOutput,
)
from torch_geometric.sampler.neighbor_sampler import edge_sample

from recsci.core.errors import ConfigError
from recsci.graph.sampling.csr import DirectedCSR
from recsci.graph.sampling.neighbor import NeighborSampler


class PygNeighborSampler(BaseSampler):
    """A PyG ``BaseSampler`` backed by the vectorised :class:`NeighborSampler` (homogeneous graphs only).

    ``SamplerOutput.row``/``col`` are the local source/target of each sampled edge in the graph's own
    direction and ``edge`` the original edge ids, so PyG's loaders slice ``edge_attr`` correctly and
    set ``n_id``/``e_id``. Seeds come first in ``node``, so ``batch.n_id[:batch.batch_size]`` are the
    input nodes. Temporal sampling is not supported. With ``generator=None`` the global torch RNG is
    used, which PyG/Lightning seed per DataLoader worker; a shared ``generator`` makes single-process
    loading reproducible. PyG's negative sampling always draws from the global RNG.
    """

    def __init__(
        self, data: Data | DirectedCSR, sampler: NeighborSampler, generator: torch.Generator | None = None
    ) -> None:
        """Index ``data`` (a ``Data`` with ``edge_index``, or a prebuilt :class:`DirectedCSR`) once."""
        if isinstance(data, DirectedCSR):
            self.graph = data
        elif isinstance(data, Data) and data.edge_index is not None:
            self.graph = DirectedCSR.from_edge_index(data.edge_index, int(data.num_nodes))
        else:
            raise ConfigError(
                f"data must be a torch_geometric Data with edge_index or a DirectedCSR, got {type(data)}"
            )
        if sampler.walk_fill is not None:
            # PyG gathers edge attributes by edge id; walk-filled virtual edges have none.
            raise ConfigError(
                "PygNeighborSampler does not support walk_fill; use NeighborSampler.sample directly"
            )
        self.sampler, self.generator = sampler, generator

    @property
    def num_nodes(self) -> int:
        """Number of nodes of the indexed graph."""
        return self.graph.num_nodes

    def sample_from_nodes(self, index: NodeSamplerInput, **kwargs: object) -> SamplerOutput:
        """Sample around ``index.node``; ``metadata = (input_id, seed_time)`` as ``NodeLoader`` expects."""
        _reject_time(index.time)
        out = self._sample_seeds(index.node)
        if out.num_sampled_nodes[0] != index.node.numel():
            # NodeLoader takes the first batch_size nodes as the seeds, so repeats would misalign them.
            raise ConfigError("PygNeighborSampler needs distinct input nodes within a batch")
        out.metadata = (index.input_id, index.time)
        return out

    def sample_from_edges(
        self, index: EdgeSamplerInput, neg_sampling: NegativeSampling | None = None
    ) -> SamplerOutput:
        """Sample around both endpoints of ``index`` edges (plus PyG negatives), as ``LinkLoader`` expects.

        PyG's ``edge_sample`` merges sources, destinations and negatives into one sorted, deduplicated
        seed set, calls back into this sampler, and fills ``metadata`` with ``edge_label_index``
        (binary) or ``src_index``/``dst_pos_index``/``dst_neg_index`` (triplet) in local ids.
        """
        _reject_time(index.time)
        return edge_sample(index, self._sample_fn, self.num_nodes, False, None, neg_sampling)

    def _sample_fn(self, seed: Tensor, seed_time: Tensor | None) -> SamplerOutput:
        _reject_time(seed_time)
        return self._sample_seeds(seed)

    def _sample_seeds(self, seeds: Tensor) -> SamplerOutput:
        sub = self.sampler.sample(self.graph, seeds, self.generator)
        return SamplerOutput(
            node=sub.nodes,
            row=sub.edge_index[0],
            col=sub.edge_index[1],
            edge=sub.edge_ids,
            num_sampled_nodes=sub.num_sampled_nodes,
            num_sampled_edges=sub.num_sampled_edges,
        )


def _reject_time(time: Tensor | None) -> None:
    if time is not None:
        raise NotImplementedError(
            "PygNeighborSampler does not support temporal sampling (input_time/time_attr)"
        )
