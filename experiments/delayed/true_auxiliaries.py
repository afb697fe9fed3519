"""The engagement-aware weights with the simulator's TRUE auxiliaries: the ceiling of the weighting itself.

Runs ``recsci`` with :meth:`EngagementIS.prepare` replaced: each training record's z is the exact posterior
z*(x, e, g) (:meth:`DelayedFeedbackSimulator.flip_posterior`, engagement flags as seen at the record's
``observe_ts``) and p_dp the true P(converts after the waiting window | x) = p(x) P(w < D <= A | x). Both read
the simulator's p(x) at click time, drift included, which no deployable model has. Everything else (the
protocol, the references, the main model, the form and its options) is the run's own, so the gap closure
of such a run is what the weighting could reach with perfect auxiliaries.

    python experiments/delayed/true_auxiliaries.py [--p-source=main] experiment=delayed/sim_streaming seed=S [overrides ...]

``--p-source=main`` keeps the true engagement and delay likelihoods but replaces the true p(x) in z* and
p_dp by the main model's current estimate (the flip model's offset; needs ``model.method.flip.offset``
``main`` or ``vanilla``, as ``model=delayed_engagement_is_offset`` sets): what a flip model with a perfect
residual r(x, e, g) on top of the main model's logit could reach.

Simulator data only (the run fails with a clear message otherwise); the method's own ``wait_hours`` must be
set (the engagement-aware configs set 2 h).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from scipy.special import ndtr

from recsci import cli
from recsci.core.errors import ConfigError
from recsci.delayed.data import ClickLog
from recsci.delayed.datamodule import DelayedDataModule
from recsci.delayed.methods import EngagementIS
from recsci.delayed.simulator import DelayedFeedbackSimulator
from recsci.delayed.streams import Records

SIMULATORS: dict[int, DelayedFeedbackSimulator] = {}  # id(click log) -> the simulator that drew it
P_SOURCES = ("truth", "main")
P_SOURCE = "truth"  # where z* and p_dp read p(x); set from --p-source


def keep_simulator(setup):
    def wrapped(self: DelayedDataModule, stage: str | None = None) -> None:
        setup(self, stage)
        if isinstance(self.source, DelayedFeedbackSimulator):
            SIMULATORS[id(self.clicks)] = self.source

    return wrapped


@torch.no_grad()
def true_prepare(self: EngagementIS, log: ClickLog, records: Records) -> dict[str, torch.Tensor]:
    simulator = SIMULATORS.get(id(log))
    if simulator is None:
        raise ConfigError("true_auxiliaries.py needs simulated data (data=delayed_sim)")
    if self.wait is None:
        raise ConfigError(
            "true_auxiliaries.py needs model.method.wait_hours (the method's own waiting window)"
        )
    index = records.index
    p_convert = log.truth["p_convert"][index]
    if P_SOURCE == "main":
        if self.flip.offset == "none":
            raise ConfigError(
                "--p-source=main reads the flip model's offset: set model.method.flip.offset=main "
                "(or use model=delayed_engagement_is_offset)"
            )
        x = self.flip.inputs(log, records)["x"]
        p_convert = torch.sigmoid(self.flip.offset_logits(x)).double().numpy()
    engaged = records.engagement(log, list(range(len(log.engagement_names))))
    z = simulator.flip_posterior(log, index, records.elapsed(log), engaged, p_convert=p_convert)
    mu, sigma = log.truth["delay_mu"][index], log.truth["delay_sigma"][index]
    after_wait = ndtr((np.log(log.attribution_hours) - mu) / sigma) - ndtr(
        (np.log(max(self.wait, 1e-9)) - mu) / sigma
    )
    p_dp = p_convert * after_wait
    return {"p_dp": torch.from_numpy(p_dp.astype(np.float32)), "z": torch.from_numpy(z.astype(np.float32))}


if __name__ == "__main__":
    for arg in [a for a in sys.argv[1:] if a.startswith("--p-source")]:
        P_SOURCE = arg.partition("=")[2]
        if P_SOURCE not in P_SOURCES:
            sys.exit(f"--p-source must be one of {', '.join(P_SOURCES)}, got {P_SOURCE!r}")
        sys.argv.remove(arg)
    DelayedDataModule.setup = keep_simulator(DelayedDataModule.setup)
    EngagementIS.prepare = true_prepare
    cli.main()
