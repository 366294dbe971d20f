"""The alert router's durable state in the store: alert episodes, silences, acks, the outbox.

Everything a person changes from the CLI (an ack, a silence) and everything that must survive a
crash (a notification not yet delivered) lives in the same database as the metrics, so every
``detector run`` instance sharing the store sees it and a restart resumes where it stopped.

The outbox is the delivery guarantee. A notification is inserted (keyed by its content-derived
idempotency key, so the same notification from two instances or from a replay after a crash is
one row) in the same transaction as the consumer offsets that produced it. Senders then *claim*
due rows with a lease: a sender that dies mid-delivery leaves a lease that expires, and another
sender (or the same one after restart) delivers the row again, with the same key, which the
receiver dedupes. PostgreSQL claims with ``FOR UPDATE SKIP LOCKED`` so that several instances
share the work without waiting on each other; SQLite serialises writers anyway.

>>> from detector.store import open_store
>>> from detector.alerting.model import Alert, Notification
>>> state = AlertState(open_store("sqlite:///:memory:"), "shop")
>>> a = Alert({"alertname": "orders", "market": "DE"}, "2026-01-01T10:00Z")
>>> n = Notification.build("chat", "g", {}, [a])
>>> state.enqueue([n, n], now_us=0)
1
>>> [row.key == n.key for row in state.claim("sender-1", now_us=0)]
[True]
>>> state.claim("sender-2", now_us=0)  # leased by sender-1
[]
>>> state.delivered(n.key, "sender-1", now_us=5)
>>> state.outbox_counts()
{'delivered': 1}
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pandas as pd

from detector.alerting.model import Alert, Notification
from detector.errors import DetectorError
from detector.store.base import Cursor, SqlStore

__all__ = ["AlertRow", "AlertState", "OutboxRow", "SilenceRow", "episode_id", "now_us"]

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
ANY = "*"  # the pipeline of a silence made without one: it applies to every pipeline


def now_us() -> int:
    """Wall-clock now in epoch microseconds (the store's unit for the router's times)."""
    return pd.Timestamp.now(tz="UTC").value // 1000


def _us(t: pd.Timestamp | None) -> int | None:
    return None if t is None else pd.Timestamp(t).value // 1000


def _ts(us: int | None) -> pd.Timestamp | None:
    return None if us is None else pd.Timestamp(int(us) * 1000, tz="UTC")


def episode_id(fingerprint: str, starts_at: pd.Timestamp) -> str:
    """The id people type (``detector alerts ack ID``): one per firing episode of a series."""
    return hashlib.sha256(f"{fingerprint}@{_us(starts_at)}".encode()).hexdigest()[:12]


@dataclass(frozen=True)
class OutboxRow:
    """A claimed notification: what to send, and how often it has been tried."""

    key: str
    receiver: str
    notification: Notification
    attempts: int
    first_attempt_us: int | None


@dataclass(frozen=True)
class AlertRow:
    """One alert episode as ``detector alerts list`` shows it."""

    pipeline: str
    id: str
    alert: Alert
    acked_by: str | None
    ack_until: pd.Timestamp | None
    ack_comment: str | None
    feedback: str | None

    def acked(self, at: pd.Timestamp) -> bool:
        return self.acked_by is not None and (self.ack_until is None or self.ack_until > at)


@dataclass(frozen=True)
class SilenceRow:
    id: str
    matchers: list[str]
    starts_at: pd.Timestamp
    ends_at: pd.Timestamp
    created_by: str
    comment: str


class AlertState:
    """The router's tables for one pipeline, over a :class:`~detector.store.base.SqlStore`."""

    def __init__(self, store: Any, pipeline: str | None) -> None:
        """``pipeline`` None: alerts of every pipeline (the CLI without ``--pipeline``);
        silences made so apply to every pipeline. The outbox always needs a pipeline."""
        if not isinstance(store, SqlStore):
            raise DetectorError(f"the alert router needs a SQL store, not {type(store).__name__}")
        self.store: SqlStore = store
        self.pipeline = pipeline

    # -- alerts ----------------------------------------------------------------------------

    def write_alerts(self, cur: Cursor, alerts: Iterable[Alert], now_us: int) -> None:
        """Upsert alert episodes (inside the caller's transaction: the consumer's commit)."""
        rows = [
            (
                self.pipeline,
                episode_id(a.fingerprint, a.starts_at),
                a.fingerprint,
                orjson.dumps(dict(a.labels)).decode(),
                orjson.dumps(dict(a.annotations)).decode(),
                _us(a.starts_at),
                _us(a.ends_at),
                now_us,
            )
            for a in alerts
        ]
        if rows:
            cur.executemany(
                """INSERT INTO detector_alerts (pipeline, id, fingerprint, labels, annotations,
                starts_us, ends_us, updated_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (pipeline, id) DO UPDATE SET annotations = excluded.annotations,
                ends_us = excluded.ends_us, updated_us = excluded.updated_us""",
                rows,
            )

    def alerts(
        self, *, state: str | None = None, at: pd.Timestamp | None = None, labelled: bool = False
    ) -> list[AlertRow]:
        """Alert episodes, newest first; ``state`` firing, resolved, acked or silenced;
        ``labelled``: only those a person labelled (``detector alerts label``)."""
        at = at or pd.Timestamp.now(tz="UTC")
        sql = """SELECT pipeline, id, labels, annotations, starts_us, ends_us, acked_by,
            ack_until_us, ack_comment, feedback FROM detector_alerts WHERE """
        sql, params = self._mine(sql)
        if state in ("firing", "acked", "silenced"):
            sql += " AND ends_us IS NULL"
        elif state == "resolved":
            sql += " AND ends_us IS NOT NULL"
        if labelled:
            sql += " AND feedback IS NOT NULL"
        with self.store.transaction(write=False) as cur:
            rows = cur.execute(sql + " ORDER BY starts_us DESC, id", params).fetchall()
        out = [
            AlertRow(
                r[0],
                r[1],
                Alert(orjson.loads(r[2]), _ts(r[4]), orjson.loads(r[3]), _ts(r[5])),
                r[6],
                _ts(r[7]),
                r[8],
                r[9],
            )
            for r in rows
        ]
        if state == "acked":
            out = [r for r in out if r.acked(at)]
        return out

    def _mine(self, sql: str) -> tuple[str, list[Any]]:
        """``sql`` (ending in WHERE) restricted to this pipeline, or to none when it is None."""
        if self.pipeline is None:
            return sql + "1 = 1", []
        return sql + "pipeline = ?", [self.pipeline]

    def find(self, prefix: str) -> AlertRow:
        """The alert whose id (or fingerprint) starts with ``prefix``; a clear error if not one."""
        prefix = prefix.strip().lower()
        rows = [r for r in self.alerts() if r.id.startswith(prefix)]
        if not rows:
            rows = [r for r in self.alerts() if r.alert.fingerprint.startswith(prefix)][:1]
        if not rows:
            raise DetectorError(
                f"no alert with id {prefix!r}"
                + (f" in pipeline {self.pipeline!r}" if self.pipeline else "")
                + "; "
                "`detector alerts list` shows the ids"
            )
        if len(rows) > 1:
            raise DetectorError(
                f"{len(rows)} alerts have ids starting with {prefix!r}; give more characters"
            )
        return rows[0]

    def ack(
        self, alert_id: str, by: str, *, until: pd.Timestamp | None, comment: str, now_us: int
    ) -> AlertRow:
        """Acknowledge (``until`` None: for the whole episode) or snooze (until a time)."""
        row = self.find(alert_id)
        with self.store.transaction(write=True) as cur:
            cur.execute(
                """UPDATE detector_alerts SET acked_by = ?, acked_us = ?, ack_until_us = ?,
                ack_comment = ? WHERE pipeline = ? AND id = ?""",
                (by, now_us, _us(until), comment, row.pipeline, row.id),
            )
        return self.find(row.id)

    def label(self, alert_id: str, feedback: str, comment: str) -> AlertRow:
        """Store an on-call person's verdict on an alert (used by tuning)."""
        row = self.find(alert_id)
        with self.store.transaction(write=True) as cur:
            cur.execute(
                """UPDATE detector_alerts SET feedback = ?, feedback_comment = ?
                WHERE pipeline = ? AND id = ?""",
                (feedback, comment, row.pipeline, row.id),
            )
        return self.find(row.id)

    def acked_fingerprints(self, at_us: int) -> set[str]:
        """Fingerprints of firing alerts acknowledged (and not past their snooze) at ``at``."""
        with self.store.transaction(write=False) as cur:
            rows = cur.execute(
                """SELECT fingerprint FROM detector_alerts WHERE pipeline = ? AND ends_us IS NULL
                AND acked_by IS NOT NULL AND (ack_until_us IS NULL OR ack_until_us > ?)""",
                (self.pipeline, at_us),
            ).fetchall()
        return {r[0] for r in rows}

    # -- silences --------------------------------------------------------------------------

    def add_silence(
        self,
        matchers: Sequence[str],
        starts_at: pd.Timestamp,
        ends_at: pd.Timestamp,
        created_by: str,
        comment: str,
    ) -> SilenceRow:
        if ends_at <= starts_at:
            raise DetectorError("a silence must end after it starts")
        sid = hashlib.sha256(
            orjson.dumps([list(matchers), _us(starts_at), _us(ends_at), created_by, comment])
        ).hexdigest()[:12]
        with self.store.transaction(write=True) as cur:
            cur.execute(
                """INSERT INTO detector_silences (pipeline, id, matchers, starts_us, ends_us,
                created_by, comment, created_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (pipeline, id) DO NOTHING""",
                (
                    self.pipeline or ANY,
                    sid,
                    orjson.dumps(list(matchers)).decode(),
                    _us(starts_at),
                    _us(ends_at),
                    created_by,
                    comment,
                    now_us(),
                ),
            )
        return SilenceRow(sid, list(matchers), starts_at, ends_at, created_by, comment)

    def silences(self, *, active_at_us: int | None = None) -> list[SilenceRow]:
        """Silences, optionally only those not yet over at ``active_at_us``."""
        sql = """SELECT id, matchers, starts_us, ends_us, created_by, comment
            FROM detector_silences WHERE pipeline IN (?, ?)"""
        params: list[Any] = [self.pipeline or ANY, ANY]
        if active_at_us is not None:
            sql += " AND ends_us > ?"
            params.append(active_at_us)
        with self.store.transaction(write=False) as cur:
            rows = cur.execute(sql + " ORDER BY starts_us, id", params).fetchall()
        return [
            SilenceRow(r[0], orjson.loads(r[1]), _ts(r[2]), _ts(r[3]), r[4], r[5]) for r in rows
        ]

    def expire_silence(self, silence_id: str, now: int) -> None:
        with self.store.transaction(write=True) as cur:
            n = cur.execute(
                """UPDATE detector_silences SET ends_us = ?
                WHERE pipeline IN (?, ?) AND id LIKE ?""",
                (now, self.pipeline or ANY, ANY, f"{silence_id}%"),
            ).rowcount
        if n != 1:
            raise DetectorError(f"no single silence with id {silence_id!r}")

    # -- outbox ----------------------------------------------------------------------------

    def enqueue(
        self, notifications: Sequence[Notification], now_us: int, cur: Cursor | None = None
    ) -> int:
        """Insert notifications not already there (by key); how many were new.

        With ``cur``, inside the caller's transaction (the consumer's commit), so a
        notification exists exactly when the offsets past the events that caused it do.
        """
        if cur is None:
            with self.store.transaction(write=True) as own:
                return self.enqueue(notifications, now_us, own)
        new = 0
        for n in notifications:
            cur.execute(
                """INSERT INTO detector_outbox (pipeline, key, receiver, payload, state, attempts,
                created_us, next_us) VALUES (?, ?, ?, ?, ?, 0, ?, ?)
                ON CONFLICT (pipeline, key) DO NOTHING""",
                (self.pipeline, n.key, n.receiver, n.to_json().decode(), PENDING, now_us, now_us),
            )
            new += max(cur.rowcount, 0)
        return new

    def claim(
        self,
        owner: str,
        now_us: int,
        *,
        lease_us: int = 60_000_000,
        limit: int = 100,
        receivers: Sequence[str] | None = None,
    ) -> list[OutboxRow]:
        """Lease up to ``limit`` due notifications to ``owner``, oldest first."""
        sql = """SELECT key, receiver, payload, attempts, first_attempt_us FROM detector_outbox
            WHERE pipeline = ? AND state = ? AND next_us <= ?
            AND (lease_until_us IS NULL OR lease_until_us <= ?)"""
        params: list[Any] = [self.pipeline, PENDING, now_us, now_us]
        if receivers is not None:
            if not receivers:
                return []
            sql += f" AND receiver IN ({', '.join('?' * len(receivers))})"
            params += list(receivers)
        sql += " ORDER BY next_us, created_us, key LIMIT ?"
        params.append(limit)
        if self.store.dialect == "postgresql":
            sql += " FOR UPDATE SKIP LOCKED"
        with self.store.transaction(write=True) as cur:
            rows = cur.execute(sql, params).fetchall()
            cur.executemany(
                """UPDATE detector_outbox SET lease_owner = ?, lease_until_us = ?
                WHERE pipeline = ? AND key = ?""",
                [(owner, now_us + lease_us, self.pipeline, r[0]) for r in rows],
            )
        return [OutboxRow(r[0], r[1], Notification.from_json(r[2]), r[3], r[4]) for r in rows]

    def delivered(self, key: str, owner: str, now_us: int) -> None:
        self._finish(key, owner, DELIVERED, now_us, None)

    def failed(self, key: str, owner: str, now_us: int, error: str) -> None:
        """Give up on a notification (not retryable, or out of retry budget)."""
        self._finish(key, owner, FAILED, now_us, error)

    def retry_at(
        self, key: str, owner: str, next_us: int, error: str, *, attempted_us: int
    ) -> None:
        """Release the lease and try again at ``next_us``, remembering the error."""
        with self.store.transaction(write=True) as cur:
            cur.execute(
                """UPDATE detector_outbox SET attempts = attempts + 1, next_us = ?,
                first_attempt_us = COALESCE(first_attempt_us, ?), lease_owner = NULL,
                lease_until_us = NULL, last_error = ?
                WHERE pipeline = ? AND key = ? AND state = ?""",
                (next_us, attempted_us, error, self.pipeline, key, PENDING),
            )

    def release(self, key: str, owner: str) -> None:
        """Give a claimed row back untried (the breaker opened before its turn)."""
        with self.store.transaction(write=True) as cur:
            cur.execute(
                """UPDATE detector_outbox SET lease_owner = NULL, lease_until_us = NULL
                WHERE pipeline = ? AND key = ? AND lease_owner = ? AND state = ?""",
                (self.pipeline, key, owner, PENDING),
            )

    def _finish(self, key: str, owner: str, state: str, now_us: int, error: str | None) -> None:
        with self.store.transaction(write=True) as cur:
            cur.execute(
                """UPDATE detector_outbox SET state = ?, attempts = attempts + 1,
                first_attempt_us = COALESCE(first_attempt_us, ?), delivered_us = ?,
                lease_owner = NULL, lease_until_us = NULL, last_error = ?
                WHERE pipeline = ? AND key = ? AND state = ?""",
                (
                    state,
                    now_us,
                    now_us if state == DELIVERED else None,
                    error,
                    self.pipeline,
                    key,
                    PENDING,
                ),
            )

    def outbox_counts(self) -> dict[str, int]:
        """Rows per state: pending, delivered, failed."""
        with self.store.transaction(write=False) as cur:
            rows = cur.execute(
                "SELECT state, COUNT(*) FROM detector_outbox WHERE pipeline = ? GROUP BY state",
                (self.pipeline,),
            ).fetchall()
        return {str(s): int(n) for s, n in sorted(rows)}

    def outbox(self, *, state: str | None = None) -> list[dict[str, Any]]:
        """Outbox rows as dicts (for the CLI and tests), oldest first."""
        sql = """SELECT key, receiver, state, attempts, created_us, delivered_us, last_error,
            payload FROM detector_outbox WHERE pipeline = ?"""
        params: list[Any] = [self.pipeline]
        if state:
            sql += " AND state = ?"
            params.append(state)
        with self.store.transaction(write=False) as cur:
            rows = cur.execute(sql + " ORDER BY created_us, key", params).fetchall()
        cols = (
            "key",
            "receiver",
            "state",
            "attempts",
            "created_us",
            "delivered_us",
            "last_error",
            "payload",
        )
        return [dict(zip(cols, r, strict=True)) for r in rows]
