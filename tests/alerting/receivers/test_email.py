from __future__ import annotations

import logging
import time

import pytest

from detector.alerting.model import DeliveryError
from detector.alerting.receivers import EmailReceiver

from .conftest import SECRET, alert, notification


def mailer(smtp_server, **options) -> EmailReceiver:
    settings = {
        "host": smtp_server.host,
        "port": smtp_server.port,
        "tls": "none",
        "sender": "Detector <alerts@shop.example>",
        "to": ["oncall@shop.example", "data@shop.example"],
        "timeout": 3,
    }
    return EmailReceiver("mail", **{**settings, **options})


def test_sends_the_rendered_mail(smtp_server):
    n = notification(alert(impact="~4,000 EUR/h"), receiver="mail")
    with mailer(smtp_server, username="detector", password=SECRET) as r:
        r.send(n)
    [msg] = smtp_server.messages
    assert smtp_server.logins == [("detector", SECRET)]
    assert smtp_server.envelopes == [
        ("alerts@shop.example", ["oncall@shop.example", "data@shop.example"])
    ]
    assert msg["Subject"] == "[FIRING:1] orders"
    assert msg["From"] == "Detector <alerts@shop.example>"
    assert msg["To"] == "oncall@shop.example, data@shop.example"
    assert msg["Message-ID"] == f"<{n.key}@shop.example>"
    assert msg["X-Detector-Key"] == n.key
    assert msg["Date"] == "Mon, 05 Jan 2026 10:05:00 +0000"
    assert msg.get_content().replace("\r\n", "\n") == (
        "1 firing\n"
        "\n"
        "[FIRING] orders {market=DE}\n"
        "  orders dropped 60%\n"
        "  value 120, expected 300\n"
        "  impact: ~4,000 EUR/h\n"
    )


def test_same_notification_same_message_id_and_group_thread(smtp_server):
    firing = notification(alert(), receiver="mail")
    resolved = notification(alert(resolved=True), receiver="mail")
    with mailer(smtp_server) as r:
        r.send(firing)
        r.send(firing)  # a retry
        r.send(resolved)
    ids = [m["Message-ID"] for m in smtp_server.messages]
    assert ids[0] == ids[1] != ids[2]
    assert len({m["References"] for m in smtp_server.messages}) == 1
    assert smtp_server.messages[2]["Subject"] == "[RESOLVED] orders"


def test_wrong_password_is_not_retryable_and_not_shown(smtp_server, caplog):
    caplog.set_level(logging.DEBUG)
    smtp_server.password = "the-right-one"
    with (
        mailer(smtp_server, username="detector", password=SECRET) as r,
        pytest.raises(DeliveryError) as info,
    ):
        r.send(notification())
    assert not info.value.retryable
    assert "SMTP 535" in str(info.value)
    assert SECRET not in str(info.value) + caplog.text
    assert info.value.__context__ is None


@pytest.mark.parametrize(
    ("reply", "retryable"), [("451 4.3.0 try again later", True), ("554 5.7.1 rejected", False)]
)
def test_smtp_answers_map_to_retryable(smtp_server, reply, retryable):
    smtp_server.data_reply = reply
    with mailer(smtp_server) as r, pytest.raises(DeliveryError) as info:
        r.send(notification())
    assert info.value.retryable is retryable
    assert reply.split()[0] in str(info.value)


def test_starttls_required_but_not_offered_is_a_config_error(smtp_server):
    with mailer(smtp_server, tls="starttls") as r, pytest.raises(DeliveryError) as info:
        r.send(notification())
    assert not info.value.retryable
    assert smtp_server.messages == []


def test_silent_server_times_out(silent_port):
    with EmailReceiver(
        "mail",
        host="127.0.0.1",
        port=silent_port,
        tls="none",
        sender="a@b.example",
        to=["c@d.example"],
        timeout=0.5,
    ) as r:
        started = time.monotonic()
        with pytest.raises(DeliveryError) as info:
            r.send(notification())
    assert info.value.retryable
    assert time.monotonic() - started < 0.5 + 2
    assert "timeout" in str(info.value)


def test_refused_connection_is_retryable(down_url):
    port = int(down_url.rsplit(":", 1)[1])
    with (
        EmailReceiver(
            "mail",
            host="127.0.0.1",
            port=port,
            tls="none",
            sender="a@b.example",
            to=["c@d.example"],
        ) as r,
        pytest.raises(DeliveryError) as info,
    ):
        r.send(notification())
    assert info.value.retryable


def test_missing_password_secret(smtp_server):
    with (
        mailer(smtp_server, username="u", password={"file": "/nonexistent/smtp-pass"}) as r,
        pytest.raises(DeliveryError) as info,
    ):
        r.send(notification())
    assert "/nonexistent/smtp-pass" in str(info.value)
    assert not info.value.retryable
