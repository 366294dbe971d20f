"""The SQLite store: the default, one file, nothing to run.

``sqlite:///relative/path.db`` (relative to the working directory) or
``sqlite:////absolute/path.db``; ``sqlite:///:memory:`` for a throw-away store. Settings, and
why:

- **WAL journal**: readers (a notebook reading points) never block the consumer's commits, and
  a crash leaves the last committed transaction in the log, replayed on the next open.
- **synchronous=FULL**: a commit that returned survives a power cut, not only a killed process
  (alerts may have gone out for it; replaying it would send them again).
- **busy_timeout** and ``BEGIN IMMEDIATE``: two processes can share the file; a writer waits
  for the other's transaction (up to :attr:`SqliteStore.busy_timeout` seconds) instead of
  failing with "database is locked". Taking the write lock at ``BEGIN`` rather than at the
  first write avoids the deadlock of two readers both upgrading to writers.

>>> store = SqliteStore("sqlite:///:memory:")
>>> store
SqliteStore('sqlite:///:memory:')
>>> store.close()
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlsplit

from detector.errors import ConfigError
from detector.store.base import SqlStore

__all__ = ["SqliteStore"]

logger = logging.getLogger(__name__)


class SqliteStore(SqlStore):
    """A :class:`~detector.store.base.Store` in one SQLite file (stdlib ``sqlite3``)."""

    schemes: ClassVar[tuple[str, ...]] = ("sqlite",)
    types: ClassVar[dict[str, str]] = {
        "bigint": "INTEGER",
        "blob": "BLOB",
        "float": "REAL",
        "bool": "INTEGER",
    }
    placeholder: ClassVar[str] = "?"
    busy_timeout: ClassVar[float] = 60.0  # seconds a writer waits for another one

    def _connect(self, url: str) -> sqlite3.Connection:
        path = _path(url, self.url)
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves (sqlite3's implicit
            # transactions would not take the write lock up front). check_same_thread=False:
            # the base class serialises calls with a lock.
            conn = sqlite3.connect(
                path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise _unusable(self.url, exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            mode = self._wal(conn)
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            conn.close()
            raise _unusable(self.url, exc) from exc
        if mode not in ("wal", "memory"):
            logger.warning("store %s: journal mode %s, not WAL (file system?)", self.url, mode)
        return conn

    def _wal(self, conn: sqlite3.Connection) -> str:
        """Switch to WAL; retried, because SQLite answers "database is locked" at once.

        Changing the journal mode of a new file needs an exclusive lock, and SQLite does not
        call the busy handler for it: instances starting together on a new store would fail
        on the race. A file already in WAL answers at once, so only first opens retry.
        """
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.005
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.5)

    def _setup(self, ddl: Sequence[str]) -> None:
        try:
            with self._transaction(write=True) as cur:
                for stmt in ddl:
                    cur.execute(stmt)
        except sqlite3.Error as exc:
            raise _unusable(self.url, exc) from exc

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sqlite3.Cursor]:
        cur = self._conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield cur
            cur.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.Error:  # the original error is the one worth raising
                    logger.exception("store %s: rollback failed", self.url)
            raise
        finally:
            cur.close()


def _path(url: str, masked: str) -> str:
    """The file path of a ``sqlite:///`` URL (relative) or ``sqlite:////`` URL (absolute)."""
    parts = urlsplit(url)
    path = unquote(parts.path[1:])  # drop the "/" that separates the (empty) host
    if parts.netloc or not path or parts.query:
        raise ConfigError(
            f"Store URL {masked!r} is not a SQLite file URL: use sqlite:///relative/path.db "
            "or sqlite:////absolute/path.db (three slashes, then the path)."
        )
    return path


def _unusable(masked: str, exc: BaseException) -> ConfigError:
    return ConfigError(
        f"Cannot open the SQLite store {masked!r} ({exc}). Check that the path is a file in a "
        "directory that exists or can be created, and that it is writable."
    )
