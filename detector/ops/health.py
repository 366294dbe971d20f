"""Health checks with timeouts: what ``/healthz`` and ``/readyz`` report.

A probe is only useful if it answers: a check of a database that hangs must not hang the probe
(the orchestrator would then kill a healthy process for the database's sake, or wait forever).
So :func:`run_checks` runs every check in its own thread, all at once, and gives each
``timeout`` seconds; one that has not answered by then is reported as failed ("timed out after
2s") and left to finish in the background. A check still hanging from an earlier probe is not
started again (it is reported as still running), so a dead dependency polled every few seconds
does not pile up threads. An exception is a failed result carrying its message.

Only *critical* checks decide the overall verdict; the others are reported for people.

>>> report = run_checks([
...     Check("always", lambda: (True, "fine")),
...     Check("optional", lambda: (False, "degraded"), critical=False),
... ])
>>> report.ok, [r.ok for r in report.results]
(True, [True, False])
>>> print(run_checks([Check("boom", lambda: 1 / 0)]).to_text())  # doctest: +ELLIPSIS
status: failing
FAIL  boom  ... ms  ZeroDivisionError: division by zero
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "Check",
    "CheckResult",
    "HealthReport",
    "assignment_check",
    "broker_check",
    "lag_check",
    "recent_window_check",
    "run_checks",
    "store_check",
]

CheckFn = Callable[[], tuple[bool, str]]

_inflight_lock = threading.Lock()


@dataclass(eq=False)
class Check:
    """A named check: ``fn`` returns ``(ok, detail)`` or raises.

    ``critical=False`` reports the result without failing the probe. ``timeout`` overrides
    the one :func:`run_checks` is given (a store write may deserve longer than a ping).
    """

    name: str
    fn: CheckFn
    critical: bool = True
    timeout: float | None = None
    # The thread of a run that outlived its timeout, and when it started (see run_checks).
    _running: threading.Thread | None = field(default=None, init=False, repr=False)
    _since: float = field(default=0.0, init=False, repr=False)


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome; ``duration`` in seconds (the timeout for one that timed out)."""

    name: str
    ok: bool
    detail: str
    duration: float
    critical: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "critical": self.critical,
            "detail": self.detail,
            "duration_ms": round(self.duration * 1000, 3),
        }


@dataclass(frozen=True)
class HealthReport:
    """Every check's result; :attr:`ok` when all the critical ones passed."""

    results: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results if r.critical)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "failing",
            "checks": [r.to_dict() for r in self.results],
        }

    def to_json(self) -> str:
        """For probes and scripts: ``{"status": "ok"|"failing", "checks": [...]}``."""
        return json.dumps(self.to_dict(), sort_keys=False)

    def to_text(self) -> str:
        """For people: a status line, then one aligned line per check."""
        lines = [f"status: {'ok' if self.ok else 'failing'}"]
        width = max((len(r.name) for r in self.results), default=0)
        for r in self.results:
            mark = "ok  " if r.ok else ("FAIL" if r.critical else "warn")
            lines.append(
                f"{mark}  {r.name:<{width}}  {r.duration * 1000:8.1f} ms  {r.detail}".rstrip()
            )
        return "\n".join(lines)


def run_checks(checks: Sequence[Check], timeout_per_check: float = 2.0) -> HealthReport:
    """Run ``checks`` concurrently, each bounded by its timeout; never raises.

    Daemon threads rather than a :class:`~concurrent.futures.ThreadPoolExecutor`: an
    executor's workers are joined at interpreter exit, so a check hung on a dead socket would
    hang the process's shutdown too.
    """
    started = time.monotonic()
    slots: list[tuple[Check, dict[str, Any], threading.Thread | None, float]] = []
    for check in checks:
        timeout = timeout_per_check if check.timeout is None else check.timeout
        out: dict[str, Any] = {}
        with _inflight_lock:
            busy = check._running is not None and check._running.is_alive()
            if busy:
                out["result"] = CheckResult(
                    check.name,
                    False,
                    f"still running from an earlier probe ({started - check._since:.0f}s ago)",
                    0.0,
                    check.critical,
                )
                thread = None
            else:
                thread = threading.Thread(
                    target=_run_one, args=(check, out), name=f"check-{check.name}", daemon=True
                )
                check._running, check._since = thread, started
                thread.start()
        slots.append((check, out, thread, timeout))
    results = []
    for check, out, thread, timeout in slots:
        if thread is not None:
            thread.join(max(0.0, started + timeout - time.monotonic()))
        result = out.get("result")
        if result is None:  # still running: leave it, report the timeout
            result = CheckResult(
                check.name, False, f"timed out after {timeout:g}s", timeout, check.critical
            )
        results.append(result)
    return HealthReport(tuple(results))


def _run_one(check: Check, out: dict[str, Any]) -> None:
    t0 = time.perf_counter()
    try:
        answer = check.fn()
        ok, detail = answer if isinstance(answer, tuple) else (bool(answer), "")
        ok, detail = bool(ok), str(detail)
    except Exception as exc:
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    out["result"] = CheckResult(check.name, ok, detail, time.perf_counter() - t0, check.critical)


# -- factories the runner wires ------------------------------------------------------------------


