"""The alert router's plain data: alerts, notifications, and the receiver protocol.

An :class:`Alert` is one series being anomalous: its *labels* say what it is (and decide routing,
grouping, silencing and inhibition), its *annotations* say what happened (reason, value versus
expected, business impact). The fingerprint is a hash of the labels alone, so the same series
and kind keep one identity from firing to resolved, across restarts and instances, like
Prometheus' Alertmanager.

A :class:`Notification` is what one receiver gets for one alert group at one moment. It carries
an idempotency ``key`` derived from its content, so two instances (or one instance retrying after
a crash) that would send the same notification produce the same key: the outbox stores each key
once and receivers that dedupe (PagerDuty's ``dedup_key``, the ``Idempotency-Key`` header of
webhooks) show it once.

>>> a = Alert(labels={"alertname": "orders", "market": "DE"}, starts_at=ts("2026-01-01T10:00Z"))
>>> a.fingerprint
'854b74b8302818db'
>>> a.status
'firing'
>>> n = Notification.build("team-chat", "{}:{market=DE}", {"market": "DE"}, [a])
>>> Notification.from_json(n.to_json()) == n
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import orjson
import pandas as pd

__all__ = [
    "Alert",
    "DeliveryError",
    "Notification",
    "Receiver",
    "Status",
    "ts",
]

Status = Literal["firing", "resolved"]


def ts(value: Any) -> pd.Timestamp:
    """A UTC timestamp from anything pandas reads (naive values are taken as UTC)."""
    t = pd.Timestamp(value)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Alert:
    """One series in one anomalous state. ``ends_at`` set and past means resolved."""

    labels: Mapping[str, str]
    starts_at: pd.Timestamp
    annotations: Mapping[str, str] = field(default_factory=dict)
    ends_at: pd.Timestamp | None = None

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "labels", dict(sorted((str(k), str(v)) for k, v in self.labels.items()))
        )
        object.__setattr__(
            self, "annotations", {str(k): str(v) for k, v in self.annotations.items()}
        )
        object.__setattr__(self, "starts_at", ts(self.starts_at))
        if self.ends_at is not None:
            object.__setattr__(self, "ends_at", ts(self.ends_at))

    def __hash__(self) -> int:
        return hash((self.fingerprint, self.starts_at, self.ends_at))

    @property
    def fingerprint(self) -> str:
        """Hash of the sorted labels: the alert's identity from firing to resolved."""
        return _hash(*(f"{k}={v}" for k, v in self.labels.items()))

    @property
    def status(self) -> Status:
        return "resolved" if self.ends_at is not None else "firing"

    def resolved(self, at: Any) -> Alert:
        """This alert, ended at ``at``."""
        return Alert(self.labels, self.starts_at, self.annotations, ts(at))

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "starts_at": self.starts_at.isoformat(),
            "ends_at": None if self.ends_at is None else self.ends_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Alert:
        return cls(d["labels"], d["starts_at"], d.get("annotations") or {}, d.get("ends_at"))


@dataclass(frozen=True)
class Notification:
    """What one receiver gets for one alert group at one moment (a row of the outbox)."""

    key: str  # idempotency key: same content, same key, on every instance and retry
    receiver: str
    group_key: str
    group_labels: Mapping[str, str]
    alerts: tuple[Alert, ...]
    created_at: pd.Timestamp
    level: int = 0  # escalation level: 0 for the route's receiver, 1.. for the next levels
    test: bool = False  # `detector alerts send-test`

    @property
    def status(self) -> Status:
        """Firing while any alert of the group fires, resolved once all have."""
        return "firing" if any(a.status == "firing" for a in self.alerts) else "resolved"

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "firing"]

    @property
    def resolved_alerts(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "resolved"]

    @classmethod
    def build(
        cls,
        receiver: str,
        group_key: str,
        group_labels: Mapping[str, str],
        alerts: Iterable[Alert],
        *,
        created_at: Any = None,
        level: int = 0,
        sequence: int = 0,
        test: bool = False,
    ) -> Notification:
        """A notification whose key depends only on its content and ``sequence``.

        ``sequence`` tells apart notifications of identical content sent on purpose again
        (repeat_interval reminders, escalation levels use ``level``).
        """
        alerts = tuple(sorted(alerts, key=lambda a: (a.fingerprint, a.starts_at)))
        state = ",".join(
            f"{a.fingerprint}@{a.starts_at.value}:{'' if a.ends_at is None else 'r'}"
            for a in alerts
        )
        key = _hash(receiver, group_key, state, str(level), str(sequence), "test" * test)
        created = ts(created_at) if created_at is not None else pd.Timestamp.now(tz="UTC")
        return cls(key, receiver, group_key, dict(group_labels), alerts, created, level, test)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "key": self.key,
                "receiver": self.receiver,
                "group_key": self.group_key,
                "group_labels": dict(self.group_labels),
                "alerts": [a.to_dict() for a in self.alerts],
                "created_at": self.created_at.isoformat(),
                "level": self.level,
                "test": self.test,
            }
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> Notification:
        d = orjson.loads(data)
        return cls(
            d["key"],
            d["receiver"],
            d["group_key"],
            d["group_labels"],
            tuple(Alert.from_dict(a) for a in d["alerts"]),
            ts(d["created_at"]),
            d.get("level", 0),
            d.get("test", False),
        )


class DeliveryError(Exception):
    """A receiver could not deliver. ``retryable`` says whether trying again may help.

    A 5xx answer, a timeout or a refused connection is retryable; a 4xx answer (a bad token, a
    payload the service rejects) is not: retrying would only hide the configuration error.
    The message must never contain a secret (token, password, webhook URL path).
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@runtime_checkable
class Receiver(Protocol):
    """Delivers notifications to one destination (a chat channel, a mailbox, an on-call tool)."""

    kind: ClassVar[str]  # "webhook", "slack", "email", ... (the key in the pipeline file)
    name: str  # the receiver's name in the pipeline file
    timeout: float  # seconds one delivery attempt may take

    def send(self, notification: Notification) -> None:
        """Deliver once; raise :class:`DeliveryError` on failure. Must return within timeout."""
        ...
