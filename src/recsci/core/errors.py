"""Errors that recsci raises for bad input; each message names the key or file and the fix."""


class RecsciError(Exception):
    """Base class: an error the user can fix without reading a traceback."""


class ConfigError(RecsciError, ValueError):
    """A config value is unknown, of the wrong type or out of range."""


class DataNotFoundError(RecsciError, FileNotFoundError):
    """A dataset root is missing or lacks the files its loader expects."""

    def __init__(self, path: str, expected: str, how_to_get: str) -> None:
        self.path = path
        super().__init__(
            f"Dataset not found at '{path}'.\n"
            f"Expected layout:\n{expected}\n"
            f"How to get it: {how_to_get}\n"
            "Point recsci at the folder holding the datasets with RECSCI_DATA=<dir> or paths.data_dir=<dir>."
        )


class NonFiniteLossError(RecsciError, FloatingPointError):
    """Training produced a NaN or infinite loss."""
