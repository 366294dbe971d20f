"""Delivering the outbox: one worker per receiver, retries in a budget, a breaker each.

A slow or dead receiver must never hold back scoring or the other receivers, so each receiver
has its own thread, and scoring only ever *inserts* into the outbox (in the consumer's commit).
A worker claims its receiver's due notifications with a lease, sends each within the
receiver's timeout and records the outcome:

- delivered: marked so; never sent again by any instance;
- retryable failure (5xx, 429, timeout, refused connection): tried again after an
  exponential, jittered backoff (at least the server's ``Retry-After``) until the retry
  budget (age of the first attempt) is spent, then marked failed and logged;
- permanent failure (a 4xx such as a revoked token): marked failed at once and logged, since
  retrying would only hide a configuration error. It does not count against the breaker: the
  service answered.

The circuit breaker opens after N consecutive failures; while open, the worker claims nothing
(the rows stay pending, so nothing is lost and nothing is counted as an attempt). After the
cool-down one probe goes out; its success closes the breaker and the backlog drains.

A process killed mid-delivery leaves a lease that expires; the notification is then sent again
with the same idempotency key, which receivers dedupe (at-least-once delivery made exactly-once
where the receiver honours the key).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from detector.alerting.breaker import CircuitBreaker, RetryPolicy
from detector.alerting.model import Alert, DeliveryError, Receiver
from detector.alerting.state import AlertState, OutboxRow
from detector.logs import correlation

__all__ = ["Sender", "Worker"]

log = logging.getLogger(__name__)
US = 1_000_000


@dataclass
class Worker:
    """One receiver's delivery state (counters are read by metrics and tests)."""

    receiver: Receiver
    policy: RetryPolicy
    breaker: CircuitBreaker
    counts: Counter[str]


