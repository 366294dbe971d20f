"""The Store protocol and the SQL implementation shared by every backend.

``detector run`` consumes Kafka and must survive ``kill -9`` at any moment without losing an
event or counting one twice. Kafka transactions would need a transactional producer and a
broker that supports them; instead the consumed offsets live in the *same database
transaction* as what they produced: the aggregator state, the closed metric points and the
anomalies. A restart loads the offsets with the state and seeks there, so every event is
either in the stored state and past the stored offset, or in neither. Kafka's own committed
offsets are never trusted.

Four tables, created on open if missing (``pipeline`` first in every key, so several pipelines
can share one database)::

    detector_offsets    (pipeline, consumer_group, topic, kafka_partition) -> next_offset
    detector_state      (pipeline, consumer_group) -> state (an opaque blob)
    detector_points     (pipeline, metric, series, start) -> value, denominator, missing
    detector_anomalies  (pipeline, series, ts_us) -> metric, value, ..., kind, reason

Times are integers, not SQL timestamp types, so that both dialects compare them the same way:
``start`` in seconds (as :class:`~detector.aggregation.windows.Point` has it), ``ts_us`` in
microseconds (anomaly timestamps come from pandas and may not be whole seconds). NaN is stored
as NULL: SQLite turns NaN into NULL anyway and PostgreSQL would keep a NaN, and the two must
agree.

A backend (:mod:`detector.store.sqlite`, :mod:`detector.store.postgres`) supplies the
connection, the column types, the placeholder and how a transaction begins and ends;
everything else is here. Its ``schemes`` put it in :data:`detector.store.BACKENDS`.
"""

from __future__ import annotations

import logging
import math
import operator
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np
import pandas as pd

from detector.aggregation.windows import Point
from detector.store.forwarding import DDL as _FORWARDING_DDL
from detector.store.forwarding import ForwardingMixin
from detector.types import OUTPUT_COLUMNS

__all__ = [
    "ANOMALY_COLUMNS",
    "POINT_COLUMNS",
    "Cursor",
    "Snapshot",
    "SqlStore",
    "StateConflict",
    "Store",
    "mask_password",
]

logger = logging.getLogger(__name__)

#: Columns of :meth:`Store.points`, in this order (the same as ``backtest.points_frame``).
POINT_COLUMNS: tuple[str, ...] = (
    "timestamp",
    "series",
    "value",
    "denominator",
    "metric",
    "missing",
)
#: Columns of :meth:`Store.anomalies`: the scored output plus the metric.
ANOMALY_COLUMNS: tuple[str, ...] = (*OUTPUT_COLUMNS, "metric")

_FLOATS = ("value", "expected", "lower", "upper", "score")  # the anomalies' float columns


@dataclass
class Snapshot:
    """What a consumer restarts from: where to read next and the state up to there.

    >>> Snapshot({}, None)
    Snapshot(offsets={}, state=None, version=0)
    """

    offsets: dict[tuple[str, int], int]  # (topic, partition) -> next offset to read
    state: bytes | None  # the consumer's aggregator state (opaque), None if never stored
    #: How many commits built the state (several consumers of a group share it); left out of
    #: equality, which is about where to resume and from what.
    version: int = field(default=0, compare=False)


class StateConflict(Exception):
    """Another consumer committed the group's state since this one loaded it (another merger
    took the lease over: see :mod:`detector.store.forwarding`)."""

    def __init__(self, stored: int, expected: int) -> None:
        super().__init__(f"state version {stored} in the store, {expected} expected")
        self.stored, self.expected = stored, expected