def broker_check(
    fn_reachable: Callable[[], bool], *, name: str = "broker", critical: bool = True
) -> Check:
    """The Kafka broker answers (``fn_reachable`` e.g. lists the topic's partitions).

    >>> run_checks([broker_check(lambda: False)]).results[0].detail
    'broker not reachable'
    """

    def fn() -> tuple[bool, str]:
        ok = bool(fn_reachable())
        return ok, "broker reachable" if ok else "broker not reachable"

    return Check(name, fn, critical)


def assignment_check(
    fn_assigned: Callable[[], Collection[Any]], *, name: str = "assignment", critical: bool = True
) -> Check:
    """The consumer holds partitions (``(topic, partition)`` pairs or partition numbers).

    A member of a group with more members than partitions holds none, legitimately; run such
    spares with ``critical=False``, or they will never be ready.

    >>> run_checks([assignment_check(lambda: {("events", 1), ("events", 0)})]).results[0].detail
    '2 partitions: events[0,1]'
    >>> run_checks([assignment_check(set)]).results[0].detail
    'no partitions assigned (joining the group, or more members than partitions)'
    """

    def fn() -> tuple[bool, str]:
        parts = list(fn_assigned())
        if not parts:
            return (
                False,
                "no partitions assigned (joining the group, or more members than partitions)",
            )
        by_topic: dict[str, list[int]] = {}
        for p in parts:
            topic, num = p if isinstance(p, tuple) else ("", p)
            by_topic.setdefault(str(topic), []).append(int(num))
        held = ", ".join(
            f"{t}[{','.join(map(str, sorted(ps)))}]" for t, ps in sorted(by_topic.items())
        )
        return True, f"{len(parts)} partition{'s' * (len(parts) != 1)}: {held}"

    return Check(name, fn, critical)


class _Transactional(Protocol):
    url: str

    def transaction(self, *, write: bool) -> AbstractContextManager[Any]: ...


_HEALTH_DDL = """CREATE TABLE IF NOT EXISTS detector_health (
    instance TEXT NOT NULL PRIMARY KEY,
    checked_us BIGINT NOT NULL)"""
_HEALTH_UPSERT = """INSERT INTO detector_health (instance, checked_us) VALUES (?, ?)
    ON CONFLICT (instance) DO UPDATE SET checked_us = excluded.checked_us"""


def store_check(
    store: _Transactional,
    *,
    instance: str | None = None,
    name: str = "store",
    critical: bool = True,
) -> Check:
    """The store takes a write: one row of ``detector_health`` upserted in a write transaction.

    A read would pass against a SQLite file another process has locked, a PostgreSQL replica
    or a full disk; the runner's commit would not. So the check takes the write lock
    (``BEGIN IMMEDIATE`` on SQLite) and commits, like a commit does. ``instance`` keys the row
    (host:pid by default), so several consumers sharing a database do not contend on one row.
    The table is created on the first check.

    >>> from detector.store import open_store
    >>> with open_store("sqlite:///:memory:") as store:
    ...     run_checks([store_check(store, instance="a")]).ok
    True
    """
    key = instance or f"{socket.gethostname()}:{os.getpid()}"
    created = False

    def fn() -> tuple[bool, str]:
        nonlocal created
        with store.transaction(write=True) as cur:
            if not created:
                cur.execute(_HEALTH_DDL)
            cur.execute(_HEALTH_UPSERT, (key, int(time.time() * 1_000_000)))
        created = True
        return True, f"write committed ({store.url})"

    return Check(name, fn, critical)


def lag_check(
    fn_lag_total: Callable[[], float | None],
    bound: float,
    *,
    name: str = "lag",
    critical: bool = True,
) -> Check:
    """The records behind the high watermarks, summed, are at most ``bound``.

    None (no partition has reported yet) passes: a consumer that has not polled is not behind.

    >>> run_checks([lag_check(lambda: 12_000, 10_000)]).results[0].detail
    '12000 records behind (bound 10000)'
    """

    def fn() -> tuple[bool, str]:
        lag = fn_lag_total()
        if lag is None:
            return True, "lag not known yet"
        return lag <= bound, f"{lag:.0f} records behind (bound {bound:g})"

    return Check(name, fn, critical)


def recent_window_check(
    fn_last_closed_ts: Callable[[], float | None],
    max_age_seconds: float,
    now: Callable[[], float] = time.time,
    *,
    name: str = "windows",
    critical: bool = True,
) -> Check:
    """A window closed within ``max_age_seconds`` (epoch seconds from ``fn_last_closed_ts``).

    Until the first window closes (None), the age counts from when the check was made, so a
    fresh consumer has ``max_age_seconds`` to close one rather than failing at once.

    >>> run_checks([recent_window_check(lambda: 950.0, 60, now=lambda: 1000.0)]).results[0].detail
    'last window closed 50s ago (bound 60s)'
    """
    since = now()

    def fn() -> tuple[bool, str]:
        last = fn_last_closed_ts()
        t = now()
        if last is None:
            age = t - since
            return age <= max_age_seconds, (
                f"no window closed yet, {age:.0f}s since start (bound {max_age_seconds:g}s)"
            )
        age = t - last
        return age <= max_age_seconds, (
            f"last window closed {age:.0f}s ago (bound {max_age_seconds:g}s)"
        )

    return Check(name, fn, critical)
