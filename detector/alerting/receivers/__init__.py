"""Receivers: where notifications go. One module per kind, a settings model per kind.

A pipeline names its receivers; each entry has a ``name``, exactly one kind key with that
kind's settings, and the delivery options every kind shares::

    receivers:
      - name: team-chat
        slack: {url: {env: SLACK_URL}}
        title: "{{ status | upper }}: {{ alerts[0].labels.alertname }}"   # optional
      - name: oncall
        pagerduty: {routing_key: {env: PD_ROUTING_KEY}}
        timeout: 5s
        retry: {initial: 1s, max: 5m, budget: 1h, max_attempts: 20}
        breaker: {failures: 5, cooldown: 1m}
        send_resolved: true

To add a kind: a module with a ``ReceiverSettings`` subclass and a ``BaseReceiver`` subclass
whose constructor takes the settings' fields, then one entry in :data:`RECEIVERS` and one
optional field on :class:`ReceiverConfig`.

>>> cfg = ReceiverConfig.model_validate({"name": "dev", "log": {}, "timeout": "5s"})
>>> cfg.kind, cfg.timeout.total_seconds(), cfg.retry.policy().budget
('log', 5.0, 3600.0)
>>> r = build_receiver(cfg)
>>> r.kind, r.name, r.timeout
('log', 'dev', 5.0)
"""

from __future__ import annotations

import time
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from detector.alerting.breaker import Backoff, CircuitBreaker, Clock, RetryPolicy
from detector.alerting.model import Receiver
from detector.alerting.receivers.alertmanager import AlertmanagerReceiver, AlertmanagerSettings
from detector.alerting.receivers.base import (
    BaseReceiver,
    Duration,
    HttpReceiver,
    ReceiverSettings,
    RetryAfter,
)
from detector.alerting.receivers.email import EmailReceiver, EmailSettings
from detector.alerting.receivers.jsonl import JsonlReceiver, JsonlSettings
from detector.alerting.receivers.log import LogReceiver, LogSettings
from detector.alerting.receivers.pagerduty import PagerDutyReceiver, PagerDutySettings
from detector.alerting.receivers.slack import SlackReceiver, SlackSettings
from detector.alerting.receivers.webhook import WebhookReceiver, WebhookSettings
from detector.alerting.templates import compile_template
from detector.errors import ConfigError

__all__ = [
    "RECEIVERS",
    "AlertmanagerReceiver",
    "BaseReceiver",
    "BreakerConfig",
    "EmailReceiver",
    "HttpReceiver",
    "JsonlReceiver",
    "LogReceiver",
    "PagerDutyReceiver",
    "ReceiverConfig",
    "RetryAfter",
    "RetryConfig",
    "SlackReceiver",
    "WebhookReceiver",
    "build_receiver",
]

#: kind (the key in the pipeline file) -> receiver class.
RECEIVERS: dict[str, type[BaseReceiver]] = {
    cls.kind: cls
    for cls in (
        LogReceiver,
        JsonlReceiver,
        WebhookReceiver,
        SlackReceiver,
        EmailReceiver,
        PagerDutyReceiver,
        AlertmanagerReceiver,
    )
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class RetryConfig(_Strict):
    """When the outbox retries a failed delivery (see :class:`RetryPolicy`)."""

    initial: Duration = pd.Timedelta("1s")
    max: Duration = pd.Timedelta("5min")
    factor: float = Field(default=2.0, ge=1.0)
    jitter: Literal["full", "equal", "none"] = "full"
    budget: Duration = pd.Timedelta("1h")
    max_attempts: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _order(self) -> RetryConfig:
        if self.max < self.initial:
            raise ValueError("retry.max must not be shorter than retry.initial")
        return self

    def policy(self) -> RetryPolicy:
        backoff = Backoff(
            self.initial.total_seconds(), self.factor, self.max.total_seconds(), self.jitter
        )
        return RetryPolicy(backoff, self.budget.total_seconds(), self.max_attempts)


class BreakerConfig(_Strict):
    """When the receiver's circuit breaker opens, and for how long."""

    failures: int = Field(default=5, ge=1)
    cooldown: Duration = pd.Timedelta("1min")

    def build(self, clock: Clock = time.monotonic) -> CircuitBreaker:
        return CircuitBreaker(self.failures, self.cooldown.total_seconds(), clock)


class ReceiverConfig(_Strict):
    """One ``receivers:`` entry: a name, exactly one kind, and the shared delivery options."""

    name: str = Field(min_length=1)
    log: LogSettings | None = None
    jsonl: JsonlSettings | None = None
    webhook: WebhookSettings | None = None
    slack: SlackSettings | None = None
    email: EmailSettings | None = None
    pagerduty: PagerDutySettings | None = None
    alertmanager: AlertmanagerSettings | None = None
    timeout: Duration = pd.Timedelta("10s")
    retry: RetryConfig = RetryConfig()
    breaker: BreakerConfig = BreakerConfig()
    send_resolved: bool = True
    title: str | None = None
    text: str | None = None

    @field_validator("title", "text")
    @classmethod
    def _compiles(cls, source: str | None, info: object) -> str | None:
        if source is not None:
            try:
                compile_template(source, getattr(info, "field_name", "template"))
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return source

    @model_validator(mode="after")
    def _one_kind(self) -> ReceiverConfig:
        given = [k for k in RECEIVERS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"receiver {self.name!r} needs exactly one of {', '.join(RECEIVERS)}; "
                f"got {', '.join(given) or 'none'}"
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in RECEIVERS if getattr(self, k) is not None)

    @property
    def settings(self) -> ReceiverSettings:
        """The kind's settings (``cfg.slack`` for a Slack receiver)."""
        settings = getattr(self, self.kind)
        assert isinstance(settings, ReceiverSettings)
        return settings


def build_receiver(cfg: ReceiverConfig) -> Receiver:
    """The receiver ``cfg`` describes. Call its ``close()`` (if any) when done."""
    cls = RECEIVERS[cfg.kind]
    return cls(  # type: ignore[return-value]
        cfg.name,
        **dict(cfg.settings),
        timeout=cfg.timeout.total_seconds(),
        send_resolved=cfg.send_resolved,
        title=cfg.title,
        text=cfg.text,
    )
