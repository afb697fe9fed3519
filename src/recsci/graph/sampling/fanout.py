"""Fan-out schedules: how many neighbours to sample per node and hop.

Kept free of ``from __future__ import annotations`` on purpose: the core validates configs against
``__init__`` signatures with pydantic, which reads the ``Annotated`` constraints at runtime.
"""

import math
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from typing import Annotated, Literal

import torch
from annotated_types import Ge, Gt, Le
from torch import Tensor

from recsci.core.errors import ConfigError
from recsci.graph.sampling.csr import DirectedCSR, Side

PositiveInt = Annotated[int, Ge(1)]
DegreeSource = Literal["sampled", "out", "in", "total"]


class FanoutSchedule(ABC):
    """Maps (hop, node degrees) to a per-node fan-out.

    ``hop`` is the 0-based index of the expansion: hop 0 expands the seeds, hop 1 the nodes first
    reached at hop 0, and so on. The returned tensor is long, same shape as ``degree``, and ``>= 0``;
    ``0`` means "take no neighbours of this node" (a schedule may prune at run time even though the
    built-in schedules reject a configured fan-out of 0).
    """

    #: Deepest hop the schedule defines, or ``None`` if it defines every hop.
    max_hops: int | None = None

    @abstractmethod
    def __call__(self, hop: int, degree: Tensor) -> Tensor:
        """Return the fan-out of every node whose degree is given."""

    def degree_of(self, graph: DirectedCSR, nodes: Tensor, side: Side) -> Tensor:
        """Degree the schedule is fed for ``nodes`` when sampling their ``side`` neighbours.

        Default: the degree in the direction being sampled. Override to use another one.
        """
        return graph.side(side).degree.index_select(0, nodes)

    def table_key(self) -> Hashable | None:
        """Key under which the sampler may tabulate this schedule per graph, or ``None`` (the default).

        A schedule whose fan-out is a fixed function of ``(hop, degree_of(...))`` may return a hashable
        key that changes whenever its parameters do: the sampler then computes the fan-out of every node
        once per graph, side and hop and looks frontier nodes up in that table (one gather instead of the
        schedule's ops at every draw). Return ``None`` for schedules with state or randomness. Subclasses
        of a tabulated schedule that add parameters must add them to the key.
        """
        return None


class UniformFanout(FanoutSchedule):
    """GraphSAGE-style fixed fan-out per hop, the same for every node (the BLADE ablation)."""

    def __init__(self, fanouts: Sequence[PositiveInt]) -> None:
        """``fanouts[h]`` neighbours are sampled per node at hop ``h``; every entry must be >= 1."""
        fanouts = list(fanouts)
        if not fanouts:
            raise ConfigError("fanouts must list at least one fan-out (one per hop), got []")
        for hop, k in enumerate(fanouts):
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise ConfigError(f"fanouts[{hop}] must be an integer >= 1, got {k!r}")
        self.fanouts = fanouts
        self.max_hops = len(fanouts)

    def __call__(self, hop: int, degree: Tensor) -> Tensor:
        """Return ``fanouts[hop]`` for every node."""
        return torch.full_like(degree, self.fanouts[hop], dtype=torch.long)

    def table_key(self) -> Hashable:
        """The fan-outs (and the class, so subclasses get their own tables)."""
        return (type(self), tuple(self.fanouts))

    def __repr__(self) -> str:
        return f"UniformFanout(fanouts={self.fanouts})"


