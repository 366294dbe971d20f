"""Retry timing and circuit breaking for deliveries: the pieces the outbox's retry stage uses.

Receivers only say whether a failure is worth retrying (:class:`DeliveryError.retryable`);
*when* to retry and when to stop lives here, once, like Alertmanager's retry stage:

- :class:`Backoff` spaces attempts exponentially with jitter, so many notifications failing
  together (a Slack outage) do not come back in lockstep and hammer the service on recovery.
- :class:`RetryPolicy` gives up once the first attempt is older than a budget (an alert an hour
  late is noise) or after a number of attempts, and honours a server's ``Retry-After``.
- :class:`CircuitBreaker` stops sending to a receiver that keeps failing, then lets one probe
  through after a cooldown, so a dead endpoint costs one timeout per cooldown instead of one per
  notification, and the senders' threads stay free for the receivers that work.

Every time is plain float seconds from an injectable clock, so tests are exact and instant.

>>> import random
>>> b = Backoff(initial=1.0, factor=2.0, max=60.0, jitter="none")
>>> [b.delay(n) for n in range(1, 8)]
[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0]
>>> 0.0 <= Backoff(jitter="full").delay(3, random.Random(1)) <= 4.0
True
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Backoff", "BreakerState", "CircuitBreaker", "Clock", "RetryPolicy"]

#: A callable returning monotonic seconds (``time.monotonic``, or a fake in tests).
Clock = Callable[[], float]
BreakerState = Literal["closed", "open", "half_open"]
Jitter = Literal["full", "equal", "none"]


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``min(max, initial * factor ** (attempt - 1))``, then jittered.

    ``jitter="full"`` draws uniformly in ``[0, cap]`` (spreads retries most; AWS's advice for
    contended services), ``"equal"`` in ``[cap/2, cap]`` (keeps a floor, so a retry never comes
    right back), ``"none"`` waits exactly ``cap`` (for tests and explanations).
    """

    initial: float = 1.0
    factor: float = 2.0
    max: float = 300.0
    jitter: Jitter = "full"

    def __post_init__(self) -> None:
        if not self.initial > 0:
            raise ValueError(f"The 'initial' parameter of Backoff must be > 0. Got {self.initial}")
        if not self.factor >= 1:
            raise ValueError(f"The 'factor' parameter of Backoff must be >= 1. Got {self.factor}")
        if not self.max >= self.initial:
            raise ValueError(
                f"The 'max' parameter of Backoff must be >= initial. Got {self.max} instead."
            )

    def cap(self, attempt: int) -> float:
        """The un-jittered wait after ``attempt`` failed attempts (1 after the first failure)."""
        if attempt < 1:
            raise ValueError(f"attempt counts from 1, got {attempt}")
        try:
            return min(self.max, self.initial * self.factor ** (attempt - 1))
        except OverflowError:  # factor ** 2000: far past max anyway
            return self.max

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before the next attempt, after ``attempt`` failed ones."""
        cap = self.cap(attempt)
        if self.jitter == "none":
            return cap
        rng = rng or random
        if self.jitter == "full":
            return rng.uniform(0.0, cap)
        return cap / 2 + rng.uniform(0.0, cap / 2)


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a failed delivery again, and when to give up.

    ``budget`` bounds the age of the first attempt (seconds): past it the notification is
    dropped (and logged by the caller), since a page an hour late helps nobody and a backlog
    would delay fresh alerts. ``max_attempts`` (optional) bounds the count. ``first`` and ``now``
    must come from the same clock: monotonic seconds in one process, or epoch seconds when the
    outbox survives restarts.

    >>> p = RetryPolicy(Backoff(jitter="none"), budget=10.0, max_attempts=5)
    >>> p.next_delay(attempts=1, first=0.0, now=0.0)
    1.0
    >>> p.next_delay(attempts=2, first=0.0, now=1.0, retry_after=30.0)  # clipped to the budget
    9.0
    >>> p.next_delay(attempts=3, first=0.0, now=10.0) is None  # budget spent
    True
    >>> p.next_delay(attempts=5, first=0.0, now=2.0) is None  # attempts spent
    True
    """

    backoff: Backoff = field(default_factory=Backoff)
    budget: float = 3600.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if not self.budget > 0:
            raise ValueError(
                f"The 'budget' parameter of RetryPolicy must be > 0. Got {self.budget}"
            )
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(
                f"The 'max_attempts' parameter of RetryPolicy must be >= 1. Got {self.max_attempts}"
            )

    def exhausted(self, attempts: int, first: float, now: float) -> bool:
        """True once no further attempt may be made."""
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return True
        return now - first >= self.budget

    def next_delay(
        self,
        attempts: int,
        first: float,
        now: float,
        rng: random.Random | None = None,
        retry_after: float | None = None,
    ) -> float | None:
        """Seconds until the next attempt, or ``None`` to give up.

        ``retry_after`` (the server's ``Retry-After``) is a floor on the wait: retrying sooner
        would only be refused again. The wait is clipped to what is left of the budget, so the
        last attempt happens at the deadline rather than never.
        """
        if self.exhausted(attempts, first, now):
            return None
        wait = self.backoff.delay(attempts, rng)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return max(0.0, min(wait, first + self.budget - now))