@runtime_checkable
class Store(Protocol):
    """Durable, transactional home of a stream consumer's progress and output."""

    url: str  # as given, with any password masked

    def load(self, pipeline: str, group: str) -> Snapshot:
        """The offsets and state of ``(pipeline, group)``; ``Snapshot({}, None)`` if none."""
        ...

    def commit(
        self,
        pipeline: str,
        group: str,
        *,
        offsets: Mapping[tuple[str, int], int],
        state: bytes | None,
        points: Sequence[Point] = (),
        anomalies: pd.DataFrame | None = None,
        also: Callable[[Cursor], None] | None = None,
        expect_version: int | None = None,
        expect_offsets: Mapping[tuple[str, int], int | None] | None = None,
        taken: Sequence[tuple[str, int, int, int]] = (),
    ) -> int:
        """Write everything in one transaction: all of it or, if anything fails, nothing.

        ``also`` writes more in the same transaction (the alert router's alerts and outbox).
        """
        ...

    def points(
        self,
        pipeline: str,
        *,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
        metrics: Sequence[str] | None = None,
        series: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Stored points in ``[start, end)``, :data:`POINT_COLUMNS`, by series then time;
        only of ``metrics`` and ``series`` when given."""
        ...

    def series_sizes(self, pipeline: str) -> pd.DataFrame:
        """``metric, series, points``: each stored series and how many points it has."""
        ...

    def anomalies(
        self,
        pipeline: str,
        *,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Stored anomalies in ``[start, end)``, :data:`ANOMALY_COLUMNS`, by time then series."""
        ...

    def close(self) -> None:
        """Release the connection; the store cannot be used afterwards."""
        ...


def mask_password(url: str) -> str:
    """``url`` with its password (in the user info or a ``password=`` parameter) masked.

    Every message and log line shows the URL through this, so a secret never leaks.

    >>> mask_password("postgresql://app:s3cret@db:5432/metrics?password=s3cret&schema=x")
    'postgresql://app:***@db:5432/metrics?password=***&schema=x'
    >>> mask_password("sqlite:///detector.db")
    'sqlite:///detector.db'
    """
    # Edited in place rather than rebuilt with urlunsplit, which would turn "sqlite:///x.db"
    # into "sqlite:/x.db": the rest of the URL stays exactly as given.
    parts = urlsplit(url)
    userinfo, at, hostinfo = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        masked = f"{userinfo.partition(':')[0]}:***@{hostinfo}"
        url = url.replace(f"//{parts.netloc}", f"//{masked}", 1)
    if "password" in parts.query.lower():
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = urlencode(
            [(k, "***" if k.lower() == "password" else v) for k, v in pairs], safe="*"
        )
        url = url.replace(f"?{parts.query}", f"?{query}", 1)
    return url


# -- shared SQL ---------------------------------------------------------------------------------
# Written with "?" placeholders and {type} names; a backend substitutes its own. Upserts use
# INSERT ... ON CONFLICT ... DO UPDATE, which SQLite (3.24+) and PostgreSQL spell the same way.

#: Scored rows: the anomalies kept, and the verdicts a repair changed (``<table>``).
_ANOMALY_TABLE = """CREATE TABLE IF NOT EXISTS <table> (
        pipeline TEXT NOT NULL,
        series TEXT NOT NULL,
        ts_us {bigint} NOT NULL,
        metric TEXT NOT NULL,
        value {float},
        expected {float},
        lower {float},
        upper {float},
        score {float},
        is_anomaly {bool} NOT NULL,
        kind TEXT NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (pipeline, series, ts_us))"""

_DDL = (
    """CREATE TABLE IF NOT EXISTS detector_offsets (
        pipeline TEXT NOT NULL,
        consumer_group TEXT NOT NULL,
        topic TEXT NOT NULL,
        kafka_partition INTEGER NOT NULL,
        next_offset {bigint} NOT NULL,
        PRIMARY KEY (pipeline, consumer_group, topic, kafka_partition))""",
    """CREATE TABLE IF NOT EXISTS detector_state (
        pipeline TEXT NOT NULL,
        consumer_group TEXT NOT NULL,
        state {blob} NOT NULL,
        PRIMARY KEY (pipeline, consumer_group))""",
    """CREATE TABLE IF NOT EXISTS detector_points (
        pipeline TEXT NOT NULL,
        metric TEXT NOT NULL,
        series TEXT NOT NULL,
        start {bigint} NOT NULL,
        value {float},
        denominator {float},
        missing {bool} NOT NULL,
        PRIMARY KEY (pipeline, metric, series, start))""",
    "CREATE INDEX IF NOT EXISTS detector_points_time ON detector_points (pipeline, start)",
    _ANOMALY_TABLE.replace("<table>", "detector_anomalies"),
    # Verdicts that `detector repair` changed, for a running `detector run` to correct its
    # alerts with (it deletes them in the commit that applies them): the same columns.
    _ANOMALY_TABLE.replace("<table>", "detector_rescored"),
    "CREATE INDEX IF NOT EXISTS detector_anomalies_time ON detector_anomalies (pipeline, ts_us)",
    # One state per group: each commit checks and bumps its version (fencing a late merger).
    """CREATE TABLE IF NOT EXISTS detector_state_version (
        pipeline TEXT NOT NULL,
        consumer_group TEXT NOT NULL,
        version {bigint} NOT NULL,
        PRIMARY KEY (pipeline, consumer_group))""",
    # The alert router's tables (read and written by detector.alerting.state): one row per
    # alert episode (a fingerprint from firing to resolved), silences, and the outbox of
    # notifications, each written before it is sent and marked when delivered.
    """CREATE TABLE IF NOT EXISTS detector_alerts (
        pipeline TEXT NOT NULL,
        id TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        labels TEXT NOT NULL,
        annotations TEXT NOT NULL,
        starts_us {bigint} NOT NULL,
        ends_us {bigint},
        updated_us {bigint} NOT NULL,
        acked_by TEXT,
        acked_us {bigint},
        ack_until_us {bigint},
        ack_comment TEXT,
        feedback TEXT,
        feedback_comment TEXT,
        PRIMARY KEY (pipeline, id))""",
    """CREATE INDEX IF NOT EXISTS detector_alerts_fingerprint
        ON detector_alerts (pipeline, fingerprint, starts_us)""",
    """CREATE TABLE IF NOT EXISTS detector_silences (
        pipeline TEXT NOT NULL,
        id TEXT NOT NULL,
        matchers TEXT NOT NULL,
        starts_us {bigint} NOT NULL,
        ends_us {bigint} NOT NULL,
        created_by TEXT NOT NULL,
        comment TEXT NOT NULL,
        created_us {bigint} NOT NULL,
        PRIMARY KEY (pipeline, id))""",
    """CREATE TABLE IF NOT EXISTS detector_outbox (
        pipeline TEXT NOT NULL,
        key TEXT NOT NULL,
        receiver TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        created_us {bigint} NOT NULL,
        next_us {bigint} NOT NULL,
        first_attempt_us {bigint},
        lease_owner TEXT,
        lease_until_us {bigint},
        delivered_us {bigint},
        last_error TEXT,
        PRIMARY KEY (pipeline, key))""",
    "CREATE INDEX IF NOT EXISTS detector_outbox_due ON detector_outbox (pipeline, state, next_us)",
    *_FORWARDING_DDL,
)

_UPSERT_OFFSET = """INSERT INTO detector_offsets
    (pipeline, consumer_group, topic, kafka_partition, next_offset) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (pipeline, consumer_group, topic, kafka_partition)
    DO UPDATE SET next_offset = excluded.next_offset"""

_UPSERT_STATE = """INSERT INTO detector_state (pipeline, consumer_group, state) VALUES (?, ?, ?)
    ON CONFLICT (pipeline, consumer_group) DO UPDATE SET state = excluded.state"""

_UPSERT_POINT = """INSERT INTO detector_points
    (pipeline, metric, series, start, value, denominator, missing) VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (pipeline, metric, series, start) DO UPDATE SET
    value = excluded.value, denominator = excluded.denominator, missing = excluded.missing"""

_UPSERT_ANOMALY = """INSERT INTO detector_anomalies
    (pipeline, series, ts_us, metric, value, expected, lower, upper, score, is_anomaly, kind,
     reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (pipeline, series, ts_us) DO UPDATE SET
    metric = excluded.metric, value = excluded.value, expected = excluded.expected,
    lower = excluded.lower, upper = excluded.upper, score = excluded.score,
    is_anomaly = excluded.is_anomaly, kind = excluded.kind, reason = excluded.reason"""

_SELECT_OFFSETS = """SELECT topic, kafka_partition, next_offset FROM detector_offsets
    WHERE pipeline = ? AND consumer_group = ?"""

_SELECT_STATE = "SELECT state FROM detector_state WHERE pipeline = ? AND consumer_group = ?"

_SELECT_VERSION = """SELECT version FROM detector_state_version
    WHERE pipeline = ? AND consumer_group = ?"""

_SELECT_POINTS = """SELECT start, series, value, denominator, metric, missing
    FROM detector_points WHERE pipeline = ?"""

_SELECT_ANOMALIES = """SELECT ts_us, series, value, expected, lower, upper, score, is_anomaly,
    kind, reason, metric FROM detector_anomalies WHERE pipeline = ?"""


class SqlStore(ForwardingMixin, ABC):
    """The :class:`Store` over a DB-API connection; a backend fills in the dialect.

    A subclass sets ``schemes``, ``types`` (the SQL type of ``bigint``, ``blob``, ``float``
    and ``bool`` columns) and ``placeholder``, and implements :meth:`_connect`,
    :meth:`_setup` and :meth:`_transaction`. Calls are serialised by a lock, so one store may
    be shared by threads; each call is its own transaction.
    """

    schemes: ClassVar[tuple[str, ...]] = ()
    types: ClassVar[Mapping[str, str]] = {}
    placeholder: ClassVar[str] = "?"

    def __init__(self, url: str) -> None:
        self.url = mask_password(url)
        self._lock = threading.Lock()
        self._conn: Any = self._connect(url)
        try:
            self._setup([stmt.format(**self.types) for stmt in _DDL])
        except BaseException:
            self._conn.close()
            raise
        logger.info("store opened: %s", self.url)

    # -- what a backend provides -----------------------------------------------------------

    @abstractmethod
    def _connect(self, url: str) -> Any:
        """Open the connection, or raise ConfigError naming the (masked) URL."""

    @abstractmethod
    def _setup(self, ddl: Sequence[str]) -> None:
        """Run the CREATE statements (ConfigError if the database refuses them)."""

    @abstractmethod
    def _transaction(self, *, write: bool) -> AbstractContextManager[Any]:
        """A cursor inside one transaction: committed on exit, rolled back on an exception.

        A read transaction sees one snapshot, so the offsets and the state ``load`` returns
        come from the same commit.
        """

    # -- the Store protocol ----------------------------------------------------------------

    def load(self, pipeline: str, group: str) -> Snapshot:
        """The snapshot ``(pipeline, group)`` restarts from.

        >>> from detector.store import open_store
        >>> store = open_store("sqlite:///:memory:")
        >>> store.load("shop", "detector")
        Snapshot(offsets={}, state=None, version=0)
        >>> store.commit("shop", "detector", offsets={("events", 0): 42}, state=b"agg")
        1
        >>> store.load("shop", "detector")
        Snapshot(offsets={('events', 0): 42}, state=b'agg', version=1)
        >>> store.close()
        """
        with self._lock, self._transaction(write=False) as cur:
            cur.execute(self._sql(_SELECT_OFFSETS), (pipeline, group))
            offsets = {(topic, int(part)): int(nxt) for topic, part, nxt in cur.fetchall()}
            cur.execute(self._sql(_SELECT_STATE), (pipeline, group))
            row = cur.fetchone()
            cur.execute(self._sql(_SELECT_VERSION), (pipeline, group))
            version = cur.fetchone()
        return Snapshot(
            offsets, None if row is None else bytes(row[0]), 0 if version is None else version[0]
        )

    def commit(
        self,
        pipeline: str,
        group: str,
        *,
        offsets: Mapping[tuple[str, int], int],
        state: bytes | None,
        points: Sequence[Point] = (),
        anomalies: pd.DataFrame | None = None,
        also: Callable[[Cursor], None] | None = None,
        expect_version: int | None = None,
        expect_offsets: Mapping[tuple[str, int], int | None] | None = None,
        taken: Sequence[tuple[str, int, int, int]] = (),
    ) -> int:
        """Upsert offsets, state, points and anomalies in ONE transaction.

        Only the partitions in ``offsets`` are written (a consumer that lost a partition in a
        rebalance must not reset it); ``state=None`` keeps the stored blob. If any row is
        invalid or the database fails, the transaction is rolled back and the error raised:
        a half-written commit would let a restart skip events or count them twice.

        ``expect_version``: the state version this commit builds on (:attr:`Snapshot.version`).
        If another consumer of the group committed since, nothing is written and
        :class:`StateConflict` is raised; the caller reloads and applies its records again.
        Returns the new version.

        ``expect_offsets``: each partition's offset as this consumer last saw it; a partition
        that moved on meanwhile raises :class:`~detector.store.forwarding.PartitionMoved`
        and nothing is written. ``taken``: forwarded rows (``Forwarded.key``) folded into
        ``state``, deleted in the same transaction (see :mod:`detector.store.forwarding`).
        """
        if state is not None and not isinstance(state, bytes | bytearray | memoryview):
            raise TypeError(f"state must be bytes or None, not {type(state).__name__}")
        with self._lock, self._transaction(write=True) as cur:
            version = self._check_version(cur, pipeline, group, expect_version)
            if expect_offsets is None:
                self._write_offsets(cur, pipeline, group, offsets)
            else:
                self._move_offsets(cur, pipeline, group, offsets, expect_offsets)
            if taken:
                self._drop_forwarded(cur, pipeline, group, taken)
            if state is not None:
                cur.execute(self._sql(_UPSERT_STATE), (pipeline, group, bytes(state)))
            self._write_points(cur, pipeline, points)
            if anomalies is not None and len(anomalies):
                self._write_anomalies(cur, pipeline, anomalies)
            if also is not None:
                also(Cursor(cur, self.placeholder))
        return version

    def _check_version(self, cur: Any, pipeline: str, group: str, expected: int | None) -> int:
        """Lock the group's version row, check it, bump it (the row is created at 0)."""
        cur.execute(
            self._sql(
                """INSERT INTO detector_state_version (pipeline, consumer_group, version)
                VALUES (?, ?, 0) ON CONFLICT (pipeline, consumer_group) DO NOTHING"""
            ),
            (pipeline, group),
        )
        lock = " FOR UPDATE" if self.schemes[0] == "postgresql" else ""
        cur.execute(self._sql(_SELECT_VERSION + lock), (pipeline, group))
        stored = int(cur.fetchone()[0])
        if expected is not None and stored != expected:
            raise StateConflict(stored, expected)
        cur.execute(
            self._sql(
                """UPDATE detector_state_version SET version = ?
                WHERE pipeline = ? AND consumer_group = ?"""
            ),
            (stored + 1, pipeline, group),
        )
        return stored + 1

    def newest_point(self, pipeline: str) -> pd.Timestamp | None:
        """The start of the newest stored window (None if none): one indexed lookup, not a
        read of every point (health checks ask it often)."""
        with self._lock, self._transaction(write=False) as cur:
            cur.execute(
                self._sql("SELECT MAX(start) FROM detector_points WHERE pipeline = ?"),
                (pipeline,),
            )
            row = cur.fetchone()
        if row is None or row[0] is None:
            return None
        return pd.Timestamp(int(row[0]), unit="s", tz="UTC")

    def replace_anomalies(
        self,
        pipeline: str,
        start: pd.Timestamp,
        end: pd.Timestamp,
        frame: pd.DataFrame,
        *,
        changed: pd.DataFrame | None = None,
    ) -> None:
        """Make ``frame`` the anomalies of ``[start, end)``, in one transaction (repair).

        ``changed``: the scored rows whose verdict changed, kept for a running stream to
        correct its alerts with (:meth:`rescored`)."""
        sql, params = _time_range(
            "DELETE FROM detector_anomalies WHERE pipeline = ?", [pipeline], "ts_us", start, end,
            1000,
        )  # fmt: skip
        with self._lock, self._transaction(write=True) as cur:
            cur.execute(self._sql(sql), params)
            if len(frame):
                self._write_anomalies(cur, pipeline, frame)
            if changed is not None and len(changed):
                self._write_anomalies(cur, pipeline, changed, table="detector_rescored")

    def rescored(self, pipeline: str) -> pd.DataFrame:
        """Verdicts changed by a repair and not yet applied by a stream, by time then series
        (:data:`ANOMALY_COLUMNS`)."""
        sql = _SELECT_ANOMALIES.replace("detector_anomalies", "detector_rescored")
        with self._lock, self._transaction(write=False) as cur:
            cur.execute(self._sql(sql), [pipeline])
            rows = cur.fetchall()
        return _anomalies_frame(rows)

    @staticmethod
    def drop_rescored(cur: Cursor, pipeline: str, keys: Iterable[tuple[str, int]]) -> None:
        """Delete applied :meth:`rescored` rows, ``(series, ts_us)``, in the caller's
        transaction (the stream's commit)."""
        cur.executemany(
            "DELETE FROM detector_rescored WHERE pipeline = ? AND series = ? AND ts_us = ?",
            [(pipeline, s, t) for s, t in keys],
        )

    def points(
        self,
        pipeline: str,
        *,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
        metrics: Sequence[str] | None = None,
        series: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Points of ``pipeline`` with ``start <= timestamp < end`` (naive times are UTC).

        ``series`` is sent as one ``IN`` list: keep it to a few thousand names (SQLite allows
        32,766 parameters per statement).
        """
        if (metrics is not None and len(metrics) == 0) or (series is not None and not series):
            return _points_frame([])
        sql, params = _SELECT_POINTS, [pipeline]
        sql, params = _time_range(sql, params, "start", start, end, 10**9)
        for column, values in (("metric", metrics), ("series", series)):
            if values is not None:
                sql += f" AND {column} IN ({', '.join('?' * len(values))})"
                params += [str(v) for v in values]
        with self._lock, self._transaction(write=False) as cur:
            cur.execute(self._sql(sql), params)
            rows = cur.fetchall()
        return _points_frame(rows)

    def series_sizes(self, pipeline: str) -> pd.DataFrame:
        """``metric, series, points`` of every stored series (one pass over the key index)."""
        sql = """SELECT metric, series, COUNT(*) FROM detector_points WHERE pipeline = ?
            GROUP BY metric, series"""
        with self._lock, self._transaction(write=False) as cur:
            cur.execute(self._sql(sql), [pipeline])
            rows = cur.fetchall()
        metric, series, n = _columns(rows, 3)
        return pd.DataFrame(
            {
                "metric": pd.Series(metric, dtype=object).astype(str),
                "series": pd.Series(series, dtype=object).astype(str),
                "points": np.asarray(n, dtype=np.int64),
            }
        )

    def anomalies(
        self,
        pipeline: str,
        *,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Anomalies of ``pipeline`` with ``start <= timestamp < end`` (naive times are UTC)."""
        sql, params = _time_range(_SELECT_ANOMALIES, [pipeline], "ts_us", start, end, 1000)
        with self._lock, self._transaction(write=False) as cur:
            cur.execute(self._sql(sql), params)
            rows = cur.fetchall()
        return _anomalies_frame(rows)

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Cursor]:
        """One transaction for callers that keep their own tables here (the alert router).

        The cursor takes ``?`` placeholders whatever the backend (:meth:`Cursor.execute`
        translates them); :attr:`dialect` tells SQL that differs (``FOR UPDATE SKIP LOCKED``).
        """
        with self._lock, self._transaction(write=write) as cur:
            yield Cursor(cur, self.placeholder)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``: the first of the backend's URL schemes."""
        return self.schemes[0]

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # -- the steps of a commit (separate so that a test can fail one half way) -------------

    def _write_offsets(
        self, cur: Any, pipeline: str, group: str, offsets: Mapping[tuple[str, int], int]
    ) -> None:
        rows = [
            (pipeline, group, str(topic), operator.index(part), operator.index(nxt))
            for (topic, part), nxt in offsets.items()
        ]
        if rows:
            cur.executemany(self._sql(_UPSERT_OFFSET), rows)

    def _write_points(self, cur: Any, pipeline: str, points: Iterable[Point]) -> None:
        rows = (
            (
                pipeline,
                str(p.metric),
                str(p.series),
                operator.index(p.start),
                _real(p.value),
                _real(p.denominator),
                bool(p.missing),
            )
            for p in points
        )
        cur.executemany(self._sql(_UPSERT_POINT), rows)

    def _write_anomalies(
        self, cur: Any, pipeline: str, frame: pd.DataFrame, table: str = "detector_anomalies"
    ) -> None:
        absent = [c for c in OUTPUT_COLUMNS if c not in frame.columns]
        if absent:
            raise ValueError(f"anomalies lack the columns {absent}; they need {OUTPUT_COLUMNS}")
        ts_us = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], utc=True)).as_unit("us")
        if ts_us.hasnans:
            raise ValueError("anomalies have rows without a timestamp (NaT)")
        series = frame["series"].astype(str)
        # Without a metric (column or value), it is the series name before its labels.
        metric = series.str.partition("{")[0]
        if "metric" in frame.columns:
            metric = frame["metric"].where(frame["metric"].notna(), metric)
        floats = [_nullable(frame[c]) for c in _FLOATS]
        rows = zip(
            [pipeline] * len(frame),
            series.tolist(),
            ts_us.asi8.tolist(),
            metric.astype(str).tolist(),
            *floats,
            frame["is_anomaly"].astype(bool).tolist(),
            _text(frame["kind"]),
            _text(frame["reason"]),
            strict=True,
        )
        cur.executemany(self._sql(_UPSERT_ANOMALY.replace("detector_anomalies", table)), rows)

    def _sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)


