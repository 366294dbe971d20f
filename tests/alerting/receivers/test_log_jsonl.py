from __future__ import annotations

import logging

import pytest

from detector.alerting.model import DeliveryError, Notification
from detector.alerting.receivers import JsonlReceiver, LogReceiver

from .conftest import alert, notification


def test_log_receiver_levels_and_extra(caplog):
    caplog.set_level(logging.INFO, logger="detector.alerting.receivers.log")
    r = LogReceiver("dev", level="error")
    firing, resolved = notification(alert()), notification(alert(resolved=True))
    r.send(firing)
    r.send(resolved)
    first, second = caplog.records
    assert first.levelno == logging.ERROR
    assert first.getMessage().startswith("[FIRING:1] orders\n1 firing")
    assert first.notification_key == firing.key  # type: ignore[attr-defined]
    assert first.receiver == "dev"  # type: ignore[attr-defined]
    assert second.levelno == logging.INFO
    assert second.status == "resolved"  # type: ignore[attr-defined]


def test_jsonl_appends_readable_lines(tmp_path):
    path = tmp_path / "out" / "alerts.jsonl"
    r = JsonlReceiver("audit", path=str(path))
    a, b = notification(alert("DE")), notification(alert("FR", resolved=True))
    r.send(a)
    r.send(a)  # a retry: a reader dedupes by key
    r.send(b)
    lines = path.read_bytes().splitlines()
    read = [Notification.from_json(line) for line in lines]
    assert read == [a, a, b]
    assert list({n.key: n for n in read}.values()) == [a, b]


def test_jsonl_unwritable_path_is_retryable(tmp_path):
    r = JsonlReceiver("audit", path=str(tmp_path))  # a directory
    with pytest.raises(DeliveryError) as info:
        r.send(notification())
    assert info.value.retryable
    assert "jsonl receiver 'audit'" in str(info.value)
