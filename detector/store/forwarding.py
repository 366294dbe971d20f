"""How several ``detector run`` instances of one group share the work: forwarded records, a
merger lease, and partition offsets that only move forward from where their writer saw them.

One instance at a time (the holder of the group's **lease**) is the *merger*: it owns the
group's aggregator state, closes windows, scores and routes, and reads its own partitions
straight into that state. Every other instance is a *member*: it polls its partitions and,
every few seconds, **forwards** the records it read to the store, one row per partition with
the offset range they cover, in the same transaction that moves that partition's offset. The
merger folds the forwarded rows into its state (each partition's rows in offset order) and
deletes them in the commit that stores the state they built. So the Kafka clients, the part
of the work that grows with the events (kafka-python's fetches and record objects cost more
than all the aggregation behind them), run in parallel, one per instance, while the windows
stay in one place and equal the batch result.

Exactly once: a partition's offset moves only by a compare-and-set from the value its writer
last saw (:meth:`ForwardingMixin.forward`, and ``expect_offsets`` in a merger's commit), so a
member that lost its partition while paused cannot forward the same records as their new
owner (:class:`PartitionMoved`); forwarded rows are deleted in the transaction that folds
them into the state, which also checks the state's version, so a merger that lost its lease
while paused cannot commit either. The lease itself only keeps a second merger from doing
work that would be thrown away; it is renewed by the holder and taken over when it expires
(instances' clocks are assumed to agree within a few seconds, as NTP keeps them).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Forwarded", "ForwardingMixin", "Lease", "PartitionMoved"]

TopicPartition = tuple[str, int]

DDL = (
    # Records a member read and the merger has not folded yet: one row per partition and
    # forward, [first_offset, next_offset); `idle`: the partition was at its end and quiet.
    """CREATE TABLE IF NOT EXISTS detector_forwarded (
        pipeline TEXT NOT NULL,
        consumer_group TEXT NOT NULL,
        topic TEXT NOT NULL,
        kafka_partition INTEGER NOT NULL,
        first_offset {bigint} NOT NULL,
        next_offset {bigint} NOT NULL,
        idle {bool} NOT NULL,
        records {blob} NOT NULL,
        PRIMARY KEY (pipeline, consumer_group, topic, kafka_partition, first_offset,
                     next_offset))""",
    # Who merges for the group, until when (epoch microseconds), and when that merger last
    # closed a window (so that every member's /readyz can tell a stuck merger).
    """CREATE TABLE IF NOT EXISTS detector_lease (
        pipeline TEXT NOT NULL,
        consumer_group TEXT NOT NULL,
        holder TEXT NOT NULL,
        expires_us {bigint} NOT NULL,
        last_closed_us {bigint},
        PRIMARY KEY (pipeline, consumer_group))""",
)


class PartitionMoved(Exception):
    """A partition's stored offset is not where this instance last saw it: another instance
    took the partition over (this one was paused past its session timeout)."""

    def __init__(self, partitions: Iterable[TopicPartition]) -> None:
        self.partitions = sorted(partitions)
        super().__init__(
            "partition(s) "
            + ", ".join(f"{t}[{p}]" for t, p in self.partitions)
            + " moved on in the store: another instance of the group now reads them"
        )


@dataclass(frozen=True)
class Forwarded:
    """One forwarded row: records ``[first, next)`` of a partition (``records``: the packed
    offsets, values and trace ids, see :mod:`detector.stream.forward`)."""

    topic: str
    partition: int
    first: int
    next: int
    idle: bool
    records: bytes = b""

    @property
    def key(self) -> tuple[str, int, int, int]:
        return (self.topic, self.partition, self.first, self.next)


@dataclass(frozen=True)
class Lease:
    """The group's merger lease as one instance saw it when it asked for it."""

    held: bool  # by the instance that asked
    holder: str
    expires_us: int
    last_closed_us: int | None


