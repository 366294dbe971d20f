"""The confluent-kafka (librdkafka) backend of :class:`~detector.stream.source.Source`.

For users who outgrow one pure-Python client: librdkafka fetches and decompresses in its own
threads and hands over thousands of messages per call, so the consumer stops being the
bottleneck of ``detector run``. An optional extra (``pip install 'detector[confluent]'``),
chosen with ``client: confluent`` in the pipeline's Kafka source or ``--client confluent``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from detector.errors import ConfigError
from detector.stream.source import Batch, TopicPartition

__all__ = ["ConfluentSource"]

log = logging.getLogger("detector.stream")


class ConfluentSource:
    """A confluent-kafka ``Consumer`` in a group, started at the store's offsets (see
    :class:`~detector.stream.source.KafkaPythonSource` for the contract)."""

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
        try:
            from confluent_kafka import Consumer
        except ImportError:
            raise ConfigError(
                "client: confluent needs the confluent-kafka package: "
                "pip install 'detector[confluent]' (or use client: kafka-python)"
            ) from None
        if len(topics) != 1:
            raise ValueError("one topic per source (a pipeline reads one topic)")
        self.topic = topics[0]
        servers = (
            bootstrap_servers if isinstance(bootstrap_servers, str) else ",".join(bootstrap_servers)
        )
        self._offsets = offsets
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned
        self.consumer = Consumer(
            {
                "bootstrap.servers": servers,
                "group.id": group,
                "client.id": client_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": session_timeout_ms,
                "heartbeat.interval.ms": max(500, session_timeout_ms // 5),
                # librdkafka waits this long between fetches of an idle queue; the default
                # (1 s) caps a busy consumer far below what it can take
                "fetch.queue.backoff.ms": 10,
                "enable.partition.eof": False,
                **dict(config or {}),
            }
        )
        self._assigned: set[TopicPartition] = set()
        self._start: dict[TopicPartition, int] = {}  # where each partition was started
        self._asked: dict[TopicPartition, tuple[float, int, int]] = {}
        self.consumer.subscribe([self.topic], on_assign=self._assign, on_revoke=self._revoke)

    def _assign(self, consumer: Any, partitions: list[Any]) -> None:
        stored = self._offsets()
        for tp in partitions:
            offset = stored.get((tp.topic, tp.partition))
            if offset is not None:
                tp.offset = offset
                self._start[(tp.topic, tp.partition)] = offset
        consumer.assign(partitions)
        tps = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned |= tps
        log.info("assigned %s", sorted(tps))
        if self._on_assigned is not None:
            self._on_assigned(tps)

    def _revoke(self, consumer: Any, partitions: list[Any]) -> None:
        tps = {(tp.topic, tp.partition) for tp in partitions}
        if tps and self._on_revoked is not None:
            self._on_revoked(tps)
        self._assigned -= tps
        consumer.unassign()

    def poll(self, timeout: float, max_records: int) -> Batch:
        from confluent_kafka import Message

        msgs = self.consumer.consume(num_messages=max_records, timeout=timeout)
        # map over the unbound C methods: no Python frame per message (a third of the time
        # the consumer spent here at 10,000 messages a call)
        values = list(map(Message.value, msgs))
        if None in values:  # an error event (or a record without a value): look closer
            errors = [m for m in msgs if m.error() is not None]
            for m in errors:
                log.warning("consumer error: %s", m.error())
            if errors:
                msgs = [m for m in msgs if m.error() is None]
                values = list(map(Message.value, msgs))
        return Batch(
            self.topic,
            list(map(Message.partition, msgs)),
            list(map(Message.offset, msgs)),
            values,
            lambda i: msgs[i].headers(),
        )

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def highwater(self, tp: TopicPartition) -> int | None:
        from confluent_kafka import TopicPartition as CTP

        try:
            _, high = self.consumer.get_watermark_offsets(CTP(*tp), cached=True)
        except Exception:
            return None
        if high < 0:  # nothing fetched from it yet: ask the broker (now and then)
            high = self._marks(tp)[1]
        return None if high < 0 else int(high)

    def _marks(self, tp: TopicPartition) -> tuple[int, int]:
        """(low, high) watermarks from the broker, asked at most once a minute per partition
        (a round trip that would otherwise slow every idle check)."""
        import time

        from confluent_kafka import TopicPartition as CTP

        at, low, high = self._asked.get(tp, (-1e9, -1, -1))
        if time.monotonic() - at > 60.0:
            try:
                low, high = self.consumer.get_watermark_offsets(CTP(*tp), timeout=2)
            except Exception:
                low, high = -1, -1
            self._asked[tp] = (time.monotonic(), low, high)
        return low, high

    def position(self, tp: TopicPartition) -> int | None:
        from confluent_kafka import TopicPartition as CTP

        try:
            (pos,) = self.consumer.position([CTP(*tp)])
            if pos.offset >= 0:
                return int(pos.offset)
            if tp in self._start:  # nothing consumed since the start: still there
                return self._start[tp]
        except Exception:
            return None
        low = self._marks(tp)[0]  # nothing consumed yet: at the beginning
        return None if low < 0 else int(low)

    def partitions(self) -> set[int]:
        """Every partition of the topic (from the broker's metadata)."""
        meta = self.consumer.list_topics(self.topic, timeout=10)
        return set(meta.topics[self.topic].partitions)

    def close(self) -> None:
        self.consumer.close()
