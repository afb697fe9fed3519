"""Uncertainty-aware decisions: per-uncertainty-bucket thresholds (issue #6)."""
