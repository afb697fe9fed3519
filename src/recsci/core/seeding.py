"""Seeding: one integer makes a CPU run reproducible end to end."""

from __future__ import annotations

import random

import lightning.pytorch as pl


def resolve_seed(seed: int | None) -> int:
    """Return ``seed`` itself, or draw one when it is ``None`` so every run records the seed it used.

    ``0`` is a valid seed: only ``None`` means "draw one".
    """
    if seed is not None:
        return int(seed)
    return random.SystemRandom().randrange(0, 2**31 - 1)


def seed_everything(seed: int | None) -> int:
    """Seed Python, NumPy and torch (and dataloader workers); return the seed actually used."""
    used = resolve_seed(seed)
    pl.seed_everything(used, workers=True, verbose=False)
    return used
