"""The simulator table: rules fitted on 100k simulated scored examples vs the Bayes-optimal boundary.

Usage::

    python experiments/uncertainty/simulator_table.py

Class-dependent sampling (negatives kept at 10%), four evidence levels; fit sample seed 0, test sample
seed 1. Prints test recall, achieved test precision, and the share of test decisions equal to the
Bayes-optimal oracle's (per-evidence-level thresholds on E[p | score, uncertainty]).
"""

from __future__ import annotations

from recsci.uncertainty.evaluation import precision_recall
from recsci.uncertainty.rules import EWDPMT, MIST, ExactBucketDP, SingleThreshold
from recsci.uncertainty.simulation import ScoreSimulator, oracle_decisions


def main() -> None:
    sim = ScoreSimulator()
    fit, test = sim.sample(100_000, seed=0), sim.sample(100_000, seed=1)
    print("| bound | rule | test recall | test precision | agreement with oracle |\n|---|---|---|---|---|")
    for bound in (0.5, 0.6, 0.7):
        oracle = oracle_decisions(test, sim, bound)
        precision, recall = precision_recall(oracle, test.labels)
        print(f"| {bound} | Bayes-optimal oracle | {recall:.3f} | {precision:.3f} | 1 |")
        rules = [
            SingleThreshold(bound),
            MIST(bound, n_buckets=16),
            EWDPMT(bound, n_buckets=16, n_score_bins=100),
            ExactBucketDP(bound, n_buckets=16),
        ]
        for rule in rules:
            rule.fit(fit.scores, fit.uncertainties, fit.labels)
            decisions = rule.predict(test.scores, test.uncertainties)
            precision, recall = precision_recall(decisions, test.labels)
            print(
                f"| {bound} | {rule.name} | {recall:.3f} | {precision:.3f} | {(decisions == oracle).mean():.4f} |"
            )


if __name__ == "__main__":
    main()
