"""Inhibition: equal labels, both-sided matches, self-inhibition, resolved sources, scale."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from detector.alerting.inhibit import Inhibitor, InhibitRule
from detector.alerting.model import Alert, ts

T = ts("2026-01-05T10:00Z")

OUTAGE = InhibitRule.model_validate(
    {
        "source_matchers": ["alertname=payment_success_rate", "severity=critical"],
        "target_matchers": ["alertname!=payment_success_rate"],
        "equal": ["market"],
    }
)
# Critical mutes warning of the same alertname and market; both sides can be the same kind.
SEVERITY = InhibitRule.model_validate(
    {
        "source_matchers": ["severity=critical"],
        "target_matchers": ['severity=~"warning|critical"'],
        "equal": ["alertname", "market"],
    }
)


def alert(**labels: str) -> Alert:
    return Alert(labels, T)


PAY_DE = alert(alertname="payment_success_rate", severity="critical", market="DE")

CASES = [
    # (id, rules, firing sources, target, index of the expected rule or None)
    ("same-market", [OUTAGE], [PAY_DE], alert(alertname="orders", market="DE"), 0),
    ("other-market", [OUTAGE], [PAY_DE], alert(alertname="orders", market="FR"), None),
    ("target-lacks-equal-label", [OUTAGE], [PAY_DE], alert(alertname="orders"), None),
    (
        "both-lack-equal-label",
        [OUTAGE],
        [alert(alertname="payment_success_rate", severity="critical")],
        alert(alertname="orders"),
        0,
    ),
    ("source-not-matching", [OUTAGE],
     [alert(alertname="payment_success_rate", severity="warning", market="DE")],
     alert(alertname="orders", market="DE"), None),
    ("target-not-matching", [OUTAGE], [PAY_DE],
     alert(alertname="payment_success_rate", severity="warning", market="DE"), None),
    ("no-self-inhibition", [SEVERITY],
     [alert(alertname="orders", severity="critical", market="DE")],
     alert(alertname="orders", severity="critical", market="DE"), None),
    ("two-sided-do-not-mute-each-other", [SEVERITY],
     [alert(alertname="orders", severity="critical", market="DE", product="a")],
     alert(alertname="orders", severity="critical", market="DE", product="b"), None),
    ("critical-mutes-warning", [SEVERITY],
     [alert(alertname="orders", severity="critical", market="DE", product="a")],
     alert(alertname="orders", severity="warning", market="DE", product="b"), 0),
    ("second-rule", [SEVERITY, OUTAGE], [PAY_DE],
     alert(alertname="orders", severity="warning", market="DE"), 1),
    ("resolved-source", [OUTAGE], [PAY_DE.resolved(T)],
     alert(alertname="orders", market="DE"), None),
    ("no-sources", [OUTAGE], [], alert(alertname="orders", market="DE"), None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rules", "sources", "target", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_inhibited(
    rules: list[InhibitRule], sources: list[Alert], target: Alert, expected: int | None
) -> None:
    inhibitor = Inhibitor(rules, sources)
    got = inhibitor.inhibited(target)
    assert got is (None if expected is None else rules[expected])


def test_source_resolving_later_stops_inhibiting() -> None:
    inhibitor = Inhibitor([OUTAGE], [PAY_DE])
    target = alert(alertname="orders", market="DE")
    found = inhibitor.inhibiting(target)
    assert found is not None and found[1] == PAY_DE
    inhibitor.add(PAY_DE.resolved(ts("2026-01-05T10:05Z")))
    assert inhibitor.inhibited(target) is None and len(inhibitor) == 0
    inhibitor.add(PAY_DE)  # fires again
    assert inhibitor.inhibited(target) is OUTAGE
    inhibitor.remove(PAY_DE.fingerprint)
    assert inhibitor.inhibited(target) is None


def test_rule_validation() -> None:
    with pytest.raises(ValidationError, match="bad matcher 'severity'"):
        InhibitRule.model_validate({"source_matchers": ["severity"], "target_matchers": ["a=b"]})
    with pytest.raises(ValidationError, match="at least 1"):
        InhibitRule.model_validate({"source_matchers": [], "target_matchers": ["a=b"]})
    with pytest.raises(ValidationError, match="Extra inputs"):
        InhibitRule.model_validate(
            {"source_match": {"a": "b"}, "source_matchers": ["a=b"], "target_matchers": ["a=b"]}
        )


def test_thousands_of_sources_stay_fast() -> None:
    sources = [
        alert(alertname="payment_success_rate", severity="critical", market=f"m{i}")
        for i in range(5000)
    ]
    inhibitor = Inhibitor([OUTAGE, SEVERITY], sources)
    targets = [alert(alertname="orders", market=f"m{i}", product="x") for i in range(10000)]
    start = time.perf_counter()
    muted = sum(inhibitor.inhibited(t) is not None for t in targets)
    elapsed = time.perf_counter() - start
    assert muted == 5000
    assert elapsed < 1.0  # a linear scan of sources would take minutes