class ForwardingMixin:
    """The forwarding and lease half of :class:`~detector.store.base.SqlStore`."""

    _lock: Any
    placeholder: str

    def _transaction(self, *, write: bool) -> Any:
        raise NotImplementedError

    def _sql(self, text: str) -> str:
        raise NotImplementedError

    # -- offsets that move only from where their writer saw them ---------------------------

    def _move_offsets(
        self,
        cur: Any,
        pipeline: str,
        group: str,
        offsets: Mapping[TopicPartition, int],
        expect: Mapping[TopicPartition, int | None],
    ) -> None:
        """Set each partition's offset if it still holds ``expect[tp]`` (None: no row yet);
        raise :class:`PartitionMoved` naming every one that does not."""
        moved = []
        for (topic, part), nxt in offsets.items():
            was = expect.get((topic, part))
            key = (pipeline, group, str(topic), operator.index(part))
            if was is None:
                cur.execute(
                    self._sql(
                        """INSERT INTO detector_offsets
                        (pipeline, consumer_group, topic, kafka_partition, next_offset)
                        VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"""
                    ),
                    (*key, operator.index(nxt)),
                )
            else:
                cur.execute(
                    self._sql(
                        """UPDATE detector_offsets SET next_offset = ? WHERE pipeline = ?
                        AND consumer_group = ? AND topic = ? AND kafka_partition = ?
                        AND next_offset = ?"""
                    ),
                    (operator.index(nxt), *key, operator.index(was)),
                )
            if cur.rowcount != 1:
                moved.append((str(topic), operator.index(part)))
        if moved:
            raise PartitionMoved(moved)

    # -- members ---------------------------------------------------------------------------

    def forward(
        self,
        pipeline: str,
        group: str,
        rows: Sequence[Forwarded],
        expect: Mapping[TopicPartition, int | None],
    ) -> None:
        """Store a member's rows and move their partitions' offsets, in one transaction.

        ``expect``: each partition's offset as the member last saw it (None: no row then).
        The offsets move to the last row's ``next`` per partition; if any partition moved
        on meanwhile, nothing is written and :class:`PartitionMoved` is raised. (Only an idle
        mark can repeat a stored row, after a rebalance gave a quiet partition back: it is
        kept once.)
        """
        ends: dict[TopicPartition, int] = {}
        for row in rows:
            ends[(row.topic, row.partition)] = row.next
        with self._lock, self._transaction(write=True) as cur:
            self._move_offsets(cur, pipeline, group, ends, expect)
            cur.executemany(
                self._sql(
                    """INSERT INTO detector_forwarded (pipeline, consumer_group, topic,
                    kafka_partition, first_offset, next_offset, idle, records)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"""
                ),
                [
                    (
                        pipeline,
                        group,
                        r.topic,
                        r.partition,
                        r.first,
                        r.next,
                        r.idle,
                        bytes(r.records),
                    )
                    for r in rows
                ],
            )

    # -- the merger --------------------------------------------------------------------------

    def forwarded_keys(self, pipeline: str, group: str) -> list[Forwarded]:
        """Every forwarded row not yet folded, without its records, in the order to fold
        them (per partition by ``(next, first)``: an idle mark sorts after the rows before
        it and before the ones after)."""
        with self._lock, self._transaction(write=False) as cur:
            cur.execute(
                self._sql(
                    """SELECT topic, kafka_partition, first_offset, next_offset, idle
                    FROM detector_forwarded WHERE pipeline = ? AND consumer_group = ?
                    ORDER BY topic, kafka_partition, next_offset, first_offset"""
                ),
                (pipeline, group),
            )
            rows = cur.fetchall()
        return [Forwarded(str(t), int(p), int(a), int(b), bool(i)) for t, p, a, b, i in rows]

    def forwarded_records(
        self, pipeline: str, group: str, keys: Sequence[Forwarded]
    ) -> list[Forwarded]:
        """The rows ``keys`` names, with their records, in the order given."""
        out = []
        with self._lock, self._transaction(write=False) as cur:
            for k in keys:
                cur.execute(
                    self._sql(
                        """SELECT records FROM detector_forwarded WHERE pipeline = ?
                        AND consumer_group = ? AND topic = ? AND kafka_partition = ?
                        AND first_offset = ? AND next_offset = ?"""
                    ),
                    (pipeline, group, *k.key),
                )
                row = cur.fetchone()
                if row is not None:
                    out.append(Forwarded(k.topic, k.partition, k.first, k.next, k.idle,
                                         bytes(row[0])))  # fmt: skip
        return out

    def _drop_forwarded(
        self, cur: Any, pipeline: str, group: str, keys: Sequence[tuple[str, int, int, int]]
    ) -> None:
        cur.executemany(
            self._sql(
                """DELETE FROM detector_forwarded WHERE pipeline = ? AND consumer_group = ?
                AND topic = ? AND kafka_partition = ? AND first_offset = ?
                AND next_offset = ?"""
            ),
            [(pipeline, group, *k) for k in keys],
        )

    # -- the lease ---------------------------------------------------------------------------

    def lease(
        self,
        pipeline: str,
        group: str,
        holder: str,
        *,
        now_us: int,
        ttl_us: int,
        last_closed_us: int | None = None,
    ) -> Lease:
        """Take or renew the group's merger lease for ``holder`` if it is free, expired or
        already its own; either way, say who holds it. ``last_closed_us`` (the holder's last
        closed window, wall clock) is stored with a renewal."""
        with self._lock, self._transaction(write=True) as cur:
            cur.execute(
                self._sql(
                    """INSERT INTO detector_lease (pipeline, consumer_group, holder, expires_us)
                    VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"""
                ),
                (pipeline, group, holder, now_us + ttl_us),
            )
            cur.execute(
                self._sql(
                    """UPDATE detector_lease SET holder = ?, expires_us = ?,
                    last_closed_us = COALESCE(?, last_closed_us)
                    WHERE pipeline = ? AND consumer_group = ? AND (holder = ? OR expires_us < ?)"""
                ),
                (holder, now_us + ttl_us, last_closed_us, pipeline, group, holder, now_us),
            )
            cur.execute(
                self._sql(
                    """SELECT holder, expires_us, last_closed_us FROM detector_lease
                    WHERE pipeline = ? AND consumer_group = ?"""
                ),
                (pipeline, group),
            )
            who, until, closed = cur.fetchone()
        return Lease(who == holder, str(who), int(until), None if closed is None else int(closed))

    def release_lease(self, pipeline: str, group: str, holder: str) -> None:
        """Give the lease up (a clean shutdown): another instance may merge at once."""
        with self._lock, self._transaction(write=True) as cur:
            cur.execute(
                self._sql(
                    """UPDATE detector_lease SET expires_us = 0
                    WHERE pipeline = ? AND consumer_group = ? AND holder = ?"""
                ),
                (pipeline, group, holder),
            )
