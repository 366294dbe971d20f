"""Structured logs: JSON lines, the human format, correlation contexts, trace ids, redaction."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from detector.logs import (
    correlation,
    current_correlation,
    redact_url,
    setup_logging,
    trace_id_from_headers,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Every test leaves the ``detector`` and root loggers as it found them."""
    saved = []
    for logger in (logging.getLogger("detector"), logging.getLogger()):
        saved.append((logger, list(logger.handlers), logger.level, logger.propagate))
    yield
    for logger, handlers, level, propagate in saved:
        for h in logger.handlers:
            if h not in handlers:
                h.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.fixture
def stream() -> io.StringIO:
    return io.StringIO()


def json_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


log = logging.getLogger("detector.test_logs")


# ----------------------------------------------------------------------------------------------
# JSON lines
# ----------------------------------------------------------------------------------------------


def test_json_lines_carry_core_correlation_and_extra_fields(stream: io.StringIO) -> None:
    setup_logging(json=True, stream=stream)
    with correlation(event_id="e1", trace_id=TRACE):
        log.info("accepted %d events", 3, extra={"partition": 2, "offsets": [1, 2]})
    log.debug("below the level")
    (rec,) = json_lines(stream)
    assert rec["level"] == "INFO"
    assert rec["logger"] == "detector.test_logs"
    assert rec["msg"] == "accepted 3 events"
    assert rec["event_id"] == "e1" and rec["trace_id"] == TRACE
    assert rec["partition"] == 2 and rec["offsets"] == [1, 2]
    assert "exc" not in rec
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec["ts"])
    ts = datetime.fromisoformat(rec["ts"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - ts).total_seconds()) < 60


def test_json_values_that_json_cannot_hold(stream: io.StringIO) -> None:
    class Thing:
        def __str__(self) -> str:
            return "a thing"

    setup_logging(json=True, stream=stream)
    when = datetime(2026, 1, 5, 12, tzinfo=UTC)
    log.warning(
        "odd values",
        extra={"obj": Thing(), "value": float("nan"), "when": when, "nested": {1: {Thing()}}},
    )
    line = stream.getvalue().strip()
    assert "NaN" not in line  # NaN is not JSON: a strict parser would reject the line
    rec = json.loads(line)
    assert rec["obj"] == "a thing"
    assert rec["value"] == "nan"
    assert rec["when"] == "2026-01-05T12:00:00+00:00"
    assert rec["nested"] == {"1": ["a thing"]}


def test_json_fields_named_like_core_keys_do_not_replace_them(stream: io.StringIO) -> None:
    setup_logging(json=True, stream=stream)
    with correlation(level="tenant-level"):
        log.info("hello", extra={"ts": "not a time"})
    (rec,) = json_lines(stream)
    assert rec["level"] == "INFO" and rec["level_"] == "tenant-level"
    assert rec["ts"].endswith("Z") and rec["ts_"] == "not a time"


def test_json_exception_is_a_formatted_traceback(stream: io.StringIO) -> None:
    setup_logging(json=True, stream=stream)
    try:
        raise ValueError("bad amount")
    except ValueError:
        with correlation(event_id="e9"):
            log.exception("could not fold the batch")
    (rec,) = json_lines(stream)
    assert rec["level"] == "ERROR"
    assert rec["msg"] == "could not fold the batch"
    assert rec["exc"].startswith("Traceback (most recent call last):")
    assert rec["exc"].rstrip().endswith("ValueError: bad amount")
    assert rec["event_id"] == "e9"


def test_child_loggers_are_configured_and_not_written_twice(stream: io.StringIO) -> None:
    root_stream = io.StringIO()
    root = logging.getLogger()
    foreign = logging.StreamHandler(root_stream)
    root.addHandler(foreign)
    setup_logging(json=True, stream=stream)
    logging.getLogger("detector.stream.runner").warning("rebalance")
    assert [r["logger"] for r in json_lines(stream)] == ["detector.stream.runner"]
    assert root_stream.getvalue() == ""  # no propagation to the root's handler
    assert foreign in root.handlers  # someone else's root handler is left alone


def test_other_libraries_warnings_share_the_stream_when_root_is_bare(
    stream: io.StringIO,
) -> None:
    root = logging.getLogger()
    root.handlers[:] = []  # pytest's capture handlers are restored by the fixture
    setup_logging(json=True, level="DEBUG", stream=stream)
    other = logging.getLogger("kafka.conn")
    other.info("chatty")
    other.warning("broker down at %s", "kafka://svc:pw@broker:9092")
    (rec,) = json_lines(stream)
    assert rec["logger"] == "kafka.conn"
    assert rec["msg"] == "broker down at kafka://svc:***@broker:9092"


# ----------------------------------------------------------------------------------------------
# Setup
# ----------------------------------------------------------------------------------------------


