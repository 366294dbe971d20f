"""``detector run`` through faults: the broker killed mid-stream, and fuzzed malformed records."""

from __future__ import annotations

import subprocess
import time

import orjson
import pandas as pd
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from detector.pipeline.config import parse_pipeline
from detector.store import open_store
from detector.stream.runner import StreamRunner
from detector.testing_kafka import Broker, S3Server
from tests.stream.shop import PIPELINE, shop_events
from tests.stream.test_run import DETECTOR, backtest, common, export, produce


def test_broker_killed_mid_stream_and_restarted_loses_and_repeats_nothing(tmp_path) -> None:
    """Tansu on S3 storage (a local moto server) keeps the topic through kill -9; the consumer
    rides out the outage (logs, backs off, reconnects) and ends with the batch result."""
    events = shop_events(days=3, per_5min=30, seed=5)
    batch_metrics, batch_anomalies = backtest(tmp_path, events)
    s3 = S3Server().start()
    broker = Broker(storage="s3://tansu/", env=s3.env, log=tmp_path / "broker.log").start()
    store_url = f"sqlite:///{tmp_path / 'restart.db'}"
    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115
    proc = None
    try:
        broker.create_topic("orders", partitions=3)
        half = len(events) // 2
        produce(broker.bootstrap, "orders", events[:half])
        proc = subprocess.Popen(
            [DETECTOR, "run", "--pipeline", str(tmp_path / "p.yaml"), "--bootstrap-servers",
             broker.bootstrap, "--topic", "orders", "--group", "r", "--store", store_url,
             "--idle-close", "3600", "--session-timeout", "4", "--max-idle", "25"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        store = open_store(store_url)
        deadline = time.monotonic() + 60
        while sum(store.load("streamshop", "r").offsets.values()) < half // 3:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        broker.kill()  # mid-stream
        time.sleep(4)
        assert proc.poll() is None, "the consumer died with the broker"
        broker.start()
        produce(broker.bootstrap, "orders", events[half:])
        assert proc.wait(timeout=180) == 0
        assert sum(store.load("streamshop", "r").offsets.values()) == len(events)
        store.close()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        broker.stop()
        s3.stop()
    metrics, anomalies = export(tmp_path, store_url)
    b, s = common(batch_metrics, metrics)
    pd.testing.assert_frame_equal(s, b)
    b, s = common(batch_anomalies, anomalies)
    pd.testing.assert_frame_equal(s[["timestamp", "series", "kind"]],
                                  b[["timestamp", "series", "kind"]])  # fmt: skip


junk = st.one_of(
    st.binary(max_size=60),
    st.text(max_size=40).map(str.encode),
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
        max_leaves=8,
    ).map(lambda v: orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS)),
    st.fixed_dictionaries(
        {"event_id": st.one_of(st.text(max_size=4), st.integers(-9, 2**40)),
         "type": st.sampled_from(["order_placed", "refund", ""]),
         "ts": st.one_of(st.text(max_size=25), st.integers(0, 2**40)),
         "source": st.one_of(st.just("a"), st.integers(0, 9)),
         "market": st.one_of(st.just("DE"), st.lists(st.integers(0, 9), max_size=2)),
         "amount": st.one_of(st.floats(), st.text(max_size=3), st.none())},
    ).map(orjson.dumps),
)  # fmt: skip


# Each example runs a consumer (a group join is seconds): few examples, and no shrinking,
# which would run dozens more; a failure prints its records.
@settings(
    max_examples=3,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@given(records=st.lists(junk, min_size=20, max_size=60))
def test_fuzzed_malformed_records_all_land_in_the_dlq_with_a_reason(
    kafka_broker, records: list[bytes]
) -> None:
    """Whatever comes in, the consumer keeps running; each record is counted either as an
    event or as a dead letter with its reason and origin, never dropped."""
    import uuid

    topic = f"fuzz-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=1)
    good = shop_events(days=1, per_5min=2, seed=9)[:50]
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    for raw in records:
        producer.send(topic, raw)
    for ev in good:
        producer.send(topic, orjson.dumps(ev))
    producer.flush()
    producer.close()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/fuzz.db")
        runner = StreamRunner(
            parse_pipeline(PIPELINE), store, topic=topic, group="fuzz",
            bootstrap_servers=kafka_broker.bootstrap, session_timeout_ms=6000,
            idle_close=3600, score_every=3600,
        )  # fmt: skip
        stats = runner.run(max_idle=2)
        accepted = runner.agg.counters["accepted"] + runner.agg.counters["duplicate"]
        store.close()
    assert stats.records == len(records) + len(good)
    assert accepted + stats.rejected == stats.records
    consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)  # fmt: skip
    parts = consumer.partitions_for_topic(f"{topic}.dlq") or set()
    consumer.assign([TopicPartition(f"{topic}.dlq", p) for p in parts])
    letters = list(consumer)
    consumer.close()
    assert len(letters) == stats.rejected
    for m in letters:
        headers = dict(m.headers)
        assert headers["reason"] and headers["origin"].startswith(f"{topic}[0]@".encode())


def test_a_store_that_keeps_failing_is_retried_then_given_up_on_stop(
    kafka_broker, topic, tmp_path, monkeypatch
) -> None:
    """While running, a failed commit is retried (nothing polled meanwhile); asked to stop
    with the store still failing, the runner gives up with an error that says nothing is
    lost, instead of hanging."""
    import sqlite3
    import threading

    from detector.errors import DetectorError
    from tests.stream.test_run import produce

    produce(kafka_broker.bootstrap, topic, shop_events(days=1, per_5min=2, seed=2))
    store = open_store(f"sqlite:///{tmp_path / 'f.db'}")
    calls = []

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "commit", broken)
    runner = StreamRunner(
        parse_pipeline(PIPELINE), store, topic=topic, group="broken",
        bootstrap_servers=kafka_broker.bootstrap, session_timeout_ms=6000,
    )  # fmt: skip
    stop = threading.Event()
    errors: list[BaseException] = []

    def go() -> None:
        try:
            runner.run(stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=go)
    thread.start()
    deadline = time.monotonic() + 30
    while len(calls) < 2:
        assert time.monotonic() < deadline, "no commit was attempted"
        time.sleep(0.1)
    stop.set()
    thread.join(timeout=60)
    store.close()
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], DetectorError)
    assert "will be read again" in str(errors[0]) and runner.stats.errors >= 3
