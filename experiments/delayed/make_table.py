"""Aggregate a delayed-feedback multirun into a Markdown table: mean +- std over seeds per method.

Usage::

    python experiments/delayed/make_table.py <multirun dir> [<multirun dir> ...] [--split test]

Reads every ``*/metrics.json`` under the directories (one per job), groups by the method (the model
option in ``.hydra/overrides.yaml``; a method found in a later directory replaces an earlier one's runs) and prints AUC, PR-AUC, NLL, ECE, RI (vs Vanilla/Oracle and vs
Pretrained/Oracle, computed inside each run against its own references) and the flip model's calibration.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

import yaml

ORDER = [
    "pretrained",
    "vanilla",
    "oracle",
    "dfm",
    "fnw",
    "fnc",
    "fsiw",
    "esdfm",
    "defer",
    "defuse",
    "engagement_is",
]
COLUMNS = [
    ("auc", "AUC"),
    ("pr_auc", "PR-AUC"),
    ("nll", "NLL"),
    ("ece", "ECE"),
    ("ri_auc", "RI-AUC (V/O)"),
    ("ri_nll", "RI-NLL (V/O)"),
    ("ri_pretrained_auc", "RI-AUC (P/O)"),
]


def method_of(job: Path) -> str:
    overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
    for item in overrides:
        if item.startswith("model="):
            return item.split("=", 1)[1].removeprefix("delayed_")
    return "default"


def fmt(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("multirun", type=Path, nargs="+")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    rows: dict[str, dict[str, list[float]]] = {}
    seeds: dict[str, list[int]] = {}
    for directory in args.multirun:
        found: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        found_seeds: dict[str, list[int]] = defaultdict(list)
        for path in sorted(directory.glob("*/metrics.json")):
            result = json.loads(path.read_text())
            if result.get("status") != "completed":
                continue
            method = method_of(path.parent)
            found_seeds[method].append(result["seed"])
            for key, value in result["metrics"].items():
                found[method][key].append(value)
        rows.update(found)
        seeds.update(found_seeds)
    s = args.split
    header = "| method | seeds | " + " | ".join(name for _, name in COLUMNS) + " |"
    print(header)
    print("|" + "---|" * (len(COLUMNS) + 2))
    for method in sorted(rows, key=lambda m: ORDER.index(m) if m in ORDER else len(ORDER)):
        cells = [fmt(rows[method].get(f"{s}/{key}", [])) for key, _ in COLUMNS]
        print(f"| {method} | {len(seeds[method])} | " + " | ".join(cells) + " |")
    print("\nIn-run references (trained on the same windows inside every run above; all runs pooled):\n")
    print("| reference | runs | AUC | PR-AUC | NLL | ECE |")
    print("|---|---|---|---|---|---|")
    keys = ("auc", "pr_auc", "nll", "ece")
    for ref in ("pretrained", "vanilla", "oracle", "truth"):
        pooled = {k: [v for m in rows.values() for v in m.get(f"{s}/{ref}/{k}", [])] for k in keys}
        if pooled["auc"]:
            cells = " | ".join(fmt(pooled[k]) for k in keys)
            print(f"| {ref} | {len(pooled['auc'])} | {cells} |")
    flips = [m for m in rows if f"{s}/flip/auc" in rows[m]]
    if flips:
        print("\nFlip model on the stream's observed negatives (label: converts later):\n")
        print("| method | flip model | AUC | NLL | ECE | mean z | flip rate |")
        print("|---|---|---|---|---|---|---|")
        for method in flips:
            for name in ("flip", "flip_no_engagement"):
                if f"{s}/{name}/auc" in rows[method]:
                    r = rows[method]
                    print(
                        f"| {method} | {name} | {fmt(r[f'{s}/{name}/auc'])} | {fmt(r[f'{s}/{name}/nll'])} | "
                        f"{fmt(r[f'{s}/{name}/ece'])} | {fmt(r[f'{s}/{name}/mean_pred'])} | "
                        f"{fmt(r[f'{s}/{name}/pos_rate'])} |"
                    )


if __name__ == "__main__":
    main()
