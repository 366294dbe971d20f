"""One alert followed back to the events that made it: event id and trace id end to end.

The shop app emits its orders through the emitter SDK, each with the trace id of the request
that placed it (a ``trace_id`` record header). ``detector run`` keeps each window's last event
as its exemplar; the DE incident's alert must name an event of its first window and that
event's trace, in its annotations (so in the webhook's body), and the JSON log lines of the
anomaly and of the delivery must carry the same ``event_id`` and ``trace_id``.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import uuid
from collections.abc import Iterator

import pandas as pd
import pytest

from detector.alerting.state import AlertState
from detector.emit import Emitter
from detector.logs import setup_logging
from detector.store import open_store
from tests.alerting.test_delivery import Hook, wait_for
from tests.stream.hooked import stream_runner, with_webhook
from tests.stream.shop import PIPELINE, shop_events


def trace_of(event_id: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, event_id).hex


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The detector's JSON log lines, with the loggers restored afterwards."""
    saved = [
        (lg, list(lg.handlers), lg.level, lg.propagate)
        for lg in (logging.getLogger("detector"), logging.getLogger())
    ]
    out = io.StringIO()
    setup_logging(json=True, level="INFO", stream=out)
    yield out
    for lg, handlers, level, propagate in saved:
        for h in lg.handlers:
            if h not in handlers:
                h.close()
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


def test_an_alert_names_an_event_of_its_window_and_that_events_trace(
    kafka_broker, topic, tmp_path, json_log
):
    events = shop_events(days=4)
    with Emitter(kafka_broker.bootstrap, topic, "shop-api", buffer=len(events) + 1) as emitter:
        for e in events:
            attrs = {"market": e["market"], "amount": e["amount"]}
            assert emitter.emit(e["type"], ts=e["ts"], event_id=e["event_id"],
                                trace_id=trace_of(e["event_id"]), **attrs)  # fmt: skip
        assert emitter.flush(60)
    hook = Hook()
    text = with_webhook(PIPELINE, hook.url)
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        runner = stream_runner(text, store, kafka_broker, topic, "trace")
        runner.run(threading.Event(), max_idle=4)
        state = AlertState(store, "streamshop")
        wait_for(lambda: set(state.outbox_counts()) <= {"delivered"} and hook.bodies)

        by_id = {e["event_id"]: e for e in events}
        de = [r.alert for r in state.alerts() if r.alert.labels.get("market") == "DE"]
        assert de, "the DE incident raised no alert"
        for alert in de:
            event_id, trace = alert.annotations["event_id"], alert.annotations["trace_id"]
            event = by_id[event_id]
            start = alert.starts_at
            assert event["market"] == "DE"
            assert start <= pd.Timestamp(event["ts"]) < start + pd.Timedelta("5min")
            assert trace == trace_of(event_id)
        sent = [a for body in hook.bodies for a in body["alerts"]]
        assert {a["annotations"]["event_id"] for a in sent if a["labels"].get("market") == "DE"}
        assert {a.annotations["event_id"] for a in de} == {
            a["annotations"]["event_id"] for a in sent if a["labels"].get("market") == "DE"
        }

        lines = [json.loads(x) for x in json_log.getvalue().splitlines()]
        anomalies = [x for x in lines if x["msg"].startswith("anomaly orders{market=DE}")]
        assert anomalies and all(x["trace_id"] == trace_of(x["event_id"]) for x in anomalies)
        delivered = [x for x in lines if x["msg"].startswith("delivered")]
        ids = {a.annotations["event_id"] for a in de}
        assert any(ids & set(x.get("event_id", "").split(",")) for x in delivered), delivered
        assert any(trace_of(i) in x.get("trace_id", "") for x in delivered for i in ids)
    finally:
        store.close()
        hook.down()
