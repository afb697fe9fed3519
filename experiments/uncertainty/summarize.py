"""Aggregate decision-rule runs (one metrics.json per seed) into the Markdown table of a README.

Usage::

    python experiments/uncertainty/summarize.py outputs/uncertainty/bank_marketing/multiruns/<time>/*/

For each precision bound and rule: test recall and achieved test precision (mean +- std over seeds), in
how many seeds the rule met its bound on test, and the recall gain over the single threshold (mean over
seeds, and the per-seed paired bootstrap 95% intervals' range), and the gain at matched precision: the
rule's test recall minus the best recall ANY single global threshold reaches on test at the precision the
rule achieved on test (a test-tuned baseline, so the comparison is conservative for the per-bucket rules).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path


def load(run_dirs: list[str]) -> list[dict]:
    runs = []
    for d in run_dirs:
        results = json.loads((Path(d) / "metrics.json").read_text())
        if results.get("status") != "completed":
            raise SystemExit(f"{d}: run status is {results.get('status')!r}")
        results["_matched"] = matched_gains(Path(d))
        runs.append(results)
    return runs


def matched_gains(run_dir: Path) -> dict[str, float]:
    """Per ``<rule>@p<b>``: test recall minus the best recall any global threshold reaches on test at the
    precision the rule achieved on test (from the run's scored_test.csv and rules/*.json)."""
    import numpy as np

    from recsci.uncertainty.artifact import load_rule
    from recsci.uncertainty.buckets import bucket_curves, meets_bound
    from recsci.uncertainty.evaluation import precision_recall

    data = np.loadtxt(run_dir / "scored_test.csv", delimiter=",", skiprows=1)
    s, u, y = data[:, 0], data[:, 1], data[:, 2]
    curve = bucket_curves(s, y, np.zeros(y.size, np.int64), 1)[0]
    out = {}
    for path in sorted((run_dir / "rules").glob("*.json")):
        precision, recall = precision_recall(load_rule(path).predict(s, u), y)
        if not math.isfinite(precision):
            continue
        matched = curve.positives[meets_bound(curve.positives, curve.counts, precision)]
        out[path.stem] = recall - (matched.max() / curve.n_positives if matched.size else 0.0)
    return out


def mean_std(values: list[float]) -> str:
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def table(runs: list[dict]) -> str:
    metrics = [r["metrics"] for r in runs]
    rules, bounds = [], []
    for key in metrics[0]:
        if key.startswith("test/") and "/recall@p" in key:
            rule, bound = key.split("/")[1], key.split("@p")[1]
            if rule not in rules:
                rules.append(rule)
            if bound not in bounds:
                bounds.append(bound)
    lines = [
        f"seeds: {[r['seed'] for r in runs]}; commit: {sorted({str(r.get('git_commit')) for r in runs})}",
        "",
        f"test AUC: {mean_std([m.get('test/auc', float('nan')) for m in metrics])}",
        "",
        "| bound | rule | test recall | test precision | met bound (seeds) | recall gain vs single | "
        "gain 95% CI (per-seed range) | gain at matched test precision |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for bound in sorted(bounds, key=float):
        for rule in rules:
            key = f"{rule}/recall@p{bound}"
            recall = [m[f"test/{key}"] for m in metrics]
            precision = [_num(m[f"test/{rule}/precision@p{bound}"]) for m in metrics]
            met = sum(int(m[f"test/{rule}/meets_bound@p{bound}"] == 1.0) for m in metrics)
            gain = [m.get(f"test/{rule}/recall_gain@p{bound}", float("nan")) for m in metrics]
            cis = [r.get("bootstrap", {}).get("intervals", {}).get(f"test/{rule}@p{bound}", {}) for r in runs]
            lo = [c.get("recall_gain_lo") for c in cis if c.get("recall_gain_lo") is not None]
            hi = [c.get("recall_gain_hi") for c in cis if c.get("recall_gain_hi") is not None]
            ci = f"[{min(lo):+.3f} .. {max(hi):+.3f}]" if lo and hi and rule != "single_threshold" else "-"
            matched = [r["_matched"].get(f"{rule}@p{bound}", float("nan")) for r in runs]
            errors = sum(f"{rule}@p{bound}" in (r.get("rule_errors") or {}) for r in runs)
            note = f" ({errors} seed(s): bound unreachable on hold-out)" if errors else ""
            lines.append(
                f"| {bound} | {rule}{note} | {mean_std(recall)} | {mean_std(precision)} | {met}/{len(runs)} | "
                f"{'-' if rule == 'single_threshold' else mean_std(gain)} | {ci} | {mean_std(matched)} |"
            )
    return "\n".join(lines) + "\n"


def _num(value: object) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+")
    print(table(load(parser.parse_args().run_dirs)))


if __name__ == "__main__":
    main()