class Cursor:
    """A DB-API cursor that takes ``?`` placeholders on every backend."""

    def __init__(self, cur: Any, placeholder: str) -> None:
        self._cur, self._placeholder = cur, placeholder

    def _sql(self, text: str) -> str:
        return text if self._placeholder == "?" else text.replace("?", self._placeholder)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        self._cur.execute(self._sql(sql), tuple(params))
        return self

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._cur.executemany(self._sql(sql), [tuple(r) for r in rows])

    def fetchall(self) -> list[Sequence[Any]]:
        return list(self._cur.fetchall())

    def fetchone(self) -> Sequence[Any] | None:
        return self._cur.fetchone()

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)


# -- conversions --------------------------------------------------------------------------------


def _real(x: Any) -> float | None:
    """A float for a REAL column, None for NaN/None; strings are refused, not parsed."""
    if x is None:
        return None
    if isinstance(x, str | bytes):
        raise TypeError(f"expected a number, got {x!r}")
    f = float(x)
    return None if math.isnan(f) else f


def _nullable(col: pd.Series) -> list[float | None]:
    values = pd.to_numeric(col).astype(float).to_numpy()
    return [None if math.isnan(v) else v for v in values.tolist()]


def _text(col: pd.Series) -> list[str]:
    return ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in col]


