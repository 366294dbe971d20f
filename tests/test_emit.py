"""The emitter SDK and the emit/replay commands, against a real (Tansu) broker."""

from __future__ import annotations

import contextlib
import gc
import logging
import re
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from click.testing import CliRunner
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import TopicAlreadyExistsError

from detector.cli import main
from detector.emit import Emitter, EmitterStats, event_key, format_ts
from detector.testing_kafka import Broker, free_port

TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def consume(bootstrap: str, topic: str, n: int, timeout: float = 15.0) -> list:
    """The first ``n`` records of all partitions of ``topic`` (no group: no join delay)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=500,
    )
    records: list = []
    try:
        partitions = consumer.partitions_for_topic(topic) or range(3)
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        deadline = time.monotonic() + timeout
        while len(records) < n and time.monotonic() < deadline:
            records.extend(consumer)
    finally:
        consumer.close()
    return records


@pytest.fixture
def collect_leaked_sockets() -> Iterator[None]:
    """kafka-python 3.0 does not close the socket of a refused connection; the garbage
    collector does, with a ResourceWarning. Tests that make a client reconnect to a dead
    broker ignore that warning (mark) and collect the sockets before they end, so that the
    warning cannot surface in a later test. kafka's own log records are silenced meanwhile:
    the captured ones would hold the exceptions, and so the sockets, past the collection."""
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    yield
    kafka_log.setLevel(level)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


down = pytest.mark.filterwarnings("ignore::ResourceWarning")


def test_emitted_events_arrive_filled_and_one_key_in_one_partition(kafka_broker, topic):
    markets = ["DE", "FR", "UK", "US"] * 10
    given_ts = datetime(2026, 1, 5, 11, 3, 27, 123456, tzinfo=timezone(timedelta(hours=1)))
    with Emitter(kafka_broker.bootstrap, topic, source="shop-api") as emitter:
        for i, market in enumerate(markets):
            assert emitter.emit("order_placed", market=market, amount=10.0 + i, currency="EUR")
        emitter.emit("heartbeat")
        emitter.emit("order_placed", market="DE", ts=given_ts, event_id="given")
        assert emitter.flush(10)
    records = consume(kafka_broker.bootstrap, topic, len(markets) + 2)
    assert len(records) == len(markets) + 2
    events = [orjson.loads(r.value) for r in records]
    assert all(TS.fullmatch(e["ts"]) and e["source"] == "shop-api" for e in events)
    ids = [e["event_id"] for e in events if e["event_id"] != "given"]
    assert len(ids) == len(events) - 1 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len({e["event_id"] for e in events}) == len(events)
    given = next(e for e in events if e["event_id"] == "given")
    assert given["ts"] == "2026-01-05T10:03:27.123Z"
    assert sorted(e["amount"] for e in events if "amount" in e) == [10.0 + i for i in range(40)]
    partitions: dict[bytes, set[int]] = {}
    for r in records:
        assert r.key == event_key(orjson.loads(r.value))
        partitions.setdefault(r.key, set()).add(r.partition)
    assert partitions.keys() == {b"heartbeat"} | {f"order_placed|{m}".encode() for m in markets}
    assert all(len(p) == 1 for p in partitions.values())
    assert len(set().union(*partitions.values())) > 1  # the keys do spread over partitions


def test_flush_returns_true_and_counts_every_event_sent(kafka_broker, topic):
    emitter = Emitter(kafka_broker.bootstrap, topic)
    try:
        for i in range(500):
            emitter.emit("payment_attempted", provider=["stripe", "adyen"][i % 2], status="success")
        assert emitter.flush(10)
        assert emitter.stats == EmitterStats(queued=500, sent=500)
        assert emitter.stats.pending == 0
    finally:
        emitter.close()
    emitter.close()  # idempotent
    assert not emitter.emit("payment_attempted", provider="stripe")  # closed: dropped, counted
    assert emitter.stats == EmitterStats(queued=500, sent=500, dropped=1)
    assert len(consume(kafka_broker.bootstrap, topic, 500)) == 500


@down
def test_broker_down_emit_never_blocks_then_restarted_broker_gets_the_buffer(
    collect_leaked_sockets, caplog
):
    port = free_port()  # nothing listens here until the broker starts below
    emitter = Emitter(f"127.0.0.1:{port}", "orders", buffer=50)
    try:
        accepted = []
        for i in range(200):
            started = time.perf_counter()
            accepted.append(emitter.emit("order_placed", market="DE", n=i))
            assert time.perf_counter() - started < 0.05
        assert accepted == [True] * 50 + [False] * 150  # the buffer bound holds
        assert emitter.stats == EmitterStats(queued=50, dropped=150)
        started = time.monotonic()
        assert not emitter.flush(timeout=1)
        assert 0.9 < time.monotonic() - started < 3
        assert "cannot reach Kafka" in caplog.text

        with Broker(port=port) as broker:
            # the emitter's retrying producer may ask for it first (auto-creation)
            with contextlib.suppress(TopicAlreadyExistsError):
                broker.create_topic("orders", partitions=3)
            assert emitter.flush(timeout=20)
            assert emitter.stats == EmitterStats(queued=50, sent=50, dropped=150)
            records = consume(broker.bootstrap, "orders", 50)
            assert sorted(orjson.loads(r.value)["n"] for r in records) == list(range(50))
            started = time.monotonic()
            emitter.close(timeout=5)
            assert time.monotonic() - started < 2
    finally:
        emitter.close(timeout=1)


@down
def test_close_with_broker_down_is_bounded_and_counts_the_rest_failed(collect_leaked_sockets):
    emitter = Emitter(f"127.0.0.1:{free_port()}", "orders")
    for i in range(20):
        assert emitter.emit("order_placed", market="FR", n=i)
    started = time.monotonic()
    emitter.close(timeout=1)
    assert time.monotonic() - started < 5
    assert emitter.stats == EmitterStats(queued=20, failed=20)


@down
def test_broker_killed_while_connected_then_restarted(collect_leaked_sockets):
    """The producer exists when the broker dies: emit still returns at once, and the events
    wait (in the buffer or the producer) until a broker is back on the port.

    The restarted Tansu (memory storage) has lost the topic yet acknowledges writes to it, so
    the delivery is checked through the counters only; the free-port test above consumes.
    """
    with Broker() as broker:
        emitter = Emitter(broker.bootstrap, "orders")
        try:
            assert emitter.emit("order_placed", market="DE", n=0)
            assert emitter.flush(10)
            broker.kill()
            for i in range(1, 11):
                started = time.perf_counter()
                assert emitter.emit("order_placed", market="DE", n=i)
                assert time.perf_counter() - started < 0.05
            assert not emitter.flush(timeout=1)
            broker.start()
            assert emitter.flush(timeout=30)
            assert emitter.stats == EmitterStats(queued=11, sent=11)
        finally:
            emitter.close(timeout=5)


def test_unencodable_value_is_counted_invalid_not_raised(caplog):
    emitter = Emitter(f"127.0.0.1:{free_port()}", "orders")  # never connects: nothing queued
    try:
        with caplog.at_level(logging.WARNING, logger="detector.emit"):
            assert not emitter.emit("order_placed", market=object())
            assert not emitter.emit("order_placed", market={1: "non-string key"})
            assert not emitter.emit("order_placed", ts="yesterday")
            assert not emitter.emit("order_placed", ts=12)
            assert not emitter.emit("ticket_sold", show="cats", source="box-office")
            assert not emitter.emit("", market="DE")
        assert emitter.stats == EmitterStats(invalid=6)
        messages = [r.getMessage() for r in caplog.records]
        assert sum("'order_placed'" in m for m in messages) == 1  # logged once per type
        assert sum("'ticket_sold'" in m for m in messages) == 1
    finally:
        emitter.close(timeout=1)


def test_format_ts_and_event_key():
    assert format_ts(datetime(2026, 1, 5, 10, 3, 27)) == "2026-01-05T10:03:27.000Z"  # naive: UTC
    assert format_ts("2026-01-05T10:03:27.5Z") == "2026-01-05T10:03:27.500Z"
    assert TS.fullmatch(format_ts())
    now = datetime.now(UTC)
    assert abs(datetime.fromisoformat(format_ts()) - now) < timedelta(seconds=5)
    order = {"type": "order_placed", "currency": "EUR", "market": "DE"}
    assert event_key(order) == b"order_placed|DE"  # key_fields order, not the event's
    assert event_key(order, key_fields=("currency",)) == b"order_placed|EUR"
    assert event_key({"type": "order_placed", "market": ""}) == b"order_placed"


# The commands.


def test_cli_emit_then_consume(kafka_broker, topic):
    result = CliRunner().invoke(
        main,
        ["emit", "order_placed", "market=DE", "amount=129.9", "paid=true", "note=two words",
         "--bootstrap-servers", kafka_broker.bootstrap, "--topic", topic],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    printed = orjson.loads(result.stdout)
    assert printed["source"] == "cli" and TS.fullmatch(printed["ts"])
    assert (printed["amount"], printed["paid"], printed["note"]) == (129.9, True, "two words")
    (record,) = consume(kafka_broker.bootstrap, topic, 1)
    assert orjson.loads(record.value) == printed
    assert record.key == b"order_placed|DE"


def test_cli_emit_unreachable_broker_exits_1():
    where = f"127.0.0.1:{free_port()}"
    result = CliRunner().invoke(
        main, ["emit", "order_placed", "market=DE", "--bootstrap-servers", where, "--timeout", "1"]
    )
    assert result.exit_code == 1
    assert f"not delivered to topic 'domain-events' at {where} within 1 s" in result.stderr


def test_cli_emit_bad_attribute_exits_2():
    result = CliRunner().invoke(main, ["emit", "order_placed", "market"])
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.stderr


def _events_file(tmp_path, n: int = 6):
    lines = [
        orjson.dumps({"event_id": f"e{i}", "type": "order_placed", "source": "shop-api",
                      "ts": f"2026-01-05T10:00:{2 * i:02d}.000Z", "market": "DE" if i % 2 else "FR",
                      "amount": 1.5 * i}).decode()
        for i in range(n)
    ]  # fmt: skip
    lines.insert(3, '{"event_id": "broken", "type": ')
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path, lines


def test_cli_replay_sends_every_line_raw_malformed_included(kafka_broker, topic, tmp_path):
    path, lines = _events_file(tmp_path)
    result = CliRunner(env={"DETECTOR_BOOTSTRAP_SERVERS": kafka_broker.bootstrap}).invoke(
        main, ["replay", str(path), "--topic", topic, "--speed", "max"]
    )  # the broker comes from the environment
    assert result.exit_code == 0, result.output
    assert f"sent 7 events to {topic}" in result.stdout
    records = consume(kafka_broker.bootstrap, topic, 7)
    assert sorted(r.value for r in records) == sorted(line.encode() for line in lines)
    by_value = {r.value: r for r in records}
    assert by_value[lines[0].encode()].key == b"order_placed|FR"  # keyed like the emitter
    assert by_value[lines[3].encode()].key is None  # the malformed line, as it was


def test_cli_replay_paces_by_event_time(kafka_broker, topic, tmp_path):
    path, _ = _events_file(tmp_path)  # events 10 s of event time apart in all
    started = time.monotonic()
    result = CliRunner().invoke(
        main,
        ["replay", str(path), "--topic", topic, "--speed", "10x",
         "--bootstrap-servers", kafka_broker.bootstrap],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert 0.9 < time.monotonic() - started < 5


def test_cli_replay_bad_file_exits_2_naming_it(tmp_path):
    missing = tmp_path / "missing.jsonl"
    result = CliRunner().invoke(main, ["replay", str(missing), "--topic", "t"])
    assert result.exit_code == 2
    assert str(missing) in result.stderr and "file not found" in result.stderr
    result = CliRunner().invoke(main, ["replay", str(tmp_path / "events.txt"), "--topic", "t"])
    assert result.exit_code == 2 and "events.txt" in result.stderr
    result = CliRunner().invoke(main, ["replay", str(missing), "--topic", "t", "--speed", "fast"])
    assert result.exit_code == 2 and "--speed" in result.stderr


def test_cli_replay_unreachable_broker_exits_1(tmp_path):
    path, _ = _events_file(tmp_path)
    where = f"127.0.0.1:{free_port()}"
    result = CliRunner().invoke(
        main, ["replay", str(path), "--topic", "t", "--bootstrap-servers", where]
    )
    assert result.exit_code == 1
    assert f"cannot reach Kafka at {where}" in result.stderr
    assert "is the broker running?" in result.stderr
