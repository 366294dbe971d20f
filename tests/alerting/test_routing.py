"""The routing tree: Alertmanager's walk (continue, nesting, default), inheritance, validation."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from detector.alerting.routing import Route, RouteConfig, compile_route
from detector.errors import ConfigError

RECEIVERS = {"chat", "payments", "dach", "data-eng", "oncall", "audit"}
INTERVALS = {"nights", "office-hours"}

TREE = yaml.safe_load(
    """
receiver: chat
group_by: [market, alertname]
group_wait: 10s
repeat_interval: 2h
routes:
  - matchers: [team=audit]            # 0.0: sees everything of team audit, then go on
    receiver: audit
    continue: true
  - matchers: ['alertname="payment_success_rate"', severity=critical]   # 0.1
    receiver: payments
    group_wait: 0s
  - matchers: ['market=~"DE|AT|CH"']   # 0.2
    receiver: dach
    group_by: ['...']
    mute_time_intervals: [nights]
    routes:
      - matchers: [kind=missing]       # 0.2.0
        receiver: data-eng
        group_interval: 1m
      - matchers: [severity=critical]  # 0.2.1: inherits receiver dach and group_by ...
        repeat_interval: 30m
        active_time_intervals: [office-hours]
  - matchers: [severity=critical]      # 0.3
    receiver: oncall
    group_by: []