def _epoch_ceil(ts: pd.Timestamp, divisor: int) -> int:
    """Smallest integer time unit (ns // divisor) not before ``ts``; naive means UTC.

    For an integer column ``x``: ``x >= t`` iff ``x >= ceil(t)`` and ``x < t`` iff
    ``x < ceil(t)``, so both bounds of a half-open range use the ceiling.
    """
    ts = pd.Timestamp(ts)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return -(-ts.as_unit("ns").value // divisor)


def _time_range(
    sql: str,
    params: list[Any],
    column: str,
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
    divisor: int,
) -> tuple[str, list[Any]]:
    if start is not None:
        sql += f" AND {column} >= ?"
        params = [*params, _epoch_ceil(start, divisor)]
    if end is not None:
        sql += f" AND {column} < ?"
        params = [*params, _epoch_ceil(end, divisor)]
    return sql, params


def _utc(values: Sequence[int], unit: str) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(values, dtype="int64"), unit=unit, utc=True).as_unit("ns")


def _floats(values: Sequence[Any]) -> np.ndarray:
    return np.asarray([np.nan if v is None else v for v in values], dtype=float)


def _columns(rows: Sequence[Sequence[Any]], n: int) -> list[Sequence[Any]]:
    return list(zip(*rows, strict=True)) if rows else [() for _ in range(n)]


