"""Pruning support for jobs run by the optuna sweeper.

``OptunaPruningCallback(monitor)`` is a Lightning callback that reports ``monitor`` to the current
trial after each validation and raises ``optuna.TrialPruned`` when the study's pruner says so; the
sweeper then records the trial as PRUNED. ``current_trial()`` gives the trial to any other code.

Hydra's plugin scan imports every public module under ``hydra_plugins`` on each start-up, so the
Lightning-dependent class is loaded only on first access (module ``__getattr__``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._context import current_trial

if TYPE_CHECKING:
    from ._pruning import OptunaPruningCallback

__all__ = ["OptunaPruningCallback", "current_trial"]


def __getattr__(name: str) -> Any:
    if name == "OptunaPruningCallback":
        from ._pruning import OptunaPruningCallback

        return OptunaPruningCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
