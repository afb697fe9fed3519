"""Uncertainty-aware decisions: per-uncertainty-bucket thresholds (issue #6).

Modules: ``datasets`` (bank marketing, TalkingData, Criteo DAC, Avazu, synthetic), ``datamodule``
(train / hold-out / tuning / test, negative downsampling), ``estimators`` (posterior network, MC
dropout, deep ensemble, plain), ``rules`` (single threshold, reject option, MIST, EW-DPMT, exact DP,
Optuna search), ``artifact`` (the JSON rule: save / load / apply), ``evaluation``, ``protocol``,
``simulation`` (scored data with a known optimal boundary) and ``apply_cli`` (``recsci apply-rule``).
"""

from recsci.uncertainty.artifact import apply_rule, load_rule, save_rule

__all__ = ["apply_rule", "load_rule", "save_rule"]
