"""The PostgreSQL store: shared by several ``detector run`` instances, one per consumer group.

``postgresql://user[:password]@host:port/db`` (or ``postgres://``), any libpq parameter in the
query string, plus one of ours: ``schema=NAME`` puts the tables in that schema (created if
missing, then first on the ``search_path``), so that several deployments, or tests, can share a
database without seeing each other's tables. It is removed before the URL reaches libpq.

The connection is not in autocommit: each call is one explicit transaction, committed with
PostgreSQL's default ``synchronous_commit``, so a commit that returned is on disk. A client
killed half way through a commit simply disconnects and the server rolls it back. Reads run in
a ``REPEATABLE READ`` transaction so that ``load`` sees the offsets and the state of one
commit even while another process writes.

``psycopg`` is imported when a store is opened, not with this module: SQLite users do not pay
its import time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from detector.errors import ConfigError
from detector.store.base import SqlStore

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStore"]

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# Creating the tables takes this transaction-level advisory lock: two instances starting at
# once would otherwise race on CREATE ... IF NOT EXISTS and one would fail on a unique index.
_DDL_LOCK = 0x64657465637472  # "detectr"


class PostgresStore(SqlStore):
    """A :class:`~detector.store.base.Store` in a PostgreSQL database (psycopg 3)."""

    schemes: ClassVar[tuple[str, ...]] = ("postgresql", "postgres")
    types: ClassVar[dict[str, str]] = {
        "bigint": "BIGINT",
        "blob": "BYTEA",
        "float": "DOUBLE PRECISION",
        "bool": "BOOLEAN",
    }
    placeholder: ClassVar[str] = "%s"
    connect_timeout: ClassVar[int] = 10  # seconds, unless the URL sets connect_timeout
    schema: str | None = None  # from the URL's schema= parameter

    def _connect(self, url: str) -> psycopg.Connection[Any]:
        import psycopg

        conninfo, self.schema = _split_schema(url, self.url)
        given = dict(parse_qsl(urlsplit(conninfo).query))
        options = {} if "connect_timeout" in given else {"connect_timeout": self.connect_timeout}
        try:
            return psycopg.connect(conninfo, autocommit=False, **options)
        except psycopg.Error as exc:
            password = urlsplit(url).password
            reason = _one_line(exc)
            if password:
                reason = reason.replace(password, "***")
            raise ConfigError(
                f"Cannot connect to the PostgreSQL store {self.url!r} ({reason}). Check that the "
                "server is running and that the URL's host, port, user, password and database "
                "are right."
            ) from exc

    def _setup(self, ddl: Sequence[str]) -> None:
        import psycopg
        from psycopg import sql

        try:
            with self._transaction(write=True) as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
                if self.schema:
                    name = sql.Identifier(self.schema)
                    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
                    # SET (not SET LOCAL) in a committed transaction: it lasts for the session.
                    cur.execute(sql.SQL("SET search_path TO {}").format(name))
                for stmt in ddl:
                    cur.execute(stmt)
        except psycopg.Error as exc:
            raise ConfigError(
                f"Cannot create the tables of the PostgreSQL store {self.url!r} "
                f"({_one_line(exc)}). Check that the user may create tables there (and the "
                "schema, if the URL names one)."
            ) from exc

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[psycopg.Cursor[Any]]:
        # With autocommit off and no transaction open, transaction() issues BEGIN and ends
        # with COMMIT, or ROLLBACK if the block raises.
        with self._conn.transaction(), self._conn.cursor() as cur:
            if not write:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield cur


def _one_line(exc: BaseException) -> str:
    """libpq's multi-line message on one line, to sit inside ours."""
    return " ".join(str(exc).split()).rstrip(".")


def _split_schema(url: str, masked: str) -> tuple[str, str | None]:
    """The libpq URL without our ``schema`` parameter, and the schema it named.

    >>> _split_schema("postgresql://u@h/db?schema=t_1&sslmode=disable", "")
    ('postgresql://u@h/db?sslmode=disable', 't_1')
    """
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in pairs if k == "schema"]
    if not schemas:
        return url, None
    schema = schemas[-1]
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ConfigError(
            f"Store URL {masked!r}: schema {schema!r} is not a plain SQL name; use letters, "
            "digits and underscores, not starting with a digit (at most 63)."
        )
    query = urlencode([(k, v) for k, v in pairs if k != "schema"])
    return urlunsplit(parts._replace(query=query)), schema
