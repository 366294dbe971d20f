from __future__ import annotations

import logging

import pytest

from detector.alerting.model import DeliveryError
from detector.alerting.receivers import SlackReceiver

from .conftest import SECRET, alert, notification


def test_posts_text_with_channel_and_username(http_server, monkeypatch):
    monkeypatch.setenv("SLACK_URL", f"{http_server.url}/services/T0/B0/{SECRET}")
    with SlackReceiver(
        "chat", url={"env": "SLACK_URL"}, channel="#alerts", username="detector"
    ) as r:
        r.send(notification(alert(impact="~4,000 EUR/h", link="http://dash/orders")))
    [req] = http_server.requests
    assert req.path == f"/services/T0/B0/{SECRET}"
    assert req.json() == {
        "text": "*[FIRING:1] orders*\n"
        "1 firing\n"
        "\n"
        "[FIRING] orders {market=DE}\n"
        "  orders dropped 60%\n"
        "  value 120, expected 300\n"
        "  impact: ~4,000 EUR/h\n"
        "  http://dash/orders",
        "channel": "#alerts",
        "username": "detector",
    }


def test_blocks_and_custom_templates(http_server):
    with SlackReceiver(
        "chat",
        url=http_server.url,
        blocks=True,
        title="{{ status }} {{ group_labels.alertname }}",
        text="{{ alerts | map(attribute='labels.market') | sort | join(' ') }}",
    ) as r:
        r.send(notification(alert("DE"), alert("FR", resolved=True)))
    assert http_server.requests[0].json() == {
        "text": "*firing orders*\nDE FR",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "firing orders"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "DE FR"}},
        ],
    }


def test_long_text_is_cut_to_slack_limits(http_server):
    with SlackReceiver("chat", url=http_server.url, blocks=True, text="{{ 'x' * 50000 }}") as r:
        r.send(notification())
    body = http_server.requests[0].json()
    assert len(body["text"]) <= 39_000
    assert len(body["blocks"][1]["text"]["text"]) == 3_000


@pytest.mark.parametrize(("status", "retryable"), [(404, False), (500, True)])
def test_errors_never_show_the_webhook_url(http_server, caplog, status, retryable):
    caplog.set_level(logging.DEBUG)
    http_server.answer(status, b"no_service")
    with (
        SlackReceiver("chat", url=f"{http_server.url}/services/T0/B0/{SECRET}") as r,
        pytest.raises(DeliveryError) as info,
    ):
        r.send(notification())
    assert info.value.retryable is retryable
    assert str(info.value).startswith(f"slack receiver 'chat': HTTP {status}")
    assert "no_service" in str(info.value)
    assert SECRET not in str(info.value) + repr(r) + caplog.text
