"""``recsci apply-rule``: apply a saved decision rule to new scored data (CSV in, CSV out).

    recsci apply-rule --rule decision_rule.json --input scored.csv --output decisions.csv

The input CSV needs a score column and an uncertainty column (``--score-column`` /
``--uncertainty-column``, default ``score`` / ``uncertainty``), on the scale the rule was fitted on
(the rule's ``provenance`` names the estimator and the downsampling correction). The output is the
input with ``bucket``, ``threshold`` and ``decision`` (0/1) columns added. Errors (missing or corrupt
file, missing column, NaN values) print one line naming the file and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from recsci.core.errors import RecsciError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recsci apply-rule",
        description="Apply a saved uncertainty-aware decision rule (JSON) to scored data (CSV).",
    )
    parser.add_argument(
        "--rule", required=True, help="decision rule JSON (e.g. <run dir>/decision_rule.json)"
    )
    parser.add_argument("--input", required=True, help="CSV with score and uncertainty columns")
    parser.add_argument(
        "--output", required=True, help="CSV to write: the input plus bucket, threshold, decision"
    )
    parser.add_argument("--score-column", default="score")
    parser.add_argument("--uncertainty-column", default="uncertainty")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = apply_file(args.rule, args.input, args.output, args.score_column, args.uncertainty_column)
    except (RecsciError, ValueError, OSError) as err:
        print(f"recsci apply-rule: error: {err}", file=sys.stderr)
        return 2
    print(
        f"{summary['rows']} rows, {summary['positive']} positive decisions "
        f"({summary['rule']} at precision bound {summary['precision_bound']:g}) -> {args.output}"
    )
    return 0


def apply_file(
    rule_path: str,
    input_path: str,
    output_path: str,
    score_column: str = "score",
    uncertainty_column: str = "uncertainty",
) -> dict:
    import pandas as pd

    from recsci.uncertainty.artifact import load_rule
    from recsci.uncertainty.errors import DecisionRuleError

    rule = load_rule(rule_path)
    source = Path(input_path)
    if not source.is_file():
        raise FileNotFoundError(f"Input file '{source}' does not exist.")
    try:
        frame = pd.read_csv(source)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"Cannot read '{source}' as CSV: {err}") from None
    missing = [c for c in (score_column, uncertainty_column) if c not in frame.columns]
    if missing:
        raise ValueError(f"'{source}' lacks column(s) {missing}; it has {list(frame.columns)}.")
    values = {}
    for column in (score_column, uncertainty_column):
        numbers = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(numbers)
        if bad.any():
            rows = (np.flatnonzero(bad)[:5] + 2).tolist()  # +2: header line, 1-based lines
            raise ValueError(
                f"'{source}': column {column!r} has {int(bad.sum())} missing/non-numeric values (lines {rows})."
            )
        values[column] = numbers
    try:
        decisions = rule.predict(values[score_column], values[uncertainty_column])
    except DecisionRuleError as err:
        raise ValueError(f"'{source}': {err}") from None
    buckets = rule.buckets(values[uncertainty_column])
    frame["bucket"] = buckets
    frame["threshold"] = rule.thresholds_[buckets]
    frame["decision"] = decisions.astype(np.int64)
    output = Path(output_path)
    output.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(output, index=False)
    return {
        "rows": int(len(frame)),
        "positive": int(decisions.sum()),
        "rule": rule.name,
        "precision_bound": float(rule.precision_bound),
    }


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
