"""Vectorised neighbourhood sampling on directed graphs (BLADE-style degree-adaptive fan-out).

Build a :class:`DirectedCSR` once per graph, pick a :class:`FanoutSchedule`
(:class:`UniformFanout` for the GraphSAGE ablation, :class:`DegreePowerFanout` for BLADE) and call
:meth:`NeighborSampler.sample` or :meth:`NeighborSampler.sample_roles`; :class:`PygNeighborSampler`
plugs the same sampler into PyG's ``NodeLoader``/``LinkLoader``.
"""

from recsci.graph.sampling.csr import Adjacency, DirectedCSR
from recsci.graph.sampling.fanout import DegreePowerFanout, FanoutSchedule, UniformFanout, powerlaw_exponent
from recsci.graph.sampling.neighbor import NeighborDraw, NeighborSampler, SampledSubgraph
from recsci.graph.sampling.pyg import PygNeighborSampler
from recsci.graph.sampling.walks import WalkFill

__all__ = [
    "Adjacency",
    "DegreePowerFanout",
    "DirectedCSR",
    "FanoutSchedule",
    "NeighborDraw",
    "NeighborSampler",
    "PygNeighborSampler",
    "SampledSubgraph",
    "UniformFanout",
    "WalkFill",
    "powerlaw_exponent",
]
