"""StreamMetrics: what each method exports, bounded labels, stale series removed."""

from __future__ import annotations

import math
import random
import string
from collections import Counter

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from detector.alerting.breaker import CircuitBreaker, RetryPolicy
from detector.alerting.sender import Worker
from detector.events.schema import EventValidator
from detector.ops.metrics import REASON_CATEGORIES, StreamMetrics, reason_category
from detector.pipeline.config import parse_pipeline
from detector.stream.runner import _decode

Sample = tuple[str, frozenset[tuple[str, str]]]


def samples(m: StreamMetrics) -> dict[Sample, float]:
    """Every sample of the exposition, parsed back: (name, labels) -> value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(m.render().decode())
        for s in family.samples
    }


def value(m: StreamMetrics, name: str, **labels: str) -> float | None:
    return samples(m).get((name, frozenset(labels.items())))


def names_with(m: StreamMetrics, name: str) -> list[dict[str, str]]:
    return [dict(lbl) for n, lbl in samples(m) if n == name]


# -- reason categories --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "category"),
    [
        ("field 'amount': expected a number, got 'x'", "invalid_field"),
        ("field 'ts': not an ISO 8601 time (bad)", "invalid_field"),
        ("field 'market': 'XX' is not one of ['DE', 'FR']", "invalid_field"),
        ("not valid JSON: unexpected character: line 1 column 2", "invalid_json"),
        ("not JSON: unexpected end of data", "invalid_json"),
        ("empty record (no value)", "invalid_json"),
        ("expected a JSON object, got list", "invalid_json"),
        ("unknown event type 'refund' (known: order_placed)", "unknown_type"),
        ("missing required field 'ts'", "missing_field"),
        ("late: 420 s behind the watermark (allowed lateness 300 s)", "late"),
        ("Late: upper case", "late"),
        ("duplicate", "duplicate"),
        ("duplicate event_id 'a1'", "duplicate"),
        ("", "other"),
        ("the broker ate it", "other"),
    ],
)
def test_reason_category(reason: str, category: str) -> None:
    assert reason_category(reason) == category


def test_reasons_the_code_produces_have_a_category() -> None:
    """Reasons from the real validator and decoder: none falls through to "other"."""
    p = parse_pipeline(
        """
name: x
events:
  order_placed:
    fields: {amount: {type: number, required: true, min: 0}, market: {allowed: [DE]}}
