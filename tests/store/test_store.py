"""The Store contract, run over every backend: SQLite (a temporary file) and PostgreSQL.

PostgreSQL is expected at ``DETECTOR_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``); each test gets its own schema, dropped
afterwards. If the server is not reachable the PostgreSQL tests fail, they do not skip: CI
starts it, and a silently skipped backend is an untested one.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import psycopg
import pytest

from detector.aggregation.windows import Point
from detector.errors import ConfigError
from detector.store import BACKENDS, Snapshot, Store, open_store
from detector.types import OUTPUT_COLUMNS

T0 = 1767600000  # 2026-01-05 08:00:00 UTC
POINT_COLUMNS = ["timestamp", "series", "value", "denominator", "metric", "missing"]
ANOMALY_COLUMNS = [*OUTPUT_COLUMNS, "metric"]


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        # A directory that does not exist yet: open_store creates it.
        return f"sqlite:///{tmp_path / 'state' / 'store.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture()
def store(url: str) -> Iterator[Store]:
    s = open_store(url)
    yield s
    s.close()


def point(series: str, start: int, value: float, den: float | None = None, missing=False):
    return Point(series.partition("{")[0], series, start, value, den, missing)


def ts(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s", tz="UTC")


def anomaly_frame(rows: list[tuple], metric: bool = False) -> pd.DataFrame:
    """Rows of (seconds, series, value, expected, is_anomaly, kind, reason)."""
    frame = pd.DataFrame(
        {
            "timestamp": [ts(r[0]) for r in rows],
            "series": [r[1] for r in rows],
            "value": [r[2] for r in rows],
            "expected": [r[3] for r in rows],
            "lower": [r[3] - 10 for r in rows],
            "upper": [r[3] + 10 for r in rows],
            "score": [abs(r[2] - r[3]) / 5 for r in rows],
            "is_anomaly": [r[4] for r in rows],
            "kind": [r[5] for r in rows],
            "reason": [r[6] for r in rows],
        }
    )
    if metric:
        frame["metric"] = "custom"
    return frame


def assert_point_dtypes(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == POINT_COLUMNS
    assert isinstance(frame["timestamp"].dtype, pd.DatetimeTZDtype)
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert pd.api.types.is_string_dtype(frame["series"])
    assert pd.api.types.is_string_dtype(frame["metric"])
    assert frame["value"].dtype == np.float64
    assert frame["denominator"].dtype == np.float64
    assert frame["missing"].dtype == np.bool_


def assert_anomaly_dtypes(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == ANOMALY_COLUMNS
    assert isinstance(frame["timestamp"].dtype, pd.DatetimeTZDtype)
    assert str(frame["timestamp"].dt.tz) == "UTC"
    for c in ("series", "kind", "reason", "metric"):
        assert pd.api.types.is_string_dtype(frame[c]), c
    for c in ("value", "expected", "lower", "upper", "score"):
        assert frame[c].dtype == np.float64, c
    assert frame["is_anomaly"].dtype == np.bool_


# -- round trip ---------------------------------------------------------------------------------


def test_backends_registry():
    assert set(BACKENDS) == {"sqlite", "postgresql", "postgres"}


def test_empty_store(store: Store):
    assert isinstance(store, Store)
    assert store.load("shop", "detector") == Snapshot({}, None)
    points = store.points("shop")
    assert points.empty
    assert_point_dtypes(points)
    anomalies = store.anomalies("shop")
    assert anomalies.empty
    assert_anomaly_dtypes(anomalies)


def test_round_trip_survives_reopening(url: str):
    anomalies = anomaly_frame(
        [
            (T0 + 300, "orders{market=DE}", 0.0, 410.0, True, "dip", "orders.DE = 0, expected 410"),
            (T0, "fx_update_age{pair=EURUSD}", 7200.0, 60.0, True, "stale", "feed stopped"),
        ]
    )
    with open_store(url) as store:
        store.commit(
            "shop",
            "detector",
            offsets={("events", 0): 10, ("events", 1): 20, ("heartbeats", 0): 3},
            state=b"\x00\xffstate\x00",
            points=[
                point("orders{market=DE}", T0 + 300, 0.0),
                point("orders{market=DE}", T0, 42.0),
                point("payment_success_rate{provider=stripe}", T0, 0.95, den=40.0),
                point("aov{market=FR}", T0, math.nan, missing=True),
            ],
            anomalies=anomalies,
        )
    with open_store(url) as store:
        assert store.load("shop", "detector") == Snapshot(
            {("events", 0): 10, ("events", 1): 20, ("heartbeats", 0): 3}, b"\x00\xffstate\x00"
        )
        expected = pd.DataFrame(
            {
                "timestamp": pd.to_datetime([T0, T0, T0 + 300, T0], unit="s", utc=True),
                "series": [
                    "aov{market=FR}",
                    "orders{market=DE}",
                    "orders{market=DE}",
                    "payment_success_rate{provider=stripe}",
                ],
                "value": [math.nan, 42.0, 0.0, 0.95],
                "denominator": [math.nan, math.nan, math.nan, 40.0],
                "metric": ["aov", "orders", "orders", "payment_success_rate"],
                "missing": [True, False, False, False],
            }
        )
        got = store.points("shop")
        assert_point_dtypes(got)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
        got = store.anomalies("shop")
        assert_anomaly_dtypes(got)
        assert got["series"].tolist() == ["fx_update_age{pair=EURUSD}", "orders{market=DE}"]
        assert got["metric"].tolist() == ["fx_update_age", "orders"]
        assert got["timestamp"].tolist() == [ts(T0), ts(T0 + 300)]
        assert got["kind"].tolist() == ["stale", "dip"]
        assert got["reason"].tolist() == ["feed stopped", "orders.DE = 0, expected 410"]
        assert got["value"].tolist() == [7200.0, 0.0]
        assert got["lower"].tolist() == [50.0, 400.0]
        assert got["score"].tolist() == [1428.0, 82.0]
        assert got["is_anomaly"].tolist() == [True, True]
        # Another pipeline or group sees nothing of it.
        assert store.load("shop", "other") == Snapshot({}, None)
        assert store.load("other", "detector") == Snapshot({}, None)
        assert store.points("other").empty
        assert store.anomalies("other").empty


def test_upsert_replaces_a_reemitted_point(store: Store):
    store.commit("shop", "g", offsets={}, state=None, points=[point("orders", T0, 1.0)])
    store.commit("shop", "g", offsets={}, state=None, points=[point("orders", T0 + 300, 5.0)])
    # The window at T0 was closed early and emitted again with a late event.
    store.commit(
        "shop",
        "g",
        offsets={},
        state=None,
        points=[point("orders", T0, 2.0, den=3.0, missing=True)],
    )
    got = store.points("shop")
    assert got["value"].tolist() == [2.0, 5.0]
    assert got["denominator"].tolist()[0] == 3.0
    assert got["missing"].tolist() == [True, False]
    # The same key twice in one commit: the last one wins.
    store.commit(
        "shop",
        "g",
        offsets={},
        state=None,
        points=[point("orders", T0, 7.0), point("orders", T0, 8.0)],
    )
    assert store.points("shop")["value"].tolist() == [8.0, 5.0]


def test_other_partitions_groups_and_state_untouched(store: Store):
    store.commit("shop", "g", offsets={("events", 0): 10, ("events", 1): 20}, state=b"one")
    store.commit("shop", "h", offsets={("events", 0): 99}, state=b"other group")
    # A consumer that owns only partition 1 now; state None keeps the blob.
    store.commit("shop", "g", offsets={("events", 1): 30}, state=None)
    assert store.load("shop", "g") == Snapshot({("events", 0): 10, ("events", 1): 30}, b"one")
    assert store.load("shop", "h") == Snapshot({("events", 0): 99}, b"other group")
    store.commit("shop", "g", offsets={}, state=b"two")
    assert store.load("shop", "g").state == b"two"
    store.commit("shop", "g", offsets={}, state=b"")  # an empty blob is a blob, not None
    assert store.load("shop", "g").state == b""


def test_anomalies_upsert_metric_and_filters(store: Store):
    rows = [
        (T0 + 600, "orders{market=DE}", 1.0, 400.0, True, "dip", "first"),
        (T0, "orders{market=UK}", 900.0, 400.0, True, "spike", "x2"),
        (T0, "orders{market=DE}", 0.0, 400.0, True, "dip", "zero"),
    ]
    store.commit("shop", "g", offsets={}, state=None, anomalies=anomaly_frame(rows))
    again = anomaly_frame([(T0 + 600, "orders{market=DE}", 2.0, 300.0, False, "", "")])
    again.loc[0, "expected"] = math.nan
    store.commit("shop", "g", offsets={}, state=None, anomalies=again)
    got = store.anomalies("shop")
    assert_anomaly_dtypes(got)
    assert list(zip(got["timestamp"], got["series"], strict=True)) == [
        (ts(T0), "orders{market=DE}"),
        (ts(T0), "orders{market=UK}"),
        (ts(T0 + 600), "orders{market=DE}"),
    ]
    last = got.iloc[2]
    assert (last["value"], last["is_anomaly"], last["kind"], last["reason"]) == (2.0, False, "", "")
    assert math.isnan(last["expected"])
    assert store.anomalies("shop", start=ts(T0 + 1)).shape[0] == 1
    assert store.anomalies("shop", end=ts(T0 + 600)).shape[0] == 2
    assert store.anomalies("shop", start=ts(T0), end=ts(T0 + 600)).shape[0] == 2
    # An explicit metric column is kept; sub-second timestamps are not rounded away.
    frame = anomaly_frame([(T0 + 0.25, "rate", 1.0, 2.0, True, "dip", "r")], metric=True)
    store.commit("other", "g", offsets={}, state=None, anomalies=frame)
    got = store.anomalies("other")
    assert got["metric"].tolist() == ["custom"]
    assert got["timestamp"].tolist() == [ts(T0 + 0.25)]
    assert store.anomalies("other", start=ts(T0 + 0.2), end=ts(T0 + 0.3)).shape[0] == 1
    assert store.anomalies("other", start=ts(T0 + 0.3)).empty


def test_points_filtering(store: Store):
    points = [
        point(series, T0 + 300 * k, float(k))
        for series in ("revenue{market=DE}", "orders{market=UK}", "orders{market=DE}")
        for k in range(4)
    ]
    store.commit("shop", "g", offsets={}, state=None, points=points[::-1])  # any order in
    got = store.points("shop")
    assert (
        got["series"].tolist()
        == ["orders{market=DE}"] * 4 + ["orders{market=UK}"] * 4 + ["revenue{market=DE}"] * 4
    )
    assert got["timestamp"].is_monotonic_increasing is False  # per series, not overall
    assert all(g["timestamp"].is_monotonic_increasing for _, g in got.groupby("series"))
    # start inclusive, end exclusive.
    window = store.points("shop", start=ts(T0 + 300), end=ts(T0 + 900))
    assert sorted(set(window["timestamp"])) == [ts(T0 + 300), ts(T0 + 600)]
    assert len(window) == 6
    # Bounds between two windows, and in another time zone.
    assert len(store.points("shop", start=ts(T0 + 1))) == 9
    assert len(store.points("shop", end=ts(T0 + 1))) == 3
    berlin = pd.Timestamp("2026-01-05 09:05", tz="Europe/Berlin")  # = T0 + 300
    assert store.points("shop", start=berlin)["timestamp"].min() == ts(T0 + 300)
    naive = pd.Timestamp("2026-01-05 08:10")  # naive means UTC
    assert store.points("shop", end=naive)["timestamp"].max() == ts(T0 + 300)
    only = store.points("shop", metrics=["revenue"])
    assert set(only["metric"]) == {"revenue"} and len(only) == 4
    both = store.points("shop", metrics=["revenue", "orders"], start=ts(T0 + 900))
    assert len(both) == 3
    none = store.points("shop", metrics=[])
    assert none.empty
    assert_point_dtypes(none)
    assert store.points("shop", start=ts(T0 + 3600)).empty
    # by series (what the stream's scoring slices read), with the other filters
    some = store.points("shop", series=["orders{market=UK}", "revenue{market=DE}", "nope"])
    assert sorted(set(some["series"])) == ["orders{market=UK}", "revenue{market=DE}"]
    assert len(some) == 8
    assert len(store.points("shop", metrics=["orders"], series=["revenue{market=DE}"])) == 0
    assert len(store.points("shop", series=["orders{market=DE}"], start=ts(T0 + 600))) == 2
    assert store.points("shop", series=[]).empty


def test_series_sizes(store: Store):
    assert store.series_sizes("shop").empty
    points = [point("orders{market=DE}", T0 + 300 * k, 1.0) for k in range(5)]
    points += [point("revenue{market=DE}", T0 + 300 * k, 1.0) for k in range(2)]
    store.commit("shop", "g", offsets={}, state=None, points=points)
    store.commit("other", "g", offsets={}, state=None, points=points[:1])
    got = store.series_sizes("shop").sort_values("series", ignore_index=True)
    assert got.to_dict("records") == [
        {"metric": "orders", "series": "orders{market=DE}", "points": 5},
        {"metric": "revenue", "series": "revenue{market=DE}", "points": 2},
    ]


def test_nan_none_and_zero_round_trip(store: Store):
    points = [
        point("a", T0, math.nan, den=None),
        point("b", T0, 0.0, den=0.0),
        point("c", T0, -1.5, den=None, missing=True),
        Point("d", "d", T0, np.float64(2.5), np.float32(4.0), np.bool_(True)),
    ]
    store.commit("shop", "g", offsets={}, state=None, points=points)
    got = store.points("shop")
    assert_point_dtypes(got)
    assert math.isnan(got["value"][0]) and math.isnan(got["denominator"][0])
    assert (got["value"][1], got["denominator"][1]) == (0.0, 0.0)
    assert (got["value"][2], got["missing"][2]) == (-1.5, True)
    assert math.isnan(got["denominator"][2])
    assert (got["value"][3], got["denominator"][3], got["missing"][3]) == (2.5, 4.0, True)


# -- atomicity ----------------------------------------------------------------------------------


def _seed(store: Store) -> tuple[Snapshot, pd.DataFrame, pd.DataFrame]:
    store.commit(
        "shop",
        "g",
        offsets={("events", 0): 10, ("events", 1): 20},
        state=b"before",
        points=[point("orders", T0, 1.0)],
        anomalies=anomaly_frame([(T0, "orders", 1.0, 50.0, True, "dip", "before")]),
    )
    return store.load("shop", "g"), store.points("shop"), store.anomalies("shop")


def _assert_unchanged(store: Store, before: tuple[Snapshot, pd.DataFrame, pd.DataFrame]) -> None:
    assert store.load("shop", "g") == before[0]
    pd.testing.assert_frame_equal(store.points("shop"), before[1])
    pd.testing.assert_frame_equal(store.anomalies("shop"), before[2])
    # The store is still usable: the failed transaction was rolled back, not left open.
    store.commit("shop", "g", offsets={("events", 0): 11}, state=b"after")
    assert store.load("shop", "g") == Snapshot({("events", 0): 11, ("events", 1): 20}, b"after")


def _next_commit(store: Store, **overrides) -> None:
    kwargs = {
        "offsets": {("events", 0): 15, ("events", 2): 5},
        "state": b"half",
        "points": [point("orders", T0, 2.0), point("orders", T0 + 300, 3.0)],
        "anomalies": anomaly_frame([(T0 + 300, "orders", 3.0, 50.0, True, "dip", "half")]),
    }
    store.commit("shop", "g", **{**kwargs, **overrides})


@pytest.mark.parametrize("step", ["_write_points", "_write_anomalies"])
def test_commit_failing_half_way_writes_nothing(store: Store, monkeypatch, step: str):
    before = _seed(store)
    original = getattr(store, step)
    calls = []

    def fail_after_writing(cur, *args):
        original(cur, *args)  # the rows are in the transaction ...
        calls.append(step)
        raise RuntimeError("disk on fire")  # ... and then something fails

    monkeypatch.setattr(store, step, fail_after_writing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        _next_commit(store)
    assert calls == [step]
    monkeypatch.undo()
    _assert_unchanged(store, before)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"points": [point("orders", T0, 2.0), point("x", T0, "abc")]}, id="str-value"),
        pytest.param(
            {"points": [point("orders", T0, 2.0), point("x", 1.5, 1.0)]}, id="float-start"
        ),
        pytest.param({"offsets": {("events", 0): 15, ("events", 1): "20"}}, id="str-offset"),
        # Beyond BIGINT: refused by the database itself, after the first row went in.
        pytest.param({"offsets": {("events", 0): 15, ("events", 1): 2**70}}, id="huge-offset"),
        pytest.param(
            {"anomalies": anomaly_frame([(T0, "x", 3.0, 5.0, True, "", "")]).drop(columns="kind")},
            id="no-kind",
        ),
        pytest.param({"state": "not bytes"}, id="str-state"),
    ],
)
def test_commit_with_a_bad_value_writes_nothing(store: Store, bad: dict):
    before = _seed(store)
    with pytest.raises((TypeError, ValueError, OverflowError, psycopg.Error)):
        _next_commit(store, **bad)
    _assert_unchanged(store, before)


# -- crashes and concurrency --------------------------------------------------------------------

CHILD_PRELUDE = f"""
import sys, time
from detector.aggregation.windows import Point
from detector.store import open_store
T0 = {T0}
store = open_store(sys.argv[1])
"""

COMMIT_THEN_HANG = """
store.commit("shop", "g", offsets={("events", 0): 5, ("events", 1): 7}, state=b"s5",
             points=[Point("orders", "orders", T0, 5.0, None, False)])
