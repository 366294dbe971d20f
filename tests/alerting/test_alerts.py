"""Alert transitions from scored points, and escalation of unacknowledged alerts."""

from __future__ import annotations

import pandas as pd
import pytest

from detector.alerting.alerts import AlertTracker, SeverityRules
from detector.alerting.escalation import EscalationPolicy, Escalator
from detector.alerting.model import Alert, Notification

T0 = pd.Timestamp("2026-03-02T10:00Z")
STEP = pd.Timedelta("5min")


def scored(series: str, rows: list[tuple], *, den: list[float] | None = None) -> pd.DataFrame:
    """rows: (is_anomaly, kind, value, expected, score) per 5-minute step from T0."""
    frame = pd.DataFrame(
        {
            "timestamp": [T0 + i * STEP for i in range(len(rows))],
            "series": series,
            "metric": series.partition("{")[0],
            "value": [r[2] for r in rows],
            "expected": [r[3] for r in rows],
            "lower": 0.0,
            "upper": 1e9,
            "score": [r[4] for r in rows],
            "is_anomaly": [r[0] for r in rows],
            "kind": [r[1] for r in rows],
            "reason": [f"{r[1]} at {i}" if r[0] else "" for i, r in enumerate(rows)],
        }
    )
    if den is not None:
        frame["denominator"] = den
    return frame


N = (False, "", 100.0, 100.0, 0.1)  # a normal point


def dip(value: float = 0.0, score: float = 0.7) -> tuple:
    return (True, "dip", value, 100.0, score)


CASES = {
    "quiet": ([N, N, N], [], 0),
    "open then resolve": ([N, dip(), dip(), N], ["firing@1", "firing@1", "resolved@1"], 0),
    "still open": ([N, dip(), dip()], ["firing@1", "firing@1"], 1),
    "unscored point does not resolve": (
        [dip(), (False, "", float("nan"), float("nan"), float("nan")), N],
        ["firing@0", "resolved@0"],
        0,
    ),
    "a change of kind is the same incident": (
        [dip(), (True, "level_shift", 50.0, 100.0, 0.8), N],
        ["firing@0", "firing@0", "resolved@0"],
        0,
    ),
}


@pytest.mark.parametrize(("rows", "expected", "still_open"), CASES.values(), ids=CASES.keys())
def test_transitions(rows, expected, still_open):
    tracker = AlertTracker("shop")
    got = tracker.update(scored("orders{market=DE}", rows))
    assert [f"{a.status}@{(a.starts_at - T0) // STEP}" for a in got] == expected
    assert len(tracker.open) == still_open


def test_labels_annotations_and_impact():
    rows = [N, dip(20.0, 0.6), dip(40.0, 0.6), N]
    tracker = AlertTracker("shop", units={"revenue": "EUR"}, link="http://r/{metric}")
    first, second, resolved = tracker.update(scored("revenue{market=DE}", rows))
    assert first.labels == {
        "alertname": "revenue",
        "kind": "dip",
        "market": "DE",
        "metric": "revenue",
        "pipeline": "shop",
        "series": "revenue{market=DE}",
        "severity": "warning",
    }
    assert first.fingerprint == second.fingerprint == resolved.fingerprint
    assert (first.annotations["impact"], second.annotations["impact"]) == ("-80 EUR", "-140 EUR")
    assert second.annotations["value"] == "40" and second.annotations["expected"] == "100"
    assert second.annotations["link"] == "http://r/revenue"
    assert second.annotations["kind_now"] == "dip"
    assert resolved.ends_at == T0 + 3 * STEP


def test_ratio_impact_counts_the_missing_successes():
    rows = [N, (True, "dip", 0.5, 0.9, 0.7), N]
    tracker = AlertTracker(
        "shop", units={"payment_success_rate": "payments"}, ratios={"payment_success_rate"}
    )
    (a, _) = tracker.update(scored("payment_success_rate{provider=adyen}", rows, den=[10, 200, 10]))
    assert a.annotations["impact"] == "-80 payments"


SEVERITY = {
    "low score": ("orders", "dip", 0.6, -10, "warning"),
    "high score": ("orders", "dip", 0.95, -10, "critical"),
    "stale is critical": ("fx_update_age", "stale", 0.6, 0, "critical"),
    "impact over bound": ("revenue", "dip", 0.6, -5000, "critical"),
    "impact under bound": ("revenue", "dip", 0.6, -50, "warning"),
}


@pytest.mark.parametrize(
    ("metric", "kind", "score", "impact", "want"), SEVERITY.values(), ids=SEVERITY.keys()
)
def test_severity(metric, kind, score, impact, want):
    assert SeverityRules(impact={"revenue": 1000}).of(metric, kind, score, impact) == want