def _points_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    start, series, value, den, metric, missing = _columns(rows, 6)
    frame = pd.DataFrame(
        {
            "timestamp": _utc(start, "s"),
            "series": pd.Series(series, dtype=object).astype(str),
            "value": _floats(value),
            "denominator": _floats(den),
            "metric": pd.Series(metric, dtype=object).astype(str),
            "missing": np.asarray(missing, dtype=bool),
        }
    )
    # Sorted here, not in SQL: PostgreSQL's collation may order "a{b" and "a.b" unlike SQLite.
    return frame.sort_values(["series", "timestamp"], kind="stable", ignore_index=True)


def _anomalies_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    ts_us, series, *floats, is_anomaly, kind, reason, metric = _columns(rows, 11)
    text = {"series": series, "kind": kind, "reason": reason, "metric": metric}
    frame = pd.DataFrame(
        {
            "timestamp": _utc(ts_us, "us"),
            **{c: pd.Series(v, dtype=object).astype(str) for c, v in text.items()},
            **{c: _floats(v) for c, v in zip(_FLOATS, floats, strict=True)},
            "is_anomaly": np.asarray(is_anomaly, dtype=bool),
        }
    )
    frame = frame.loc[:, list(ANOMALY_COLUMNS)]
    return frame.sort_values(["timestamp", "series"], kind="stable", ignore_index=True)
