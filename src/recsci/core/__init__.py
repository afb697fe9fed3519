"""Shared core: running, config validation, seeding, tracking, metrics and results."""

from recsci.core.errors import ConfigError, DataNotFoundError, NonFiniteLossError, RecsciError

__all__ = ["ConfigError", "DataNotFoundError", "NonFiniteLossError", "RecsciError"]
