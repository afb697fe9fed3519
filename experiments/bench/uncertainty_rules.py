"""Benchmark: fitting EW-DPMT, MIST and the exact DP on many scored examples, and Optuna at equal quality.

Usage::

    python experiments/bench/uncertainty_rules.py                       # 10 M examples, U = 20 buckets
    python experiments/bench/uncertainty_rules.py --n 1000000 --repeats 1   # quick

Prints a Markdown table: fit seconds (median over repeats) and fit recall at the precision bound for
the single threshold, MIST, EW-DPMT (S score bins) and the exact DP (S score bins) on the simulator's
scored data, then the Optuna per-bucket search on a 100k subsample against the exact DP on the same
data (trials needed to reach the DP's recall, if ever). Run with one thread for a one-core number:
``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 taskset -c 0 python ...``.
"""

from __future__ import annotations

import argparse
import statistics
import time

from recsci.uncertainty.rules import EWDPMT, MIST, ExactBucketDP, OptunaBucketSearch, SingleThreshold
from recsci.uncertainty.simulation import ScoreSimulator


def timed(rule, s, u, y, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        rule.fit(s, u, y)
        times.append(time.perf_counter() - start)
    return statistics.median(times), rule.fit_summary_["recall"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--buckets", type=int, default=20)
    parser.add_argument("--score-bins", type=int, default=50)
    parser.add_argument("--bound", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--optuna-n", type=int, default=100_000)
    parser.add_argument("--optuna-trials", type=int, default=300)
    args = parser.parse_args()

    # Continuous uncertainty (posterior variance) so the buckets are genuinely equal-weight.
    sample = ScoreSimulator(uncertainty="variance").sample(args.n, seed=0)
    s, u, y = sample.scores, sample.uncertainties, sample.labels
    print(f"n = {args.n:,}, U = {args.buckets}, S = {args.score_bins}, bound = {args.bound}\n")
    print("| rule | fit time (s) | fit recall |\n|---|---|---|")
    rules = [
        SingleThreshold(args.bound),
        MIST(args.bound, n_buckets=args.buckets),
        EWDPMT(args.bound, n_buckets=args.buckets, n_score_bins=args.score_bins),
        ExactBucketDP(args.bound, n_buckets=args.buckets, n_score_bins=args.score_bins),
    ]
    for rule in rules:
        seconds, recall = timed(rule, s, u, y, args.repeats)
        print(f"| {rule.name} | {seconds:.2f} | {recall:.4f} |")

    m = args.optuna_n
    dp = ExactBucketDP(args.bound, n_buckets=args.buckets, n_score_bins=args.score_bins)
    dp_seconds, dp_recall = timed(dp, s[:m], u[:m], y[:m], 1)
    print(f"\nOn {m:,} examples: exact DP {dp_seconds:.2f} s, fit recall {dp_recall:.4f}\n")
    print("| Optuna trials | fit time (s) | fit recall | fraction of DP recall |\n|---|---|---|---|")
    for trials in (30, 100, args.optuna_trials):
        search = OptunaBucketSearch(
            args.bound, n_buckets=args.buckets, n_score_bins=args.score_bins, n_trials=trials, seed=0
        )
        seconds, recall = timed(search, s[:m], u[:m], y[:m], 1)
        print(f"| {trials} | {seconds:.2f} | {recall:.4f} | {recall / dp_recall:.3f} |")


if __name__ == "__main__":
    main()
