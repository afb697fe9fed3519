"""Build objects from config nodes, surfacing our own errors instead of Hydra's wrapper."""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate

from recsci.core.errors import RecsciError


def build(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that re-raises a :class:`RecsciError` from a constructor as itself.

    Hydra wraps constructor errors in an ``InstantiationException`` whose message is the ``repr`` of
    the original (newlines escaped); ours are written for users, so they are shown unwrapped.
    """
    try:
        return instantiate(node, _convert_="partial", **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, RecsciError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise
