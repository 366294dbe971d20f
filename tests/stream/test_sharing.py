"""Two instances of one group share the work: the lease holder merges, the other forwards what
it reads through the store; a clean stop of the merger hands the lease on at once; the result
equals the batch result, and bad records a member read are dead-lettered by the merger with
their origin."""

from __future__ import annotations

import threading
import time

import orjson
import pandas as pd
from kafka import KafkaConsumer, KafkaProducer

from detector.pipeline.config import parse_pipeline
from detector.store import open_store
from detector.stream.runner import StreamRunner
from tests.stream.shop import PIPELINE, shop_events
from tests.stream.test_run import BAD, backtest, common, export


def produce_spread(bootstrap: str, topic: str, events: list, bad: list[bytes] = ()) -> None:
    """Keyed by event id: every partition holds some of every series (a metric may mix
    partitions, and both instances get records)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    for ev in events:
        producer.send(topic, key=ev["event_id"].encode(), value=orjson.dumps(ev))
    for i, raw in enumerate(bad):
        producer.send(topic, key=f"bad{i}".encode(), value=raw)
    producer.flush()
    producer.close()


def wait_for(what, timeout: float = 90.0, why: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, why
        time.sleep(0.1)


def test_a_member_forwards_the_merger_folds_and_a_stopped_merger_hands_over(
    kafka_broker, topic, tmp_path
) -> None:
    events = shop_events(days=3, per_5min=20, seed=11)
    url = f"sqlite:///{tmp_path / 'share.db'}"
    stores = [open_store(url) for _ in range(3)]
    runners = [
        StreamRunner(
            parse_pipeline(PIPELINE),
            stores[i],
            topic=topic,
            group="share",
            bootstrap_servers=kafka_broker.bootstrap,
            session_timeout_ms=4000,
            idle_close=3600,
            alerting=False,
        )
        for i in range(2)
    ]
    stops = [threading.Event(), threading.Event()]
    threads = [
        threading.Thread(target=r.run, args=(s,)) for r, s in zip(runners, stops, strict=True)
    ]
    a, b = runners
    check = stores[2]

    def folded() -> int:
        """Records read and folded into the group's state (no record left forwarded)."""
        if any(k.next > k.first for k in check.forwarded_keys("streamshop", "share")):
            return -1
        return sum(check.load("streamshop", "share").offsets.values())

    try:
        threads[0].start()
        wait_for(lambda: a.merging, why="the first instance did not take the lease")
        threads[1].start()
        wait_for(lambda: len(b._held) > 0 and len(a._held) > 0, why="no partition for each")
        assert not b.merging
        half = len(events) // 2
        produce_spread(kafka_broker.bootstrap, topic, events[:half], BAD)
        wait_for(lambda: folded() == half + len(BAD), why=f"stuck at {folded()}")
        assert b.stats.forwarded > 0 and a.stats.merged == b.stats.forwarded
        assert b.stats.points == 0 and a.stats.points > 0  # only the merger closes windows
        stops[0].set()  # a clean stop releases the lease: b merges from now on
        threads[0].join(timeout=60)
        wait_for(lambda: b.merging, timeout=30, why="the lease was not handed on")
        produce_spread(kafka_broker.bootstrap, topic, events[half:])
        wait_for(lambda: folded() == len(events) + len(BAD), why=f"stuck at {folded()}")
        last = pd.Timestamp(events[-1]["ts"]) - pd.Timedelta("15min")
        wait_for(lambda: (check.newest_point("streamshop") or last - pd.Timedelta("1D")) >= last,
                 why="the last windows did not close")  # fmt: skip
        stops[1].set()
        threads[1].join(timeout=60)
    finally:
        for s in stops:
            s.set()
        for t in threads:
            t.join(timeout=60)
        for s in stores:
            s.close()
    assert a.stats.rejected + b.stats.rejected == len(BAD)
    batch_metrics, _ = backtest(tmp_path, events)
    metrics, _ = export(tmp_path, url)
    bm, sm = common(batch_metrics, metrics)
    assert len(bm) > 3 * 288 * 4 - 20
    pd.testing.assert_frame_equal(sm, bm)
    # the dead letters name where each bad record was read, whoever read it
    consumer = KafkaConsumer(f"{topic}.dlq", bootstrap_servers=kafka_broker.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)  # fmt: skip
    dead = list(consumer)
    consumer.close()
    assert sorted(m.value for m in dead) == sorted(BAD)
    origins = [dict(m.headers)["origin"].decode() for m in dead]
    assert all(o.startswith(f"{topic}[") and "]@" in o for o in origins), origins
