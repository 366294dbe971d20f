"""Escalation: an alert nobody acknowledged goes to the next level (chat, on-call, phone).

Configured in the pipeline's ``alerting.escalations``::

    escalations:
      - name: payments
        matchers: ['alertname="payment_success_rate"']
        levels:
          - {after: 15m, receiver: oncall-pager}
          - {after: 45m, receiver: phone-call}

The clock of a level starts when the alert's first notification went out (its route's
receiver: level 0), not when the anomaly began: the team chat must have had its chance. An
acknowledgement (``detector alerts ack ID``) stops escalation for that episode; a snooze only
until it runs out. A level is sent once per episode; when the alert resolves, every receiver it
was escalated to gets the resolved notice (the pager must stop ringing). Muted alerts (silence,
mute window, inhibition) do not escalate.

>>> from detector.alerting.model import Alert, Notification
>>> policy = EscalationPolicy(name="p", levels=[{"after": "15m", "receiver": "pager"}])
>>> esc = Escalator([policy])
>>> a = Alert({"alertname": "orders"}, "2026-01-01T10:00Z")
>>> esc.observe([Notification.build("chat", "g", {}, [a])], at=ts("2026-01-01T10:01Z"))
>>> esc.due(ts("2026-01-01T10:15Z"))
[]
>>> [(n.receiver, n.level) for n in esc.due(ts("2026-01-01T10:16Z"))]
[('pager', 1)]
>>> esc.due(ts("2026-01-01T10:30Z"))  # sent once
[]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from detector.alerting.matchers import Matcher, matches_all, parse_matchers
from detector.alerting.model import Alert, Notification, ts
from detector.pipeline.config import parse_duration

__all__ = ["EscalationLevel", "EscalationPolicy", "Escalator"]

Duration = Annotated[pd.Timedelta, BeforeValidator(parse_duration)]


class EscalationLevel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    after: Duration  # since the first notification of the alert
    receiver: str


class EscalationPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str
    matchers: list[str] = Field(default_factory=list)  # empty: every alert
    levels: list[EscalationLevel]

    @field_validator("matchers")
    @classmethod
    def _parse(cls, v: list[str]) -> list[str]:
        parse_matchers(v)  # raises with the bad matcher named
        return v

    @field_validator("levels")
    @classmethod
    def _ordered(cls, v: list[EscalationLevel]) -> list[EscalationLevel]:
        if not v:
            raise ValueError("an escalation policy needs at least one level")
        afters = [lvl.after for lvl in v]
        if afters != sorted(afters) or len(set(afters)) != len(afters):
            raise ValueError("levels must have strictly increasing `after` durations")
        return v


@dataclass
class _Tracked:
    alert: Alert
    policy: int
    notified_at: pd.Timestamp
    sent: list[str] = field(default_factory=list)  # receivers escalated to, in level order


class Escalator:
    """Tracks notified, firing alerts and says which escalations are due."""

    def __init__(self, policies: Sequence[EscalationPolicy]) -> None:
        self.policies = list(policies)
        self._matchers: list[list[Matcher]] = [parse_matchers(p.matchers) for p in policies]
        self.tracked: dict[str, _Tracked] = {}  # fingerprint -> state

    def _policy(self, labels: Mapping[str, str]) -> int | None:
        for i, ms in enumerate(self._matchers):
            if matches_all(ms, labels):
                return i
        return None

    def observe(self, sent: Iterable[Notification], at: pd.Timestamp) -> None:
        """Record level-0 notifications that went out (into the outbox) at ``at``."""
        if not self.policies:
            return
        for n in sent:
            if n.level != 0 or n.test:
                continue
            for a in n.alerts:
                cur = self.tracked.get(a.fingerprint)
                if a.status == "firing":
                    if cur is None or cur.alert.starts_at != a.starts_at:
                        p = self._policy(a.labels)
                        if p is not None:
                            self.tracked[a.fingerprint] = _Tracked(a, p, ts(at))
                    else:
                        cur.alert = a  # fresher annotations for the next level

    def resolve(self, alerts: Iterable[Alert], at: pd.Timestamp) -> list[Notification]:
        """Resolved notices for the receivers these alerts had been escalated to."""
        out = []
        for a in alerts:
            if a.status != "resolved":
                continue
            cur = self.tracked.get(a.fingerprint)
            if cur is None or cur.alert.starts_at != a.starts_at:
                continue
            del self.tracked[a.fingerprint]
            for level, receiver in enumerate(cur.sent, start=1):
                out.append(self._note(receiver, a, level, at, cur.policy))
        return out

    def due(
        self,
        now: pd.Timestamp,
        *,
        acked: set[str] | frozenset[str] = frozenset(),
        muted: Callable[[Alert], bool] | None = None,
    ) -> list[Notification]:
        """Escalations whose time has come, each level once per episode."""
        out = []
        for fp, cur in self.tracked.items():
            if fp in acked or (muted is not None and muted(cur.alert)):
                continue
            levels = self.policies[cur.policy].levels
            while len(cur.sent) < len(levels):
                level = levels[len(cur.sent)]
                if now < cur.notified_at + level.after:
                    break
                cur.sent.append(level.receiver)
                out.append(self._note(level.receiver, cur.alert, len(cur.sent), now, cur.policy))
        return out

    def next_due(self) -> pd.Timestamp | None:
        """When the next level falls due (ignoring acks), for the caller's timer."""
        times = [
            cur.notified_at + self.policies[cur.policy].levels[len(cur.sent)].after
            for cur in self.tracked.values()
            if len(cur.sent) < len(self.policies[cur.policy].levels)
        ]
        return min(times, default=None)

    def _note(
        self, receiver: str, alert: Alert, level: int, at: pd.Timestamp, policy: int
    ) -> Notification:
        return Notification.build(
            receiver,
            f"escalation:{self.policies[policy].name}:{alert.fingerprint}",
            dict(alert.labels),
            [alert],
            created_at=at,
            level=level,
        )

    # -- state ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            fp: {
                "alert": t.alert.to_dict(),
                "policy": self.policies[t.policy].name,
                "notified_at": t.notified_at.value,
                "sent": list(t.sent),
            }
            for fp, t in self.tracked.items()
        }

    def restore(self, snap: Mapping[str, Any]) -> None:
        names = {p.name: i for i, p in enumerate(self.policies)}
        self.tracked = {
            fp: _Tracked(
                Alert.from_dict(d["alert"]),
                names[d["policy"]],
                pd.Timestamp(d["notified_at"], tz="UTC"),
                list(d["sent"]),
            )
            for fp, d in snap.items()
            if d["policy"] in names  # a policy removed from the config stops escalating
        }