def test_replayed_points_do_not_repeat_transitions_and_state_survives_a_snapshot():
    frame = scored("orders{market=DE}", [N, dip(), dip(), N])
    tracker = AlertTracker("shop")
    tracker.update(frame.iloc[:2])
    again = AlertTracker("shop")
    again.restore(tracker.snapshot())
    assert again.update(frame.iloc[:2]) == []  # already seen
    assert [a.status for a in again.update(frame)] == ["firing", "resolved"]
    assert [a.status for a in tracker.update(frame)] == ["firing", "resolved"]


# -- escalation --------------------------------------------------------------------------------

POLICY = EscalationPolicy(
    name="payments",
    matchers=['alertname="payment_success_rate"'],
    levels=[{"after": "15m", "receiver": "pager"}, {"after": "45m", "receiver": "phone"}],
)
PAY = Alert({"alertname": "payment_success_rate", "provider": "adyen"}, T0)
ORDERS = Alert({"alertname": "orders", "market": "DE"}, T0)
M = pd.Timedelta("1min")


def first_notice(esc: Escalator, *alerts: Alert) -> None:
    esc.observe([Notification.build("chat", "g", {}, alerts)], at=T0)


ESCALATION = {
    "not yet": (14 * M, set(), False, []),
    "first level": (15 * M, set(), False, [("pager", 1)]),
    "both levels at once when late": (50 * M, set(), False, [("pager", 1), ("phone", 2)]),
    "acked": (50 * M, {PAY.fingerprint}, False, []),
    "muted": (50 * M, set(), True, []),
}


@pytest.mark.parametrize(
    ("after", "acked", "muted", "want"), ESCALATION.values(), ids=ESCALATION.keys()
)
def test_escalation_levels(after, acked, muted, want):
    esc = Escalator([POLICY])
    first_notice(esc, PAY, ORDERS)  # orders matches no policy
    got = esc.due(T0 + after, acked=acked, muted=lambda a: muted)
    assert [(n.receiver, n.level) for n in got] == want
    assert all(n.alerts == (PAY,) for n in got)


def test_escalated_receivers_get_the_resolved_notice_and_state_survives_restart():
    esc = Escalator([POLICY])
    first_notice(esc, PAY)
    esc.due(T0 + 20 * M)
    again = Escalator([POLICY])
    again.restore(esc.snapshot())
    assert again.next_due() == T0 + 45 * M
    notes = again.resolve([PAY.resolved(T0 + 30 * M)], at=T0 + 30 * M)
    assert [(n.receiver, n.status) for n in notes] == [("pager", "resolved")]
    assert again.due(T0 + 60 * M) == []


def test_escalation_keys_are_deterministic():
    a, b = Escalator([POLICY]), Escalator([POLICY])
    first_notice(a, PAY), first_notice(b, PAY)
    assert [n.key for n in a.due(T0 + 15 * M)] == [n.key for n in b.due(T0 + 16 * M)]


def test_policy_validation():
    with pytest.raises(ValueError, match="strictly increasing"):
        EscalationPolicy(
            name="x", levels=[{"after": "1h", "receiver": "a"}, {"after": "5m", "receiver": "b"}]
        )


# -- the "pipeline stale" alert -------------------------------------------------------------


STALE = {
    "quiet app alerts once, then resolves": (
        [("api", 0, 300, False), ("api", 300, 600, True), ("api", 600, 900, True),
         ("api", 900, 1200, False)],
        ["firing@300", "resolved@900"],
    ),
    "a wider window does not flap the narrow verdict": (
        [("api", 0, 300, False), ("api", 0, 3600, True), ("api", 300, 600, False)],
        [],
    ),
    "each app on its own": (
        [("api", 0, 300, True), ("pay", 0, 300, False), ("pay", 300, 600, True)],
        ["firing@0", "firing@300"],
    ),
    "a window seen twice changes nothing": (
        [("api", 0, 300, True), ("api", 0, 300, True)],
        ["firing@0"],
    ),
}  # fmt: skip


@pytest.mark.parametrize(("records", "want"), STALE.values(), ids=STALE.keys())
def test_pipeline_stale_transitions(records, want):
    from detector.alerting.staleness import SourceWatch

    watch = SourceWatch("shop")
    got = watch.transitions(records)
    assert [f"{a.status}@{int(t.timestamp())}" for t, a in got] == want
    assert all(a.labels["alertname"] == "pipeline_stale" for _, a in got)
    again = SourceWatch("shop")
    again.restore(watch.snapshot())
    assert again.open.keys() == watch.open.keys()


