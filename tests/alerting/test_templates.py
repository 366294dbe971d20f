from __future__ import annotations

import logging

import pytest

from detector.alerting.model import Alert, Notification
from detector.alerting.templates import Templates, compile_template, context, num
from detector.errors import ConfigError

LABELS = {"alertname": "orders", "pipeline": "shop", "severity": "critical", "kind": "drop"}


def alert(market: str, resolved: bool = False, **annotations: str) -> Alert:
    a = Alert({**LABELS, "market": market}, "2026-01-05T10:00Z", annotations)
    return a.resolved("2026-01-05T11:00Z") if resolved else a


def notification(*alerts: Alert, group: dict[str, str] | None = None) -> Notification:
    return Notification.build(
        "r", "g", group if group is not None else {"alertname": "orders"}, alerts
    )


def test_default_title_counts_firing_and_names_the_group():
    t = Templates()
    assert t.title(notification(alert("DE"), alert("FR"), alert("IT", True))) == (
        "[FIRING:2] orders"
    )
    assert t.title(notification(alert("DE", True))) == "[RESOLVED] orders"
    assert t.title(notification(alert("DE"), group={})) == "[FIRING:1] orders"
    assert t.title(notification(alert("DE"), group={"pipeline": "shop", "market": "DE"})) == (
        "[FIRING:1] shop DE"
    )


def test_default_text_says_what_where_how_much_why_impact_and_link():
    a = alert(
        "DE",
        reason="orders 60% below the usual Monday 10:00",
        value="120",
        expected="300.4",
        lower="250",
        upper="351.7",
        impact="~4,000 EUR/h of revenue",
        link="https://dash.example/orders?market=DE",
        summary="Orders dropped in DE",
    )
    b = alert("FR", True, reason="back to normal")
    text = Templates().text(notification(a, b))
    blocks = {
        a.fingerprint: "[FIRING] orders {market=DE}\n"
        "  Orders dropped in DE\n"
        "  orders 60% below the usual Monday 10:00\n"
        "  value 120, expected 300 (bounds 250 to 352)\n"
        "  impact: ~4,000 EUR/h of revenue\n"
        "  https://dash.example/orders?market=DE",
        b.fingerprint: "[RESOLVED] orders {market=FR}\n  back to normal",
    }
    body = "\n\n".join(blocks[k] for k in sorted(blocks))  # alerts come sorted by fingerprint
    assert text == "1 firing, 1 resolved\n\n" + body


def test_default_text_without_annotations():
    assert Templates().text(notification(alert("DE"))) == "1 firing\n\n[FIRING] orders {market=DE}"


def test_custom_templates_see_the_documented_context():
    n = notification(alert("DE"), alert("FR", True))
    assert set(context(n)) == {
        "notification",
        "alerts",
        "firing",
        "resolved",
        "group_labels",
        "status",
    }
    t = Templates(
        title="{{ status }}/{{ firing | length }}/{{ resolved | length }}/{{ notification.key }}",
        text="{% for a in alerts %}{{ a.labels.market }}={{ a.status }};{% endfor %}",
    )
    assert t.title(n) == f"firing/1/1/{n.key}"
    assert sorted(t.text(n).rstrip(";").split(";")) == ["DE=firing", "FR=resolved"]


def test_title_is_one_line():
    t = Templates(title="{{ status }}\n\n  {{ alerts | length }}")
    assert t.title(notification(alert("DE"))) == "firing 1"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ staus }}", "'staus' is undefined"),
        ("{{ notification.receivr }}", "receivr"),
        ("{% if status %}", "line 1"),
        ("{{ alerts | nosuchfilter }}", "nosuchfilter"),
        ("{{ firing[0].labels.market }}", "no element 0"),  # fails on resolved-only groups
    ],
)
def test_template_errors_surface_at_compile_time(source, message):
    with pytest.raises(ConfigError, match=message):
        compile_template(source, "title")


def test_data_dependent_error_falls_back_to_the_default(caplog):
    t = Templates(text="{{ alerts[0].labels.market }}")
    n = notification(Alert({"alertname": "orders"}, "2026-01-05T10:00Z"))
    with caplog.at_level(logging.ERROR):
        assert t.text(n) == Templates().text(n)
    assert "text template failed" in caplog.text


def test_no_html_escaping():
    t = Templates(text="{{ alerts[0].annotations.get('reason', '') }}")
    n = notification(alert("DE", reason="<5 orders & falling"))
    assert t.text(n) == "<5 orders & falling"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("1234567", "1,234,567"),
        ("300.4", "300"),
        ("12.345", "12.3"),
        ("-0.5", "-0.5"),
        ("nan", "nan"),
        ("", ""),
        ("n/a", "n/a"),
        (42, "42"),
    ],
)
def test_num(value, shown):
    assert num(value) == shown
