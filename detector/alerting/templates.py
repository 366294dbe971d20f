"""Titles and texts of notifications: Jinja2 templates, checked when the config loads.

A receiver renders a *title* (Slack's first line, an e-mail subject, a PagerDuty summary) and a
*text* (the body). The defaults answer what an on-call person asks first: what is wrong, where
(the series' labels), by how much (value versus expected and bounds), why (the model's reason),
what it costs (impact) and where to look (link).

Templates run with :class:`jinja2.StrictUndefined`: a misspelt name is an error, not an empty
string that silently hides the value. :func:`compile_template` renders each template against
sample notifications (firing and resolved, every annotation set), so most mistakes surface as a
:class:`ConfigError` when the pipeline loads, not at 3 a.m. An error that only some data
triggers falls back to the default template at send time (see :class:`Templates`): a plain
alert beats a lost one.

The context: ``notification``, ``alerts``, ``firing``, ``resolved`` (lists of
:class:`~detector.alerting.model.Alert`), ``group_labels``, ``status``. Optional annotations are
read with ``a.annotations.get("impact")``; the filter ``num`` formats numbers.

>>> from detector.alerting.model import Alert, Notification
>>> a = Alert({"alertname": "orders", "market": "DE"}, "2026-01-01T10:00Z",
...           {"reason": "orders dropped", "value": "120", "expected": "300.5"})
>>> n = Notification.build("chat", "g", {"alertname": "orders"}, [a])
>>> t = Templates()
>>> t.title(n)
'[FIRING:1] orders'
>>> print(t.text(n))
1 firing
<BLANKLINE>
[FIRING] orders {market=DE}
  orders dropped
  value 120, expected 300
"""

from __future__ import annotations

import logging
import math
from typing import Any

import jinja2
import pandas as pd

from detector.alerting.model import Alert, Notification
from detector.errors import ConfigError

__all__ = ["DEFAULT_TEXT", "DEFAULT_TITLE", "Templates", "compile_template", "context", "num"]

log = logging.getLogger(__name__)

DEFAULT_TITLE = (
    "[{{ status | upper }}{% if status == 'firing' %}:{{ firing | length }}{% endif %}] "
    "{{ group_labels.values() | join(' ') if group_labels "
    "else alerts[0].labels.get('alertname', '') }}"
)

DEFAULT_TEXT = """\
{% if firing %}{{ firing | length }} firing{% endif %}\
{% if firing and resolved %}, {% endif %}\
{% if resolved %}{{ resolved | length }} resolved{% endif %}
{% for a in alerts %}{% if not loop.first %}
{% endif %}
[{{ a.status | upper }}] {{ a.labels.get('alertname', '') }}\
{% if a | series %} {{ a | series }}{% endif %}
{%- set ann = a.annotations %}
{%- if ann.get('summary') %}
  {{ ann.summary }}
{%- endif %}
{%- if ann.get('reason') %}
  {{ ann.reason }}
{%- endif %}
{%- if ann.get('value') %}
  value {{ ann.value | num }}\
{% if ann.get('expected') %}, expected {{ ann.expected | num }}{% endif %}\
{% if ann.get('lower') or ann.get('upper') %} \
(bounds {{ ann.get('lower', '-inf') | num }} to {{ ann.get('upper', 'inf') | num }}){% endif %}
{%- endif %}
{%- if ann.get('impact') %}
  impact: {{ ann.impact }}
{%- endif %}
{%- if ann.get('link') %}
  {{ ann.link }}
{%- endif %}
{%- endfor %}"""

# Labels every alert has that only repeat what the title and routing already say.
_ROUTING_LABELS = frozenset({"alertname", "pipeline", "metric", "series", "kind", "severity"})


def num(value: Any) -> str:
    """A number as people read it: thousands separated, three significant digits below 100.

    >>> num("1234567.8"), num("300.5"), num("0.012345"), num("n/a")
    ('1,234,568', '300', '0.0123', 'n/a')
    """
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(x):
        return str(value)
    if abs(x) >= 100 or x == int(x):
        return f"{x:,.0f}"
    return f"{x:.3g}"


