"""A click stream with known ground truth: conversion probability, delays and pre-conversion engagement.

Generative process, per click (all vectorised, so 10 M clicks take seconds):

- click time ~ Uniform(0, 24 * days) hours; ``num_fields`` categorical features, uniform ids;
- conversion logit = bias + sum_f a_f[x_f] + <u[x_0], v[x_1]> (field effects plus a rank-4 interaction)
  + drift_scale * sum_{f >= 3} g_f[x_f] (2 t / (24 days) - 1) (the effect of some feature values moves
  linearly from -g to +g over the log: a model that stops learning goes stale, so fresh data matters), ``bias`` set so that the mean conversion
  probability is ``base_rate``;
- delay | conversion ~ LogNormal(log(delay_median_hours) + b[x_2], delay_sigma) (field 2 shifts the delay);
- the click converts within the attribution window with probability
  ``p_true = sigmoid(logit) * Phi((log A - mu(x)) / sigma)``: that is the ground truth the tables use;
- engagement signal k (e.g. add-to-cart) happens with probability ``engagement_given_conversion[k]`` for clicks
  that will convert and ``engagement_given_no_conversion[k]`` otherwise, after an Exp(``engagement_mean_hours[k]``)
  wait; for converters it always precedes the conversion (redrawn uniformly in (0, delay) if it would not).

So an observed negative that has engaged is far likelier to flip than one that has not, beyond what its
features say: the signal the engagement-aware weights exploit. :meth:`DelayedFeedbackSimulator.flip_posterior`
computes the exact flip probability z*(x, e, g) this process implies, the ceiling for a flip model.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import Field
from scipy.special import expit, ndtr, ndtri

from recsci.delayed.data import ClickLog

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class DelayedFeedbackSimulator:
    """Simulated clicks with delayed conversions and engagement; ``load()`` returns a :class:`ClickLog`."""

    def __init__(
        self,
        num_clicks: Annotated[int, Field(ge=100, le=50_000_000)] = 200_000,
        days: Annotated[float, Field(gt=0.0)] = 14.0,
        num_fields: Annotated[int, Field(ge=3)] = 6,
        cardinality: Annotated[int, Field(ge=2)] = 50,
        base_rate: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.15,
        feature_scale: Annotated[float, Field(ge=0.0)] = 0.8,
        interaction_scale: Annotated[float, Field(ge=0.0)] = 0.5,
        drift_scale: Annotated[float, Field(ge=0.0)] = 1.0,
        delay_median_hours: Annotated[float, Field(gt=0.0)] = 6.0,
        delay_sigma: Annotated[float, Field(gt=0.0)] = 1.5,
        delay_feature_scale: Annotated[float, Field(ge=0.0)] = 1.0,
        attribution_hours: Annotated[float, Field(gt=0.0)] = 72.0,
        engagement_names: tuple[str, ...] = ("cart", "fav"),
        engagement_given_conversion: tuple[Probability, ...] = (0.6, 0.3),
        engagement_given_no_conversion: tuple[Probability, ...] = (0.04, 0.03),
        engagement_mean_hours: tuple[Annotated[float, Field(gt=0.0)], ...] = (0.5, 2.0),
        seed: Annotated[int, Field(ge=0)] = 0,
    ) -> None:
        lengths = {
            len(engagement_names),
            len(engagement_given_conversion),
            len(engagement_given_no_conversion),
            len(engagement_mean_hours),
        }
        if len(lengths) != 1:
            raise ValueError("engagement_names/_given_conversion/_given_no_conversion/_mean_hours must align")
        self.num_clicks, self.days, self.num_fields, self.cardinality = (
            num_clicks,
            days,
            num_fields,
            cardinality,
        )
        self.base_rate, self.feature_scale, self.interaction_scale = (
            base_rate,
            feature_scale,
            interaction_scale,
        )
        self.drift_scale = drift_scale
        self.delay_median_hours, self.delay_sigma = delay_median_hours, delay_sigma
        self.delay_feature_scale, self.attribution_hours = delay_feature_scale, attribution_hours
        self.engagement_names = tuple(engagement_names)
        self.engagement_given_conversion = np.asarray(engagement_given_conversion, dtype=np.float64)
        self.engagement_given_no_conversion = np.asarray(engagement_given_no_conversion, dtype=np.float64)
        self.engagement_mean_hours = np.asarray(engagement_mean_hours, dtype=np.float64)
        self.seed = seed

    def load(self) -> ClickLog:
        rng = np.random.default_rng(self.seed)
        n, f, c = self.num_clicks, self.num_fields, self.cardinality
        # Parameters of the world first, so they do not depend on the number of clicks.
        effects = rng.normal(0.0, self.feature_scale, size=(f, c))
        u, v = rng.normal(0.0, 1.0, size=(2, c, 4)) * np.sqrt(self.interaction_scale / 2.0)
        delay_shift = rng.normal(0.0, self.delay_feature_scale, size=c)
        drift_gain = rng.normal(0.0, 1.0, size=(f, c))
        drift_gain[:3] = 0.0  # fields 0-2 keep their effect (interaction and delay live there)

        click_ts = np.sort(rng.uniform(0.0, 24.0 * self.days, size=n))
        features = rng.integers(0, c, size=(n, f))
        fields = np.arange(f)
        score = effects[fields, features].sum(axis=1) + np.einsum(
            "nd,nd->n", u[features[:, 0]], v[features[:, 1]]
        )
        trend = 2.0 * click_ts / (24.0 * self.days) - 1.0
        score += self.drift_scale * drift_gain[fields, features].sum(axis=1) * trend
        bias = _bias_for_rate(score, self.base_rate)
        p_convert = expit(score + bias)
        mu = np.log(self.delay_median_hours) + delay_shift[features[:, 2]]
        p_in_window = ndtr((np.log(self.attribution_hours) - mu) / self.delay_sigma)
        p_true = p_convert * p_in_window

        converts = rng.random(n) < p_convert
        delay = np.exp(mu + self.delay_sigma * rng.standard_normal(n))
        converts &= delay <= self.attribution_hours
        conv_ts = np.where(converts, click_ts + delay, np.inf)

        k = len(self.engagement_names)
        engage_prob = np.where(
            converts[:, None],
            self.engagement_given_conversion[None, :],
            self.engagement_given_no_conversion[None, :],
        )
        engages = rng.random((n, k)) < engage_prob
        wait = rng.exponential(1.0, size=(n, k)) * self.engagement_mean_hours[None, :]
        too_late = converts[:, None] & (wait >= delay[:, None])
        wait = np.where(too_late, rng.random((n, k)) * delay[:, None], wait)
        engagement_ts = np.where(engages, click_ts[:, None] + wait, np.inf)

        return ClickLog(
            click_ts=click_ts,
            conv_ts=conv_ts,
            features=features.astype(np.int64),
            cardinalities=(c,) * f,
            field_names=tuple(f"f{i}" for i in range(f)),
            engagement_ts=engagement_ts,
            engagement_names=self.engagement_names,
            attribution_hours=self.attribution_hours,
            name="simulated",
            p_true=p_true,
            truth={"p_convert": p_convert, "delay_mu": mu, "delay_sigma": np.full(n, self.delay_sigma)},
        )

    def flip_posterior(
        self,
        log: ClickLog,
        index: np.ndarray,
        elapsed: np.ndarray,
        engaged: np.ndarray | None,
        grid: int = 64,
        p_convert: np.ndarray | None = None,
    ) -> np.ndarray:
        """The true z*(x, e, g) = P(converts | not converted by elapsed e, x, engagement flags g by e).

        ``log``: this simulator's output; ``index``: click rows; ``elapsed``: hours since each click;
        ``engaged``: [R, K] 0/1 flags of the K signals seen by then, or None for z*(x, e) without engagement.
        With C = converts within the window and D its delay,

            z* = P(C, D > e, g | x) / [P(C, D > e, g | x) + P(not C, g | x)],

        signals independent given C and D: a converter's engagement wait W ~ Exp(m) is redrawn uniformly in
        (0, D) when W >= D, so P(engaged by e | C, D = d > e) = q1 [(1 - exp(-e/m)) + exp(-d/m) e/d]; a
        non-converter's is q0 (1 - exp(-e/m)). The integral over d is a midpoint rule on ``grid``
        equal-probability slices of D restricted to (e, A].

        ``p_convert``: P(C | x) per row to use instead of the simulator's (e.g. a model's estimate, to
        separate what z* owes to knowing p(x) from what it owes to the engagement and delay likelihoods).
        """
        if p_convert is None:
            p_convert = log.truth["p_convert"][index]
        mu = log.truth["delay_mu"][index]
        e = np.maximum(np.asarray(elapsed, dtype=np.float64), 1e-9)
        lo = ndtr((np.log(e) - mu) / self.delay_sigma)
        hi = ndtr((np.log(log.attribution_hours) - mu) / self.delay_sigma)
        slices = (np.arange(grid) + 0.5)[None, :] / grid
        u = np.clip(lo[:, None] + (hi - lo)[:, None] * slices, 1e-12, 1.0 - 1e-12)
        d = np.exp(mu[:, None] + self.delay_sigma * ndtri(u))
        like_converter, like_other = np.ones_like(d), np.ones_like(e)
        for k in range(0 if engaged is None else engaged.shape[1]):
            m = self.engagement_mean_hours[k]
            by_e = 1.0 - np.exp(-e / m)
            p1 = self.engagement_given_conversion[k] * (by_e[:, None] + np.exp(-d / m) * e[:, None] / d)
            p0 = self.engagement_given_no_conversion[k] * by_e
            seen = np.asarray(engaged[:, k]) > 0
            like_converter *= np.where(seen[:, None], p1, 1.0 - p1)
            like_other *= np.where(seen, p0, 1.0 - p0)
        joint_converter = p_convert * (hi - lo) * like_converter.mean(axis=1)
        joint_other = (1.0 - p_convert * hi) * like_other
        return joint_converter / np.maximum(joint_converter + joint_other, 1e-300)


def _bias_for_rate(score: np.ndarray, rate: float) -> float:
    """The bias b with mean(sigmoid(score + b)) = rate (bisection; the mean is monotone in b)."""
    sample = score[:: max(1, score.size // 200_000)]
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if expit(sample + mid).mean() < rate:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