print("committed", flush=True)
time.sleep(120)
"""

# A consumer that restarts from its snapshot and commits big batches in a loop, so that a kill
# most likely lands inside a commit. Every commit writes offsets, state and 300 points that all
# carry the commit number.
COMMIT_LOOP = """
snap = store.load("shop", "g")
i = int(snap.state or b"0")
print("started", i, flush=True)
while True:
    i += 1
    store.commit("shop", "g", offsets={("events", 0): 100 * i, ("events", 1): 100 * i + 1},
                 state=str(i).encode(),
                 points=[Point("m", f"m{{k={k}}}", T0 + 60 * k, float(i), float(k), False)
                         for k in range(300)])
"""

# Opens, waits until the parent says go (so that both writers overlap), then commits.
WRITER = """
group = sys.argv[2]
print("ready", flush=True)
sys.stdin.readline()
for i in range(1, 101):
    store.commit("shop", group, offsets={("events", 0): i, (group, 1): 2 * i},
                 state=f"{group}:{i}".encode(),
                 points=[Point(group, f"{group}{{k={k}}}", T0 + 60 * i, float(i), None, False)
                         for k in range(20)])
store.close()
print("done", flush=True)
"""


def _child(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CHILD_PRELUDE + code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_line(proc: subprocess.Popen, timeout: float = 60) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"child printed nothing (exit {proc.returncode}):\n{err}")
    return line.strip()


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_commit_survives_sigkill_right_after_it_returns(url: str):
    with _child(COMMIT_THEN_HANG, url) as proc:
        assert _read_line(proc) == "committed"
        _kill(proc)
    with open_store(url) as store:
        assert store.load("shop", "g") == Snapshot({("events", 0): 5, ("events", 1): 7}, b"s5")
        assert store.points("shop")["value"].tolist() == [5.0]


def test_sigkill_in_a_commit_loop_leaves_one_earlier_commit(url: str):
    last = 0
    for delay in (0.3, 0.5, 0.7):
        with _child(COMMIT_LOOP, url) as proc:
            assert _read_line(proc) == f"started {last}"  # restarts where the last one was
            time.sleep(delay)
            _kill(proc)
        with open_store(url) as store:
            snap = store.load("shop", "g")
            points = store.points("shop")
        assert snap.state is not None
        i = int(snap.state)
        assert i > last, "no commit at all in the time given"
        assert snap.offsets == {("events", 0): 100 * i, ("events", 1): 100 * i + 1}
        assert len(points) == 300
        assert set(points["value"]) == {float(i)}  # points of the same commit as the offsets
        last = i


def test_two_processes_share_a_store(url: str):
    # Both open a store that does not exist yet (creating it races too), then commit at once.
    procs = [_child(WRITER, url, group) for group in ("a", "b")]
    for proc in procs:
        assert _read_line(proc) == "ready"
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        with proc:
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err
            assert out.strip() == "done"
    with open_store(url) as store:
        for group in ("a", "b"):
            assert store.load("shop", group) == Snapshot(
                {("events", 0): 100, (group, 1): 200}, f"{group}:100".encode()
            )
            points = store.points("shop", metrics=[group])
            assert len(points) == 100 * 20
            assert points.groupby("series")["value"].max().eq(100.0).all()


def test_sqlite_uses_wal(tmp_path):
    path = tmp_path / "store.db"
    with open_store(f"sqlite:///{path}"):
        pass
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_opening_a_new_store_concurrently(url: str):
    # Instances starting at once all create the tables; none may fail on the race.
    barrier, errors = threading.Barrier(6), []

    def open_and_close() -> None:
        barrier.wait()
        try:
            open_store(url).close()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_and_close) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_two_connections_see_each_others_commits(url: str):
    with open_store(url) as one, open_store(url) as two:
        one.commit("shop", "a", offsets={("events", 0): 1}, state=b"a1")
        two.commit("shop", "b", offsets={("events", 0): 2}, state=b"b1")
        one.commit("shop", "a", offsets={("events", 0): 3}, state=None)
        assert two.load("shop", "a") == Snapshot({("events", 0): 3}, b"a1")
        assert one.load("shop", "b") == Snapshot({("events", 0): 2}, b"b1")


# -- bad URLs -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _assert_names_url_without_secret(exc: pytest.ExceptionInfo, masked: str) -> None:
    message = str(exc.value)
    assert masked in message
    assert "s3cret" not in message
    assert "s3cret" not in str(exc.value.__cause__ or "")


@pytest.mark.parametrize(
    ("given", "masked"),
    [
        ("mysql://app:s3cret@db/metrics", "mysql://app:***@db/metrics"),
        ("detector.db", "detector.db"),
        ("postgresql+psycopg://app:s3cret@db/x", "postgresql+psycopg://app:***@db/x"),
    ],
)
def test_unknown_scheme(given: str, masked: str):
    with pytest.raises(ConfigError, match=r"unknown scheme|no scheme") as exc:
        open_store(given)
    _assert_names_url_without_secret(exc, masked)
    assert "sqlite:///" in str(exc.value)


def test_unreachable_postgres():
    port = _free_port()
    given = f"postgresql://postgres:s3cret@127.0.0.1:{port}/test?password=s3cret"
    masked = f"postgresql://postgres:***@127.0.0.1:{port}/test?password=***"
    with pytest.raises(ConfigError, match="Cannot connect") as exc:
        open_store(given)
    _assert_names_url_without_secret(exc, masked)
    assert "server is running" in str(exc.value)


def test_postgres_url_masks_the_password(pg_url: str):
    given = pg_url.replace("://postgres@", "://postgres:s3cret@")
    assert "s3cret" in given  # trust authentication ignores it
    with open_store(given) as store:
        assert store.url == given.replace("s3cret", "***")
        assert "s3cret" not in repr(store)


def test_bad_schema_name(pg_url: str):
    with pytest.raises(ConfigError, match="not a plain SQL name"):
        open_store(pg_url.split("?")[0] + "?schema=x;drop")


def test_unwritable_sqlite_path(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    given = f"sqlite:///{blocker}/store.db"
    with pytest.raises(ConfigError, match="Cannot open the SQLite store") as exc:
        open_store(given)
    _assert_names_url_without_secret(exc, given)
    assert "writable" in str(exc.value)


@pytest.mark.parametrize("given", ["sqlite://host/store.db", "sqlite:///", "sqlite:///x.db?a=b"])
def test_malformed_sqlite_url(given: str):
    with pytest.raises(ConfigError, match="not a SQLite file URL") as exc:
        open_store(given)
    assert given in str(exc.value)


def test_sqlite_url_relative_to_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///data/store.db") as store:
        store.commit("shop", "g", offsets={("events", 0): 1}, state=None)
        assert store.url == "sqlite:///data/store.db"
    assert (tmp_path / "data" / "store.db").is_file()


def test_commits_check_and_bump_the_shared_state_version(store: Store):
    from detector.store import StateConflict

    assert store.load("shop", "g").version == 0
    assert store.commit("shop", "g", offsets={("e", 0): 1}, state=b"a", expect_version=0) == 1
    assert store.commit("shop", "g", offsets={("e", 1): 5}, state=b"b", expect_version=1) == 2
    with pytest.raises(StateConflict) as info:  # another consumer committed since version 1
        store.commit("shop", "g", offsets={("e", 0): 9}, state=b"stale", expect_version=1)
    assert (info.value.stored, info.value.expected) == (2, 1)
    snap = store.load("shop", "g")
    assert (snap.offsets, snap.state, snap.version) == ({("e", 0): 1, ("e", 1): 5}, b"b", 2)
    assert store.commit("shop", "g", offsets={}, state=None) == 3  # unchecked still counts
    assert store.load("shop", "h").version == 0


def test_newest_point_is_the_latest_window_start(store: Store):
    assert store.newest_point("shop") is None
    points = [point("orders{m=DE}", T0, 1.0), point("orders{m=FR}", T0 + 300, 2.0)]
    store.commit("shop", "g", offsets={}, state=None, points=points)
    assert store.newest_point("shop") == ts(T0 + 300)
    assert store.newest_point("other") is None
