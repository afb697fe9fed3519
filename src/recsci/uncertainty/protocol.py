"""The decision-rule protocol: fit the estimator, score the hold-out, tuning and test splits, fit each
rule on hold-out at each precision bound, compare rules on tuning (``val/...``) and report on test.

Metric names (``<b>`` = precision bound, e.g. ``0.7``):

- ``val/<rule>/recall@p<b>``, ``val/<rule>/precision@p<b>``: the rule fitted on hold-out, measured on
  the tuning split (what sweeps optimise: never the test split).
- ``test/<rule>/recall@p<b>``, ``test/<rule>/precision@p<b>``, ``test/<rule>/meets_bound@p<b>`` (1 when
  the achieved test precision is at least the bound) and ``test/<rule>/recall_gain@p<b>`` (minus the
  single threshold's), and ``test/<rule>/matched_gain@p<b>``: its recall minus the best recall any single
  global threshold reaches on test at the precision this rule achieved on test (a test-tuned baseline, so
  conservative: it compares rules at the same achieved precision). Bootstrap 95% intervals of recall, precision and the paired gain are in
  ``metrics.json`` under ``bootstrap`` and in ``rule_table.md``.
- ``val/auc``, ``val/logloss``, ``test/auc``, ``test/logloss`` of the estimator.

A rule whose bound is unreachable on the hold-out is recorded (``metrics.json`` -> ``rule_errors``)
and scores recall 0 (nothing predicted), never a silent threshold. Artifacts: ``rules/<rule>@p<b>.json``
for every fitted rule, ``decision_rule.json`` (the ``primary_rule`` at ``primary_bound``),
``scored_test.csv`` (score, uncertainty, label: input for ``recsci apply-rule``), ``rule_table.md``,
and with ``plots=true`` ``plots/positive_rate_by_bucket.png`` and ``plots/precision_recall.png``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from recsci.core.protocols import FitValidateTest, RunContext
from recsci.core.results import git_commit
from recsci.uncertainty.artifact import save_rule
from recsci.uncertainty.buckets import Binning, bucket_curves, bucket_edges, meets_bound
from recsci.uncertainty.errors import DecisionRuleError
from recsci.uncertainty.estimators import predict_split
from recsci.uncertainty.evaluation import (
    bootstrap_intervals,
    plot_positive_rate_by_bucket,
    plot_precision_recall,
    precision_recall,
)
from recsci.uncertainty.rules import DecisionRule

log = logging.getLogger(__name__)

Bound = Annotated[float, Field(gt=0.0, le=1.0)]


def bound_key(bound: float) -> str:
    return f"p{bound:g}"


class DecisionRuleProtocol(FitValidateTest):
    """Fit estimator -> score splits -> fit rules on hold-out -> ``val/`` on tuning, ``test/`` on test."""

    def __init__(
        self,
        rules: Mapping[str, Any],  # name -> DecisionRule (built from `_target_` nodes)
        precision_bounds: list[Bound] = (0.5, 0.7),
        baseline: str = "single_threshold",
        primary_rule: str = "exact_dp",
        primary_bound: Bound | None = None,
        n_bootstrap: Annotated[int, Field(ge=0)] = 500,
        bootstrap_seed: Annotated[int, Field(ge=0)] = 0,
        plots: bool = True,
        plot_bounds: list[Bound] | None = None,
        save_scored: bool = True,
        n_buckets: Annotated[int, Field(ge=1)] | None = None,
        binning: Binning | None = None,
        min_positives: Annotated[int, Field(ge=0)] | None = None,
        fit_margin: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0,
    ) -> None:
        if not rules:
            raise ValueError("rules: give at least one decision rule.")
        if baseline not in rules:
            raise ValueError(f"baseline={baseline!r} is not one of the rules {sorted(rules)}")
        if primary_rule not in rules:
            raise ValueError(f"primary_rule={primary_rule!r} is not one of the rules {sorted(rules)}")
        if not precision_bounds:
            raise ValueError("precision_bounds: give at least one bound.")
        # Shared rule hyperparameters (what sweeps tune): set on every rule that has them.
        shared = {"n_buckets": n_buckets, "binning": binning, "min_positives": min_positives}
        shared = {k: v for k, v in shared.items() if v is not None}
        self.rules = {
            name: rule.clone(**{k: v for k, v in shared.items() if k in rule.get_params()})
            for name, rule in dict(rules).items()
        }
        self.bounds = [float(b) for b in precision_bounds]
        self.baseline, self.primary_rule = baseline, primary_rule
        self.primary_bound = float(primary_bound) if primary_bound is not None else self.bounds[-1]
        self.n_bootstrap, self.bootstrap_seed = n_bootstrap, bootstrap_seed
        self.plots = plots
        self.plot_bounds = [float(b) for b in plot_bounds] if plot_bounds else None
        self.save_scored = save_scored
        # Fit each rule at bound + fit_margin (capped at 1), report it against the bound: a guard against
        # the optimism of choosing thresholds on the same hold-out the precision is measured on.
        self.fit_margin = fit_margin

    def __call__(self, context: RunContext) -> dict[str, float]:
        module, datamodule = context.module, context.datamodule
        # Fit, then validate and test the best checkpoint, whose weights stay in the module for the rules.
        metrics = super().__call__(context)
        context.record["splits"] = datamodule.summary()
        scored = {split: predict_split(module, datamodule, split) for split in ("holdout", "tuning", "test")}
        metrics.update(self.evaluate(scored, context))
        return metrics

    # -- the rules ------------------------------------------------------------------------------------
    def evaluate(self, scored: dict[str, dict[str, np.ndarray]], context: RunContext) -> dict[str, float]:
        out_dir = Path(context.output_dir)
        hold, tune, test = scored["holdout"], scored["tuning"], scored["test"]
        metrics: dict[str, float] = {}
        errors: dict[str, str] = {}
        fitted: dict[tuple[str, float], DecisionRule] = {}
        table_rows: list[dict[str, Any]] = []
        bootstrap: dict[str, dict[str, float]] = {}
        provenance = self._provenance(context)
        test_curve = None
        if context.test:  # every global threshold on test: the matched-precision comparison below
            test_curve = bucket_curves(
                test["scores"], test["labels"].astype(np.float64), np.zeros(test["labels"].size, np.int64), 1
            )[0]
        for bound in self.bounds:
            key = bound_key(bound)
            test_decisions: dict[str, np.ndarray] = {}
            for name, template in self.rules.items():
                rule = template.clone(precision_bound=min(1.0, bound + self.fit_margin))
                try:
                    rule.fit(hold["scores"], hold["uncertainties"], hold["labels"])
                except DecisionRuleError as err:
                    errors[f"{name}@{key}"] = str(err)
                    log.warning("%s at precision bound %g: %s", name, bound, err)
                    rule = None
                fitted[(name, bound)] = rule
                for split, data, prefix in (("tuning", tune, "val"), ("test", test, "test")):
                    if split == "test" and not context.test:
                        continue
                    if rule is None:
                        decisions = np.zeros(data["labels"].size, dtype=bool)
                    else:
                        decisions = rule.predict(data["scores"], data["uncertainties"])
                    precision, recall = precision_recall(decisions, data["labels"])
                    metrics[f"{prefix}/{name}/recall@{key}"] = recall
                    metrics[f"{prefix}/{name}/precision@{key}"] = precision
                    if split == "test":
                        metrics[f"{prefix}/{name}/meets_bound@{key}"] = float(
                            np.isfinite(precision) and precision >= bound
                        )
                        test_decisions[name] = decisions
                        # Recall minus the best recall ANY global threshold reaches on test at the precision
                        # this rule achieved on test (a test-tuned single threshold: conservative).
                        if np.isfinite(precision) and test_curve is not None:
                            matched = test_curve.positives[
                                meets_bound(test_curve.positives, test_curve.counts, precision)
                            ]
                            best = matched.max() / test_curve.n_positives if matched.size else 0.0
                            metrics[f"{prefix}/{name}/matched_gain@{key}"] = recall - float(best)
                if rule is not None:
                    save_rule(rule, out_dir / "rules" / f"{name}@{key}.json", provenance)
            if context.test:
                intervals = bootstrap_intervals(
                    test_decisions, test["labels"], self.baseline, self.n_bootstrap, seed=self.bootstrap_seed
                )
                base_recall = metrics[f"test/{self.baseline}/recall@{key}"]
                for name, ci in intervals.items():
                    # Intervals go to metrics.json's `bootstrap` entry (not the console table).
                    bootstrap[f"test/{name}@{key}"] = ci
                    if name != self.baseline:
                        metrics[f"test/{name}/recall_gain@{key}"] = (
                            metrics[f"test/{name}/recall@{key}"] - base_recall
                        )
                    table_rows.append(self._row(name, bound, metrics, ci, fitted[(name, bound)]))
        primary = fitted.get((self.primary_rule, self.primary_bound))
        if primary is not None:
            save_rule(primary, out_dir / "decision_rule.json", provenance)
        context.record["rule_errors"] = errors
        context.record["bootstrap"] = {"n": self.n_bootstrap, "level": 0.95, "intervals": bootstrap}
        context.record["decision_rule"] = str(out_dir / "decision_rule.json") if primary is not None else None
        if table_rows:
            (out_dir / "rule_table.md").write_text(_markdown_table(table_rows))
        if self.save_scored:
            _write_scored(out_dir / "scored_test.csv", test)
            _write_scored(out_dir / "scored_holdout.csv", hold)
        if self.plots:
            self._plots(out_dir, hold, test, fitted)
        return metrics

    def _row(
        self,
        name: str,
        bound: float,
        metrics: dict[str, float],
        ci: dict[str, float],
        rule: DecisionRule | None,
    ) -> dict[str, Any]:
        key = bound_key(bound)

        def get(stat: str) -> float:
            if stat in ci:
                return ci[stat]
            return metrics.get(f"test/{name}/{stat}@{key}", float("nan"))

        return {
            "bound": bound,
            "rule": name,
            "buckets": rule.fit_summary_["n_buckets"] if rule is not None else "-",
            "recall": get("recall"),
            "recall_ci": (get("recall_lo"), get("recall_hi")),
            "precision": get("precision"),
            "precision_ci": (get("precision_lo"), get("precision_hi")),
            "meets": get("meets_bound"),
            "gain": get("recall_gain"),
            "gain_ci": (get("recall_gain_lo"), get("recall_gain_hi")),
        }

    def _provenance(self, context: RunContext) -> dict[str, Any]:
        module, datamodule = context.module, context.datamodule
        return {
            "run_dir": str(context.output_dir),
            "git_commit": git_commit(),
            "estimator": type(module).__name__,
            "estimator_hparams": {k: v for k, v in dict(module.hparams).items() if not k.startswith("_")},
            "negative_sampling_rate": float(getattr(datamodule, "negative_sampling_rate", 1.0)),
            "score": "positive probability corrected for negative downsampling",
            "dataset": type(getattr(datamodule, "dataset", None)).__name__,
            "split_seed": getattr(datamodule, "split_seed", None),
            "fit_split": "holdout",
        }

    def _plots(
        self,
        out_dir: Path,
        hold: dict[str, np.ndarray],
        test: dict[str, np.ndarray],
        fitted: dict[tuple[str, float], DecisionRule | None],
    ) -> None:
        edges = bucket_edges(hold["uncertainties"], 5, "quantile")
        plot_positive_rate_by_bucket(
            test["scores"],
            test["uncertainties"],
            test["labels"],
            edges,
            out_dir / "plots" / "positive_rate_by_bucket.png",
        )
        points: dict[str, list[tuple[float, float]]] = {}
        for name, template in self.rules.items():
            for bound in self.plot_bounds or self.bounds:
                rule = fitted.get((name, bound))
                if rule is None and (name, bound) not in fitted:  # an extra plot bound: fit it here
                    try:
                        rule = template.clone(precision_bound=min(1.0, bound + self.fit_margin)).fit(
                            hold["scores"], hold["uncertainties"], hold["labels"]
                        )
                    except DecisionRuleError:
                        rule = None
                if rule is None:
                    continue
                decisions = rule.predict(test["scores"], test["uncertainties"])
                precision, recall = precision_recall(decisions, test["labels"])
                points.setdefault(name, []).append((recall, precision))
        plot_precision_recall(points, out_dir / "plots" / "precision_recall.png")


def _write_scored(path: Path, data: dict[str, np.ndarray]) -> None:
    rows = np.column_stack([data["scores"], data["uncertainties"], data["labels"]])
    np.savetxt(
        path, rows, delimiter=",", header="score,uncertainty,label", comments="", fmt=["%.10g", "%.10g", "%d"]
    )


def _markdown_table(rows: list[dict[str, Any]]) -> str:
    def f(x: float) -> str:
        return "nan" if not np.isfinite(x) else f"{x:.3f}"

    def ci(pair: tuple[float, float]) -> str:
        return f"[{f(pair[0])}, {f(pair[1])}]"

    lines = [
        "| bound | rule | buckets | test recall [95% CI] | test precision [95% CI] | meets bound | "
        "recall gain vs single [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gain = "-" if not np.isfinite(r["gain"]) else f"{r['gain']:+.3f} {ci(r['gain_ci'])}"
        meets = "yes" if r["meets"] == 1.0 else "**no**"
        lines.append(
            f"| {r['bound']:g} | {r['rule']} | {r['buckets']} | {f(r['recall'])} {ci(r['recall_ci'])} | "
            f"{f(r['precision'])} {ci(r['precision_ci'])} | {meets} | {gain} |"
        )
    return "\n".join(lines) + "\n"
