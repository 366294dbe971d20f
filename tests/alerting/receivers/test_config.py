"""Receiver configuration: each kind's YAML shape, the shared options, and the registry."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from detector.alerting.model import Receiver
from detector.alerting.receivers import RECEIVERS, ReceiverConfig, build_receiver
from detector.alerting.secrets import Secret

EXAMPLES = {
    "log": "log: {level: info}",
    "jsonl": "jsonl: {path: /tmp/detector-alerts.jsonl}",
    "webhook": """
webhook:
  url: {env: HOOK_URL}
  bearer_token: {file: /run/secrets/hook-token}
  headers: {X-Team: shop}
""",
    "slack": """
slack:
  url: {env: SLACK_URL}
  channel: "#shop-alerts"
  username: detector
  blocks: true
""",
    "email": """
email:
  host: smtp.example.com
  port: 587
  tls: starttls
  username: alerts
  password: {env: SMTP_PASSWORD}
  from: Detector <alerts@example.com>
  to: [oncall@example.com]
""",
    "pagerduty": """
pagerduty:
  routing_key: {env: PD_ROUTING_KEY}
  severity: warning
""",
    "alertmanager": """
alertmanager:
  url: http://alertmanager:9093
  basic_auth: {username: detector, password: {env: AM_PASSWORD}}
""",
}


def parse(text: str, **extra) -> ReceiverConfig:
    return ReceiverConfig.model_validate({"name": "r", **yaml.safe_load(text), **extra})


def test_every_kind_has_an_example():
    assert set(EXAMPLES) == set(RECEIVERS)


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_each_kind_builds_a_receiver(kind):
    cfg = parse(EXAMPLES[kind], timeout="3s", send_resolved=False)
    assert cfg.kind == kind
    r = build_receiver(cfg)
    try:
        assert isinstance(r, Receiver)
        assert type(r) is RECEIVERS[kind]
        assert (r.kind, r.name, r.timeout, r.send_resolved) == (kind, "r", 3.0, False)
    finally:
        getattr(r, "close", lambda: None)()


def test_defaults():
    cfg = parse(EXAMPLES["log"])
    assert cfg.timeout.total_seconds() == 10
    assert cfg.send_resolved is True
    policy = cfg.retry.policy()
    assert (policy.backoff.initial, policy.backoff.max, policy.budget, policy.max_attempts) == (
        1.0,
        300.0,
        3600.0,
        None,
    )
    breaker = cfg.breaker.build(clock=lambda: 0.0)
    assert (breaker.failures, breaker.cooldown, breaker.state) == (5, 60.0, "closed")


def test_retry_and_breaker_options():
    cfg = parse(
        EXAMPLES["log"],
        retry={"initial": "2s", "max": "1m", "budget": "30m", "max_attempts": 4, "jitter": "equal"},
        breaker={"failures": 3, "cooldown": "5m"},
    )
    policy = cfg.retry.policy()
    assert (policy.backoff.initial, policy.backoff.max, policy.backoff.jitter) == (2, 60, "equal")
    assert (policy.budget, policy.max_attempts) == (1800.0, 4)
    assert cfg.breaker.build().cooldown == 300.0


def test_secrets_are_not_read_at_load_and_dump_masked(monkeypatch):
    monkeypatch.delenv("SLACK_URL", raising=False)
    cfg = parse(EXAMPLES["slack"])
    assert cfg.slack is not None and cfg.slack.url == Secret(env="SLACK_URL")
    assert cfg.model_dump(mode="json")["slack"]["url"] == {"env": "SLACK_URL"}
    inline = parse("slack: {url: 'https://hooks.example/T0/B0/abcdefgh12345'}")
    assert "abcdefgh12345" not in repr(inline) + str(inline.model_dump(mode="json"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"slack": {"url": "x"}}, "exactly one of"),
        ({}, "exactly one of"),
        ({"timeout": "0s"}, "longer than 0"),
        ({"timeout": "soon"}, "duration"),
        ({"retry": {"initial": "1m", "max": "1s"}}, "retry.max"),
        ({"retry": {"budget": "1h", "max_attemps": 3}}, "max_attemps"),
        ({"breaker": {"failures": 0}}, "failures"),
        ({"title": "{{ staus }}"}, "'staus' is undefined"),
        ({"text": "{% for a in alerts %}"}, "text template, line 1"),
    ],
)
def test_invalid_configs(extra, message):
    base = {} if extra == {} else {"log": {}}
    with pytest.raises(ValidationError, match=message):
        ReceiverConfig.model_validate({"name": "r", **base, **extra})


@pytest.mark.parametrize(
    ("kind_settings", "message"),
    [
        ({"webhook": {"url": {"env": "X", "value": "y"}}}, "env: NAME"),
        (
            {
                "webhook": {
                    "url": "u",
                    "bearer_token": "t",
                    "basic_auth": {"username": "u", "password": "p"},
                }
            },
            "not both",
        ),
        ({"email": {"host": "h", "from": "a@b.c", "to": []}}, "at least 1"),
        (
            {"email": {"host": "h", "from": "a@b.c", "to": ["x"], "username": "u"}},
            "username and password",
        ),
        ({"email": {"host": "h", "from": "nobody", "to": ["x@y.z"]}}, "not an e-mail"),
        ({"pagerduty": {"routing_key": "k", "severity": "sev1"}}, "severity"),
        ({"slack": {"url": "u", "chanel": "#x"}}, "chanel"),
    ],
)
def test_invalid_kind_settings(kind_settings, message):
    with pytest.raises(ValidationError, match=message):
        ReceiverConfig.model_validate({"name": "r", **kind_settings})


def test_config_is_frozen():
    cfg = parse(EXAMPLES["log"])
    with pytest.raises(ValidationError):
        cfg.send_resolved = False  # type: ignore[misc]
