"""Directed-graph recommendation: datasets, neighbourhood sampling, link predictors and their evaluation."""
