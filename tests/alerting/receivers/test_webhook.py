from __future__ import annotations

import base64
import logging
import time

import pytest

from detector.alerting.model import DeliveryError
from detector.alerting.receivers import RetryAfter, WebhookReceiver
from detector.alerting.receivers.base import BasicAuth
from detector.alerting.secrets import Secret

from .conftest import SECRET, alert, notification


@pytest.fixture
def hook(http_server):
    with WebhookReceiver("hook", url=f"{http_server.url}/hooks/{SECRET}", timeout=2) as r:
        yield r


def test_posts_alertmanager_payload_with_idempotency_key(http_server, hook):
    a = alert(impact="~4,000 EUR/h", link="http://dash/orders")
    n = notification(a, receiver="hook")
    hook.send(n)
    [req] = http_server.requests
    assert req.path == f"/hooks/{SECRET}"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Idempotency-Key"] == n.key
    assert req.json() == {
        "version": "4",
        "groupKey": '{}:{alertname="orders"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "hook",
        "groupLabels": {"alertname": "orders"},
        "commonLabels": dict(a.labels),
        "commonAnnotations": dict(a.annotations),
        "externalURL": "",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "orders",
                    "market": "DE",
                    "pipeline": "shop",
                    "severity": "critical",
                },
                "annotations": {
                    "reason": "orders dropped 60%",
                    "value": "120",
                    "expected": "300",
                    "impact": "~4,000 EUR/h",
                    "link": "http://dash/orders",
                },
                "startsAt": "2026-01-05T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://dash/orders",
                "fingerprint": a.fingerprint,
            }
        ],
        "idempotencyKey": n.key,
    }


def test_common_labels_and_resolved_status(http_server, hook):
    n = notification(alert("DE", resolved=True), alert("FR", resolved=True))
    hook.send(n)
    body = http_server.requests[0].json()
    assert body["status"] == "resolved"
    assert "market" not in body["commonLabels"]
    assert body["commonLabels"]["alertname"] == "orders"
    assert [a["endsAt"] for a in body["alerts"]] == ["2026-01-05T11:00:00Z"] * 2


def test_auth_and_extra_headers(http_server, monkeypatch):
    monkeypatch.setenv("HOOK_TOKEN", SECRET)
    with WebhookReceiver(
        "hook", url=http_server.url, bearer_token={"env": "HOOK_TOKEN"}, headers={"X-Team": "shop"}
    ) as r:
        r.send(notification())
    with WebhookReceiver(
        "hook", url=http_server.url, basic_auth=BasicAuth(username="u", password=SECRET)
    ) as r:
        r.send(notification())
    bearer, basic = http_server.requests
    assert bearer.headers["Authorization"] == f"Bearer {SECRET}"
    assert bearer.headers["X-Team"] == "shop"
    assert (
        basic.headers["Authorization"]
        == "Basic " + base64.b64encode(f"u:{SECRET}".encode()).decode()
    )


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (500, True),
        (502, True),
        (503, True),
        (408, True),
        (429, True),
        (400, False),
        (404, False),
        (401, False),
        (302, False),
    ],
)
def test_status_mapping(http_server, hook, status, retryable):
    http_server.answer(status, f"rejected {SECRET}".encode(), Location="/elsewhere")
    with pytest.raises(DeliveryError) as info:
        hook.send(notification())
    assert info.value.retryable is retryable
    message = str(info.value)
    assert f"HTTP {status}" in message
    assert "webhook receiver 'hook'" in message
    assert SECRET not in message
    assert not isinstance(info.value, RetryAfter)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(http_server, hook, status):
    http_server.answer(status, b"slow down", Retry_After="7")
    with pytest.raises(RetryAfter) as info:
        hook.send(notification())
    assert info.value.after == 7.0
    assert info.value.retryable


def test_hanging_server_times_out_within_the_timeout(http_server):
    http_server.hang = True
    with WebhookReceiver("hook", url=f"{http_server.url}/{SECRET}", timeout=0.5) as r:
        started = time.monotonic()
        with pytest.raises(DeliveryError) as info:
            r.send(notification())
        elapsed = time.monotonic() - started
    assert info.value.retryable
    assert elapsed < 0.5 + 2
    assert SECRET not in str(info.value)


def test_refused_connection_is_retryable_and_quiet_about_the_url(down_url, caplog):
    caplog.set_level(logging.DEBUG)
    with (
        WebhookReceiver("hook", url=f"{down_url}/hooks/{SECRET}?token={SECRET}") as r,
        pytest.raises(DeliveryError) as info,
    ):
        r.send(notification())
    assert info.value.retryable
    assert "connection failed" in str(info.value)
    assert SECRET not in str(info.value)
    assert info.value.__context__ is None  # a traceback would print the original URL
    assert SECRET not in caplog.text


def test_secret_url_path_never_logged(http_server, caplog):
    caplog.set_level(logging.DEBUG)
    with WebhookReceiver("hook", url=f"{http_server.url}/hooks/{SECRET}") as r:
        r.send(notification())
    assert "POST" in caplog.text  # urllib3 did log the request...
    assert SECRET not in caplog.text  # ...without the secret path


def test_echoed_secret_in_error_body_is_redacted(http_server, monkeypatch):
    monkeypatch.setenv("HOOK_TOKEN", SECRET)
    http_server.answer(400)
    http_server.echo = True
    headers = {"X-Key": {"env": "HOOK_TOKEN"}}
    # A service that quotes the request back, with the header's secret in it.
    with (
        WebhookReceiver("hook", url=http_server.url, headers=headers) as r,
        pytest.raises(DeliveryError) as info,
    ):
        r._post(r.url, {"x": SECRET})
    assert "***" in str(info.value)
    assert SECRET not in str(info.value)


def test_missing_secret_is_a_clear_non_retryable_error(http_server):
    with (
        WebhookReceiver("hook", url=Secret(env="DETECTOR_TEST_UNSET_URL")) as r,
        pytest.raises(DeliveryError) as info,
    ):
        r.send(notification())
    assert not info.value.retryable
    assert "DETECTOR_TEST_UNSET_URL" in str(info.value)
    assert http_server.requests == []


def test_send_resolved_false_drops_resolved_alerts(http_server):
    with WebhookReceiver("hook", url=http_server.url, send_resolved=False) as r:
        r.send(notification(alert("DE", resolved=True)))
        assert http_server.requests == []
        r.send(notification(alert("DE", resolved=True), alert("FR")))
    [req] = http_server.requests
    assert [a["labels"]["market"] for a in req.json()["alerts"]] == ["FR"]