def test_setup_is_idempotent(stream: io.StringIO) -> None:
    root = logging.getLogger()
    root.handlers[:] = []
    setup_logging(json=True, stream=stream)
    setup_logging(json=True, stream=stream)
    assert len(logging.getLogger("detector").handlers) == 1
    assert len(root.handlers) == 1
    log.info("once")
    assert len(stream.getvalue().splitlines()) == 1


def test_setup_again_switches_format_and_level(stream: io.StringIO) -> None:
    setup_logging(json=True, stream=stream)
    setup_logging(json=False, level=logging.WARNING, stream=stream)
    log.info("hidden")
    log.warning("shown")
    (line,) = stream.getvalue().splitlines()
    assert line.endswith("WARNING detector.test_logs: shown")


def test_setup_keeps_handlers_added_by_others(stream: io.StringIO) -> None:
    logger = logging.getLogger("detector")
    mine = logging.NullHandler()
    logger.addHandler(mine)
    setup_logging(stream=stream)
    setup_logging(stream=stream)
    assert mine in logger.handlers and len(logger.handlers) == 2


def test_setup_writes_to_stderr_at_call_time(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(json=True)
    log.info("to stderr")
    assert json.loads(capsys.readouterr().err)["msg"] == "to stderr"


def test_unknown_level_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        setup_logging(level="loud")


# ----------------------------------------------------------------------------------------------
# Human format
# ----------------------------------------------------------------------------------------------


def test_human_format_appends_fields_as_key_value(stream: io.StringIO) -> None:
    # Values with spaces, quotes or "=" are quoted (JSON string syntax), as logfmt parsers need.
    setup_logging(stream=stream)
    with correlation(event_id="e1", window="orders{market=DE}@2026-01-05T12:00Z"):
        log.info("window closed", extra={"points": 2, "note": "two words"})
    (line,) = stream.getvalue().splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO detector\.test_logs: window closed "
        r'event_id=e1 window="orders\{market=DE\}@2026-01-05T12:00Z" points=2 note="two words"',
        line,
    )


def test_human_format_puts_the_traceback_after_the_line(stream: io.StringIO) -> None:
    setup_logging(stream=stream)
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        log.error("boom", exc_info=True)
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("ERROR detector.test_logs: boom")
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ZeroDivisionError: division by zero"


# ----------------------------------------------------------------------------------------------
# Correlation
# ----------------------------------------------------------------------------------------------


def test_correlation_nests_merges_and_restores(stream: io.StringIO) -> None:
    setup_logging(json=True, stream=stream)
    with correlation(event_id="e1", trace_id=TRACE):
        with correlation(window="orders@12:00", event_id="e2"):
            assert current_correlation() == {
                "event_id": "e2",
                "trace_id": TRACE,
                "window": "orders@12:00",
            }
            log.info("inner")
        log.info("outer")
    log.info("outside")
    inner, outer, outside = json_lines(stream)
    assert (inner["event_id"], inner["window"]) == ("e2", "orders@12:00")
    assert outer["event_id"] == "e1" and "window" not in outer
    assert "event_id" not in outside and "trace_id" not in outside
    assert current_correlation() == {}


def test_correlation_is_restored_after_an_exception() -> None:
    with pytest.raises(RuntimeError), correlation(alert_id="a1"):
        raise RuntimeError
    assert current_correlation() == {}


def test_current_correlation_is_a_copy() -> None:
    with correlation(event_id="e1"):
        current_correlation()["event_id"] = "changed"
        assert current_correlation() == {"event_id": "e1"}


def test_each_thread_has_its_own_correlation(stream: io.StringIO) -> None:
    setup_logging(json=True, stream=stream)
    n = 4
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            assert current_correlation() == {}  # nothing leaks in from another thread
            with correlation(event_id=f"e{i}"):
                barrier.wait(timeout=10)  # every thread is inside its block now
                for k in range(20):
                    log.info("thread %d step %d", i, k)
                barrier.wait(timeout=10)
                assert current_correlation() == {"event_id": f"e{i}"}
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    with correlation(event_id="main"):
        threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert current_correlation() == {"event_id": "main"}
    assert not errors
    records = json_lines(stream)
    assert len(records) == n * 20
    for rec in records:
        i = int(rec["msg"].split()[1])
        assert rec["event_id"] == f"e{i}"


