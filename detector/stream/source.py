"""Where a stream's records come from: the ``Source`` protocol and its kafka-python backend.

The runner (:mod:`detector.stream.runner`) needs little from a consumer: batches of records,
the partitions it owns, a way to start each partition at the offset the store says, word of
partitions taken away, and the high watermark for lag. Keeping that behind a small protocol
lets a second client library (confluent-kafka, for more events per second) slot in without
touching the runner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from detector.logs import trace_id_from_headers

__all__ = ["Batch", "KafkaPythonSource", "Source", "TopicPartition"]

log = logging.getLogger("detector.stream")

TopicPartition = tuple[str, int]


@dataclass(slots=True)
class Batch:
    """Polled records of one topic as parallel columns (no object per record: at several
    hundred thousand records a second, building one costs more than aggregating it)."""

    topic: str
    partitions: list[int]
    offsets: list[int]
    values: list[bytes | None]
    #: Record ``i``'s headers, asked only for the few records kept as exemplars.
    headers: Callable[[int], Sequence[tuple[str, bytes]] | None] | None = None

    def __len__(self) -> int:
        return len(self.values)

    def trace(self, i: int) -> str | None:
        """Record ``i``'s trace id: a W3C ``traceparent``, ``trace_id`` or ``x-trace-id``
        header (:func:`~detector.logs.trace_id_from_headers`)."""
        if self.headers is None:
            return None
        return trace_id_from_headers(list(self.headers(i) or ()))

    def origin(self, i: int) -> str:
        """Where record ``i`` came from, as dead letters name it: ``topic[partition]@offset``."""
        return f"{self.topic}[{self.partitions[i]}]@{self.offsets[i]}"


class Source(Protocol):
    """A consumer-group member that yields records and reports its partitions."""

    def poll(self, timeout: float, max_records: int) -> Batch:
        """The next records (possibly none), in offset order within each partition."""
        ...

    def assignment(self) -> set[TopicPartition]: ...

    def highwater(self, tp: TopicPartition) -> int | None:
        """The partition's high watermark from the last fetch (None before one)."""
        ...

    def position(self, tp: TopicPartition) -> int | None: ...

    def partitions(self) -> set[int]:
        """Every partition of the topic, whoever reads it."""
        ...

    def close(self) -> None:
        """Leave the group (a clean shutdown hands partitions over at once)."""
        ...


class KafkaPythonSource:
    """A kafka-python ``KafkaConsumer`` in a group, started at the store's offsets.

    ``offsets()`` is asked on every assignment (the store is the source of truth for where
    to resume, not Kafka's committed offsets, because the store commits offsets in the same
    transaction as the state they produced); partitions it does not know start at the
    earliest offset. ``on_revoked`` runs before partitions go to another member, so the
    runner can commit what it holds for them.
    """

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str],
        topics: Sequence[str],
        group: str,
        *,
        offsets: Callable[[], Mapping[TopicPartition, int]],
        on_revoked: Callable[[set[TopicPartition]], None] | None = None,
        on_assigned: Callable[[set[TopicPartition]], None] | None = None,
        session_timeout_ms: int = 10_000,
        client_id: str = "detector",
        config: Mapping[str, Any] | None = None,
    ) -> None:
        from kafka import ConsumerRebalanceListener, KafkaConsumer

        if len(topics) != 1:
            raise ValueError("one topic per source (a pipeline reads one topic)")
        self.topic = topics[0]
        self._offsets = offsets
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(500, session_timeout_ms // 5),
            max_poll_interval_ms=300_000,
            request_timeout_ms=max(30_000, session_timeout_ms + 5_000),
            reconnect_backoff_ms=100,
            reconnect_backoff_max_ms=5_000,
            fetch_max_wait_ms=200,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            # kafka-python 3 waits up to 30 s for a first broker before raising; the runner
            # retries with backoff itself (and honours --max-idle), so fail fast here.
            **(
                {"bootstrap_timeout_ms": 5_000}
                if "bootstrap_timeout_ms" in KafkaConsumer.DEFAULT_CONFIG
                else {}
            ),
            **dict(config or {}),
        )
        source = self

        class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
                tps = {(tp.topic, tp.partition) for tp in revoked}
                if tps and source._on_revoked is not None:
                    source._on_revoked(tps)

            def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
                stored = source._offsets()
                tps = set()
                for tp in assigned:
                    tps.add((tp.topic, tp.partition))
                    offset = stored.get((tp.topic, tp.partition))
                    if offset is not None:
                        source.consumer.seek(tp, offset)
                log.info("assigned %s", sorted(tps))
                if source._on_assigned is not None:
                    source._on_assigned(tps)

        self.consumer.subscribe(list(topics), listener=_Listener())

    def poll(self, timeout: float, max_records: int) -> Batch:
        batches = self.consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
        records: list[Any] = []
        out = Batch(self.topic, [], [], [], lambda i: records[i].headers)
        for tp, msgs in batches.items():
            out.partitions += [tp.partition] * len(msgs)
            out.offsets += [m.offset for m in msgs]
            out.values += [m.value for m in msgs]
            records += msgs
        return out

    def assignment(self) -> set[TopicPartition]:
        return {(tp.topic, tp.partition) for tp in self.consumer.assignment()}

    def highwater(self, tp: TopicPartition) -> int | None:
        from kafka import TopicPartition as KTP

        hw = self.consumer.highwater(KTP(*tp))
        return None if hw is None else int(hw)

    def position(self, tp: TopicPartition) -> int | None:
        from kafka import TopicPartition as KTP

        try:
            return int(self.consumer.position(KTP(*tp), timeout_ms=1000))
        except Exception:  # not assigned any more, or no answer in time
            return None

    def partitions(self) -> set[int]:
        """Every partition of the topic (from the cluster metadata)."""
        return set(self.consumer.partitions_for_topic(self.topic) or ())

    def close(self) -> None:
        self.consumer.close(autocommit=False)
