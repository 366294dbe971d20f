from __future__ import annotations

import pytest

from detector.alerting.model import DeliveryError
from detector.alerting.receivers import PagerDutyReceiver
from detector.alerting.receivers.pagerduty import DEFAULT_URL, dedup_key

from .conftest import SECRET, alert, notification


@pytest.fixture
def pd(http_server):
    with PagerDutyReceiver(
        "oncall", routing_key=SECRET, url=f"{http_server.url}/v2/enqueue", client_url="http://d"
    ) as r:
        yield r


def test_trigger_event(http_server, pd):
    a = alert(link="http://dash/orders")
    n = notification(a, receiver="oncall")
    pd.send(n)
    [req] = http_server.requests
    assert req.path == "/v2/enqueue"
    body = req.json()
    text = body["payload"]["custom_details"].pop("text")
    assert "orders dropped 60%" in text
    assert body == {
        "routing_key": SECRET,
        "event_action": "trigger",
        "dedup_key": dedup_key(n),
        "payload": {
            "summary": "[FIRING:1] orders",
            "source": "shop",
            "severity": "critical",
            "timestamp": "2026-01-05T10:00:00Z",
            "group": "shop",
            "custom_details": {
                "firing": 1,
                "resolved": 0,
                "group_labels": {"alertname": "orders"},
                "alerts": [{"labels": dict(a.labels), "annotations": dict(a.annotations)}],
            },
        },
        "client": "detector",
        "client_url": "http://d",
        "links": [{"href": "http://dash/orders", "text": "details"}],
    }


def test_resolve_matches_trigger_dedup_key(http_server, pd):
    firing = notification(alert(), receiver="oncall")
    resolved = notification(alert(resolved=True), receiver="oncall")
    pd.send(firing)
    pd.send(resolved)
    trigger, resolve = (r.json() for r in http_server.requests)
    assert resolve == {
        "routing_key": SECRET,
        "event_action": "resolve",
        "dedup_key": trigger["dedup_key"],
    }
    assert len(trigger["dedup_key"]) == 64
    assert dedup_key(notification(alert(), receiver="other")) != trigger["dedup_key"]


@pytest.mark.parametrize(
    ("labels", "default", "expected"),
    [
        (["critical"], "error", "critical"),
        (["warning", "info"], "error", "warning"),
        (["low"], "error", "info"),
        ([None], "warning", "warning"),
        (["nonsense"], "info", "info"),
    ],
)
def test_severity_mapping(labels, default, expected):
    from detector.alerting.receivers.pagerduty import severity

    assert severity(labels, default) == expected


def test_default_url():
    assert (
        PagerDutyReceiver("p", routing_key="k").url
        == DEFAULT_URL
        == ("https://events.pagerduty.com/v2/enqueue")
    )


def test_rejected_event_does_not_leak_the_routing_key(http_server, pd):
    http_server.answer(400)
    http_server.echo = True  # PagerDuty-like services may quote the event back
    with pytest.raises(DeliveryError) as info:
        pd.send(notification())
    assert not info.value.retryable
    assert "HTTP 400" in str(info.value)
    assert SECRET not in str(info.value)


def test_rate_limited(http_server, pd):
    http_server.answer(429, b"", Retry_After="30")
    with pytest.raises(DeliveryError) as info:
        pd.send(notification())
    assert info.value.retryable and info.value.after == 30.0  # type: ignore[attr-defined]
