"""Delayed feedback: conversion models trained on labels that may still flip (issue #5).

- ``data``: the :class:`~recsci.delayed.data.ClickLog` every source produces (times in hours).
- ``simulator``, ``taobao``, ``talkingdata``, ``criteo``: sources (``data.source`` configs).
- ``datamodule``: loads a source once; vectorised loaders over record sets.
- ``streams``: what was observable when (training records per stream kind; auxiliary examples).
- ``models``: the field-embedding MLP backbone; ``auxiliary``: delayed-positive / flip / FSIW models.
- ``methods``: the weights and losses of Vanilla, Oracle, Pretrained, DFM, FNW, FNC, FSIW, ES-DFM, DEFER,
  DEFUSE and the engagement-aware importance sampling.
- ``module``: the LightningModule; ``protocols``: streaming and batch protocols; ``metrics``: AUC, PR-AUC,
  NLL, ECE, RI.
"""
