"""``detector run`` with the alert router: anomalies reach a real webhook once, whatever happens.

The shop stream has one incident (DE sells six times its usual on the last day). Its alert
must reach the webhook, through the outbox, with an idempotency key; a restart must not send
it again; two instances over the same store (here two consumer groups reading the same
events, so both decide the same notifications) must send each notification once.
"""

from __future__ import annotations

import threading
from collections import Counter

import pandas as pd

from detector.alerting.state import AlertState
from detector.pipeline.config import parse_pipeline
from detector.store import open_store
from detector.stream.runner import StreamRunner
from tests.alerting.test_delivery import Hook, wait_for
from tests.stream.shop import PIPELINE, shop_events
from tests.stream.test_run import produce


def alerting(url: str) -> str:
    return (
        PIPELINE
        + f"""
alerting:
  receivers:
    - name: hook
      webhook: {{url: "{url}"}}
      timeout: 5s
  route:
    receiver: hook
    group_by: [alertname, market]
    group_wait: 0s
    group_interval: 1s
    repeat_interval: 24h
"""
    )


def runner(pipeline, store, kafka_broker, topic, group) -> StreamRunner:
    return StreamRunner(
        pipeline, store, topic=topic, group=group, bootstrap_servers=kafka_broker.bootstrap,
        session_timeout_ms=6000, idle_close=3600, score_every=0.5,
    )  # fmt: skip


def run_until_idle(r: StreamRunner) -> None:
    r.run(threading.Event(), max_idle=4)


def test_the_incident_reaches_the_webhook_once_across_restarts_and_instances(
    kafka_broker, topic, tmp_path
):
    hook = Hook()
    try:
        pipeline = parse_pipeline(alerting(hook.url))
        produce(kafka_broker.bootstrap, topic, shop_events(days=4))
        url = f"sqlite:///{tmp_path / 'store.db'}"
        store = open_store(url)
        first = runner(pipeline, store, kafka_broker, topic, "a")
        run_until_idle(first)
        state = AlertState(store, pipeline.name)
        counts = state.outbox_counts()
        assert counts.get("delivered", 0) >= 1 and set(counts) == {"delivered"}, counts
        firing = [r for r in state.alerts() if r.alert.labels["market"] == "DE"]
        assert firing, "the DE incident raised no alert"
        assert {r.alert.labels["alertname"] for r in firing} <= {"orders", "revenue"}
        delivered = list(hook.keys)
        assert Counter(delivered) == Counter(r["key"] for r in state.outbox())
        # The incident's day, in the stream's own time.
        start = min(r.alert.starts_at for r in firing)
        assert pd.Timestamp("2026-01-08T11:00Z") <= start <= pd.Timestamp("2026-01-08T13:00Z")

        # Restart: state and offsets come back; nothing is sent again.
        again = runner(pipeline, store, kafka_broker, topic, "a")
        run_until_idle(again)
        # A second instance on the same store deciding the same notifications: stored once.
        other = runner(pipeline, store, kafka_broker, topic, "b")
        run_until_idle(other)
        wait_for(lambda: set(state.outbox_counts()) == {"delivered"})
        assert other.stats.notifications >= 1  # it did decide them...
        assert Counter(hook.keys) == Counter(delivered)  # ...and none went out twice
        store.close()
    finally:
        hook.down()
