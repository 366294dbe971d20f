"""A deliberately stopped source: one "pipeline stale" alert, no drop alert, metrics as the batch.

The shop API (orders, and a heartbeat every minute) stops for 50 minutes on the last day while
the payments app goes on, so stream time moves on and the shop's windows close. They must be
*missing*, not zero; the router must send exactly one alert, ``pipeline_stale`` for
``source=shop-api``, resolved when the API is back, and no dip for any market; and the stored
metrics must equal ``detector backtest``'s over the same events.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from click.testing import CliRunner
from kafka import KafkaProducer

from detector.alerting.state import AlertState
from detector.cli import main
from detector.pipeline.config import parse_pipeline
from detector.store import open_store
from detector.stream.runner import StreamRunner
from tests.alerting.test_delivery import Hook, wait_for
from tests.stream.shop import START, iso
from tests.stream.test_run import common, export

PIPELINE = """
name: stopshop
emitters:
  shop-api: {heartbeat: heartbeat, every: 1m}
  payments: {heartbeat: heartbeat, every: 1m}
events:
  heartbeat: {}
  order_placed:
    fields:
      market: {type: string, required: true}
      amount: {type: number, required: true, min: 0}
  payment_attempted:
    fields:
      provider: {type: string, required: true}
      status: {type: string, required: true, allowed: [success, failed]}
segments:
  market: {values: [DE, FR]}
  provider: {values: [adyen]}
defaults: {window: 5m, lateness: 2m, model: auto}
metrics:
  - {name: orders, event: order_placed, aggregation: count, group_by: [market]}
  - {name: payment_success_rate, event: payment_attempted, aggregation: ratio,
     numerator: {status: success}, group_by: [provider]}
"""

DAYS = 3
GAP = (START + (DAYS - 1) * 86400 + 13 * 3600, START + (DAYS - 1) * 86400 + 13 * 3600 + 3000)


def events() -> list[dict]:
    rng = np.random.default_rng(7)
    out: list[dict] = []

    def add(t: float, **ev: object) -> None:
        out.append({"event_id": f"s{len(out)}", "ts": iso(t), **ev})

    for minute in range(DAYS * 1440):
        t0 = START + minute * 60
        hour = (minute % 1440) / 60
        shop_up = not (GAP[0] <= t0 < GAP[1])
        rate = 3.0 * (0.3 + np.exp(-((hour - 14) ** 2) / 18))
        if shop_up:
            add(t0 + 1, type="heartbeat", source="shop-api")
            for market, scale in (("DE", 1.0), ("FR", 0.6)):
                for t in rng.uniform(0, 60, rng.poisson(rate * scale)):
                    add(t0 + t, type="order_placed", source="shop-api", market=market,
                        amount=round(float(rng.gamma(2.0, 30.0)), 2))  # fmt: skip
        add(t0 + 2, type="heartbeat", source="payments")
        for t in rng.uniform(0, 60, rng.poisson(rate)):
            add(t0 + t, type="payment_attempted", source="payments", provider="adyen",
                status="success" if rng.random() < 0.95 else "failed")  # fmt: skip
    out.sort(key=lambda e: e["ts"])
    return out


def test_a_stopped_source_raises_one_stale_alert_and_no_drop(kafka_broker, topic, tmp_path):
    evs = events()
    hook = Hook()
    try:
        text = (
            PIPELINE
            + f"""
alerting:
  receivers: [{{name: hook, webhook: {{url: "{hook.url}"}}}}]
  route: {{receiver: hook, group_by: ['...'], group_wait: 0s, group_interval: 1s}}
"""
        )
        (tmp_path / "p.yaml").write_text(text)
        produce_keyed(kafka_broker.bootstrap, topic, evs)
        url = f"sqlite:///{tmp_path / 'store.db'}"
        store = open_store(url)
        runner = StreamRunner(
            parse_pipeline(text), store, topic=topic, group="stop",
            bootstrap_servers=kafka_broker.bootstrap, session_timeout_ms=6000,
            idle_close=3600, score_every=1,
        )  # fmt: skip
        runner.run(threading.Event(), max_idle=4)
        state = AlertState(store, "stopshop")
        wait_for(lambda: set(state.outbox_counts()) <= {"delivered"})
        episodes = state.alerts()
        assert runner.stats.rejected == 0, runner.stats.rejected_by_reason
        stale = [r for r in episodes if r.alert.labels["alertname"] == "pipeline_stale"]
        assert len(stale) == 1, [
            (r.alert.labels.get("source"), str(r.alert.starts_at), str(r.alert.ends_at))
            for r in stale[:20]
        ]
        (s,) = stale
        assert s.alert.labels["source"] == "shop-api"
        assert s.alert.starts_at == pd.Timestamp(GAP[0], unit="s", tz="UTC")
        assert s.alert.ends_at == pd.Timestamp(GAP[1], unit="s", tz="UTC")
        drops = [r for r in episodes if r.alert.labels.get("kind") in ("dip", "level_shift")]
        assert drops == [], [r.alert.labels for r in drops]
        assert hook.keys, "the stale alert never reached the webhook"

        batch_metrics = batch(tmp_path, evs, text)
        metrics, _ = export(tmp_path, url)
        b, st = common(batch_metrics, metrics)
        pd.testing.assert_frame_equal(st, b)
        t = pd.to_datetime(st["timestamp"])
        lo, hi = (pd.Timestamp(x, unit="s", tz="UTC") for x in GAP)
        gap = st[(st["series"] == "orders{market=DE}") & (t >= lo) & (t < hi)]
        assert len(gap) == 10 and gap["value"].isna().all()  # missing, not zero
        store.close()
    finally:
        hook.down()


def produce_keyed(bootstrap: str, topic: str, evs: list[dict]) -> None:
    """In time order, keyed as the emitter keys them: the type and the event's segment."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    for e in evs:
        segment = e.get("market") or e.get("provider") or e["source"]
        producer.send(topic, key=f"{e['type']}|{segment}".encode(), value=orjson.dumps(e))
    producer.flush()
    producer.close()


def batch(tmp: Path, evs: list[dict], text: str) -> pd.DataFrame:
    (tmp / "events.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in evs))
    (tmp / "batch.yaml").write_text(text)
    res = CliRunner().invoke(
        main,
        ["backtest", "--pipeline", str(tmp / "batch.yaml"), str(tmp / "events.jsonl"), "-o",
         str(tmp / "bt"), "--no-report", "--no-progress"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return pd.read_csv(tmp / "bt" / "metrics.csv")