metrics: [{name: n, event: order_placed, aggregation: count}]
"""
    )
    v = EventValidator(p)
    ev = {"event_id": "1", "type": "order_placed", "ts": "2026-01-05T10:00:00Z", "source": "a"}
    reasons = [
        v.check({**ev, "amount": "12,5"}),
        v.check({**ev, "amount": -1}),
        v.check(ev),
        v.check({**ev, "amount": 1, "market": "FR"}),
        v.check({**ev, "type": "refund"}),
        v.check([1, 2]),
        _decode(b"{not json").reason,
        _decode(None).reason,
    ]
    assert all(isinstance(r, str) for r in reasons)
    got = [reason_category(r) for r in reasons]  # type: ignore[arg-type]
    assert "other" not in got, list(zip(reasons, got, strict=True))


def test_rejected_label_cardinality_stays_bounded() -> None:
    rng = random.Random(0)
    m = StreamMetrics()
    for _ in range(500):
        word = "".join(rng.choices(string.ascii_letters + " :'", k=rng.randint(0, 30)))
        m.rejected("orders", rng.choice(["field ", "late: ", "not JSON: ", ""]) + word)
    reasons = {lbl["reason"] for lbl in names_with(m, "detector_events_rejected_total")}
    assert reasons <= set(REASON_CATEGORIES)
    assert value(m, "detector_events_rejected_total", topic="orders", reason="late") > 0
    assert sum(
        value(m, "detector_events_rejected_total", topic="orders", reason=r) or 0
        for r in REASON_CATEGORIES
    ) == pytest.approx(500)


# -- counters and gauges ------------------------------------------------------------------------


def test_counters() -> None:
    m = StreamMetrics()
    m.consumed("orders", 10)
    m.consumed("orders", 5)
    m.rejected("orders", "missing required field 'ts'", 2)
    m.late("orders", 3)
    m.duplicates("orders", 4)
    m.dead_lettered("orders", 2)
    m.windows_closed("revenue", 6)
    m.refits("revenue")
    m.anomalies("revenue", "spike", 2)
    m.notification("slack", "delivered")
    m.notification("slack", "retried", 2)
    m.committed()
    m.committed()
    m.error("poll")
    got = samples(m)

    def c(name: str, **labels: str) -> float:
        return got[(name, frozenset(labels.items()))]

    assert c("detector_events_consumed_total", topic="orders") == 15
    assert c("detector_events_rejected_total", topic="orders", reason="missing_field") == 2
    assert c("detector_events_late_total", topic="orders") == 3
    assert c("detector_events_duplicate_total", topic="orders") == 4
    assert c("detector_dead_letters_total", topic="orders") == 2
    assert c("detector_windows_closed_total", metric="revenue") == 6
    assert c("detector_model_refits_total", metric="revenue") == 1
    assert c("detector_anomalies_total", metric="revenue", kind="spike") == 2
    assert c("detector_notifications_total", receiver="slack", outcome="delivered") == 1
    assert c("detector_notifications_total", receiver="slack", outcome="retried") == 2
    assert c("detector_commits_total") == 2
    assert c("detector_errors_total", where="poll") == 1


def test_bad_label_values_are_refused() -> None:
    m = StreamMetrics()
    with pytest.raises(ValueError, match="outcome must be one of"):
        m.notification("slack", "lost")
    with pytest.raises(ValueError, match="breaker state must be one of"):
        m.breaker("slack", "ajar")


@pytest.mark.parametrize(
    ("state", "expected"), [("closed", 0), ("half_open", 1), ("half-open", 1), ("open", 2)]
)
def test_breaker_state_values(state: str, expected: int) -> None:
    m = StreamMetrics()
    m.breaker("pagerduty", state)
    assert value(m, "detector_breaker_state", receiver="pagerduty") == expected


def test_gauges() -> None:
    m = StreamMetrics()
    m.watermark(1_767_607_200.0)
    m.window_closed_at(1_767_607_260.0)
    m.outbox_pending("slack", 7)
    assert value(m, "detector_watermark_seconds") == 1_767_607_200.0
    assert value(m, "detector_last_window_closed_timestamp_seconds") == 1_767_607_260.0
    assert m.last_window_closed() == 1_767_607_260.0
    assert value(m, "detector_outbox_pending", receiver="slack") == 7


def test_last_window_closed_starts_at_creation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before any window closes, the gauge holds the start time (the alert counts from it)."""
    monkeypatch.setattr("detector.ops.metrics.time.time", lambda: 1000.0)
    m = StreamMetrics()
    assert m.last_window_closed() is None
    assert value(m, "detector_last_window_closed_timestamp_seconds") == 1000.0
    m.window_closed_at()
    assert m.last_window_closed() == 1000.0


def test_assigned_removes_lag_of_partitions_no_longer_held() -> None:
    m = StreamMetrics()
    m.assigned("orders", {0, 1, 2})
    for p, lag in [(0, 10), (1, 20), (2, 30)]:
        m.lag("orders", p, lag)
    m.lag("payments", 0, 5)
    assert m.lag_total() == 65
    assert value(m, "detector_partitions_assigned", topic="orders") == 3

    m.assigned("orders", {1})  # a rebalance took 0 and 2 elsewhere
    lags = {(lbl["topic"], lbl["partition"]) for lbl in names_with(m, "detector_consumer_lag")}
    assert lags == {("orders", "1"), ("payments", "0")}
    assert value(m, "detector_partitions_assigned", topic="orders") == 1
    assert value(m, "detector_consumer_lag", topic="orders", partition="1") == 20
    assert m.lag_total() == 25

    m.assigned("orders", set())
    assert value(m, "detector_partitions_assigned", topic="orders") == 0
    assert m.lag_total() == 5


