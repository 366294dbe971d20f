"""Late events fill in a window that paged as a drop: the alert gets its resolved notice.

DE and FR each sell about 200 orders per 10-second window for half an hour. In the last window
DE's events are held back by its app (FR's arrive), and the stream goes quiet; the idle timeout
closes the window on the wall clock, with DE at zero: a drop, paged to the webhook. Then DE's
held-back events arrive, within the lateness: the window is emitted again with its true count,
scored again, normal, and the alert is resolved, annotated ``retracted``, and the webhook gets
the resolved notice.
"""

from __future__ import annotations

import threading

import numpy as np

from detector.alerting.state import AlertState
from detector.store import open_store
from tests.alerting.test_delivery import Hook, wait_for
from tests.stream.hooked import received, stream_runner, with_webhook
from tests.stream.shop import START, iso
from tests.stream.test_stopped_source import produce_keyed

PIPELINE = """
name: lateshop
events:
  order_placed:
    fields:
      market: {type: string, required: true}
segments:
  market: {values: [DE, FR]}
defaults: {window: 10s, lateness: 10s, model: auto}
metrics:
  - name: orders
    event: order_placed
    aggregation: count
    group_by: [market]
    params: {min_history: 5min, confidence_ramp: 1min, refit: 1min}
"""

WINDOWS = 200
LAST = START + (WINDOWS - 1) * 10  # the window DE's events are held back from


def events(seed: int = 3) -> tuple[list[dict], list[dict]]:
    """(sent in time, held back): DE's events of the last window are held back."""
    rng = np.random.default_rng(seed)
    sent: list[dict] = []
    held: list[dict] = []
    for k in range(WINDOWS):
        t0 = START + k * 10
        for market in ("DE", "FR"):
            for t in np.sort(rng.uniform(0, 10, rng.poisson(200))):
                ev = {"event_id": f"{market}{k}-{t:.6f}", "type": "order_placed",
                      "ts": iso(t0 + t), "source": "shop-api", "market": market}  # fmt: skip
                (held if market == "DE" and t0 == LAST else sent).append(ev)
    sent.sort(key=lambda e: e["ts"])
    return sent, held


def test_late_events_that_fill_a_paged_drop_send_a_resolved_notice(kafka_broker, topic, tmp_path):
    sent, held = events()
    hook = Hook()
    text = with_webhook(PIPELINE, hook.url)
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    stop = threading.Event()
    runner = stream_runner(text, store, kafka_broker, topic, "late", idle_close=1)
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    try:
        produce_keyed(kafka_broker.bootstrap, topic, sent)
        thread.start()

        def de(status: str) -> list[dict]:
            return received(hook, status, series="orders{market=DE}")

        # The idle timeout closes the last window with DE at zero: a drop is paged.
        wait_for(lambda: de("firing"), timeout=180)
        (firing,) = de("firing")
        assert firing["labels"]["kind"] == "dip"
        assert firing["startsAt"].startswith(iso(LAST)[:19])
        assert not de("resolved")
        others = [a for body in hook.bodies for a in body["alerts"] if a not in de("firing")]
        assert others == [], "only the DE drop may page"

        # DE's events arrive late, within the lateness: the window is normal after all.
        produce_keyed(kafka_broker.bootstrap, topic, held)
        wait_for(lambda: de("resolved"), timeout=120)
        (resolved,) = de("resolved")
        assert resolved["fingerprint"] == firing["fingerprint"]
        assert "scored again" in resolved["annotations"]["retracted"]
        assert runner.stats.dead_letters == 0  # accepted, not dead-lettered

        state = AlertState(store, "lateshop")
        (row,) = [r for r in state.alerts() if r.alert.labels.get("market") == "DE"]
        assert row.alert.status == "resolved"
        assert not [r for r in state.alerts() if r.alert.labels.get("market") == "FR"]
    finally:
        stop.set()
        thread.join(30)
        store.close()
        hook.down()