class CircuitBreaker:
    """Per-receiver breaker: closed → open after ``failures`` consecutive failures.

    While open, :meth:`allow` is False until ``cooldown`` seconds pass; then the breaker is
    half-open and lets exactly one probe through. The probe's success closes it, its failure
    opens it again for a fresh cooldown. A probe that never reports back (its thread died) is
    given up after another cooldown, so the breaker cannot stay stuck half-open. Thread-safe.

    >>> now = [0.0]
    >>> b = CircuitBreaker(failures=2, cooldown=60.0, clock=lambda: now[0])
    >>> b.record_failure(); b.record_failure(); b.state
    'open'
    >>> b.allow()
    False
    >>> now[0] = 60.0
    >>> b.state, b.allow(), b.allow()  # one probe only
    ('half_open', True, False)
    >>> b.record_success(); b.state
    'closed'
    """

    def __init__(self, failures: int = 5, cooldown: float = 60.0, clock: Clock = time.monotonic):
        if failures < 1:
            raise ValueError(
                f"The 'failures' parameter of CircuitBreaker must be >= 1. Got {failures}"
            )
        if cooldown < 0:
            raise ValueError(
                f"The 'cooldown' parameter of CircuitBreaker must be >= 0. Got {cooldown}"
            )
        self.failures = failures
        self.cooldown = cooldown
        self.clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._opened_at: float | None = None  # set while open or half-open
        self._probe_at: float | None = None  # when the half-open probe was let through

    def _state(self, now: float) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        return "half_open" if now - self._opened_at >= self.cooldown else "open"

    @property
    def state(self) -> BreakerState:
        """``closed``, ``open`` (cooling down) or ``half_open`` (a probe may go), for metrics."""
        with self._lock:
            return self._state(self.clock())

    @property
    def consecutive_failures(self) -> int:
        with self._lock:
            return self._consecutive

    def allow(self) -> bool:
        """May a delivery be attempted now? In half-open state, True once (the probe)."""
        with self._lock:
            now = self.clock()
            state = self._state(now)
            if state == "closed":
                return True
            if state == "open":
                return False
            if self._probe_at is not None and now - self._probe_at < max(self.cooldown, 1e-9):
                return False  # a probe is in flight
            self._probe_at = now
            return True

    def record_success(self) -> None:
        """A delivery worked: the receiver is reachable, so close (from any state)."""
        with self._lock:
            self._consecutive = 0
            self._opened_at = None
            self._probe_at = None

    def record_failure(self) -> None:
        """A delivery failed: count it; open at the threshold, or re-open after a failed probe."""
        with self._lock:
            now = self.clock()
            self._consecutive += 1
            state = self._state(now)
            if state == "half_open" or (state == "closed" and self._consecutive >= self.failures):
                self._opened_at = now
                self._probe_at = None
            # While open, a late failure (sent before the breaker opened) changes nothing.

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(failures={self.failures}, cooldown={self.cooldown}, "
            f"state={self.state!r})"
        )
