"""Vectorised membership tests for directed edges."""

from __future__ import annotations

import torch
from torch import Tensor


class EdgeSet:
    """Membership test for directed edges, vectorised through sorted ``u * n + v`` keys."""

    def __init__(self, edge_index: Tensor, num_nodes: int) -> None:
        self.num_nodes = num_nodes
        self.keys = torch.unique(edge_index[0] * num_nodes + edge_index[1])  # unique() also sorts

    def contains(self, src: Tensor, dst: Tensor) -> Tensor:
        """Whether each ``src[i] -> dst[i]`` is in the set."""
        keys = src * self.num_nodes + dst
        if self.keys.numel() == 0:
            return torch.zeros_like(keys, dtype=torch.bool)
        position = torch.searchsorted(self.keys, keys).clamp(max=self.keys.numel() - 1)
        return self.keys[position] == keys
