"""The generic webhook receiver: Alertmanager's webhook payload, POSTed as JSON.

Anything that already consumes Alertmanager webhooks (chat bridges, ticket creators, SOAR
tools) consumes ours. Two additions: ``idempotencyKey`` in the body and the
``Idempotency-Key`` header carry :attr:`Notification.key`, so a consumer can drop the
duplicates that retries and several detector instances produce.

The URL is a secret (many webhook URLs embed a token), as are header values.

>>> from detector.alerting.model import Alert, Notification
>>> a = Alert({"alertname": "orders", "market": "DE"}, "2026-01-01T10:00Z", {"reason": "drop"})
>>> n = Notification.build("hook", "{}:{market=DE}", {"market": "DE"}, [a])
>>> body = payload(n, "hook")
>>> body["status"], body["commonLabels"], body["alerts"][0]["endsAt"]
('firing', {'alertname': 'orders', 'market': 'DE'}, '0001-01-01T00:00:00Z')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from detector.alerting.model import Alert, Notification
from detector.alerting.receivers.base import HttpSettings, UrlReceiver
from detector.alerting.secrets import Secret

__all__ = ["WebhookReceiver", "WebhookSettings", "payload", "rfc3339"]

#: Alertmanager's "not ended" timestamp (Go's zero time), which consumers expect.
ZERO_TIME = "0001-01-01T00:00:00Z"


class WebhookSettings(HttpSettings):
    """``webhook: {url: {env: HOOK_URL}, headers: {...}, bearer_token: ..., basic_auth: ...}``."""

    url: Secret


def rfc3339(t: pd.Timestamp | None) -> str:
    """A UTC timestamp as Alertmanager writes it (``2026-01-01T10:00:00Z``)."""
    if t is None:
        return ZERO_TIME
    return t.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")


def common(maps: list[Mapping[str, str]]) -> dict[str, str]:
    """The key/value pairs every mapping has."""
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def alert_payload(a: Alert) -> dict[str, Any]:
    return {
        "status": a.status,
        "labels": dict(a.labels),
        "annotations": dict(a.annotations),
        "startsAt": rfc3339(a.starts_at),
        "endsAt": rfc3339(a.ends_at),
        "generatorURL": a.annotations.get("link", ""),
        "fingerprint": a.fingerprint,
    }


def payload(notification: Notification, receiver: str) -> dict[str, Any]:
    """Alertmanager's webhook body (version 4) plus ``idempotencyKey``."""
    alerts = notification.alerts
    return {
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": 0,
        "status": notification.status,
        "receiver": receiver,
        "groupLabels": dict(notification.group_labels),
        "commonLabels": common([a.labels for a in alerts]),
        "commonAnnotations": common([a.annotations for a in alerts]),
        "externalURL": "",
        "alerts": [alert_payload(a) for a in alerts],
        "idempotencyKey": notification.key,
    }


class WebhookReceiver(UrlReceiver):
    """POSTs :func:`payload` to ``url`` with an ``Idempotency-Key`` header."""

    kind = "webhook"

    def _deliver(self, notification: Notification) -> None:
        self._post(
            self.url,
            payload(notification, self.name),
            headers={"Idempotency-Key": notification.key},
        )