"""
)


@pytest.fixture(scope="module")
def root() -> Route:
    return compile_route(RouteConfig.model_validate(TREE), RECEIVERS, INTERVALS)


ROUTING = [
    # (id, labels, [(route id, receiver)])
    ("default-route", {"alertname": "orders", "market": "FR"}, [("0", "chat")]),
    (
        "first-match-wins",
        {"alertname": "payment_success_rate", "severity": "critical", "market": "DE"},
        [("0.1", "payments")],
    ),
    ("nested-child", {"market": "DE", "kind": "missing"}, [("0.2.0", "data-eng")]),
    ("nested-parent-keeps", {"market": "AT", "kind": "dip"}, [("0.2", "dach")]),
    (
        "nested-first-child-wins",
        {"market": "CH", "kind": "missing", "severity": "critical"},
        [("0.2.0", "data-eng")],
    ),
    (
        "nested-inherits-receiver",
        {"market": "CH", "kind": "dip", "severity": "critical"},
        [("0.2.1", "dach")],
    ),
    (
        "nested-match-stops-siblings",
        {"market": "DE", "severity": "critical"},
        [("0.2.1", "dach")],
    ),
    ("later-sibling", {"market": "FR", "severity": "critical"}, [("0.3", "oncall")]),
    # As in Alertmanager: a node keeps an alert only when *no* child took it, so a
    # continue-route that matched is enough to keep the root from taking it too.
    ("continue-only", {"team": "audit", "market": "FR"}, [("0.0", "audit")]),
    (
        "continue-then-sibling",
        {"team": "audit", "market": "DE", "kind": "missing"},
        [("0.0", "audit"), ("0.2.0", "data-eng")],
    ),
    ("regex-anchored", {"market": "DEU"}, [("0", "chat")]),
]


@pytest.mark.parametrize(
    ("labels", "expected"), [c[1:] for c in ROUTING], ids=[c[0] for c in ROUTING]
)
def test_match(root: Route, labels: dict[str, str], expected: list[tuple[str, str]]) -> None:
    assert [(r.id, r.receiver) for r in root.match(labels)] == expected


S = pd.Timedelta
INHERIT = [
    # (id, route id, group_by, all, group_wait, group_interval, repeat_interval, mute, active)
    ("root-defaults", "0", ("alertname", "market"), False, S("10s"), S("5min"), S("2h"), (), ()),
    ("own-wait", "0.1", ("alertname", "market"), False, S("0s"), S("5min"), S("2h"), (), ()),
    ("all-labels", "0.2", (), True, S("10s"), S("5min"), S("2h"), ("nights",), ()),
    ("inherit-all", "0.2.0", (), True, S("10s"), S("1min"), S("2h"), (), ()),
    ("mute-not-inherited", "0.2.1", (), True, S("10s"), S("5min"), S("30min"), (),
     ("office-hours",)),
    ("empty-group-by", "0.3", (), False, S("10s"), S("5min"), S("2h"), (), ()),
]  # fmt: skip


@pytest.mark.parametrize(
    ("route_id", "group_by", "group_all", "wait", "interval", "repeat", "mute", "active"),
    [c[1:] for c in INHERIT],
    ids=[c[0] for c in INHERIT],
)
def test_inheritance(
    root: Route,
    route_id: str,
    group_by: tuple[str, ...],
    group_all: bool,
    wait: pd.Timedelta,
    interval: pd.Timedelta,
    repeat: pd.Timedelta,
    mute: tuple[str, ...],
    active: tuple[str, ...],
) -> None:
    r = root.find(route_id)
    assert r is not None
    got = (r.group_by, r.group_by_all, r.group_wait, r.group_interval, r.repeat_interval)
    assert got == (group_by, group_all, wait, interval, repeat)
    assert (r.mute_time_intervals, r.active_time_intervals) == (mute, active)


def test_alertmanager_defaults() -> None:
    r = compile_route({"receiver": "chat"}, {"chat"})
    assert (r.group_wait, r.group_interval, r.repeat_interval) == (
        S("30s"),
        S("5min"),
        S("4h"),
    )
    assert r.group_by == () and not r.group_by_all
    assert r.group_key({"market": "DE"}) == "0:{}"  # no group_by: one group per route


GROUP_KEYS = [
    ("by-market-alertname", {"alertname": "orders", "market": "FR", "x": "1"},
     ['0:{alertname="orders",market="FR"}']),
    ("missing-label-left-out", {"market": "FR"}, ['0:{market="FR"}']),
    ("all-labels", {"market": "AT", "kind": "dip"}, ['0.2:{kind="dip",market="AT"}']),
    ("quote-in-value", {"alertname": 'a"b', "market": "FR"},
     ['0:{alertname="a\\"b",market="FR"}']),
    ("continue-two-groups", {"team": "audit", "market": "FR", "severity": "critical"},
     ['0.0:{market="FR"}', "0.3:{}"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("labels", "keys"), [c[1:] for c in GROUP_KEYS], ids=[c[0] for c in GROUP_KEYS]
)
def test_group_keys(root: Route, labels: dict[str, str], keys: list[str]) -> None:
    assert [r.group_key(labels) for r in root.match(labels)] == keys


def test_explain_says_what_matched_and_why(root: Route) -> None:
    lines = root.explain({"market": "DE", "kind": "dip", "severity": "critical", "team": "x"})
    text = "\n".join(lines)
    assert lines[0] == "route 0: matches (no matchers)"
    assert '  route 0.0 {team="audit"}: no match: team="audit" failed (team is "x")' in lines
    assert 'alertname="payment_success_rate" failed (alertname is missing)' in text
    assert '  route 0.2 {market=~"DE|AT|CH"}: matches: market=~"DE|AT|CH" (market is "DE")' in (
        lines
    )
    assert '    route 0.2.0 {kind="missing"}: no match: kind="missing" failed' in text
    assert "    route 0.2.1 matched without continue: stop" in lines
    assert lines[-1] == (
        "=> route 0.2.1: receiver 'dach', group_by [...], group key "
        '0.2.1:{kind="dip",market="DE",severity="critical",team="x"}, '
        "active only during ['office-hours']"
    )
    assert "route 0.3" not in text  # never tried: 0.2 took the alert


def test_explain_continue(root: Route) -> None:
    lines = root.explain({"team": "audit", "market": "FR", "severity": "critical"})
    assert "  route 0.0 has continue: true, try the next" in lines
    assert "  no child matched: route 0 keeps the alert" not in lines
    assert [line for line in lines if line.startswith("=>")] == [
        "=> route 0.0: receiver 'audit', group_by [alertname, market], group key "
        '0.0:{market="FR"}',
        "=> route 0.3: receiver 'oncall', group_by [], group key 0.3:{}",
    ]


def test_explain_default(root: Route) -> None:
    lines = root.explain({"market": "FR"})
    assert "  no child matched: route 0 keeps the alert" in lines
    assert lines[-1].startswith("=> route 0: receiver 'chat'")


CONFIG_ERRORS = [
    # (id, config, known receivers, message parts)
    ("unknown-receiver-suggests", {"receiver": "chat", "routes": [{"receiver": "payment"}]},
     ["route.routes[0].receiver: unknown receiver 'payment'; did you mean 'payments'?"]),
    ("nested-path", {"receiver": "chat", "routes": [{"routes": [{}, {"receiver": "zzz"}]}]},
     ["route.routes[0].routes[1].receiver: unknown receiver 'zzz'"]),
    ("root-needs-receiver", {"routes": [{"receiver": "chat"}]},
     ["route.receiver: the root route must name a receiver"]),
    ("root-no-matchers", {"receiver": "chat", "matchers": ["a=b"]},
     ["route.matchers: the root route must not have matchers"]),
    ("unknown-interval", {"receiver": "chat", "routes": [{"mute_time_intervals": ["night"]}]},
     ["route.routes[0].mute_time_intervals[0]: unknown time interval 'night'; did you mean "
      "'nights'?"]),
    ("all-collected", {"receiver": "chta", "routes": [{"receiver": "oncal"}]},
     ["route.receiver: unknown receiver 'chta'; did you mean 'chat'?",
      "route.routes[0].receiver: unknown receiver 'oncal'; did you mean 'oncall'?"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("cfg", "parts"), [c[1:] for c in CONFIG_ERRORS], ids=[c[0] for c in CONFIG_ERRORS]
)
def test_compile_errors(cfg: dict, parts: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        compile_route(cfg, RECEIVERS, INTERVALS)
    for part in parts:
        assert part in str(info.value)


SCHEMA_ERRORS = [
    ("bad-matcher", {"receiver": "chat", "routes": [{"matchers": ["kind=~(x"]}]},
     "bad matcher 'kind=~(x': invalid regular expression"),
    ("no-operator", {"receiver": "chat", "routes": [{"matchers": ["market"]}]}, "no operator"),
    ("all-with-others", {"receiver": "chat", "group_by": ["...", "market"]},
     "cannot be combined"),
    ("duplicate-group-by", {"receiver": "chat", "group_by": ["a", "a"]}, "duplicate label"),
    ("zero-interval", {"receiver": "chat", "group_interval": "0s"}, "longer than 0"),
    ("bad-duration", {"receiver": "chat", "repeat_interval": "soon"}, "expected a duration"),
    ("unknown-key", {"receiver": "chat", "match": {"a": "b"}}, "Extra inputs"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("cfg", "message"), [c[1:] for c in SCHEMA_ERRORS], ids=[c[0] for c in SCHEMA_ERRORS]
)
def test_schema_errors(cfg: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        RouteConfig.model_validate(cfg)


def test_continue_alias_and_unset_versus_default() -> None:
    cfg = RouteConfig.model_validate({"receiver": "chat", "routes": [{"continue": True}]})
    assert cfg.routes[0].continue_ is True
    assert cfg.routes[0].group_wait is None and cfg.routes[0].receiver is None
    assert cfg.model_dump(by_alias=True, exclude_unset=True)["routes"] == [{"continue": True}]
    # A child that sets the default value explicitly still overrides its parent.
    root = compile_route(
        {"receiver": "chat", "group_wait": "1m", "routes": [{"group_wait": "30s"}]}, {"chat"}
    )
    assert root.routes[0].group_wait == S("30s")
