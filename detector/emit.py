"""The emitter SDK: apps send domain events to Kafka without ever waiting on Kafka.

An app calls :meth:`Emitter.emit` on its request path, so the call must cost microseconds
whatever the broker does and must never raise: an outage of the event pipeline must not
become an outage of the shop. ``emit`` therefore only builds the event, encodes it and
appends it to a bounded in-memory buffer; a daemon thread owns the Kafka producer and does
all the I/O. When the broker is away the buffer holds the events and the thread reconnects
with backoff; when the buffer is full new events are refused. Every event that does not
reach the broker is counted in :attr:`Emitter.stats`, so a loss is visible, never silent.

>>> event = make_event("order_placed", "shop-api", ts="2026-01-05T11:03:27.123456+01:00",
...                    market="DE", amount=129.9)
>>> list(event)
['event_id', 'type', 'ts', 'source', 'market', 'amount']
>>> event["ts"], len(event["event_id"]), event_key(event)
('2026-01-05T10:03:27.123Z', 32, b'order_placed|DE')

Use it as a context manager, or call :meth:`Emitter.close` when the app stops::

    with Emitter("kafka:9092", source="shop-api") as emitter:
        emitter.emit("order_placed", market="DE", amount=129.9, currency="EUR")
"""

from __future__ import annotations

import atexit
import logging
import random
import socket
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = [
    "KEY_FIELDS",
    "Emitter",
    "EmitterStats",
    "close_producer",
    "event_key",
    "format_ts",
    "make_event",
    "open_producer",
]

log = logging.getLogger(__name__)

#: Attributes that name the segment of a series, most specific first (see :func:`event_key`).
KEY_FIELDS: tuple[str, ...] = ("market", "provider", "pair", "show", "currency")

#: Producer settings of the emitter, each chosen on purpose (``producer_config`` overrides them).
PRODUCER_CONFIG: dict[str, Any] = {
    "acks": "all",  # "sent" means written to every in-sync replica, not merely received
    "linger_ms": 5,  # a few ms of batching: far fewer requests, no visible latency
    "retries": 10,  # transient produce errors (leader moved, timeout) are retried ...
    "retry_backoff_ms": 200,  # ... 200 ms apart ...
    "request_timeout_ms": 10_000,
    "delivery_timeout_ms": 120_000,  # ... and an event is given up ("failed") after 2 minutes
    "max_block_ms": 1_000,  # send() waits at most 1 s for metadata when the broker is away
    "bootstrap_timeout_ms": 2_000,  # connecting gives up after 2 s; the thread retries later
    "reconnect_backoff_max_ms": 5_000,
    # At-least-once is enough (the consumer drops duplicate event_ids), and the idempotent
    # producer's state does not survive a broker that lost it: kafka-python then fails fatally
    # and every later send fails with it.
    "enable_idempotence": False,
}

_BATCH = 1_000  # events the thread takes from the buffer at a time
_BACKOFF_FIRST, _BACKOFF_MAX = 0.25, 5.0  # reconnect delays in seconds, doubled each attempt
_EXIT_TIMEOUT = 5.0  # seconds an unclosed emitter spends flushing at interpreter exit


@dataclass
class EmitterStats:
    """What became of the events given to :meth:`Emitter.emit`.

    ``queued`` were accepted into the buffer; each ends ``sent`` (acknowledged by the broker)
    or ``failed`` (a send error after the producer's retries, or still unsent at close).
    ``dropped`` were refused because the buffer was full (or the emitter closed); ``invalid``
    because they could not be encoded. So ``queued == sent + failed + pending``.
    """

    queued: int = 0
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    invalid: int = 0

    @property
    def pending(self) -> int:
        """Queued events not yet acknowledged or failed."""
        return self.queued - self.sent - self.failed


