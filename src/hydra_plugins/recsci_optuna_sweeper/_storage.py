"""Which Optuna storage ``hydra.sweeper.storage`` names, and opening it (with a connection check).

The rule, applied in this order to the configured string:

1. null or empty                            -> in-memory storage (one process, nothing persisted)
2. starts with ``journal:``                 -> journal file at the rest of the string
3. ends with ``.log`` or ``.journal`` and
   has no ``://``                           -> journal file at that path
4. has ``://`` (sqlite, postgresql, mysql)  -> ``optuna.storages.RDBStorage`` with that URL (a bare
                                               ``postgresql://`` uses psycopg2 when psycopg 3 is
                                               not installed)
5. anything else                            -> start-up error naming ``hydra.sweeper.storage``

Relative journal paths and relative ``sqlite:///`` paths are resolved against the directory the
command was started from, so that jobs that change directory still find the same file.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
import sqlalchemy.exc
from optuna.storages import BaseStorage, InMemoryStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial

log = logging.getLogger(__name__)

STORAGE_KEY = "hydra.sweeper.storage"
JOURNAL_PREFIX = "journal:"
JOURNAL_SUFFIXES = (".log", ".journal")
# Seconds to wait for a database server before declaring the storage unreachable.
CONNECT_TIMEOUT_S = 10
_SCHEMA_RACE_ATTEMPTS = 4

StorageKind = Literal["memory", "rdb", "journal"]
StaleTrialCallback = Callable[[optuna.Study, FrozenTrial], None]


class StorageError(ValueError):
    """The configured storage is malformed or unreachable."""


@dataclass(frozen=True)
class StorageSpec:
    kind: StorageKind
    location: str | None = None  # absolute journal path, or RDB URL; None for in-memory

    @property
    def is_persistent(self) -> bool:
        return self.kind != "memory"

    def describe(self) -> str:
        """Human-readable form with any password masked (safe for logs and result files)."""
        if self.kind == "memory":
            return "in-memory"
        if self.kind == "journal":
            return f"journal:{self.location}"
        return mask_url(self.location or "")


def parse_storage(value: str | None, base_dir: Path) -> StorageSpec:
    """Apply the rule from the module docstring; ``base_dir`` anchors relative paths."""
    text = (value or "").strip()
    if not text:
        return StorageSpec("memory")
    if text.startswith(JOURNAL_PREFIX):
        return StorageSpec("journal", _absolute(text[len(JOURNAL_PREFIX) :], base_dir, text))
    if "://" not in text and text.endswith(JOURNAL_SUFFIXES):
        return StorageSpec("journal", _absolute(text, base_dir, text))
    if "://" in text:
        return StorageSpec("rdb", _absolute_sqlite_url(text, base_dir))
    raise StorageError(
        f"{STORAGE_KEY}: cannot tell what storage '{text}' is. Use null (in-memory), an RDB URL "
        f"(sqlite:///study.db, postgresql://user:pass@host/db, mysql://...), or a journal file "
        f"('journal:PATH' or a path ending in {' / '.join(JOURNAL_SUFFIXES)})"
    )


def with_installed_driver(url: str) -> str:
    """Pick psycopg2 for a bare ``postgresql://`` URL when psycopg (3) is not installed.

    SQLAlchemy 2.1 maps ``postgresql://`` to psycopg 3; recsci ships psycopg2-binary. An explicit
    driver (``postgresql+psycopg://``, ``postgresql+psycopg2://``) is always kept as written.
    """
    scheme, separator, rest = url.partition("://")
    if scheme != "postgresql" or not separator:
        return url
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        return f"postgresql+psycopg2://{rest}"
    return url


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def open_storage(
    spec: StorageSpec,
    heartbeat_interval: int | None,
    grace_period: int | None,
    stale_trial_callback: StaleTrialCallback | None,
) -> BaseStorage:
    """Create the storage object and check that it is reachable (errors name the config key)."""
    if spec.kind == "memory":
        return InMemoryStorage()
    if spec.kind == "journal":
        return _open_journal(spec)
    return _open_rdb(spec, heartbeat_interval, grace_period, stale_trial_callback)


def _open_journal(spec: StorageSpec) -> JournalStorage:
    assert spec.location is not None
    path = Path(spec.location)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    except OSError as error:
        raise StorageError(f"{STORAGE_KEY}: cannot open journal file {path}: {error}") from error


def _open_rdb(
    spec: StorageSpec,
    heartbeat_interval: int | None,
    grace_period: int | None,
    stale_trial_callback: StaleTrialCallback | None,
) -> RDBStorage:
    url = spec.location or ""  # as written: error messages show this one (masked)
    driver_url = with_installed_driver(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith(("postgresql", "mysql")):
        engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    for attempt in range(1, _SCHEMA_RACE_ATTEMPTS + 1):
        try:
            with warnings.catch_warnings():
                # heartbeat_interval is flagged experimental by Optuna; it is the documented mechanism.
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # Creating the storage connects and creates/checks the schema: an unreachable server,
                # bad credentials or a missing driver all surface here, before any trial runs.
                return RDBStorage(
                    driver_url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=stale_trial_callback,
                )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            # Workers started together on an empty database race to create Optuna's tables; the
            # loser gets a duplicate-key/duplicate-table error. The tables exist now: try again.
            if attempt == _SCHEMA_RACE_ATTEMPTS:
                raise
            log.info("optuna sweeper: another worker is creating the storage schema; retrying")
            time.sleep(0.5 * attempt)
        except Exception as error:
            reason = _masked_reason(error, url)
            # `from None`: the chained driver exception adds nothing here and must not print the URL.
            raise StorageError(f"{STORAGE_KEY}: cannot connect to {mask_url(url)}: {reason}") from None
    raise AssertionError("unreachable")


def _masked_reason(error: BaseException, url: str) -> str:
    """The root cause's first line, with the URL's password (if any) masked out of it."""
    root = getattr(error, "orig", None) or error
    reason = (str(root).strip().splitlines() or [type(root).__name__])[0]
    match = re.search(r"://[^:/@]*:([^@]*)@", url)
    if match and match.group(1):
        reason = reason.replace(match.group(1), "***")
    return f"{type(root).__name__}: {reason}"


def _absolute(path_text: str, base_dir: Path, original: str) -> str:
    if not path_text:
        raise StorageError(f"{STORAGE_KEY}: '{original}' names no journal file")
    path = Path(path_text).expanduser()
    return str(path if path.is_absolute() else (base_dir / path).resolve())


def _absolute_sqlite_url(url: str, base_dir: Path) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    path_text = url[len(prefix) :]
    if not path_text or path_text.startswith("/") or path_text == ":memory:":
        return url
    return prefix + str((base_dir / path_text).resolve())
