"""``detector run`` against a real broker: the same results as ``detector backtest``, exactly
once through kill -9, bad records dead-lettered with their reason."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pandas as pd
import pytest
from click.testing import CliRunner
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from detector.cli import main
from detector.pipeline.config import parse_pipeline
from detector.store import open_store
from detector.stream.runner import StreamRunner
from tests.stream.shop import PIPELINE, shop_events

# The installed console script: `python -m detector.cli` would register the commands on a
# second copy of the click group.
DETECTOR = str(Path(sys.executable).with_name("detector"))

BAD = [
    b"{not json",
    orjson.dumps({"event_id": "x1", "type": "order_placed", "ts": "2026-01-05T00:00:01Z",
                  "source": "shop-api", "market": "DE", "amount": "12,5"}),
    orjson.dumps({"event_id": "x2", "type": "refund", "ts": "2026-01-05T00:00:02Z",
                  "source": "shop-api"}),
]  # fmt: skip


def produce(bootstrap: str, topic: str, events: list, bad: list[bytes] = ()) -> None:
    """Keyed by market, as the emitter keys them: one series, one partition."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                             batch_size=256 * 1024)  # fmt: skip
    at = {len(events) * (k + 1) // (len(bad) + 1): raw for k, raw in enumerate(bad)}
    for i, ev in enumerate(events):
        producer.send(topic, key=f"order_placed|{ev['market']}".encode(), value=orjson.dumps(ev))
        if i in at:
            producer.send(topic, key=b"bad", value=at[i])
    producer.flush()
    producer.close()


def backtest(tmp: Path, events: list) -> tuple[pd.DataFrame, pd.DataFrame]:
    path = tmp / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    (tmp / "p.yaml").write_text(PIPELINE)
    res = CliRunner().invoke(
        main,
        ["backtest", "--pipeline", str(tmp / "p.yaml"), str(path), "-o", str(tmp / "bt"),
         "--no-report", "--no-progress"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return pd.read_csv(tmp / "bt" / "metrics.csv"), pd.read_csv(tmp / "bt" / "anomalies.csv")


def export(tmp: Path, store: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    for what in ("metrics", "anomalies"):
        res = CliRunner().invoke(
            main,
            [what, "--pipeline", str(tmp / "p.yaml"), "--store", store, "-o",
             str(tmp / f"stream-{what}.csv")],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
    return pd.read_csv(tmp / "stream-metrics.csv"), pd.read_csv(tmp / "stream-anomalies.csv")


def common(batch: pd.DataFrame, stream: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The windows both have closed (a stream never sees the end of its input)."""
    last = min(batch["timestamp"].max(), stream["timestamp"].max())
    keep = lambda f: f.loc[f["timestamp"] <= last].reset_index(drop=True)  # noqa: E731
    return keep(batch), keep(stream)


@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_run_finds_what_backtest_finds_and_dead_letters_bad_records(
    kafka_broker, topic, tmp_path, client
) -> None:
    events = shop_events(days=4, per_5min=20)
    produce(kafka_broker.bootstrap, topic, events, BAD)
    batch_metrics, batch_anomalies = backtest(tmp_path, events)
    store_url = f"sqlite:///{tmp_path / 'run.db'}"
    store = open_store(store_url)
    runner = StreamRunner(
        parse_pipeline(PIPELINE), store, topic=topic, group="g1",
        bootstrap_servers=kafka_broker.bootstrap, session_timeout_ms=6000, idle_close=3600,
        client=client,
    )  # fmt: skip
    stats = runner.run(max_idle=4)
    store.close()
    assert stats.records == len(events) + len(BAD)
    metrics, anomalies = export(tmp_path, store_url)
    b, s = common(batch_metrics, metrics)
    assert len(s) > 4 * 288 * 4 - 10
    pd.testing.assert_frame_equal(s, b)
    b, s = common(batch_anomalies, anomalies)
    assert len(b) > 10 and (b["series"].str.contains("DE")).all()
    pd.testing.assert_frame_equal(s[["timestamp", "series", "kind"]],
                                  b[["timestamp", "series", "kind"]])  # fmt: skip
    # Every bad record is in TOPIC.dlq, byte for byte, with its reason and origin.
    dlq = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap, auto_offset_reset="earliest",
                        consumer_timeout_ms=3000)  # fmt: skip
    parts = dlq.partitions_for_topic(f"{topic}.dlq") or {0}
    dlq.assign([TopicPartition(f"{topic}.dlq", p) for p in parts])
    letters = list(dlq)
    dlq.close()
    assert stats.rejected == len(BAD)
    assert sorted(m.value for m in letters) == sorted(BAD)
    headers = [dict(m.headers) for m in letters]
    assert all(h["origin"].startswith(f"{topic}[".encode()) for h in headers)
    reasons = {h["reason"].decode() for h in headers}
    assert any(r.startswith("not JSON") for r in reasons)
    assert "field 'amount': expected a number, got '12,5'" in reasons
    assert any(r.startswith("unknown event type 'refund'") for r in reasons)


def test_kill_9_at_random_points_loses_nothing_and_counts_nothing_twice(
    kafka_broker, topic, tmp_path
) -> None:
    """The events arrive over ~25 s while the consumer is killed with -9 five times at
    random moments; after the last restart the store holds exactly the batch result."""
    events = shop_events(days=4, per_5min=90, seed=3)
    assert len(events) >= 100_000
    batch_metrics, batch_anomalies = backtest(tmp_path, events)
    step = len(events) // 20 + 1
    parts = [events[i : i + step] for i in range(0, len(events), step)]  # sent over ~25 s

    def feed() -> None:
        for part in parts:
            produce(kafka_broker.bootstrap, topic, part)
            time.sleep(1.0)

    feeder = threading.Thread(target=feed)
    feeder.start()
    store_url = f"sqlite:///{tmp_path / 'crash.db'}"
    cmd = [DETECTOR, "run", "--pipeline", str(tmp_path / "p.yaml"),
           "--bootstrap-servers", kafka_broker.bootstrap, "--topic", topic, "--group", "crash",
           "--store", store_url, "--idle-close", "3600", "--session-timeout", "4"]  # fmt: skip
    rng = random.Random(7)
    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115
    try:
        for _ in range(5):
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            time.sleep(rng.uniform(2.5, 6.0))  # a group join takes ~2 s here
            assert proc.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        feeder.join()
        proc = subprocess.Popen([*cmd, "--max-idle", "5"], stdout=log, stderr=subprocess.STDOUT)
        assert proc.wait(timeout=300) == 0, (tmp_path / "run.log").read_text()[-3000:]
    finally:
        feeder.join()
        log.close()
    store = open_store(store_url)
    assert sum(store.load("streamshop", "crash").offsets.values()) == len(events)
    store.close()
    metrics, anomalies = export(tmp_path, store_url)
    b, s = common(batch_metrics, metrics)
    assert len(s) > 4 * 288 * 4 - 10
    pd.testing.assert_frame_equal(s, b)
    b, s = common(batch_anomalies, anomalies)
    pd.testing.assert_frame_equal(s[["timestamp", "series", "kind"]],
                                  b[["timestamp", "series", "kind"]])  # fmt: skip


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_finishes_the_batch_commits_and_exits_0(
    kafka_broker, topic, tmp_path, signum
) -> None:
    events = shop_events(days=1, per_5min=20, seed=1)
    produce(kafka_broker.bootstrap, topic, events)
    (tmp_path / "p.yaml").write_text(PIPELINE)
    store_url = f"sqlite:///{tmp_path / 's.db'}"
    cmd = [DETECTOR, "run", "--pipeline", str(tmp_path / "p.yaml"),
           "--bootstrap-servers", kafka_broker.bootstrap, "--topic", topic, "--group", "sig",
           "--store", store_url, "--session-timeout", "4"]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    store = open_store(store_url)
    try:
        deadline = time.monotonic() + 60
        while sum(store.load("streamshop", "sig").offsets.values()) < len(events):
            assert time.monotonic() < deadline, "the consumer never caught up"
            time.sleep(0.5)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert f"{len(events):,} records" in err.decode()
        assert sum(store.load("streamshop", "sig").offsets.values()) == len(events)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        store.close()
