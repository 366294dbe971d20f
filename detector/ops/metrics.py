"""Prometheus metrics of one ``detector run`` consumer, in a registry of its own.

Each :class:`StreamMetrics` owns a :class:`~prometheus_client.CollectorRegistry` rather than
using the process-wide default one: two runners in one process (or two tests) would otherwise
collide on metric names, and the default registry's process/GC collectors are not ours to
serve. The runner calls the typed methods; nothing here knows about Kafka or the store.

Cardinality is kept bounded on purpose: a label value is a topic, a partition, a metric, a
receiver or one of a few fixed categories, never free text. Rejection reasons are folded into
:data:`REASON_CATEGORIES` by :func:`reason_category`; anomaly kinds and ``where`` of errors are
the caller's constants. Per-series gauges (one time series *per detector series*, four
times over) exist only with ``series_gauges=True``.

>>> m = StreamMetrics()
>>> m.consumed("orders", 3)
>>> m.rejected("orders", "field 'amount': expected a number, got 'x'")
>>> m.breaker("slack", "open")
>>> text = m.render().decode()
>>> 'detector_events_consumed_total{topic="orders"} 3.0' in text
True
>>> 'detector_events_rejected_total{reason="invalid_field",topic="orders"} 1.0' in text
True
>>> 'detector_breaker_state{receiver="slack"} 2.0' in text
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager, suppress
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["BREAKER_STATES", "OUTCOMES", "REASON_CATEGORIES", "StreamMetrics", "reason_category"]

#: Every value :func:`reason_category` returns (the ``reason`` label's whole domain).
REASON_CATEGORIES: tuple[str, ...] = (
    "invalid_json",
    "unknown_type",
    "missing_field",
    "invalid_field",
    "late",
    "duplicate",
    "other",
)

#: Delivery outcomes of a notification (the ``outcome`` label), as the sender counts them.
OUTCOMES: tuple[str, ...] = ("delivered", "retried", "failed")

#: Circuit breaker state -> gauge value; ordered by badness so ``max`` over receivers means
#: something. Both spellings of half-open are accepted (the breaker says ``half_open``).
BREAKER_STATES: Mapping[str, int] = {"closed": 0, "half_open": 1, "half-open": 1, "open": 2}

# Leading words of a rejection reason -> category, first match wins. The reasons come from
# detector.events.schema, detector.aggregation.windows and the runner's decoder.
_REASON_PREFIXES: tuple[tuple[str, str], ...] = (
    ("late", "late"),
    ("duplicate", "duplicate"),
    ("not valid json", "invalid_json"),
    ("not json", "invalid_json"),
    ("expected a json object", "invalid_json"),
    ("empty record", "invalid_json"),
    ("unknown event type", "unknown_type"),
    ("missing required field", "missing_field"),
    ("missing field", "missing_field"),
    ("field ", "invalid_field"),
)

# Scoring re-fits the models over a whole panel: tens of milliseconds to minutes.
_SCORING_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# One store transaction: about a millisecond on a local SQLite file, more on a remote server.
_COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# One poll -> aggregate -> commit round, up to max_records events.
_BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def reason_category(reason: str) -> str:
    """The bounded category of a free-text rejection reason (one of :data:`REASON_CATEGORIES`).

    The reason itself names fields and values (unbounded); as a label it would create a time
    series per typo. The full text stays in the dead-letter header and the log.

    >>> reason_category("field 'amount': expected a number, got 'x'")
    'invalid_field'
    >>> reason_category("late: 420 s behind the watermark (allowed lateness 300 s)")
    'late'
    >>> reason_category("something new")
    'other'
    """
    head = reason.strip().lower()
    for prefix, category in _REASON_PREFIXES:
        if head.startswith(prefix):
            return category
    return "other"


class StreamMetrics:
    """The metrics of one consumer (``detector_*``), and the methods that update them.

    ``series_gauges=True`` adds ``detector_series_{value,expected,lower,upper}{series}``, the
    latest scored window of each series, so a dashboard can draw the band a value fell out
    of. It costs four time series per detector series (10,000 series = 40,000 time series on
    every scrape), so it is off by default; :meth:`band` is then a no-op, and
    :meth:`forget_series` drops a series that went away.
    """

    def __init__(self, *, series_gauges: bool = False) -> None:
        self.series_gauges = series_gauges
        self.registry = CollectorRegistry(auto_describe=True)
        self._lag: dict[tuple[str, str], float] = {}
        self._last_closed: float | None = None
        self._sender_seen: dict[tuple[str, str], int] = {}
        r = self.registry

        def counter(name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
            return Counter(name, doc, list(labels), registry=r)

        def gauge(name: str, doc: str, labels: Iterable[str] = ()) -> Gauge:
            return Gauge(name, doc, list(labels), registry=r)

        self._consumed = counter("detector_events_consumed", "Records read.", ["topic"])
        self._rejected = counter(
            "detector_events_rejected",
            "Records rejected, by reason category (see REASON_CATEGORIES).",
            ["topic", "reason"],
        )
        self._late = counter("detector_events_late", "Events behind the watermark.", ["topic"])
        self._dup = counter("detector_events_duplicate", "Repeated event ids.", ["topic"])
        self._dlq = counter("detector_dead_letters", "Records sent to <topic>.dlq.", ["topic"])
        self._windows = counter("detector_windows_closed", "Windows closed.", ["metric"])
        self._refits = counter("detector_model_refits", "Model fits.", ["metric"])
        self._anomalies = counter("detector_anomalies", "Anomalies found.", ["metric", "kind"])
        self._notes = counter(
            "detector_notifications",
            "Notification delivery attempts by outcome (delivered, retried, failed).",
            ["receiver", "outcome"],
        )
        self._commits = counter("detector_commits", "Store transactions committed.")
        self._errors = counter("detector_errors", "Errors survived, by where.", ["where"])

        self._lag_g = gauge(
            "detector_consumer_lag", "Records behind the high watermark.", ["topic", "partition"]
        )
        self._assigned = gauge("detector_partitions_assigned", "Partitions held.", ["topic"])
        self._watermark = gauge("detector_watermark_seconds", "Stream time (epoch seconds).")
        self._closed_at = gauge(
            "detector_last_window_closed_timestamp_seconds",
            "Epoch seconds when a window last closed (the metrics' creation until then).",
        )
        # Until a window closes, "time since the last one" counts from start: a fresh runner
        # is not flagged at once, one that never closes a window is after the alert's bound.
        self._closed_at.set(time.time())
        self._breaker = gauge(
            "detector_breaker_state",
            "Circuit breaker: 0 closed, 1 half-open, 2 open.",
            ["receiver"],
        )
        self._outbox = gauge(
            "detector_outbox_pending", "Notifications waiting in the outbox.", ["receiver"]
        )
        self._band: dict[str, Gauge] = {}
        if series_gauges:
            for part in ("value", "expected", "lower", "upper"):
                self._band[part] = gauge(
                    f"detector_series_{part}", f"Latest scored window: {part}.", ["series"]
                )

        self._scoring = Histogram(
            "detector_scoring_seconds", "Time to score.", buckets=_SCORING_BUCKETS, registry=r
        )
        self._commit_h = Histogram(
            "detector_store_commit_seconds",
            "Time of one store commit.",
            buckets=_COMMIT_BUCKETS,
            registry=r,
        )
        self._batch = Histogram(
            "detector_batch_seconds", "Time of one batch.", buckets=_BATCH_BUCKETS, registry=r
        )

    # -- events -----------------------------------------------------------------------------

    def consumed(self, topic: str, n: int = 1) -> None:
        """``n`` records read from ``topic``."""
        self._consumed.labels(topic).inc(n)

    def rejected(self, topic: str, reason: str, n: int = 1) -> None:
        """``n`` records rejected for ``reason`` (free text; counted by its category)."""
        self._rejected.labels(topic, reason_category(reason)).inc(n)

    def late(self, topic: str, n: int = 1) -> None:
        """``n`` events arrived behind the watermark."""
        self._late.labels(topic).inc(n)

    def duplicates(self, topic: str, n: int = 1) -> None:
        """``n`` events repeated an event id already counted."""
        self._dup.labels(topic).inc(n)

    def dead_lettered(self, topic: str, n: int = 1) -> None:
        """``n`` records sent to the dead-letter topic of ``topic``."""
        self._dlq.labels(topic).inc(n)

    # -- windows, models, anomalies ---------------------------------------------------------

    def windows_closed(self, metric: str, n: int = 1) -> None:
        """``n`` windows of ``metric`` closed (call :meth:`window_closed_at` too)."""
        self._windows.labels(metric).inc(n)

    def refits(self, metric: str, n: int = 1) -> None:
        """``n`` model fits for ``metric``."""
        self._refits.labels(metric).inc(n)

    def anomalies(self, metric: str, kind: str, n: int = 1) -> None:
        """``n`` anomalies of ``kind`` (spike, dip, ...: the model's fixed set) in ``metric``."""
        self._anomalies.labels(metric, kind).inc(n)

    def band(
        self,
        series: str,
        value: float | None,
        expected: float | None,
        lower: float | None,
        upper: float | None,
    ) -> None:
        """The latest scored window of ``series`` (a no-op without ``series_gauges``).

        None (a model still in its grace period has no band) is exported as NaN.
        """
        if not self._band:
            return
        parts = {"value": value, "expected": expected, "lower": lower, "upper": upper}
        for part, x in parts.items():
            self._band[part].labels(series).set(math.nan if x is None else float(x))

    def forget_series(self, series: str) -> None:
        """Drop the band gauges of ``series`` (gone from the pipeline, or moved elsewhere)."""
        for g in self._band.values():
            _remove(g, series)

    # -- delivery ---------------------------------------------------------------------------

    def notification(self, receiver: str, outcome: str, n: int = 1) -> None:
        """A delivery attempt to ``receiver`` ended in ``outcome`` (one of :data:`OUTCOMES`)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
        self._notes.labels(receiver, outcome).inc(n)

    def breaker(self, receiver: str, state: str) -> None:
        """The circuit breaker of ``receiver`` is ``closed``, ``half_open`` or ``open``."""
        try:
            self._breaker.labels(receiver).set(BREAKER_STATES[state])
        except KeyError:
            raise ValueError(
                f"breaker state must be one of {sorted(BREAKER_STATES)}, got {state!r}"
            ) from None

    def outbox_pending(self, receiver: str, n: int) -> None:
        """``n`` notifications for ``receiver`` wait in the outbox."""
        self._outbox.labels(receiver).set(n)

    def observe_sender(self, workers: Mapping[str, Any]) -> None:
        """Copy a :class:`~detector.alerting.sender.Sender`'s ``workers`` into the metrics.

        The sender keeps cumulative ``counts`` per worker; this adds what grew since the last
        call and sets each breaker's state, so the sender needs no metrics code of its own
        (call it every batch, or from a timer).
        """
        for name, worker in workers.items():
            for outcome in OUTCOMES:
                total = int(worker.counts.get(outcome, 0))
                seen = self._sender_seen.get((name, outcome), 0)
                if total > seen:
                    self.notification(name, outcome, total - seen)
                self._sender_seen[(name, outcome)] = total
            self.breaker(name, worker.breaker.state)

    # -- consumer ---------------------------------------------------------------------------

    def lag(self, topic: str, partition: int, n: float) -> None:
        """``partition`` of ``topic`` is ``n`` records behind its high watermark."""
        key = (topic, str(partition))
        self._lag[key] = float(n)
        self._lag_g.labels(*key).set(n)

    def lag_total(self) -> float:
        """The summed lag of the partitions held (for :func:`~detector.ops.health.lag_check`)."""
        return sum(self._lag.values())

    def assigned(self, topic: str, partitions: Iterable[int]) -> None:
        """After a rebalance: ``partitions`` of ``topic`` are ours, the others' lag is gone.

        A partition handed to another member must not keep reporting its last lag from here,
        or summing the lag over the group would count it twice (and never drain).
        """
        held = {str(p) for p in partitions}
        self._assigned.labels(topic).set(len(held))
        for key in [k for k in self._lag if k[0] == topic and k[1] not in held]:
            del self._lag[key]
            _remove(self._lag_g, *key)

    def watermark(self, ts: float) -> None:
        """Stream time reached ``ts`` (epoch seconds)."""
        self._watermark.set(ts)

    def window_closed_at(self, ts: float | None = None) -> None:
        """A window closed at wall-clock ``ts`` (epoch seconds, default now)."""
        self._last_closed = time.time() if ts is None else float(ts)
        self._closed_at.set(self._last_closed)

    def last_window_closed(self) -> float | None:
        """When a window last closed, None if none has (for ``recent_window_check``)."""
        return self._last_closed

    def committed(self, n: int = 1) -> None:
        """``n`` store transactions committed."""
        self._commits.inc(n)

    def error(self, where: str, n: int = 1) -> None:
        """An error survived at ``where``: a fixed name such as ``poll``, ``commit``, ``score``."""
        self._errors.labels(where).inc(n)

    # -- timings ------------------------------------------------------------------------------

    def scoring_time(self) -> AbstractContextManager[Any]:
        """``with metrics.scoring_time(): ...`` observes the block's duration."""
        return self._scoring.time()

    def commit_time(self) -> AbstractContextManager[Any]:
        """``with metrics.commit_time(): ...`` observes one store commit."""
        return self._commit_h.time()

    def batch_time(self) -> AbstractContextManager[Any]:
        """``with metrics.batch_time(): ...`` observes one batch."""
        return self._batch.time()

    def observe_scoring(self, seconds: float) -> None:
        self._scoring.observe(seconds)

    def observe_commit(self, seconds: float) -> None:
        self._commit_h.observe(seconds)

    def observe_batch(self, seconds: float) -> None:
        self._batch.observe(seconds)

    # -- exposition ---------------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric here."""
        return generate_latest(self.registry)


def _remove(metric: Gauge, *labels: str) -> None:
    """Remove one labelled child if present (prometheus_client raises KeyError otherwise)."""
    with suppress(KeyError):
        metric.remove(*labels)
