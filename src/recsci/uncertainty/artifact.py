"""The shippable decision rule: a small JSON file, and :func:`apply_rule` to use it on new scored data.

Layout (``format: recsci-decision-rule``, ``version: 1``)::

    {
      "format": "recsci-decision-rule", "version": 1,
      "rule": "ew_dpmt",                     # which rule fitted it (see recsci.uncertainty.rules.RULES)
      "params": {...},                       # the rule's parameters (get_params())
      "precision_bound": 0.7,
      "uncertainty_edges": [0.01, 0.02],     # ascending; bucket r holds edges[r-1] <= u < edges[r]
      "thresholds": [0.41, 0.55, null],      # one per bucket: positive iff score >= threshold; null: never
      "fit": {"n": ..., "positives": ..., "precision": ..., "recall": ...},   # on the fit (hold-out) data
      "provenance": {...}                    # experiment, run dir, git commit, estimator, seeds, created
    }

A decision is ``score >= thresholds[bucket(uncertainty)]``; scores and uncertainties must be on the
same scale as at fit time (same estimator, same downsampling correction): ``provenance`` says which.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from recsci.uncertainty.buckets import check_inputs
from recsci.uncertainty.errors import RuleArtifactError
from recsci.uncertainty.rules import RULES, DecisionRule

FORMAT = "recsci-decision-rule"
VERSION = 1


def rule_to_dict(rule: DecisionRule, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON-ready artifact of a fitted rule."""
    rule._check_fitted()
    return {
        "format": FORMAT,
        "version": VERSION,
        "rule": rule.name,
        "params": _plain(rule.get_params()),
        "precision_bound": float(rule.precision_bound),
        "uncertainty_edges": [float(e) for e in rule.edges_],
        "thresholds": [None if math.isinf(t) else float(t) for t in rule.thresholds_],
        "fit": _plain(getattr(rule, "fit_summary_", {})),
        "provenance": {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        | _plain(provenance or {}),
    }


def save_rule(rule: DecisionRule, path: str | os.PathLike, provenance: dict[str, Any] | None = None) -> Path:
    """Write the artifact (atomically) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(rule_to_dict(rule, provenance), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def rule_from_dict(data: Any, source: str = "<dict>") -> DecisionRule:
    """A fitted rule from an artifact dict; every problem is a :class:`RuleArtifactError` naming ``source``."""

    def fail(message: str) -> RuleArtifactError:
        return RuleArtifactError(f"'{source}' is not a valid decision rule: {message}")

    if not isinstance(data, dict):
        raise fail(f"expected a JSON object, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise fail(f"'format' is {data.get('format')!r}, expected {FORMAT!r}")
    if data.get("version") != VERSION:
        raise fail(f"'version' is {data.get('version')!r}; this recsci reads version {VERSION}")
    for key in ("rule", "params", "uncertainty_edges", "thresholds"):
        if key not in data:
            raise fail(f"missing key {key!r}")
    cls = RULES.get(data["rule"])
    if cls is None:
        raise fail(f"unknown rule {data['rule']!r}; known: {sorted(RULES)}")
    try:
        rule = cls(**data["params"])
    except (TypeError, ValueError) as err:
        raise fail(f"bad params for {data['rule']}: {err}") from None
    try:
        edges = np.asarray(data["uncertainty_edges"], dtype=np.float64).reshape(-1)
        thresholds = np.array(
            [np.inf if t is None else float(t) for t in data["thresholds"]], dtype=np.float64
        ).reshape(-1)
    except (TypeError, ValueError) as err:
        raise fail(f"edges/thresholds must be lists of numbers (null for 'never'): {err}") from None
    if not np.isfinite(edges).all() or np.any(np.diff(edges) <= 0):
        raise fail("'uncertainty_edges' must be finite and strictly ascending")
    if thresholds.size != edges.size + 1:
        raise fail(f"{edges.size} edges need {edges.size + 1} thresholds, found {thresholds.size}")
    if np.isnan(thresholds).any() or np.isneginf(thresholds).any():
        raise fail("thresholds must be numbers or null")
    rule.edges_, rule.thresholds_ = edges, thresholds
    rule.fit_summary_ = dict(data.get("fit") or {})
    rule.provenance_ = dict(data.get("provenance") or {})
    return rule


def load_rule(path: str | os.PathLike) -> DecisionRule:
    """Read an artifact; a missing, unreadable or corrupt file is a :class:`RuleArtifactError` naming it."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RuleArtifactError(f"Decision rule file '{path}' does not exist.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise RuleArtifactError(f"Cannot read decision rule file '{path}': {err}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise RuleArtifactError(f"'{path}' is not valid JSON ({err}).") from None
    return rule_from_dict(data, str(path))


def apply_rule(
    rule_path_or_obj: str | os.PathLike | DecisionRule | dict, scores: Any, uncertainties: Any
) -> np.ndarray:
    """Boolean decisions of a saved (path or dict) or fitted rule on new scored data."""
    if isinstance(rule_path_or_obj, DecisionRule):
        rule = rule_path_or_obj
    elif isinstance(rule_path_or_obj, dict):
        rule = rule_from_dict(rule_path_or_obj)
    else:
        rule = load_rule(rule_path_or_obj)
    check_inputs(scores, uncertainties)
    return rule.predict(scores, uncertainties)


def _plain(value: Any) -> Any:
    """JSON-safe plain values: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
