"""The Alertmanager receiver: hand alerts to an existing Prometheus Alertmanager.

For teams whose routing, silences and on-call integrations already live in Alertmanager: the
detector finds anomalies, Alertmanager delivers. Alerts are POSTed to ``<url>/api/v2/alerts``
as its JSON list (labels, annotations, startsAt, endsAt, generatorURL); Alertmanager dedupes by
labels itself, so retries are harmless.

Firing alerts are sent without ``endsAt``: Alertmanager then resolves them after its
``resolve_timeout`` (5 minutes by default) unless they are sent again, so route to this
receiver with a ``repeat_interval`` shorter than that timeout, as Prometheus re-sends its
alerts.

>>> from detector.alerting.model import Alert
>>> alert_body(Alert({"alertname": "orders"}, "2026-01-01T10:00Z", {"link": "http://x"}))
{'labels': {'alertname': 'orders'}, 'annotations': {'link': 'http://x'},
 'startsAt': '2026-01-01T10:00:00Z', 'generatorURL': 'http://x'}
"""

from __future__ import annotations

from typing import Any

from detector.alerting.model import Alert, Notification
from detector.alerting.receivers.base import HttpSettings, UrlReceiver
from detector.alerting.receivers.webhook import rfc3339
from detector.alerting.secrets import Secret
from detector.errors import ConfigError

__all__ = ["AlertmanagerReceiver", "AlertmanagerSettings", "alert_body"]

API_PATH = "/api/v2/alerts"


class AlertmanagerSettings(HttpSettings):
    """``alertmanager: {url: http://alertmanager:9093}`` (+ ``headers``/``bearer_token``/
    ``basic_auth``). The base URL is a secret in case it embeds credentials."""

    url: Secret


def alert_body(a: Alert) -> dict[str, Any]:
    """One alert as Alertmanager's ``postableAlert``."""
    body: dict[str, Any] = {
        "labels": dict(a.labels),
        "annotations": dict(a.annotations),
        "startsAt": rfc3339(a.starts_at),
    }
    if a.ends_at is not None:
        body["endsAt"] = rfc3339(a.ends_at)
    body["generatorURL"] = a.annotations.get("link", "")
    return body


class AlertmanagerReceiver(UrlReceiver):
    """POSTs a notification's alerts to an Alertmanager's v2 API."""

    kind = "alertmanager"

    def _deliver(self, notification: Notification) -> None:
        try:
            target = self.url.reveal().rstrip("/") + API_PATH
        except ConfigError as exc:
            raise self._error(str(exc), retryable=False) from None
        self._post(target, [alert_body(a) for a in notification.alerts])
