"""The routing tree: which receivers get an alert, grouped how, on which timers.

The shape and the semantics are Prometheus Alertmanager's, so its users read our ``route:``
without a manual::

    route:
      receiver: team-chat          # the root must name a receiver and has no matchers
      group_by: [market, alertname]
      group_wait: 30s              # defaults: 30s, 5m, 4h (as in Alertmanager)
      group_interval: 5m
      repeat_interval: 4h
      routes:
        - matchers: ['alertname="payment_success_rate"', 'severity="critical"']
          receiver: payments-oncall
          continue: true           # keep looking at the next siblings after a match
        - matchers: ['market=~"DE|AT|CH"']
          receiver: dach-chat
          group_by: ['...']        # '...' groups by all labels: one alert per group
          mute_time_intervals: [nights]
          routes:
            - matchers: [kind=missing]
              receiver: data-eng

An alert enters at the root and walks down depth-first: the first child whose matchers all
match takes it (and its own children are tried in turn), unless that child says
``continue: true``, in which case later siblings are tried too. A node none of whose children
match keeps the alert itself. A child inherits what it leaves unset (receiver, group_by,
group_wait, group_interval, repeat_interval) from its parent, which is why the config model
keeps "unset" (``None``) apart from the defaults. ``mute_time_intervals`` and
``active_time_intervals`` are *not* inherited, exactly as in Alertmanager (a child that should
be muted at night says so).

Each compiled node has an ``id``, its path of child indices from the root (``"0.1.0"``), which
prefixes its group keys.

>>> cfg = RouteConfig.model_validate({
...     "receiver": "team-chat", "group_by": ["market"],
...     "routes": [{"matchers": ["severity=critical"], "receiver": "oncall"}]})
>>> root = compile_route(cfg, receivers={"team-chat", "oncall"})
>>> [(r.id, r.receiver, r.group_by) for r in root.match({"severity": "critical", "market": "DE"})]
[('0.0', 'oncall', ('market',))]
>>> root.match({"severity": "warning"})[0].receiver
'team-chat'
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from detector.alerting.matchers import Matcher, check_matchers, parse_matchers
from detector.errors import ConfigError
from detector.pipeline.config import Duration, Lateness

__all__ = [
    "DEFAULT_GROUP_INTERVAL",
    "DEFAULT_GROUP_WAIT",
    "DEFAULT_REPEAT_INTERVAL",
    "Route",
    "RouteConfig",
    "compile_route",
    "group_key",
]

DEFAULT_GROUP_WAIT = pd.Timedelta("30s")
DEFAULT_GROUP_INTERVAL = pd.Timedelta("5min")
DEFAULT_REPEAT_INTERVAL = pd.Timedelta("4h")
ALL_LABELS = "..."


#: Durations as the pipeline file writes them (``30s``, ``5m``): group_wait may be 0.
PositiveDuration = Duration
NonNegativeDuration = Lateness


class RouteConfig(BaseModel):
    """One node of the ``route:`` tree as written; ``None`` means "inherit from the parent"."""

    model_config = ConfigDict(
        extra="forbid", arbitrary_types_allowed=True, frozen=True, populate_by_name=True
    )

    receiver: str | None = None
    matchers: list[str] = Field(default_factory=list)
    group_by: list[str] | None = None
    group_wait: NonNegativeDuration | None = None
    group_interval: PositiveDuration | None = None
    repeat_interval: PositiveDuration | None = None
    continue_: bool = Field(False, alias="continue")
    routes: list[RouteConfig] = Field(default_factory=list)
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)

    _check_matchers = field_validator("matchers")(check_matchers)

    @field_validator("group_by")
    @classmethod
    def _check_group_by(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if ALL_LABELS in value and len(value) > 1:
            raise ValueError("'...' (all labels) cannot be combined with other labels")
        seen: set[str] = set()
        for name in value:
            if name in seen:
                raise ValueError(f"duplicate label {name!r}")
            seen.add(name)
        return value


@dataclass(eq=False)
class Route:
    """A compiled node with its *effective* settings (inheritance already applied)."""

    id: str
    matchers: tuple[Matcher, ...]
    receiver: str
    group_by: tuple[str, ...]  # sorted; empty with ``group_by_all``
    group_by_all: bool
    group_wait: pd.Timedelta
    group_interval: pd.Timedelta
    repeat_interval: pd.Timedelta
    continue_: bool = False
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()
    routes: list[Route] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Route({self.id!r}, receiver={self.receiver!r})"

    def matches_self(self, labels: Mapping[str, str]) -> bool:
        """Whether this node's own matchers all match (children not considered)."""
        for m in self.matchers:  # noqa: SIM110 (a plain loop: this runs for every alert)
            if not m.matches(labels):
                return False
        return True

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes that take an alert with ``labels``, in tree order (Alertmanager's Match)."""
        if not self.matches_self(labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            taken = child.match(labels)
            found.extend(taken)
            if taken and not child.continue_:
                break
        return found or [self]

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels that name the alert's group here (labels the alert lacks are left out)."""
        if self.group_by_all:
            return dict(sorted(labels.items()))
        return {k: labels[k] for k in self.group_by if k in labels}

    def group_key(self, labels: Mapping[str, str]) -> str:
        """``<route id>:{label="value",...}``: one aggregation group per route and key."""
        return group_key(self.id, self.group_labels(labels))

    def walk(self) -> Iterator[Route]:
        """This node and all below it, depth-first."""
        yield self
        for child in self.routes:
            yield from child.walk()

    def find(self, route_id: str) -> Route | None:
        """The node with ``route_id`` (``"0.2.1"``), if the tree has it."""
        return next((r for r in self.walk() if r.id == route_id), None)

    def explain(self, labels: Mapping[str, str]) -> list[str]:
        """Human lines saying which routes took ``labels`` and why (``alerts test-route``).

        >>> cfg = RouteConfig.model_validate({"receiver": "chat", "group_by": ["market"],
        ...     "routes": [{"matchers": ["team=pay"], "receiver": "pay"}]})
        >>> print("\\n".join(compile_route(cfg, {"chat", "pay"}).explain({"market": "DE"})))
        route 0: matches (no matchers)
          route 0.0 {team="pay"}: no match: team="pay" failed (team is missing)
          no child matched: route 0 keeps the alert
        => route 0: receiver 'chat', group_by [market], group key 0:{market="DE"}
        """
        lines: list[str] = []
        self._explain(labels, 0, lines)
        for route in self.match(labels):
            group_by = "[...]" if route.group_by_all else f"[{', '.join(route.group_by)}]"
            line = (
                f"=> route {route.id}: receiver {route.receiver!r}, group_by {group_by}, "
                f"group key {route.group_key(labels)}"
            )
            if route.mute_time_intervals:
                line += f", muted during {list(route.mute_time_intervals)}"
            if route.active_time_intervals:
                line += f", active only during {list(route.active_time_intervals)}"
            lines.append(line)
        return lines

    def _explain(self, labels: Mapping[str, str], depth: int, lines: list[str]) -> bool:
        pad = "  " * depth
        head = f"{pad}route {self.id}"
        if self.matchers:
            head += " {" + ", ".join(str(m) for m in self.matchers) + "}"
        failed = [m for m in self.matchers if not m.matches(labels)]
        if failed:
            why = "; ".join(f"{m} failed ({_seen(m.name, labels)})" for m in failed)
            lines.append(f"{head}: no match: {why}")
            return False
        if self.matchers:
            seen = ", ".join(f"{m} ({_seen(m.name, labels)})" for m in self.matchers)
            lines.append(f"{head}: matches: {seen}")
        else:
            lines.append(f"{head}: matches (no matchers)")
        taken = False
        for child in self.routes:
            if child._explain(labels, depth + 1, lines):
                taken = True
                if not child.continue_:
                    lines.append(f"{pad}  route {child.id} matched without continue: stop")
                    break
                lines.append(f"{pad}  route {child.id} has continue: true, try the next")
        if self.routes and not taken:
            lines.append(f"{pad}  no child matched: route {self.id} keeps the alert")
        return True


def group_key(route_id: str, labels: Mapping[str, str]) -> str:
    """The aggregation group key: route id, then the group labels in label-name order.

    >>> group_key("0.1", {"market": "DE", "alertname": "orders"})
    '0.1:{alertname="orders",market="DE"}'
    """
    body = ",".join(f"{k}={_quote(v)}" for k, v in sorted(labels.items()))
    return f"{route_id}:{{{body}}}"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _seen(name: str, labels: Mapping[str, str]) -> str:
    return f"{name} is {_quote(labels[name])}" if name in labels else f"{name} is missing"


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def compile_route(
    cfg: RouteConfig | Mapping[str, Any],
    receivers: set[str] | frozenset[str],
    time_intervals: set[str] | frozenset[str] = frozenset(),
) -> Route:
    """The routing tree with inheritance applied, checked against known names.

    Every problem is collected and reported at once (one :class:`ConfigError`, one line per
    problem, each starting with its key path such as ``route.routes[1].receiver``), with the
    closest known name when one is near.

    >>> try:
    ...     compile_route({"receiver": "chat", "routes": [{"receiver": "oncal"}]}, {"oncall"})
    ... except ConfigError as exc:
    ...     print(exc)
    route.receiver: unknown receiver 'chat'
    route.routes[0].receiver: unknown receiver 'oncal'; did you mean 'oncall'?
    """
    if not isinstance(cfg, RouteConfig):
        cfg = RouteConfig.model_validate(cfg)
    issues: list[str] = []
    if cfg.receiver is None:
        issues.append("route.receiver: the root route must name a receiver")
    if cfg.matchers:
        issues.append("route.matchers: the root route must not have matchers (it takes all)")
    if cfg.mute_time_intervals or cfg.active_time_intervals:
        issues.append("route: the root route cannot have mute or active time intervals")
    if cfg.continue_:
        issues.append("route.continue: the root route cannot have 'continue'")
    root = _build(cfg, None, "0", "route", set(receivers), set(time_intervals), issues)
    if issues:
        raise ConfigError("\n".join(issues))
    return root


def _build(
    cfg: RouteConfig,
    parent: Route | None,
    route_id: str,
    path: str,
    receivers: set[str],
    intervals: set[str],
    issues: list[str],
) -> Route:
    receiver = cfg.receiver if cfg.receiver is not None else (parent.receiver if parent else "")
    if cfg.receiver is not None and cfg.receiver not in receivers:
        issues.append(
            f"{path}.receiver: unknown receiver {cfg.receiver!r}{_suggest(cfg.receiver, receivers)}"
        )
    for key in ("mute_time_intervals", "active_time_intervals"):
        for i, name in enumerate(getattr(cfg, key)):
            if name not in intervals:
                issues.append(
                    f"{path}.{key}[{i}]: unknown time interval {name!r}{_suggest(name, intervals)}"
                )
    if cfg.group_by is not None:
        group_all = cfg.group_by == [ALL_LABELS]
        group_by = () if group_all else tuple(sorted(cfg.group_by))
    elif parent is not None:
        group_all, group_by = parent.group_by_all, parent.group_by
    else:
        group_all, group_by = False, ()

    def timer(name: str, default: pd.Timedelta) -> pd.Timedelta:
        own = getattr(cfg, name)
        if own is not None:
            return own
        return getattr(parent, name) if parent is not None else default

    route = Route(
        id=route_id,
        matchers=tuple(parse_matchers(cfg.matchers)),
        receiver=receiver,
        group_by=group_by,
        group_by_all=group_all,
        group_wait=timer("group_wait", DEFAULT_GROUP_WAIT),
        group_interval=timer("group_interval", DEFAULT_GROUP_INTERVAL),
        repeat_interval=timer("repeat_interval", DEFAULT_REPEAT_INTERVAL),
        continue_=cfg.continue_,
        mute_time_intervals=tuple(cfg.mute_time_intervals),
        active_time_intervals=tuple(cfg.active_time_intervals),
    )
    route.routes = [
        _build(child, route, f"{route_id}.{i}", f"{path}.routes[{i}]", receivers, intervals, issues)
        for i, child in enumerate(cfg.routes)
    ]
    return route