def series(alert: Alert) -> str:
    """The alert's dimensions (``{market=DE}``), without the routing labels every alert has."""
    dims = {k: v for k, v in alert.labels.items() if k not in _ROUTING_LABELS}
    return "{" + ", ".join(f"{k}={v}" for k, v in dims.items()) + "}" if dims else ""


def _environment() -> jinja2.Environment:
    # Plain text out (Slack mrkdwn, e-mail text, JSON strings): no HTML autoescaping.
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )
    env.filters["num"] = num
    env.filters["series"] = series
    return env


_ENV = _environment()


def context(notification: Notification) -> dict[str, Any]:
    """The names a template sees."""
    return {
        "notification": notification,
        "alerts": list(notification.alerts),
        "firing": notification.firing,
        "resolved": notification.resolved_alerts,
        "group_labels": dict(notification.group_labels),
        "status": notification.status,
    }


def _samples() -> list[Notification]:
    """Firing, resolved and mixed notifications with every label and annotation the router sets.

    A template that fails on one of them would fail on such a notification in production (an
    unguarded ``firing[0]`` on a resolved group), so that is reported at load time.

    Group labels hold every label: which ones a group has depends on the route's ``group_by``,
    and the trial render is for typos, not for data some groups lack.
    """
    labels = {
        "alertname": "orders",
        "pipeline": "shop",
        "metric": "orders",
        "series": "orders.DE",
        "kind": "drop",
        "severity": "critical",
        "market": "DE",
    }
    notes = dict.fromkeys(
        ("reason", "value", "expected", "lower", "upper", "impact", "link", "summary"), "1"
    )
    start = pd.Timestamp("2026-01-01T10:00Z")
    a = Alert(labels, start, notes)
    b = Alert({**labels, "market": "FR"}, start, notes)
    return [
        Notification.build("sample", "{}", labels, [a], created_at=start),
        Notification.build("sample", "{}", labels, [a.resolved(start)], created_at=start),
        Notification.build("sample", "{}", labels, [a, b.resolved(start)], created_at=start),
    ]


def compile_template(source: str, name: str = "template") -> jinja2.Template:
    """Compile ``source`` and trial-render it; raise :class:`ConfigError` saying what is wrong.

    >>> compile_template("{{ staus }}", "title")
    Traceback (most recent call last):
    ...
    detector.errors.ConfigError: title template: 'staus' is undefined
    >>> compile_template("{% if %}", "text")
    Traceback (most recent call last):
    ...
    detector.errors.ConfigError: text template, line 1: Expected an expression, got ...
    """
    try:
        template = _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{name} template, line {exc.lineno}: {exc.message}") from None
    for sample in _samples():
        try:
            template.render(context(sample))
        except Exception as exc:  # any error a template raises is a configuration error
            raise ConfigError(f"{name} template: {exc}") from None
    return template


_DEFAULT_TITLE = compile_template(DEFAULT_TITLE, "default title")
_DEFAULT_TEXT = compile_template(DEFAULT_TEXT, "default text")


class Templates:
    """A receiver's title and text templates (defaults unless overridden), compiled once.

    >>> Templates(title="{{ status }}: {{ alerts | length }}").title(_samples()[0])
    'firing: 1'
    """

    def __init__(self, title: str | None = None, text: str | None = None) -> None:
        self.title_source = title
        self.text_source = text
        self._title = _DEFAULT_TITLE if title is None else compile_template(title, "title")
        self._text = _DEFAULT_TEXT if text is None else compile_template(text, "text")

    def _render(
        self, template: jinja2.Template, fallback: jinja2.Template, what: str, n: Notification
    ) -> str:
        ctx = context(n)
        try:
            return template.render(ctx).strip()
        except Exception as exc:
            if template is fallback:
                raise
            log.error(
                "%s template failed for notification %s (%s); using the default", what, n.key, exc
            )
            return fallback.render(ctx).strip()

    def title(self, notification: Notification) -> str:
        """One line (newlines folded: subjects and summaries are single-line)."""
        text = self._render(self._title, _DEFAULT_TITLE, "title", notification)
        return " ".join(text.split())

    def text(self, notification: Notification) -> str:
        return self._render(self._text, _DEFAULT_TEXT, "text", notification)