LAG = {
    "a burst read in time pages nobody": ([(0, 5000), (240, 6000), (280, 10)], []),
    "a lag that stays fires once, then resolves": (
        [(0, 5000), (300, 7000), (400, 9000), (900, 500)],
        ["firing@0 at 300", "resolved@0 at 900"],
    ),
    "back under the bound restarts the clock": ([(0, 5000), (200, 10), (300, 5000)], []),
}


@pytest.mark.parametrize(("steps", "want"), LAG.values(), ids=LAG.keys())
def test_pipeline_lag_alert(steps, want):
    from detector.alerting.staleness import LagWatch

    watch = LagWatch("shop", max_records=1000, after=pd.Timedelta("5min"))
    got = []
    for seconds, lag in steps:
        at = T0 + pd.Timedelta(seconds=seconds)
        for a in watch.update("events", lag, at):
            got.append(f"{a.status}@{int((a.starts_at - T0).total_seconds())} at {seconds}")
            assert a.labels["alertname"] == "pipeline_lag" and a.labels["topic"] == "events"
    assert got == want


def test_the_lag_alert_is_configurable_and_can_be_turned_off():
    from detector.alerting.config import AlertingConfig
    from detector.alerting.router import Router

    cfg = AlertingConfig.model_validate({"lag": {"max_records": 10, "after": "0s"}})
    router = Router("shop", cfg)
    assert [a.status for a in router.observe_lag("events", 11, T0)] == ["firing"]
    again = Router("shop", cfg)
    again.restore(router.snapshot())
    assert [a.status for a in again.observe_lag("events", 0, T0)] == ["resolved"]
    off = Router("shop", AlertingConfig.model_validate({"lag": None}))
    assert off.observe_lag("events", 10**9, T0) == []


# -- windows scored again (late data) ---------------------------------------------------------


def test_a_window_scored_again_as_normal_retracts_the_alert_it_opened():
    tracker = AlertTracker("shop", units={"orders": "orders"})
    first = tracker.update(scored("orders{market=DE}", [N, N, dip()]))
    assert [a.status for a in first] == ["firing"]
    again = scored("orders{market=DE}", [N, N, N]).iloc[[2]]
    (resolved,) = tracker.update(again)
    assert resolved.status == "resolved" and resolved.fingerprint == first[0].fingerprint
    assert "scored again" in resolved.annotations["retracted"]
    assert resolved.annotations["impact"] == "+0 orders"
    assert tracker.open == {}


def test_one_point_of_several_taken_back_keeps_the_alert_open_with_less_impact():
    tracker = AlertTracker("shop", units={"orders": "orders"})
    tracker.update(scored("orders{market=DE}", [N, dip(0.0), dip(50.0)]))
    assert tracker.open["orders{market=DE}"].impact == -150.0
    assert tracker.update(scored("orders{market=DE}", [N, N, N]).iloc[[1]]) == []
    assert tracker.open["orders{market=DE}"].impact == -50.0
    # the snapshot keeps the episode's points: a restored tracker retracts the last one
    restored = AlertTracker("shop", units={"orders": "orders"})
    restored.restore(tracker.snapshot())
    (resolved,) = restored.update(scored("orders{market=DE}", [N, N, N]).iloc[[2]])
    assert resolved.status == "resolved"


def test_an_anomaly_found_late_with_no_alert_open_is_notified_once_as_resolved():
    tracker = AlertTracker("shop")
    assert tracker.update(scored("orders{market=DE}", [N, N, N, N])) == []
    late = tracker.transitions(scored("orders{market=DE}", [N, dip(), N, N]).iloc[[1]])
    assert [(a.status, t) for t, a in late] == [("firing", T0 + STEP), ("resolved", T0 + STEP)]
    assert late[1][1].ends_at == T0 + 3 * STEP  # the latest point seen, which was normal
    assert late[0][1].annotations["found_late"] == (T0 + 3 * STEP).isoformat()
    assert tracker.open == {}


def test_an_old_snapshot_without_episode_points_still_restores():
    tracker = AlertTracker("shop")
    tracker.update(scored("orders{market=DE}", [N, dip()]))
    snap = tracker.snapshot()
    snap["open"] = {s: tuple(v[:3]) for s, v in snap["open"].items()}  # before late-data support
    restored = AlertTracker("shop")
    restored.restore(snap)
    (resolved,) = restored.update(scored("orders{market=DE}", [N, dip(), N]).iloc[[2]])
    assert resolved.status == "resolved"
