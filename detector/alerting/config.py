"""The ``alerting:`` section of a pipeline file, validated like the rest of it.

Shaped after Alertmanager's configuration, so its users read it at once, plus what we add
(escalation, severity from business impact)::

    alerting:
      receivers:
        - name: team-chat
          slack: {url: {env: SLACK_WEBHOOK_URL}}
        - name: oncall
          pagerduty: {routing_key: {env: PD_ROUTING_KEY}}
      route:
        receiver: team-chat
        group_by: [alertname, market]
        routes:
          - matchers: ['severity="critical"']
            receiver: oncall
      inhibit_rules:
        - source_matchers: ['alertname="payment_success_rate"', 'severity="critical"']
          target_matchers: ['alertname=~"orders|revenue"']
          equal: [market]
      time_intervals:
        - name: maintenance-night
          time_intervals: [{weekdays: [sunday], times: [{start_time: "01:00", end_time: "03:00"}]}]
      escalations:
        - name: critical
          matchers: ['severity="critical"']
          levels: [{after: 15m, receiver: oncall}]
      severity: {score: 0.9, impact: {revenue: 5000}}
      units: {revenue: EUR}

A pipeline without ``alerting:`` logs its alerts (a ``log`` receiver and a root route to it),
which is what ``detector run`` did before the router existed.

:func:`parse_alerting` returns the config and a list of ``(key path, message)`` problems, so
that the pipeline loader reports them with file and line among the others.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from detector.alerting.alerts import SeverityRules
from detector.alerting.escalation import EscalationPolicy
from detector.alerting.inhibit import InhibitRule
from detector.alerting.receivers import ReceiverConfig
from detector.alerting.routing import Route, RouteConfig, compile_route
from detector.alerting.silences import TimeInterval
from detector.errors import ConfigError
from detector.pipeline.config import parse_duration

__all__ = ["AlertingConfig", "LagAlert", "Severity", "parse_alerting"]


class Severity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    score: float = Field(0.9, gt=0, le=1)
    impact: dict[str, float] = Field(default_factory=dict)
    kinds: list[str] = Field(default_factory=lambda: ["stale"])

    def rules(self) -> SeverityRules:
        return SeverityRules(self.score, dict(self.impact), tuple(self.kinds))


class LagAlert(BaseModel):
    """``lag: {max_records: 100000, after: 5m}``: a ``pipeline_lag`` alert while the consumer
    stays that far behind its topic for that long (``lag: null`` turns it off)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    max_records: int = Field(100_000, gt=0)
    after: Annotated[pd.Timedelta, BeforeValidator(parse_duration)] = pd.Timedelta("5min")


class AlertingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    receivers: list[ReceiverConfig] = Field(
        default_factory=lambda: [ReceiverConfig.model_validate({"name": "log", "log": {}})]
    )
    route: RouteConfig = Field(default_factory=lambda: RouteConfig(receiver="log"))
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    time_intervals: list[TimeInterval] = Field(default_factory=list)
    escalations: list[EscalationPolicy] = Field(default_factory=list)
    severity: Severity = Field(default_factory=Severity)
    units: dict[str, str] = Field(default_factory=dict)  # metric -> unit of its impact
    link: str | None = None  # URL template: {series}, {metric}
    lag: LagAlert | None = Field(default_factory=LagAlert)
    #: seconds between refreshes of silences and acks from the store (CLI changes)
    refresh: float = Field(5.0, gt=0)

    def receiver(self, name: str) -> ReceiverConfig:
        for r in self.receivers:
            if r.name == name:
                return r
        raise ConfigError(
            f"no receiver named {name!r}; the pipeline has: "
            + ", ".join(r.name for r in self.receivers)
        )

    def compiled_route(self) -> Route:
        return compile_route(
            self.route,
            {r.name for r in self.receivers},
            {t.name for t in self.time_intervals},
        )


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _loc(path: str) -> tuple[Any, ...]:
    """``route.routes[1].receiver`` as ``("route", "routes", 1, "receiver")``."""
    return tuple(int(i) if i else name for name, i in _PATH_PART.findall(path))


def parse_alerting(
    raw: Mapping[str, Any] | None,
) -> tuple[AlertingConfig | None, list[dict[str, Any]], list[tuple[tuple[Any, ...], str]]]:
    """Validate an ``alerting:`` mapping.

    Returns the config (None if its shape is wrong), pydantic's error dicts (locations
    relative to ``alerting``), and cross-check problems as ``(location, message)``.

    >>> cfg, errors, problems = parse_alerting({"route": {"receiver": "chat"}})
    >>> problems
    [(('route', 'receiver'), "unknown receiver 'chat'")]
    """
    try:
        cfg = AlertingConfig.model_validate(dict(raw or {}))
    except ValidationError as exc:
        return None, list(exc.errors()), []
    problems: list[tuple[tuple[Any, ...], str]] = []
    names = [r.name for r in cfg.receivers]
    for i, name in enumerate(names):
        if names.index(name) != i:
            problems.append((("receivers", i, "name"), f"duplicate receiver name {name!r}"))
    try:
        cfg.compiled_route()
    except ConfigError as exc:
        for line in str(exc).splitlines():
            path, _, message = line.partition(": ")
            problems.append((_loc(path), message))
    known = set(names)
    for i, policy in enumerate(cfg.escalations):
        for j, level in enumerate(policy.levels):
            if level.receiver not in known:
                problems.append(
                    (
                        ("escalations", i, "levels", j, "receiver"),
                        f"unknown receiver {level.receiver!r}",
                    )
                )
    return cfg, [], problems
