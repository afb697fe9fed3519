"""Tests of the uncertainty-aware decision problem (issue #6)."""
