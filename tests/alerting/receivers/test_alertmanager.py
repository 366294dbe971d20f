from __future__ import annotations

import base64

import pytest

from detector.alerting.model import DeliveryError
from detector.alerting.receivers import AlertmanagerReceiver
from detector.alerting.receivers.base import BasicAuth

from .conftest import SECRET, alert, notification


def test_posts_postable_alerts(http_server):
    firing, resolved = alert("DE", link="http://dash/de"), alert("FR", resolved=True)
    with AlertmanagerReceiver(
        "am", url=http_server.url + "/", basic_auth=BasicAuth(username="u", password=SECRET)
    ) as r:
        r.send(notification(firing, resolved))
    [req] = http_server.requests
    assert req.path == "/api/v2/alerts"
    assert (
        req.headers["Authorization"] == "Basic " + base64.b64encode(f"u:{SECRET}".encode()).decode()
    )
    assert (
        req.json()
        == [
            {
                "labels": dict(firing.labels),
                "annotations": dict(firing.annotations),
                "startsAt": "2026-01-05T10:00:00Z",
                "generatorURL": "http://dash/de",
            },
            {
                "labels": dict(resolved.labels),
                "annotations": dict(resolved.annotations),
                "startsAt": "2026-01-05T10:00:00Z",
                "endsAt": "2026-01-05T11:00:00Z",
                "generatorURL": "",
            },
        ][:: 1 if firing.fingerprint < resolved.fingerprint else -1]
    )


def test_unavailable_alertmanager_is_retryable(down_url):
    with AlertmanagerReceiver("am", url=down_url) as r, pytest.raises(DeliveryError) as info:
        r.send(notification())
    assert info.value.retryable
    assert str(info.value).startswith("alertmanager receiver 'am': connection failed")
