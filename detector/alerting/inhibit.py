"""Inhibition: a firing alert mutes related alerts, as Alertmanager's ``inhibit_rules`` do.

When payments fail across a market, the per-product alerts of that market are symptoms: the
page should be about the cause. A rule says which alerts are causes (``source_matchers``),
which are symptoms (``target_matchers``) and which labels must be equal for a cause to mute a
symptom (``equal``)::

    inhibit_rules:
      - source_matchers: [alertname=payment_success_rate, severity=critical]
        target_matchers: [severity=~"warning|critical"]
        equal: [market]

Alertmanager's details are kept: a label missing on both sides counts as equal (both are
``""``); resolved alerts do not inhibit; and an alert that matches both sides of a rule is
only muted by a source that does not itself match the target side, so two critical alerts
never mute each other (and no alert mutes itself).

Sources are indexed per rule by their ``equal`` label values, so a check costs one dict
lookup per rule whose target side matches, whatever the number of firing alerts.

>>> from detector.alerting.model import Alert, ts
>>> rule = InhibitRule.model_validate({
...     "source_matchers": ["alertname=payment_success_rate", "severity=critical"],
...     "target_matchers": ["alertname!=payment_success_rate"], "equal": ["market"]})
>>> outage = Alert({"alertname": "payment_success_rate", "severity": "critical", "market": "DE"},
...                ts("2026-01-01T10:00Z"))
>>> inhibitor = Inhibitor([rule], [outage])
>>> t = ts("2026-01-01T10:01Z")
>>> inhibitor.inhibited(Alert({"alertname": "orders", "market": "DE"}, t)) is rule
True
>>> inhibitor.inhibited(Alert({"alertname": "orders", "market": "FR"}, t)) is None
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from detector.alerting.matchers import Matcher, check_matchers, parse_matchers
from detector.alerting.model import Alert

__all__ = ["InhibitRule", "Inhibitor"]


class InhibitRule(BaseModel):
    """One entry of ``inhibit_rules``: sources mute targets that share the ``equal`` labels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_matchers: list[str] = Field(min_length=1)
    target_matchers: list[str] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)

    _source: tuple[Matcher, ...] = PrivateAttr(default=())
    _target: tuple[Matcher, ...] = PrivateAttr(default=())

    _check = field_validator("source_matchers", "target_matchers")(check_matchers)

    def model_post_init(self, _context: Any) -> None:
        self._source = tuple(parse_matchers(self.source_matchers))
        self._target = tuple(parse_matchers(self.target_matchers))

    def is_source(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert with ``labels`` can inhibit others under this rule."""
        return all(m.matches(labels) for m in self._source)

    def is_target(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert with ``labels`` can be inhibited under this rule."""
        return all(m.matches(labels) for m in self._target)

    def equal_key(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        """The values of the ``equal`` labels (missing ones as ``""``, as in Alertmanager)."""
        return tuple(labels.get(name, "") for name in self.equal)


class _Sources:
    """Firing sources of one rule, by equal-key; split by whether they also match the target."""

    __slots__ = ("both", "only")

    def __init__(self) -> None:
        self.only: dict[tuple[str, ...], dict[str, Alert]] = {}  # match the source side only
        self.both: dict[tuple[str, ...], dict[str, Alert]] = {}  # match both sides


class Inhibitor:
    """Answers "is this alert inhibited, and by which rule?" against the firing alerts it holds.

    Feed it every alert as it changes (:meth:`add`); a resolved alert stops inhibiting.
    """

    def __init__(self, rules: Iterable[InhibitRule], alerts: Iterable[Alert] = ()) -> None:
        self.rules = list(rules)
        self._index = [_Sources() for _ in self.rules]
        self._where: dict[str, list[tuple[int, bool, tuple[str, ...]]]] = {}
        for alert in alerts:
            self.add(alert)

    def add(self, alert: Alert) -> None:
        """Take in a new or changed alert: firing ones may inhibit, resolved ones no longer do."""
        fp = alert.fingerprint
        self.remove(fp)
        if alert.status != "firing":
            return
        labels = alert.labels
        places = []
        for i, rule in enumerate(self.rules):
            if rule.is_source(labels):
                both = rule.is_target(labels)
                key = rule.equal_key(labels)
                index = self._index[i].both if both else self._index[i].only
                index.setdefault(key, {})[fp] = alert
                places.append((i, both, key))
        if places:
            self._where[fp] = places

    def update(self, alerts: Iterable[Alert]) -> None:
        """:meth:`add` each alert."""
        for alert in alerts:
            self.add(alert)

    def remove(self, fingerprint: str) -> None:
        """Forget an alert (it no longer inhibits anything)."""
        for i, both, key in self._where.pop(fingerprint, ()):
            index = self._index[i].both if both else self._index[i].only
            bucket = index[key]
            del bucket[fingerprint]
            if not bucket:
                del index[key]

    def inhibiting(self, alert: Alert) -> tuple[InhibitRule, Alert] | None:
        """The first rule that mutes ``alert`` and one source alert doing it, or None."""
        labels = alert.labels
        fp: str | None = None
        for i, rule in enumerate(self.rules):
            if not rule.is_target(labels):
                continue
            key = rule.equal_key(labels)
            sources = self._index[i]
            candidates = [sources.only.get(key)]
            if not rule.is_source(labels):  # otherwise only sources not matching the target
                candidates.append(sources.both.get(key))
            for bucket in candidates:
                if not bucket:
                    continue
                if fp is None:
                    fp = alert.fingerprint
                for source_fp, source in bucket.items():
                    if source_fp != fp:
                        return rule, source
        return None

    def inhibited(self, alert: Alert) -> InhibitRule | None:
        """The first rule that mutes ``alert``, or None."""
        found = self.inhibiting(alert)
        return found[0] if found else None

    def __len__(self) -> int:
        """The number of firing alerts that act as a source of some rule."""
        return len(self._where)
