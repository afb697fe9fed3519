"""A scored-data simulator with class-dependent (negative) sampling and a known optimal boundary.

Each example has a true positive probability ``p ~ Beta(a, b)`` (mean ``base_rate``) and an amount of
evidence ``nu`` (one of ``evidence_levels``: how much data the model saw near the example). The model
was trained on negatives downsampled at ``negative_sampling_rate = w``, so it sees the odds
``p / (w (1 - p))``; it observes ``k ~ Binomial(nu, q)`` with ``q = p / (p + w (1 - p))`` and reports
the posterior ``Beta(alpha0 + k, beta0 + nu - k)`` under a prior centred on the downsampled base rate.
Score = the posterior mean corrected back for the downsampling (the usual ``q -> w q / (w q + 1 - q)``),
uncertainty = ``1 / (alpha + beta)`` (or the posterior variance). The label is ``y ~ Bernoulli(p)``.

With little evidence the score shrinks toward the (downsampled, too high) prior, so at a fixed score
the positive rate falls as uncertainty grows: the paper's observation, by construction. Because the
uncertainty determines ``nu``, the Bayes-optimal decision set ``E[p | k, nu] >= tau`` is a score
threshold per evidence level; :func:`oracle_decisions` computes it by quadrature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


def correct_downsampled(q: np.ndarray, rate: float) -> np.ndarray:
    """Probability under the original class balance from one learnt with negatives kept at ``rate``."""
    q = np.asarray(q, dtype=np.float64)
    return rate * q / (rate * q + 1.0 - q)


@dataclass
class ScoredSample:
    scores: np.ndarray
    uncertainties: np.ndarray
    labels: np.ndarray
    true_probability: np.ndarray
    evidence: np.ndarray  # nu per example
    successes: np.ndarray  # k per example


@dataclass
class ScoreSimulator:
    base_rate: float = 0.1
    concentration: float = 2.0  # a + b of the Beta prior of p
    negative_sampling_rate: float = 0.1
    evidence_levels: tuple[int, ...] = (4, 16, 64, 1024)
    prior_strength: float = 4.0  # alpha0 + beta0 of the model's prior
    uncertainty: str = "inverse_evidence"  # 1 / (alpha + beta), or "variance" of the posterior Beta

    @property
    def _ab(self) -> tuple[float, float]:
        return self.base_rate * self.concentration, (1 - self.base_rate) * self.concentration

    @property
    def _prior(self) -> tuple[float, float]:
        prior_mean = self.base_rate / (self.base_rate + self.negative_sampling_rate * (1 - self.base_rate))
        return prior_mean * self.prior_strength, (1 - prior_mean) * self.prior_strength

    def _downsampled(self, p: np.ndarray) -> np.ndarray:
        w = self.negative_sampling_rate
        return p / (p + w * (1 - p))

    def sample(self, n: int, seed: int = 0) -> ScoredSample:
        rng = np.random.default_rng(seed)
        a, b = self._ab
        p = rng.beta(a, b, size=n)
        nu = rng.choice(np.asarray(self.evidence_levels), size=n)
        k = rng.binomial(nu, self._downsampled(p))
        a0, b0 = self._prior
        alpha, beta = a0 + k, b0 + nu - k
        raw = alpha / (alpha + beta)
        if self.uncertainty == "variance":
            uncertainty = alpha * beta / ((alpha + beta) ** 2 * (alpha + beta + 1))
        else:
            uncertainty = 1.0 / (alpha + beta)
        y = (rng.random(n) < p).astype(np.int64)
        return ScoredSample(correct_downsampled(raw, self.negative_sampling_rate), uncertainty, y, p, nu, k)

    def posterior_positive_rate(self, k: np.ndarray, nu: np.ndarray, grid: int = 4000) -> np.ndarray:
        """``E[p | k, nu]`` under the true generative model (quadrature over p)."""
        a, b = self._ab
        p = (np.arange(grid) + 0.5) / grid
        log_prior = stats.beta.logpdf(p, a, b)
        q = self._downsampled(p)
        pairs, inverse = np.unique(np.stack([k, nu], axis=1), axis=0, return_inverse=True)
        log_lik = stats.binom.logpmf(pairs[:, :1], pairs[:, 1:], q[None, :])  # [pairs, grid]
        log_post = log_lik + log_prior[None, :]
        weights = np.exp(log_post - log_post.max(axis=1, keepdims=True))
        means = (weights * p).sum(1) / weights.sum(1)
        return means[inverse.reshape(-1)]


def oracle_decisions(sample: ScoredSample, simulator: ScoreSimulator, bound: float) -> np.ndarray:
    """The Bayes-optimal decisions at a precision bound: the largest top set by ``E[y | score, uncertainty]``
    whose expected precision meets the bound (ties in the calibrated value go together)."""
    calibrated = simulator.posterior_positive_rate(sample.successes, sample.evidence)
    order = np.argsort(-calibrated, kind="stable")
    c = calibrated[order]
    expected_precision = np.cumsum(c) / np.arange(1, c.size + 1)
    ends = np.append(np.flatnonzero(c[1:] != c[:-1]), c.size - 1)
    ok = ends[expected_precision[ends] >= bound]
    decisions = np.zeros(c.size, dtype=bool)
    if ok.size:
        decisions[order[: ok.max() + 1]] = True
    return decisions