class Sender:
    """Background delivery of one pipeline's outbox.

    ``clock`` gives epoch seconds (the outbox's times survive restarts, so not monotonic).
    ``owner`` names this process in leases (host:pid by default). A claim is leased for
    ``lease`` seconds (default: twice the time the batch may take); a sender killed
    mid-delivery leaves rows that another sender takes once the lease runs out.
    """

    def __init__(
        self,
        state: AlertState,
        receivers: Mapping[str, Receiver],
        *,
        policies: Mapping[str, RetryPolicy] | None = None,
        breakers: Mapping[str, CircuitBreaker] | None = None,
        owner: str | None = None,
        batch: int = 20,
        poll: float = 1.0,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        lease: float | None = None,
    ) -> None:
        self.state = state
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.batch = batch
        self.poll = poll
        self.lease = lease  # seconds a claim is held; default: twice the batch's timeouts
        self.clock = clock
        self.rng = rng or random.Random()
        policies, breakers = policies or {}, breakers or {}
        self.workers = {
            name: Worker(
                r,
                policies.get(name) or RetryPolicy(),
                breakers.get(name) or CircuitBreaker(),
                Counter(),
            )
            for name, r in receivers.items()
        }
        self._stop = threading.Event()
        self._wake = {name: threading.Event() for name in self.workers}
        self._threads: list[threading.Thread] = []

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Sender:
        for name in self.workers:
            t = threading.Thread(target=self._loop, args=(name,), name=f"send-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def wake(self) -> None:
        """New rows are in the outbox: look now rather than at the next poll."""
        for ev in self._wake.values():
            ev.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the deliveries in flight (each bounded by its receiver's timeout)."""
        self._stop.set()
        self.wake()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    def _loop(self, name: str) -> None:
        worker, wake = self.workers[name], self._wake[name]
        while not self._stop.is_set():
            try:
                busy = self.deliver_once(name)
            except Exception:  # the store is down: log, wait, go on (rows stay pending)
                log.exception("sender %s: delivery round failed; retrying", name)
                busy = False
            if not busy:
                wait = self.poll
                if worker.breaker.state == "open":
                    wait = min(wait, max(worker.breaker.cooldown / 10, 0.01))
                wake.wait(wait)
                wake.clear()

    # -- one round ----------------------------------------------------------------------------

    def deliver_once(self, name: str) -> bool:
        """Claim and send one batch for receiver ``name``; True if anything was claimed."""
        worker = self.workers[name]
        state = worker.breaker.state
        if state == "open":
            return False
        timeout = worker.receiver.timeout
        # Half-open: claim one row, the probe. The breaker's probe slot is taken only once
        # there is something to send, so an idle receiver does not waste its probe.
        limit = 1 if state == "half_open" else self.batch
        now = self.clock()
        rows = self.state.claim(
            self.owner,
            int(now * US),
            lease_us=int((self.lease or (timeout + 5) * limit * 2) * US),
            limit=limit,
            receivers=[name],
        )
        for i, row in enumerate(rows):
            if not worker.breaker.allow():
                for rest in rows[i:]:  # back to pending, no attempt counted
                    self.state.release(rest.key, self.owner)
                break
            self._send(worker, row)
        return bool(rows)

    def _send(self, worker: Worker, row: OutboxRow) -> None:
        # Every log line of this delivery names the notification and its alerts, so an alert
        # can be followed from its anomaly (series, window) to each receiver.
        n = row.notification
        with correlation(
            notification=row.key,
            receiver=worker.receiver.name,
            alerts=",".join(a.fingerprint for a in n.alerts),
            series=",".join(sorted({a.labels.get("series", "") for a in n.alerts} - {""})),
            event_id=_joined(n.alerts, "event_id"),
            trace_id=_joined(n.alerts, "trace_id"),
        ):
            self._send_one(worker, row)

    def _send_one(self, worker: Worker, row: OutboxRow) -> None:
        name = worker.receiver.name
        started = self.clock()
        try:
            worker.receiver.send(row.notification)
        except DeliveryError as exc:
            self._failed(worker, row, exc, started)
            return
        except Exception as exc:  # a receiver bug must not kill the worker
            log.exception("sender %s: unexpected error delivering %s", name, row.key)
            self._failed(worker, row, DeliveryError(f"{type(exc).__name__}: {exc}"), started)
            return
        worker.breaker.record_success()
        worker.counts["delivered"] += 1
        self.state.delivered(row.key, self.owner, int(self.clock() * US))
        log.info(
            "delivered %s to %s (%s, %d alerts, attempt %d)",
            row.key,
            name,
            row.notification.status,
            len(row.notification.alerts),
            row.attempts + 1,
        )

    def _failed(self, worker: Worker, row: OutboxRow, exc: DeliveryError, started: float) -> None:
        name = worker.receiver.name
        now = self.clock()
        if not exc.retryable:
            worker.breaker.record_success()  # the service answered: it is up (probe over)
            worker.counts["failed"] += 1
            self.state.failed(row.key, self.owner, int(now * US), str(exc))
            log.error("giving up on %s to %s: %s (not retryable)", row.key, name, exc)
            return
        worker.breaker.record_failure()
        first = (row.first_attempt_us / US) if row.first_attempt_us is not None else started
        delay = worker.policy.next_delay(
            row.attempts + 1, first, now, self.rng, getattr(exc, "after", None)
        )
        if delay is None:
            worker.counts["failed"] += 1
            self.state.failed(row.key, self.owner, int(now * US), f"retries spent: {exc}")
            log.error(
                "giving up on %s to %s after %d attempts: %s", row.key, name, row.attempts + 1, exc
            )
            return
        worker.counts["retried"] += 1
        self.state.retry_at(
            row.key, self.owner, int((now + delay) * US), str(exc), attempted_us=int(started * US)
        )
        log.warning(
            "delivery of %s to %s failed (%s); retry in %.1fs, breaker %s",
            row.key,
            name,
            exc,
            delay,
            worker.breaker.state,
        )


def _joined(alerts: Iterable[Alert], annotation: str) -> str | None:
    """The alerts' ``annotation`` values (their exemplar events), comma-joined; None if none."""
    values = sorted({a.annotations.get(annotation, "") for a in alerts} - {""})
    return ",".join(values) or None
