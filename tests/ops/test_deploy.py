"""deploy/: the dashboard and the alert rules name only metrics and labels the code exports.

Both files are hand-edited JSON/YAML next to the code; without this test a renamed metric
would leave a dashboard panel empty and an alert that can never fire, silently.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from detector.ops.metrics import StreamMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "detector-dashboard.json"
RULES = DEPLOY / "prometheus" / "detector-rules.yml"

METRIC = re.compile(r"\bdetector_[a-z0-9_]+")
BY = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
ALWAYS = {"job", "instance", "le"}  # added by Prometheus, or the histogram's own


def timed(cm: AbstractContextManager[Any]) -> None:
    with cm:
        pass


def touch_everything() -> StreamMetrics:
    """A StreamMetrics with every method called, so every metric has a sample."""
    m = StreamMetrics(series_gauges=True)
    calls = {
        "consumed": lambda: m.consumed("t", 1),
        "rejected": lambda: m.rejected("t", "late: x"),
        "late": lambda: m.late("t", 1),
        "duplicates": lambda: m.duplicates("t", 1),
        "dead_lettered": lambda: m.dead_lettered("t", 1),
        "windows_closed": lambda: m.windows_closed("m", 1),
        "refits": lambda: m.refits("m", 1),
        "anomalies": lambda: m.anomalies("m", "spike", 1),
        "band": lambda: m.band("s", 1, 1, 0, 2),
        "forget_series": lambda: m.forget_series("gone"),
        "notification": lambda: m.notification("r", "delivered"),
        "breaker": lambda: m.breaker("r", "open"),
        "outbox_pending": lambda: m.outbox_pending("r", 1),
        "observe_sender": lambda: m.observe_sender({}),
        "lag": lambda: m.lag("t", 0, 1),
        "lag_total": m.lag_total,
        "assigned": lambda: m.assigned("t", {0}),
        "watermark": lambda: m.watermark(1.0),
        "window_closed_at": lambda: m.window_closed_at(1.0),
        "last_window_closed": m.last_window_closed,
        "committed": m.committed,
        "error": lambda: m.error("poll"),
        "scoring_time": lambda: timed(m.scoring_time()),
        "commit_time": lambda: timed(m.commit_time()),
        "batch_time": lambda: timed(m.batch_time()),
        "observe_scoring": lambda: m.observe_scoring(0.01),
        "observe_commit": lambda: m.observe_commit(0.01),
        "observe_batch": lambda: m.observe_batch(0.01),
        "render": m.render,
    }
    public = {n for n, _ in inspect.getmembers(StreamMetrics, inspect.isfunction) if n[0] != "_"}
    assert public == set(calls), "a new StreamMetrics method: touch it here"
    for call in calls.values():
        call()
    return m


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    """Sample name -> its label names, from the rendered exposition."""
    text = touch_everything().render().decode()
    names: dict[str, set[str]] = {}
    for line in text.splitlines():  # the names as the exposition spells them
        if line and not line.startswith("#"):
            match = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
            assert match is not None
            names.setdefault(match.group(0), set())
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            names.setdefault(s.name, set()).update(s.labels)
    return names


def test_every_method_yields_samples(exported: dict[str, set[str]]) -> None:
    for name in (
        "detector_events_consumed_total",
        "detector_consumer_lag",
        "detector_series_upper",
        "detector_scoring_seconds_bucket",
        "detector_store_commit_seconds_count",
        "detector_batch_seconds_sum",
        "detector_last_window_closed_timestamp_seconds",
    ):
        assert name in exported
    assert exported["detector_consumer_lag"] == {"topic", "partition"}


def check_expr(expr: str, exported: dict[str, set[str]], where: str) -> set[str]:
    """Metric names in ``expr`` all exported, and its by(...) labels on them; the names."""
    used = set(METRIC.findall(expr))
    unknown = used - set(exported)
    assert not unknown, f"{where}: {sorted(unknown)} not exported by StreamMetrics: {expr}"
    labels = set().union(ALWAYS, *(exported[n] for n in used))
    for group in BY.findall(expr):
        grouped = {g.strip() for g in group.split(",") if g.strip()}
        assert grouped <= labels, f"{where}: labels {sorted(grouped - labels)} unknown: {expr}"
    assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), where
    return used


def test_drift_is_caught(exported: dict[str, set[str]]) -> None:
    with pytest.raises(AssertionError, match="not exported"):
        check_expr("rate(detector_events_consumed[5m])", exported, "renamed")  # no _total
    with pytest.raises(AssertionError, match="unknown"):
        check_expr("sum by (market) (detector_consumer_lag)", exported, "label")


# -- the dashboard ------------------------------------------------------------------------------


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in items:
        yield p
        yield from panels(p.get("panels", []))


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def test_dashboard_names_only_exported_metrics(
    dashboard: dict[str, Any], exported: dict[str, set[str]]
) -> None:
    used: set[str] = set()
    for p in panels(dashboard["panels"]):
        for t in p.get("targets", []):
            where = f"panel {p['title']!r} target {t['refId']}"
            names = check_expr(t["expr"], exported, where)
            assert names, f"{where} reads no detector metric"
            used |= names
            legend = set(LEGEND.findall(t.get("legendFormat", "")))
            assert legend <= set().union(ALWAYS, *(exported[n] for n in names)), where
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            used |= check_expr(var["definition"], exported, f"variable {var['name']}")
    wanted = {
        "detector_events_consumed_total",
        "detector_events_rejected_total",
        "detector_consumer_lag",
        "detector_windows_closed_total",
        "detector_scoring_seconds_bucket",
        "detector_anomalies_total",
        "detector_notifications_total",
        "detector_breaker_state",
        "detector_series_value",
        "detector_series_expected",
        "detector_series_lower",
        "detector_series_upper",
    }
    assert wanted <= used, f"no panel for {sorted(wanted - used)}"


def test_dashboard_structure(dashboard: dict[str, Any]) -> None:
    all_panels = list(panels(dashboard["panels"]))
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert {"job", "series"} <= set(variables)
    band = [p for p in all_panels if any("$series" in t["expr"] for t in p.get("targets", []))]
    assert band, "the per-series band panel uses the $series variable"
    for p in all_panels:
        assert set(p["gridPos"]) == {"x", "y", "w", "h"}
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert p["targets"], p["title"]
            refs = [t["refId"] for t in p["targets"]]
            assert len(refs) == len(set(refs)), p["title"]


# -- the alert rules ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rules() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    assert set(doc) == {"groups"}
    out: dict[str, dict[str, Any]] = {}
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["name"]
        for rule in group["rules"]:
            assert rule["alert"] not in out, f"duplicate alert {rule['alert']}"
            out[rule["alert"]] = rule
    return out


EXPECTED_ALERTS = {
    "DetectorDown": ({"up"}, "2m"),
    "DetectorConsumerLagHigh": ({"detector_consumer_lag"}, "10m"),
    "DetectorNoWindowClosed": ({"detector_last_window_closed_timestamp_seconds"}, "5m"),
    "DetectorDeadLettersGrowing": ({"detector_dead_letters_total"}, "15m"),
    "DetectorReceiverBreakerOpen": ({"detector_breaker_state"}, "5m"),
}


def test_rules_structure(rules: dict[str, dict[str, Any]]) -> None:
    assert set(rules) == set(EXPECTED_ALERTS)
    for name, rule in rules.items():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        assert re.fullmatch(r"\d+[smhdwy]", rule["for"]), name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert {"summary", "description"} <= set(rule["annotations"]), name
        for text in rule["annotations"].values():  # Go templates: balanced braces
            assert text.count("{{") == text.count("}}"), name


@pytest.mark.parametrize("alert", sorted(EXPECTED_ALERTS))
def test_rules_name_only_exported_metrics(
    alert: str, rules: dict[str, dict[str, Any]], exported: dict[str, set[str]]
) -> None:
    metrics, for_ = EXPECTED_ALERTS[alert]
    rule = rules[alert]
    used = check_expr(rule["expr"], exported, alert)
    assert used == metrics - {"up"}
    if "up" in metrics:
        assert re.search(r"\bup\{", rule["expr"])
    assert rule["for"] == for_


def test_the_no_window_rule_reads_the_gauge_as_specified(rules: dict[str, dict[str, Any]]) -> None:
    expr = " ".join(rules["DetectorNoWindowClosed"]["expr"].split())
    assert expr.startswith("time() - detector_last_window_closed_timestamp_seconds")
    assert expr.endswith("> 900")
    assert rules["DetectorReceiverBreakerOpen"]["expr"].rstrip().endswith("== 2")
    assert "rate(detector_dead_letters_total" in rules["DetectorDeadLettersGrowing"]["expr"]
