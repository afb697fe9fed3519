"""Tests of the delayed-feedback problem (issue #5)."""
