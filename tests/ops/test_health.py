"""Health checks: timeouts, exceptions, criticality, and the factories against real stores."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.ops.health import (
    Check,
    HealthReport,
    assignment_check,
    broker_check,
    lag_check,
    recent_window_check,
    run_checks,
    store_check,
)
from detector.store import open_store
from detector.store.base import SqlStore


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown, so a check left hanging by a test finishes."""
    ev = threading.Event()
    yield ev
    ev.set()


def hanging(release: threading.Event, calls: list[int] | None = None) -> Check:
    def fn() -> tuple[bool, str]:
        if calls is not None:
            calls.append(1)
        release.wait(10)
        return True, "answered at last"

    return Check("slow", fn)


def only(report: HealthReport):
    (result,) = report.results
    return result


# -- run_checks ---------------------------------------------------------------------------------


def test_results_and_verdict() -> None:
    report = run_checks(
        [
            Check("a", lambda: (True, "fine")),
            Check("b", lambda: (False, "broken")),
            Check("c", lambda: (False, "meh"), critical=False),
        ]
    )
    assert [(r.name, r.ok, r.detail) for r in report.results] == [
        ("a", True, "fine"),
        ("b", False, "broken"),
        ("c", False, "meh"),
    ]
    assert not report.ok
    assert run_checks([]).ok  # no checks: ok
    assert run_checks([Check("c", lambda: (False, "meh"), critical=False)]).ok


def test_an_exception_is_a_failed_result_with_its_message() -> None:
    def boom() -> tuple[bool, str]:
        raise ConnectionRefusedError("connection refused by 127.0.0.1:9092")

    result = only(run_checks([Check("broker", boom)]))
    assert not result.ok
    assert result.detail == "ConnectionRefusedError: connection refused by 127.0.0.1:9092"


def test_a_hanging_check_times_out_without_hanging_the_probe(release: threading.Event) -> None:
    t0 = time.monotonic()
    report = run_checks([hanging(release), Check("fast", lambda: (True, "ok"))], 0.2)
    elapsed = time.monotonic() - t0
    assert elapsed < 1.0
    slow, fast = report.results
    assert (slow.ok, slow.detail, slow.duration) == (False, "timed out after 0.2s", 0.2)
    assert fast.ok
    assert not report.ok


def test_checks_run_concurrently() -> None:
    def nap() -> tuple[bool, str]:
        time.sleep(0.3)
        return True, "rested"

    t0 = time.monotonic()
    report = run_checks([Check(f"n{i}", nap) for i in range(4)], 2.0)
    assert report.ok
    assert time.monotonic() - t0 < 0.9  # not 4 x 0.3 s
    assert all(r.duration >= 0.29 for r in report.results)


def test_a_check_still_hanging_is_not_started_again(release: threading.Event) -> None:
    calls: list[int] = []
    check = hanging(release, calls)
    first = only(run_checks([check], 0.1))
    second = only(run_checks([check], 0.1))
    assert first.detail == "timed out after 0.1s"
    assert not second.ok and second.detail.startswith("still running from an earlier probe")
    assert len(calls) == 1
    release.set()
    assert check._running is not None
    check._running.join(5)
    third = only(run_checks([check], 1.0))
    assert (third.ok, third.detail) == (True, "answered at last")
    assert len(calls) == 2


def test_a_check_timeout_overrides_the_default(release: threading.Event) -> None:
    check = hanging(release)
    check.timeout = 0.05
    t0 = time.monotonic()
    assert only(run_checks([check], 30.0)).detail == "timed out after 0.05s"
    assert time.monotonic() - t0 < 1.0


def test_report_renderings() -> None:
    report = run_checks(
        [Check("store", lambda: (True, "write committed")), Check("lag", lambda: (False, "far"))]
    )
    data = json.loads(report.to_json())
    assert data["status"] == "failing"
    assert [c["name"] for c in data["checks"]] == ["store", "lag"]
    assert set(data["checks"][0]) == {"name", "ok", "critical", "detail", "duration_ms"}
    lines = report.to_text().splitlines()
    assert lines[0] == "status: failing"
    assert lines[1].startswith("ok    store") and lines[1].endswith("write committed")
    assert lines[2].startswith("FAIL  lag  ") and lines[2].endswith("far")


# -- factories ----------------------------------------------------------------------------------


def test_broker_check() -> None:
    assert only(run_checks([broker_check(lambda: True)])).ok
    down = only(run_checks([broker_check(lambda: False)]))
    assert (down.ok, down.detail) == (False, "broker not reachable")


def test_assignment_check() -> None:
    assert not only(run_checks([assignment_check(set)])).ok
    held = only(run_checks([assignment_check(lambda: {("b", 2), ("a", 1), ("a", 0)})]))
    assert (held.ok, held.detail) == (True, "3 partitions: a[0,1], b[2]")
    assert only(run_checks([assignment_check(lambda: {4})])).detail == "1 partition: [4]"
    spare = run_checks([assignment_check(set, critical=False)])
    assert spare.ok and not spare.results[0].ok


@pytest.mark.parametrize(("lag", "ok"), [(None, True), (0, True), (10_000, True), (10_001, False)])
def test_lag_check(lag: float | None, ok: bool) -> None:
    assert only(run_checks([lag_check(lambda: lag, 10_000)])).ok is ok


def test_recent_window_check() -> None:
    now = [1000.0]
    last: list[float | None] = [None]
    check = recent_window_check(lambda: last[0], 900, now=lambda: now[0])
    now[0] = 1600.0  # none closed yet, 600 s since start: still within grace
    result = only(run_checks([check]))
    assert result.ok and result.detail.startswith("no window closed yet, 600s since start")
    now[0] = 2000.0
    assert not only(run_checks([check])).ok
    last[0] = 1990.0
    result = only(run_checks([check]))
    assert (result.ok, result.detail) == (True, "last window closed 10s ago (bound 900s)")
    now[0] = 3000.0
    assert not only(run_checks([check])).ok


def test_store_check_writes(store_url: str) -> None:
    with open_store(store_url) as store:
        assert isinstance(store, SqlStore)
        check = store_check(store, instance="host-a:1")
        for _ in range(2):  # the second run upserts the same row (the table exists by then)
            result = only(run_checks([check], 10.0))
            assert result.ok, result.detail
            assert result.detail.startswith("write committed (")
        with store.transaction(write=False) as cur:
            rows = cur.execute("SELECT instance, checked_us FROM detector_health").fetchall()
        assert [r[0] for r in rows] == ["host-a:1"]
        assert abs(rows[0][1] / 1e6 - time.time()) < 60


def test_store_check_fails_on_a_closed_store(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    store.close()
    result = only(run_checks([store_check(store)]))  # type: ignore[arg-type]
    assert not result.ok
    assert "closed" in result.detail.lower()


def test_store_check_times_out_while_another_writer_holds_the_lock(tmp_path: Path) -> None:
    """A read would pass here; a commit would wait. So the check waits, and times out."""
    path = tmp_path / "s.db"
    with open_store(f"sqlite:///{path}") as store:
        check = store_check(store)
        assert only(run_checks([check], 10.0)).ok
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            result = only(run_checks([check], 0.3))
            assert (result.ok, result.detail) == (False, "timed out after 0.3s")
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert check._running is not None
        check._running.join(10)  # the lock is free: the hung write completes
        assert only(run_checks([check], 10.0)).ok
