"""The PagerDuty receiver: Events API v2 (``trigger`` while firing, ``resolve`` when resolved).

The ``dedup_key`` is a hash of the receiver and the group key, stable for the group's life:
every trigger of a group lands on the same PagerDuty incident, retries and several detector
instances do not open a second one, and the resolve closes exactly that incident.

Our ``severity`` label maps to PagerDuty's four levels (``critical``, ``error``, ``warning``,
``info``; ``page``/``high`` → critical/error, ``warn``/``medium`` → warning, ``low`` → info);
alerts without one get ``severity`` from the settings. A group takes its most severe alert's.

>>> from detector.alerting.model import Alert, Notification
>>> a = Alert({"alertname": "orders", "severity": "warn"}, "2026-01-01T10:00Z")
>>> n = Notification.build("pd", "g", {}, [a])
>>> e = PagerDutyReceiver("pd", routing_key="R0UT1NG").event(n, "R0UT1NG")
>>> e["event_action"], e["payload"]["severity"], e["dedup_key"] == dedup_key(n)
('trigger', 'warning', True)
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from detector.alerting.model import Notification
from detector.alerting.receivers.base import HttpReceiver, ReceiverSettings
from detector.alerting.receivers.webhook import common, rfc3339
from detector.alerting.secrets import Secret
from detector.errors import ConfigError

__all__ = ["DEFAULT_URL", "PagerDutyReceiver", "PagerDutySettings", "dedup_key", "severity"]

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
Severity = Literal["critical", "error", "warning", "info"]
_ORDER: tuple[Severity, ...] = ("critical", "error", "warning", "info")
_ALIASES: dict[str, Severity] = {
    "critical": "critical",
    "page": "critical",
    "error": "error",
    "high": "error",
    "warning": "warning",
    "warn": "warning",
    "medium": "warning",
    "info": "info",
    "low": "info",
}
_MAX_ALERTS = 20  # alerts listed in custom_details (PagerDuty caps an event at 512 KB)


class PagerDutySettings(ReceiverSettings):
    """``pagerduty: {routing_key: {env: PD_ROUTING_KEY}, url, severity, source, client_url}``."""

    routing_key: Secret
    url: str = DEFAULT_URL
    severity: Severity = "error"
    source: str | None = None
    client_url: str | None = None


def dedup_key(notification: Notification) -> str:
    """Stable per receiver and alert group: matches trigger to resolve, dedupes retries."""
    raw = f"{notification.receiver}\x1f{notification.group_key}".encode()
    return hashlib.sha256(raw).hexdigest()


def severity(labels_severity: list[str | None], default: Severity = "error") -> Severity:
    """The most severe PagerDuty severity among the alerts' ``severity`` labels.

    >>> severity(["low", "high", None]), severity([None]), severity(["bogus"], "info")
    ('error', 'error', 'info')
    """
    mapped = [_ALIASES.get((s or "").lower(), default) for s in labels_severity] or [default]
    return min(mapped, key=_ORDER.index)


class PagerDutyReceiver(HttpReceiver):
    """Sends a trigger or resolve event per notification to the Events API v2."""

    kind = "pagerduty"

    def __init__(
        self,
        name: str,
        *,
        routing_key: Secret | str,
        url: str = DEFAULT_URL,
        severity: Severity = "error",
        source: str | None = None,
        client_url: str | None = None,
        **common: Any,
    ) -> None:
        super().__init__(name, **common)
        self.routing_key = Secret.parse(routing_key)
        self.url = url
        self.severity = severity
        self.source = source
        self.client_url = client_url

    def _secrets(self) -> list[Secret | str | None]:
        return [self.routing_key, *super()._secrets()]

    def event(self, notification: Notification, routing_key: str) -> dict[str, Any]:
        """The Events API v2 body for ``notification``."""
        key = dedup_key(notification)
        if notification.status == "resolved":
            return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": key}
        alerts = notification.firing
        labels = common([a.labels for a in alerts])
        links = sorted({a.annotations["link"] for a in alerts if a.annotations.get("link")})
        payload: dict[str, Any] = {
            "summary": self.templates.title(notification)[:1024],
            "source": self.source or labels.get("pipeline") or "detector",
            "severity": severity([a.labels.get("severity") for a in alerts], self.severity),
            "timestamp": rfc3339(min(a.starts_at for a in alerts)),
            "custom_details": {
                "text": self.templates.text(notification),
                "firing": len(alerts),
                "resolved": len(notification.resolved_alerts),
                "group_labels": dict(notification.group_labels),
                "alerts": [
                    {"labels": dict(a.labels), "annotations": dict(a.annotations)}
                    for a in alerts[:_MAX_ALERTS]
                ],
            },
        }
        for ours, theirs in (("metric", "component"), ("pipeline", "group"), ("kind", "class")):
            if labels.get(ours):
                payload[theirs] = labels[ours]
        event: dict[str, Any] = {
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": key,
            "payload": payload,
            "client": "detector",
        }
        if self.client_url:
            event["client_url"] = self.client_url
        if links:
            event["links"] = [{"href": href, "text": "details"} for href in links[:5]]
        return event

    def _deliver(self, notification: Notification) -> None:
        try:
            routing_key = self.routing_key.reveal()
        except ConfigError as exc:
            raise self._error(str(exc), retryable=False) from None
        self._post(self.url, self.event(notification, routing_key))