def format_ts(value: datetime | str | None = None) -> str:
    """ISO 8601 UTC with milliseconds and a Z; now when None, naive values taken as UTC.

    >>> format_ts(datetime(2026, 1, 5, 10, 3, 27, 123999))
    '2026-01-05T10:03:27.123Z'
    >>> format_ts("2026-01-05T12:03:27+02:00")
    '2026-01-05T10:03:27.000Z'
    """
    if value is None:
        dt = datetime.now(UTC)
    elif isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        dt = datetime.fromisoformat(value)
    else:
        raise TypeError(f"ts must be a datetime or an ISO 8601 string, got {value!r}")
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{dt.microsecond // 1000:03d}Z"


def make_event(
    event_type: str,
    source: str,
    *,
    ts: datetime | str | None = None,
    event_id: str | None = None,
    **attrs: Any,
) -> dict[str, Any]:
    """The event as emitted: ``event_id`` (uuid4 hex), ``type``, ``ts``, ``source``, attributes.

    Raises ValueError or TypeError for an event no consumer could use.
    """
    if not isinstance(event_type, str) or not event_type:
        raise ValueError(f"the event type must be a non-empty string, got {event_type!r}")
    reserved = {"type", "source"} & attrs.keys()
    if reserved:
        raise ValueError(f"attribute {sorted(reserved)[0]!r} is reserved")
    return {
        "event_id": uuid.uuid4().hex if event_id is None else str(event_id),
        "type": event_type,
        "ts": format_ts(ts),
        "source": source,
        **attrs,
    }


def event_key(event: Mapping[str, Any], key_fields: Sequence[str] = KEY_FIELDS) -> bytes | None:
    """The Kafka key: the type and the value of the first of ``key_fields`` the event has.

    Kafka keeps the events of one key in one partition, and the consumer aggregates a series
    (orders in DE per 5 minutes) within the partition it reads, so all events of a series must
    land in the same partition: the key is what the series is grouped by. Without a key field
    the type alone is the key; without a type (not an event) there is no key.

    >>> event_key({"type": "payment_attempted", "provider": "stripe", "status": "failed"})
    b'payment_attempted|stripe'
    >>> event_key({"type": "heartbeat"}), event_key({"market": "DE"})
    (b'heartbeat', None)
    """
    etype = event.get("type")
    if not isinstance(etype, str):
        return None
    for field in key_fields:
        value = event.get(field)
        if value is not None and value != "":
            return f"{etype}|{value}".encode()
    return etype.encode()


def open_producer(bootstrap_servers: str | Sequence[str], **config: Any) -> Any:
    """A connected ``KafkaProducer``, or ConnectionError saying which servers and why.

    A plain TCP connect is tried first: it fails fast and quietly, whereas kafka-python 3.0
    logs every failed bootstrap and leaves the sockets of failed connections (and of a producer
    that failed to start) unclosed. If the producer still fails to start, its client is closed.
    """
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    servers = [bootstrap_servers] if isinstance(bootstrap_servers, str) else bootstrap_servers
    servers = [s.strip() for server in servers for s in server.split(",") if s.strip()]
    where = ",".join(servers)
    _probe(servers)
    clients: list[Any] = []
    base = KafkaProducer.DEFAULT_CONFIG["kafka_client"]

    def client(**kwargs: Any) -> Any:
        clients.append(base(**kwargs))
        return clients[-1]

    try:
        return KafkaProducer(bootstrap_servers=servers, kafka_client=client, **config)
    except BaseException as exc:
        for c in clients:
            with suppress(Exception):
                c.close()
        if isinstance(exc, KafkaError):
            raise ConnectionError(f"cannot connect to Kafka at {where}: {exc}") from exc
        raise


def _probe(servers: Sequence[str], timeout: float = 1.0) -> None:
    reasons = []
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            host, port = server, "9092"
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
            return
        except OSError as exc:
            reasons.append(exc.strerror or str(exc))
    raise ConnectionError(f"cannot reach Kafka at {','.join(servers)}: {'; '.join(reasons)}")


def close_producer(producer: Any, timeout: float) -> None:
    """Close a producer within ``timeout`` s, failing what it could not send by then.

    kafka-python 3.0's ``close`` raises when its flush times out and leaves the producer open,
    so on that error its I/O thread is stopped (failing the unsent batches) and it is closed.
    """
    try:
        producer.close(timeout=max(timeout, 0.0))
    except Exception:
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            sender.force_close()
            sender.join(5)
        with suppress(Exception):
            producer.close(timeout=0)


class Emitter:
    """Emit domain events to ``topic``; ``emit`` never blocks and never raises.

    ``buffer`` bounds the events held in memory that are not yet acknowledged or failed; the
    producer is created by the thread at the first event; ``producer_config`` overrides
    :data:`PRODUCER_CONFIG` (any ``KafkaProducer`` option). See :class:`EmitterStats`.

    >>> emitter = Emitter("127.0.0.1:9092", "domain-events", source="shop-api")
    >>> emitter.emit("order_placed", market="DE", amount=object())  # not JSON: counted, no raise
    False
    >>> emitter.stats
    EmitterStats(queued=0, sent=0, failed=0, dropped=0, invalid=1)
    >>> emitter.close()
    """

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str] = "127.0.0.1:9092",
        topic: str = "domain-events",
        source: str = "shop-api",
        *,
        key_fields: Sequence[str] = KEY_FIELDS,
        buffer: int = 10_000,
        producer_config: Mapping[str, Any] | None = None,
    ) -> None:
        from kafka import KafkaProducer

        unknown = sorted(set(producer_config or {}) - set(KafkaProducer.DEFAULT_CONFIG))
        if unknown:
            raise ValueError(f"Unknown KafkaProducer option(s) in producer_config: {unknown}.")
        if buffer < 1:
            raise ValueError(f"The 'buffer' parameter of Emitter must be >= 1. Got {buffer}.")
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.source = source
        self.key_fields = tuple(key_fields)
        self.buffer = buffer
        self.producer_config = {**PRODUCER_CONFIG, **(producer_config or {})}
        self._lock = threading.Lock()
        self._has_events = threading.Condition(self._lock)  # wakes the thread
        self._settled = threading.Condition(self._lock)  # wakes flush()
        self._queue: deque[tuple[int, bytes | None, bytes, bytes | None]] = deque()
        self._pending: OrderedDict[int, None] = OrderedDict()  # seq of every unsettled event
        self._seq = 0
        self._stats = EmitterStats()
        self._warned: set[str] = set()
        self._closed = False
        self._close_by = 0.0  # monotonic deadline of close(), for the thread
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="detector-emitter", daemon=True)
        self._thread.start()
        atexit.register(self._at_exit)

    @property
    def stats(self) -> EmitterStats:
        """A snapshot of the counters."""
        with self._lock:
            return replace(self._stats)

    def emit(
        self,
        event_type: str,
        /,
        *,
        ts: datetime | str | None = None,
        event_id: str | None = None,
        trace_id: str | None = None,
        **attrs: Any,
    ) -> bool:
        """Queue one event; True if queued, False if dropped (buffer full) or invalid.

        ``trace_id`` (the request's trace, e.g. from OpenTelemetry) goes in a ``trace_id``
        record header: an alert the event feeds names it, so it can be followed back here.
        """
        try:
            event = make_event(event_type, self.source, ts=ts, event_id=event_id, **attrs)
            value = orjson.dumps(event)
            key = event_key(event, self.key_fields)
        except Exception as exc:
            with self._lock:
                self._stats.invalid += 1
            self._warn_once(
                f"invalid:{event_type}", "invalid %r event dropped: %s", event_type, str(exc)
            )
            return False
        with self._lock:
            if self._closed or len(self._pending) >= self.buffer:
                self._stats.dropped += 1
                full = not self._closed
            else:
                seq = self._seq = self._seq + 1
                self._pending[seq] = None
                trace = trace_id.encode() if trace_id else None
                self._queue.append((seq, key, value, trace))
                self._stats.queued += 1
                self._has_events.notify()
                return True
        if full:
            self._warn_once("full", "events dropped: the buffer of %d events is full", self.buffer)
        else:
            self._warn_once("closed", "events dropped: emit() called after close()")
        return False

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event queued so far is sent or failed: True, or False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            last = self._seq
            while self._pending and next(iter(self._pending)) <= last:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._settled.wait(remaining)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Flush for up to ``timeout`` s, stop the thread and close the producer (idempotent).

        Events still unsent then are counted as failed.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self._at_exit)
        deadline = time.monotonic() + timeout
        self.flush(timeout)
        self._close_by = deadline
        self._stop.set()
        with self._lock:
            self._has_events.notify_all()
        self._thread.join(max(deadline - time.monotonic(), 0.0) + 1.0)

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _at_exit(self) -> None:
        self.close(_EXIT_TIMEOUT)

    # The thread: connect, send, back off; everything below runs on it or on producer callbacks.

    def _run(self) -> None:
        producer: Any = None
        try:
            attempt = 0
            while True:
                with self._lock:
                    while not self._queue and not self._stop.is_set():
                        self._has_events.wait()
                    if self._stop.is_set():
                        break
                if producer is None:
                    producer = self._connect(attempt)
                ok = producer is not None and self._send_batch(producer)
                attempt = 0 if ok else attempt + 1
                if not ok:
                    self._stop.wait(_backoff(attempt))
        except Exception:  # a bug here must not pass silently; close() still settles the count
            log.exception("the emitter thread stopped")
        if producer is not None:
            close_producer(producer, self._close_by - time.monotonic())
        with self._lock:
            self._queue.clear()
            unsent = len(self._pending)
            self._pending.clear()
            self._stats.failed += unsent
            self._settled.notify_all()
        if unsent:
            log.warning("emitter closed with %d events not delivered (counted as failed)", unsent)

    def _connect(self, attempt: int) -> Any:
        try:
            producer = open_producer(self.bootstrap_servers, **self.producer_config)
        except Exception as exc:
            level = logging.WARNING if attempt == 0 else logging.DEBUG
            log.log(level, "%s; %d events buffered, retrying", str(exc), self.stats.pending)
            return None
        # Re-registered so that it runs before the producer's own exit handler (LIFO).
        atexit.unregister(self._at_exit)
        if not self._stop.is_set():
            atexit.register(self._at_exit)
        if attempt:
            log.info("connected to Kafka at %s after %d attempts", self.bootstrap_servers, attempt)
        return producer

    def _send_batch(self, producer: Any) -> bool:
        """Hand a batch to the producer; False if Kafka is unavailable (the rest is requeued)."""
        from kafka.errors import KafkaTimeoutError

        with self._lock:
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), _BATCH))]
        for i, (seq, key, value, trace) in enumerate(batch):
            try:
                headers = [("trace_id", trace)] if trace is not None else None
                future = producer.send(self.topic, value=value, key=key, headers=headers)
            except KafkaTimeoutError as exc:  # no metadata within max_block_ms: broker away
                with self._lock:
                    self._queue.extendleft(reversed(batch[i:]))
                self._warn_once("timeout", "Kafka unavailable (%s); buffering events", str(exc))
                return False
            except Exception as exc:  # this event can never be sent (too large, bad topic)
                self._on_failed(seq, exc)
            else:
                future.add_callback(self._on_sent, seq).add_errback(self._on_failed, seq)
        self._warned.discard("timeout")
        return True

    def _on_sent(self, seq: int, _metadata: Any) -> None:
        self._settle(seq, sent=True)

    def _on_failed(self, seq: int, exc: BaseException) -> None:
        self._warn_once(f"failed:{type(exc).__name__}", "event not delivered: %s", repr(exc))
        self._settle(seq, sent=False)

    def _settle(self, seq: int, *, sent: bool) -> None:
        with self._lock:
            if seq not in self._pending:
                return  # already settled: counted as failed at close
            del self._pending[seq]
            if sent:
                self._stats.sent += 1
            else:
                self._stats.failed += 1
            self._settled.notify_all()

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        # Callers pass str(exc), never exc: a log record holding an exception keeps its
        # traceback alive, and with it the sockets kafka-python leaves open.
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)


def _backoff(attempt: int) -> float:
    """Seconds before the next attempt: doubling up to a cap, with jitter so that many
    emitters restarting together do not reconnect in lockstep."""
    return min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
