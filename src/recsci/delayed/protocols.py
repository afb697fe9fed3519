"""Streaming and batch protocols for delayed feedback (the ``protocol`` group).

Both run the same steps:

1. pretrain the main model on ``[start, start + pretrain_hours)`` with the labels known at the window's end
   (plain cross-entropy; the same for every method, so the *Pretrained* reference is shared);
2. method warm-up (DFM's delay head) and the method's auxiliary models, fitted on the same window with
   labels known at its end (counterfactual cuts for the flip model);
3. train on windows of what was observable (records from :func:`recsci.delayed.streams.stream_records`),
   first updating the auxiliary models (``aux_updates``) on the clicks that matured since their last
   update, with the labels known at the window's end;
4. evaluate on later windows with eventual labels.

Auxiliary updates are short continuations of the auxiliary models' training (:meth:`AuxiliaryModel.update`:
a plain loop, the optimiser state kept from the first fit), every ``aux_update_every`` training windows, with
at most ``aux_update_steps`` batches of ``aux_update_batch_size`` per model and update (a random subsample of
the matured examples when there are more; null: all of them). The budget bounds the cost of an interval
whatever the stream's rate: at the streaming defaults (64 batches of 256) an update on the 100 k-click
simulator uses every matured example, one on the 1 M-click stream about a third of the p_dp examples and
a sixth of the flip examples (``experiments/bench/delayed_stream.py``).

Streaming (ES-DFM/DEFER/DEFUSE protocol): train on interval k, test on interval k + 1; ``val_intervals`` of
the evaluations are ``val/*`` (for tuning), the rest ``test/*``; metrics are averaged over intervals weighted
by their number of clicks. Which ones (``val_placement``):

- ``first`` (default): the first ``val_intervals`` evaluations, right after pretraining (tune on the past,
  report on the future; the ES-DFM protocol, and what every table so far used). Early intervals are not
  like late ones, though: the auxiliary models were just fitted and the main model has seen little drift, so
  an option whose gain grows with the time since pretraining cannot show on this val.
- ``interleaved``: the ``val_intervals`` evaluations spread evenly over the stream, one in the middle of each
  of ``val_intervals`` equal blocks of evaluations (of n, the intervals floor((i + 1/2) n / val_intervals),
  i = 0, 1, ...); with ``val_intervals`` = n / 2 that is every other interval. Val then sees the stream's whole range of staleness; test is the rest.

Either way every interval is evaluated before it is trained on, whichever split it reports to (the
timeline itself does not change, only the split label of each evaluation). Batch: train once on everything observed by the cut time,
validate on the next ``val_hours``, test on the ``test_hours`` after that.

Auxiliary models with a logit offset (``offset: main | vanilla``, :mod:`recsci.delayed.auxiliary`) read it
from the named learner's current state whenever their columns are built: during the pretraining fit that is
the pretrained model, afterwards the learner as trained on the windows so far (:meth:`recsci.delayed.runner.Runner.attach_offsets`).

References trained alongside on the same windows (``references``): Vanilla and Oracle, plus the frozen
Pretrained model, so RI is computed inside one run and one seed. With ground truth (simulator) the
true probabilities are scored as ``*/truth/*`` too.

``num_threads`` (default 1): torch intra-op threads during the run. These models are tiny, and on a
shared 2-core machine two OpenMP threads per step were 25x slower than one (measured: 46 vs 1.6 ms/step).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from pydantic import Field

from recsci.core.errors import ConfigError
from recsci.core.protocols import RunContext
from recsci.delayed.data import ClickLog
from recsci.delayed.datamodule import DelayedDataModule
from recsci.delayed.module import DelayedFeedbackModule
from recsci.delayed.runner import Runner

Hours = Annotated[float, Field(gt=0.0)]
NonNegativeHours = Annotated[float, Field(ge=0.0)]
Reference = Literal["pretrained", "vanilla", "oracle"]
Count = Annotated[int, Field(ge=1)]


@dataclass
class Step:
    """Train on ``train`` (a [start, end) window, or None) for ``epochs``, then evaluate ``evaluate``."""

    train: tuple[float, float] | None
    epochs: int
    evaluate: list[tuple[float, float, str]]  # (start, end, "val" | "test")


class DelayedProtocol:
    def __init__(
        self,
        pretrain_hours: Hours,
        wait_hours: NonNegativeHours,
        pretrain_epochs: int,
        aux_maturity_hours: NonNegativeHours,
        start_hours: NonNegativeHours,
        references: Sequence[Reference],
        flip_diagnostics: bool,
        num_threads: int | None,
        aux_updates: bool,
        aux_update_every: int,
        aux_update_steps: int | None,
        aux_update_batch_size: int,
    ) -> None:
        self.num_threads, self.aux_updates = num_threads, aux_updates
        self.aux_update_every, self.aux_update_steps = aux_update_every, aux_update_steps
        self.aux_update_batch_size = aux_update_batch_size
        self.pretrain_hours, self.wait_hours, self.pretrain_epochs = (
            pretrain_hours,
            wait_hours,
            pretrain_epochs,
        )
        self.aux_maturity_hours, self.start_hours = aux_maturity_hours, start_hours
        self.references = tuple(references)
        self.flip_diagnostics = flip_diagnostics

    def steps(self, log: ClickLog) -> list[Step]:
        raise NotImplementedError

    def __call__(self, context: RunContext) -> dict[str, float]:
        if not isinstance(context.module, DelayedFeedbackModule) or not isinstance(
            context.datamodule, DelayedDataModule
        ):
            raise ConfigError(
                f"protocol {type(self).__name__} needs a delayed-feedback model and data "
                "(model=delayed_*, data=delayed_*); got "
                f"{type(context.module).__name__} and {type(context.datamodule).__name__}"
            )
        threads = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        try:
            return Runner(self, context).run()
        finally:
            torch.set_num_threads(threads)


class StreamingProtocol(DelayedProtocol):
    """Pretrain, then train on interval k and test on interval k + 1 (see the module doc)."""

    def __init__(
        self,
        pretrain_hours: Hours = 72.0,
        interval_hours: Hours = 6.0,
        num_intervals: Annotated[int, Field(ge=1)] | None = None,
        val_intervals: Annotated[int, Field(ge=0)] = 4,
        val_placement: Literal["first", "interleaved"] = "first",
        wait_hours: NonNegativeHours = 0.25,
        pretrain_epochs: Annotated[int, Field(ge=1)] = 2,
        epochs_per_interval: Annotated[int, Field(ge=1)] = 1,
        aux_maturity_hours: NonNegativeHours = 24.0,
        start_hours: NonNegativeHours = 0.0,
        references: Sequence[Reference] = ("pretrained", "vanilla", "oracle"),
        flip_diagnostics: bool = True,
        num_threads: Annotated[int, Field(ge=1)] | None = 1,
        aux_updates: bool = True,
        aux_update_every: Count = 1,
        aux_update_steps: Count | None = 64,
        aux_update_batch_size: Count = 256,
    ) -> None:
        super().__init__(
            pretrain_hours,
            wait_hours,
            pretrain_epochs,
            aux_maturity_hours,
            start_hours,
            references,
            flip_diagnostics,
            num_threads,
            aux_updates,
            aux_update_every,
            aux_update_steps,
            aux_update_batch_size,
        )
        self.interval_hours, self.num_intervals = interval_hours, num_intervals
        self.val_intervals, self.epochs_per_interval = val_intervals, epochs_per_interval
        self.val_placement = val_placement

    def val_positions(self, count: int) -> set[int]:
        """Indices (0-based, of ``count`` evaluated intervals) that report to ``val/*``."""
        if self.val_placement == "first":
            return set(range(self.val_intervals))
        # floor((i + 1/2) n / v), computed in integers: with v < n the block length n / v exceeds 1, so the
        # positions are distinct and the last one is below n.
        return {((2 * i + 1) * count) // (2 * self.val_intervals) for i in range(self.val_intervals)}

    def steps(self, log: ClickLog) -> list[Step]:
        begin = self.start_hours + self.pretrain_hours
        available = int(math.floor((log.span_hours - begin) / self.interval_hours + 1e-9)) - 1
        count = self.num_intervals if self.num_intervals is not None else available
        if count < 1 or count > available:
            raise ConfigError(
                f"protocol: {count} streaming intervals of {self.interval_hours} h after {begin} h of pretraining "
                f"need {begin + (count + 1) * self.interval_hours:.1f} h of clicks; {log.name} spans "
                f"{log.span_hours:.1f} h ({max(available, 0)} intervals fit). Lower protocol.num_intervals, "
                "protocol.interval_hours or protocol.pretrain_hours."
            )
        if self.val_intervals >= count:
            raise ConfigError(
                f"protocol.val_intervals={self.val_intervals} leaves no test interval of {count}"
            )
        val = self.val_positions(count)
        steps = []
        for k in range(count):
            s = begin + k * self.interval_hours
            e = s + self.interval_hours
            split = "val" if k in val else "test"
            steps.append(Step((s, e), self.epochs_per_interval, [(e, e + self.interval_hours, split)]))
        return steps


class BatchProtocol(DelayedProtocol):
    """Pretrain, train once on what was observed by ``cut_hours``, validate then test on later windows."""

    def __init__(
        self,
        pretrain_hours: Hours = 72.0,
        cut_hours: Hours = 240.0,
        val_hours: Hours = 24.0,
        test_hours: Hours = 48.0,
        wait_hours: NonNegativeHours = 0.25,
        pretrain_epochs: Annotated[int, Field(ge=1)] = 2,
        epochs: Annotated[int, Field(ge=1)] = 2,
        aux_maturity_hours: NonNegativeHours = 24.0,
        start_hours: NonNegativeHours = 0.0,
        references: Sequence[Reference] = ("pretrained", "vanilla", "oracle"),
        flip_diagnostics: bool = True,
        num_threads: Annotated[int, Field(ge=1)] | None = 1,
        aux_updates: bool = True,
        aux_update_every: Count = 1,
        aux_update_steps: Count | None = None,
        aux_update_batch_size: Count = 256,
    ) -> None:
        super().__init__(
            pretrain_hours,
            wait_hours,
            pretrain_epochs,
            aux_maturity_hours,
            start_hours,
            references,
            flip_diagnostics,
            num_threads,
            aux_updates,
            aux_update_every,
            aux_update_steps,
            aux_update_batch_size,
        )
        self.cut_hours, self.val_hours, self.test_hours, self.epochs = (
            cut_hours,
            val_hours,
            test_hours,
            epochs,
        )

    def steps(self, log: ClickLog) -> list[Step]:
        begin = self.start_hours + self.pretrain_hours
        end = self.cut_hours + self.val_hours + self.test_hours
        # Logs cover whole hours: a 10-day log whose last click is at 239.98 h still covers [0, 240).
        covered = math.ceil(log.span_hours - 1e-9)
        if not begin < self.cut_hours or end > covered:
            raise ConfigError(
                f"protocol: pretraining ends at {begin} h, the cut is at {self.cut_hours} h and testing ends at "
                f"{end} h, but {log.name} covers {covered} h (last click at {log.span_hours:.2f} h): need "
                "pretraining end < cut and the test window inside the log (protocol.cut_hours, "
                "protocol.val_hours, protocol.test_hours)."
            )
        cut, val_end = self.cut_hours, self.cut_hours + self.val_hours
        return [Step((begin, cut), self.epochs, [(cut, val_end, "val"), (val_end, end, "test")])]