class DegreePowerFanout(FanoutSchedule):
    """Degree-adaptive fan-out ``clip(round(c * d**gamma * hop_decay**hop), k_min, k_max)``.

    ``round`` rounds halves up. ``hop_decay < 1`` shrinks deeper hops (hop 0 = the seeds' expansion).

    With ``gamma < 0`` low-degree nodes get *larger* neighbourhoods and hubs smaller ones, as in BLADE.
    The degree is ``d = max(deg, 1)`` so isolated nodes stay finite for negative ``gamma``; which degree
    is used is set by ``degree``:

    - ``"sampled"``: the degree in the direction being sampled (in-degree when sampling in-neighbours);
    - ``"out"`` / ``"in"`` / ``"total"``: always that degree, whichever direction is sampled.
    """

    def __init__(
        self,
        c: Annotated[float, Gt(0)] = 10.0,
        gamma: float = -0.5,
        k_min: PositiveInt = 1,
        k_max: PositiveInt = 50,
        hop_decay: Annotated[float, Gt(0), Le(1)] = 1.0,
        degree: DegreeSource = "sampled",
    ) -> None:
        """Validate and store the schedule parameters (see the class docstring for the formula)."""
        _require(math.isfinite(c) and c > 0, "c", "a finite number > 0", c)
        _require(math.isfinite(gamma), "gamma", "a finite number", gamma)
        _require(_is_int(k_min) and k_min >= 1, "k_min", "an integer >= 1", k_min)
        _require(_is_int(k_max) and k_max >= 1, "k_max", "an integer >= 1", k_max)
        _require(k_min <= k_max, "k_min", f"<= k_max={k_max}", k_min)
        _require(0 < hop_decay <= 1, "hop_decay", "in (0, 1]", hop_decay)
        _require(
            degree in ("sampled", "out", "in", "total"), "degree", "'sampled'|'out'|'in'|'total'", degree
        )
        self.c, self.gamma, self.k_min, self.k_max = float(c), float(gamma), k_min, k_max
        self.hop_decay, self.degree = float(hop_decay), degree

    def __call__(self, hop: int, degree: Tensor) -> Tensor:
        """Return the clipped, rounded power of each node's degree."""
        # float64 so that large degrees with tiny gamma don't lose the rounding boundary.
        d = degree.to(torch.float64).clamp_min(1.0)
        raw = self.c * d.pow(self.gamma) * (self.hop_decay**hop)
        # floor(x + 0.5) rounds halves up; torch.round would round them to even (2.5 -> 2).
        return torch.floor(raw + 0.5).clamp(self.k_min, self.k_max).long()

    def table_key(self) -> Hashable:
        """Every parameter of the formula (and the class, so subclasses get their own tables)."""
        return (type(self), self.c, self.gamma, self.k_min, self.k_max, self.hop_decay, self.degree)

    def degree_of(self, graph: DirectedCSR, nodes: Tensor, side: Side) -> Tensor:
        """Degree chosen by the ``degree`` switch."""
        if self.degree == "sampled":
            return graph.side(side).degree.index_select(0, nodes)
        if self.degree == "total":
            return graph.total_degree.index_select(0, nodes)
        return graph.side(self.degree).degree.index_select(0, nodes)

    def __repr__(self) -> str:
        return (
            f"DegreePowerFanout(c={self.c}, gamma={self.gamma}, k_min={self.k_min}, k_max={self.k_max}, "
            f"hop_decay={self.hop_decay}, degree={self.degree!r})"
        )


def powerlaw_exponent(degrees: Tensor, d_min: int = 1, discrete_correction: bool = False) -> float:
    """Maximum-likelihood power-law exponent ``alpha = 1 + n / sum(ln(d_i / d_min))`` over ``d_i >= d_min``.

    This is the continuous (Hill) estimator. For integer degrees, ``discrete_correction=True`` uses
    ``d_min - 0.5`` in the denominator (Clauset, Shalizi & Newman 2009, eq. 3.7), which removes most
    of the bias when ``d_min`` is small; it is off by default to match the plain formula.
    Raises ``ValueError`` if no degree reaches ``d_min`` or all of them equal it (alpha is infinite).
    """
    _require(d_min > 0, "d_min", "> 0", d_min)
    d = degrees.to(torch.float64).flatten()
    d = d[d >= d_min]
    if d.numel() == 0:
        raise ConfigError(f"powerlaw_exponent: no degree is >= d_min={d_min}")
    scale = d_min - 0.5 if discrete_correction else float(d_min)
    log_sum = float(torch.log(d / scale).sum())
    if log_sum <= 0:
        raise ConfigError(f"powerlaw_exponent: every degree equals d_min={d_min}, so alpha is unbounded")
    return 1.0 + d.numel() / log_sum


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _require(ok: bool, name: str, allowed: str, got: object) -> None:
    """Raise a ConfigError (a ValueError) naming the parameter and its allowed range."""
    if not ok:
        raise ConfigError(f"{name} must be {allowed}, got {got!r}")
