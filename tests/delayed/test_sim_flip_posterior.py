"""The simulator's exact flip posterior z*(x, e, g): hand-computed limits and calibration against its own draws."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtr

from recsci.delayed.simulator import DelayedFeedbackSimulator


def _sim(**changes) -> DelayedFeedbackSimulator:
    return DelayedFeedbackSimulator(num_clicks=200_000, days=10.0, seed=5, **changes)


def _alive_at(log, elapsed: float) -> np.ndarray:
    """Rows not converted by ``elapsed`` hours after their click."""
    return np.flatnonzero(~(log.conv_ts <= log.click_ts + elapsed))


@pytest.mark.parametrize("given_p", [None, np.array([0.0, 0.05, 0.5, 1.0])])
def test_without_engagement_it_is_the_delay_posterior_by_hand(given_p: np.ndarray | None) -> None:
    # No engagement: z* = p S / (p S + 1 - p F(A)) with S = F(A) - F(e), F the delay CDF; p is the
    # simulator's p(x), or the one supplied (a model's estimate) in its place.
    sim = _sim()
    log = sim.load()
    rows = np.arange(4)
    z = sim.flip_posterior(log, rows, np.full(4, 2.0), None, p_convert=given_p)

    mu = log.truth["delay_mu"][rows]
    p = log.truth["p_convert"][rows] if given_p is None else given_p
    cdf_a = ndtr((np.log(72.0) - mu) / sim.delay_sigma)
    survive = cdf_a - ndtr((np.log(2.0) - mu) / sim.delay_sigma)
    assert z == pytest.approx(p * survive / (p * survive + 1.0 - p * cdf_a), rel=1e-9)


def test_equal_engagement_rates_change_nothing_and_exclusive_engagement_is_certain() -> None:
    rows, e = np.arange(50), np.full(50, 0.5)
    # Engagement as likely with as without a conversion, and (mean wait ~0) always before e: uninformative.
    same = _sim(engagement_names=("cart",), engagement_given_conversion=(0.3,),
                engagement_given_no_conversion=(0.3,), engagement_mean_hours=(1e-6,))  # fmt: skip
    log = same.load()
    none = same.flip_posterior(log, rows, e, None)
    for flag in (0.0, 1.0):
        assert same.flip_posterior(log, rows, e, np.full((50, 1), flag)) == pytest.approx(none, rel=1e-6)
    # A signal that never happens without a conversion: seen => z* = 1.
    exclusive = _sim(engagement_given_no_conversion=(0.0, 0.03))
    log = exclusive.load()
    assert exclusive.flip_posterior(log, rows, e, np.tile([1.0, 0.0], (50, 1))) == pytest.approx(np.ones(50))


@pytest.mark.parametrize(
    ("elapsed", "engagement_mean_hours"),
    [(0.25, (0.5, 2.0)), (3.0, (0.5, 2.0)), (3.0, (20.0, 50.0))],  # slow engagement: mostly redrawn waits
)
def test_flip_posterior_is_calibrated_on_the_simulators_own_draws(
    elapsed: float, engagement_mean_hours: tuple[float, float]
) -> None:
    sim = _sim(engagement_mean_hours=engagement_mean_hours)
    log = sim.load()
    rows = _alive_at(log, elapsed)
    engaged = (log.engagement_ts[rows] <= log.click_ts[rows, None] + elapsed).astype(float)
    flipped = np.isfinite(log.conv_ts[rows])
    for flags in (engaged, None):
        z = sim.flip_posterior(log, rows, np.full(rows.size, elapsed), flags)
        assert z.mean() == pytest.approx(flipped.mean(), abs=0.004)
        # Within deciles of z* and within the engaged / not-engaged groups, the rate matches the mean z*.
        edges = np.quantile(z, np.linspace(0, 1, 11))
        bucket = np.clip(np.searchsorted(edges, z, side="right") - 1, 0, 9)
        for b in range(10):
            inside = bucket == b
            assert z[inside].mean() == pytest.approx(flipped[inside].mean(), abs=0.02)
    any_engaged = engaged.max(axis=1) > 0
    z = sim.flip_posterior(log, rows, np.full(rows.size, elapsed), engaged)
    for group in (any_engaged, ~any_engaged):
        assert z[group].mean() == pytest.approx(flipped[group].mean(), abs=0.02)
    # Engagement is informative: engaged negatives flip far more often than the others.
    assert flipped[any_engaged].mean() > 3 * flipped[~any_engaged].mean()