# -- histograms -----------------------------------------------------------------------------------


def test_histograms() -> None:
    m = StreamMetrics()
    with m.scoring_time():
        pass
    with m.commit_time():
        pass
    with m.batch_time():
        pass
    m.observe_commit(0.003)
    m.observe_scoring(7.0)
    m.observe_batch(0.2)
    assert value(m, "detector_scoring_seconds_count") == 2
    assert value(m, "detector_scoring_seconds_bucket", le="10.0") == 2
    assert value(m, "detector_scoring_seconds_bucket", le="5.0") == 1
    assert value(m, "detector_store_commit_seconds_count") == 2
    assert value(m, "detector_store_commit_seconds_bucket", le="0.005") == 2
    assert value(m, "detector_store_commit_seconds_sum") >= 0.003
    assert value(m, "detector_batch_seconds_count") == 2


# -- per-series gauges ----------------------------------------------------------------------------


def test_series_gauges_are_off_by_default() -> None:
    m = StreamMetrics()
    m.band("orders{market=DE}", 5, 10, 8, 12)
    m.forget_series("orders{market=DE}")
    assert not any(name.startswith("detector_series_") for name, _ in samples(m))


def test_series_band_and_forget() -> None:
    m = StreamMetrics(series_gauges=True)
    m.band("orders{market=DE}", 5.0, 10.0, 8.0, 12.0)
    m.band("orders{market=FR}", 1.0, None, None, None)  # a model in its grace period
    assert value(m, "detector_series_value", series="orders{market=DE}") == 5.0
    assert value(m, "detector_series_expected", series="orders{market=DE}") == 10.0
    assert value(m, "detector_series_lower", series="orders{market=DE}") == 8.0
    assert value(m, "detector_series_upper", series="orders{market=DE}") == 12.0
    assert math.isnan(value(m, "detector_series_expected", series="orders{market=FR}"))

    m.forget_series("orders{market=DE}")
    m.forget_series("never-seen")  # not an error
    left = {(n, dict(lbl)["series"]) for n, lbl in samples(m) if n.startswith("detector_series_")}
    assert {s for _, s in left} == {"orders{market=FR}"}
    assert len(left) == 4


# -- registries and the sender ------------------------------------------------------------------


def test_each_instance_has_its_own_registry() -> None:
    a, b = StreamMetrics(), StreamMetrics()
    a.consumed("orders", 3)
    assert value(a, "detector_events_consumed_total", topic="orders") == 3
    assert value(b, "detector_events_consumed_total", topic="orders") is None
    assert REGISTRY.get_sample_value("detector_events_consumed_total", {"topic": "orders"}) is None


def test_observe_sender_adds_what_grew_and_sets_breakers() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=2, cooldown=60.0, clock=lambda: now[0])
    workers = {"slack": Worker(None, RetryPolicy(), breaker, Counter())}  # type: ignore[arg-type]
    m = StreamMetrics()
    workers["slack"].counts.update(delivered=3, retried=1)
    m.observe_sender(workers)
    m.observe_sender(workers)  # nothing new: no double counting
    assert value(m, "detector_notifications_total", receiver="slack", outcome="delivered") == 3
    assert value(m, "detector_notifications_total", receiver="slack", outcome="retried") == 1
    assert value(m, "detector_breaker_state", receiver="slack") == 0

    breaker.record_failure()
    breaker.record_failure()
    workers["slack"].counts.update(retried=1, failed=1)
    m.observe_sender(workers)
    assert value(m, "detector_notifications_total", receiver="slack", outcome="retried") == 2
    assert value(m, "detector_notifications_total", receiver="slack", outcome="failed") == 1
    assert value(m, "detector_breaker_state", receiver="slack") == 2
    now[0] = 60.0
    m.observe_sender(workers)
    assert value(m, "detector_breaker_state", receiver="slack") == 1