# ----------------------------------------------------------------------------------------------
# Trace ids from Kafka headers
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (None, None),
        ([], None),
        ([("traceparent", f"00-{TRACE}-{PARENT}-01".encode())], TRACE),
        ([("Traceparent", f" 00-{TRACE}-{PARENT}-00 ".encode())], TRACE),  # OWS, any case
        ([("traceparent", f"01-{TRACE}-{PARENT}-01-future-part".encode())], TRACE),
        ([("traceparent", f"00-{TRACE}-{PARENT}-01-extra".encode())], None),  # v00: 4 parts
        ([("traceparent", f"00-{'0' * 32}-{PARENT}-01".encode())], None),  # all-zero trace
        ([("traceparent", f"00-{TRACE}-{'0' * 16}-01".encode())], None),  # all-zero parent
        ([("traceparent", f"ff-{TRACE}-{PARENT}-01".encode())], None),  # forbidden version
        ([("traceparent", f"00-{TRACE.upper()}-{PARENT}-01".encode())], None),  # upper case
        ([("traceparent", f"00-{TRACE[:-1]}-{PARENT}-01".encode())], None),  # 31 hex
        ([("traceparent", f"00-{TRACE}g-{PARENT}-01".encode())], None),
        ([("traceparent", b"00_" + TRACE.encode())], None),
        ([("traceparent", b"\xff\xfe")], None),  # not UTF-8
        ([("traceparent", None)], None),
        ([("trace_id", b"req-42")], "req-42"),
        ([("X-Trace-Id", b"abc:123")], "abc:123"),
        ([("trace_id", b"has space")], None),
        ([("trace_id", b"")], None),
        ([("trace_id", b"x" * 129)], None),
        ([("trace_id", b"\x00\x01")], None),
        # A valid traceparent wins over a plain id, wherever it is.
        ([("trace_id", b"plain"), ("traceparent", f"00-{TRACE}-{PARENT}-01".encode())], TRACE),
        # ... an invalid one does not.
        ([("traceparent", b"garbage"), ("x-trace-id", b"plain")], "plain"),
        ([("x-trace-id", b"second"), ("trace_id", b"first")], "first"),
        ([("content-type", b"application/json")], None),
    ],
)
def test_trace_id_from_headers(
    headers: list[tuple[str, bytes]] | None, expected: str | None
) -> None:
    assert trace_id_from_headers(headers) == expected


# ----------------------------------------------------------------------------------------------
# Redaction
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://app:hunter2@db:5432/x", "postgresql://app:***@db:5432/x"),
        ("https://:tok@host/path", "https://:***@host/path"),
        ("kafka://user@broker:9092", "kafka://user@broker:9092"),  # no password
        ("https://example.com/a@b and mailto:a@b", "https://example.com/a@b and mailto:a@b"),
        ("a=redis://u:p@h1 b=amqp://v:q@h2", "a=redis://u:***@h1 b=amqp://v:***@h2"),
        ("no url at all", "no url at all"),
    ],
)
def test_redact_url(text: str, expected: str) -> None:
    assert redact_url(text) == expected


def test_redaction_of_extra_fields_messages_and_correlation(stream: io.StringIO) -> None:
    setup_logging(json=True, stream=stream)
    settings = {"url": "https://u:pw@h/x", "headers": {"Authorization": "Bearer abc"}}
    with correlation(alert_id="a1", api_key="k-123"):
        log.info(
            "connecting to %s",
            "postgresql://app:hunter2@db/detector",
            extra={
                "password": "hunter2",
                "bearer_token": "t0ps3cret",
                "ROUTING_KEY": "R0UT1NG",
                "secret_file": "/run/secrets/x",
                "settings": settings,
                "receiver": "pagerduty",
            },
        )
    line = stream.getvalue()
    for secret in ("hunter2", "t0ps3cret", "R0UT1NG", "/run/secrets/x", "abc", "k-123", ":pw@"):
        assert secret not in line
    (rec,) = json_lines(stream)
    assert rec["msg"] == "connecting to postgresql://app:***@db/detector"
    assert rec["password"] == rec["bearer_token"] == rec["ROUTING_KEY"] == "***"
    assert rec["settings"] == {"url": "https://u:***@h/x", "headers": {"Authorization": "***"}}
    assert rec["api_key"] == "***" and rec["alert_id"] == "a1"
    assert rec["receiver"] == "pagerduty"
    # the caller's objects are not changed
    assert settings["headers"] == {"Authorization": "Bearer abc"}


def test_redaction_of_tracebacks(stream: io.StringIO) -> None:
    setup_logging(stream=stream)
    try:
        raise ConnectionError("cannot reach https://svc:s3cr3t@hooks.example/x")
    except ConnectionError:
        log.exception("delivery failed")
    assert "s3cr3t" not in stream.getvalue()
    assert "https://svc:***@hooks.example/x" in stream.getvalue()


def test_a_bad_format_is_reported_by_logging_not_raised(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    errors: list[logging.LogRecord] = []
    setup_logging(stream=stream)
    (handler,) = logging.getLogger("detector").handlers
    monkeypatch.setattr(handler, "handleError", errors.append)
    log.info("%d events", "not a number")  # the caller's mistake must not raise here
    assert len(errors) == 1
