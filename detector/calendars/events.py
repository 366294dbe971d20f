"""Declared events and level changes: what a person knows about a series' future (or past).

An :class:`Event` is a span during which some series are *expected* to look different: a
promotion (``higher``), a maintenance or a strike (``lower`` or ``ignore``), a public holiday
(``holiday``: like a Sunday). A :class:`LevelChange` says that a series moved to a new normal at
a time (an on-call person labelled an alert ``new-normal``). Both are plain values; a
:class:`~detector.calendars.calendar.Calendar` resolves them onto a panel's grid.

Times: an aware time (``2026-11-27T08:00:00Z``, ``+01:00``) is an instant. A naive time is read
on each series' own wall clock (a market's time zone), or in the event's ``timezone`` when it has
one, so "the sale runs 08:00-20:00" means local time in every market it covers.

>>> e = Event("Winter sale", pd.Timestamp("2026-01-15 08:00"), pd.Timestamp("2026-01-18"),
...           expect="higher", factor=1.5, where={"market": ("DE", "FR")})
>>> e.matches("orders", {"market": "DE"}, "orders{market=DE}")
True
>>> e.matches("orders", {"market": "UK"}, "orders{market=UK}")
False
>>> e.wall_clock_span("Europe/Berlin")
(Timestamp('2026-01-15 08:00:00'), Timestamp('2026-01-18 00:00:00'))
>>> Event("Deploy", pd.Timestamp("2026-01-15 08:00Z"), pd.Timestamp("2026-01-15 09:00Z"),
...       expect="ignore").wall_clock_span("Europe/Berlin")[0]
Timestamp('2026-01-15 09:00:00')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

__all__ = ["EXPECTS", "Event", "LevelChange", "series_parts"]

#: What a span's points are expected to do. ``holiday``: look like the series' Sundays (or its
#: past holidays); ``higher``/``lower``: move that way (by ``factor`` when given);
#: ``ignore``: not scored at all.
EXPECTS: tuple[str, ...] = ("holiday", "higher", "lower", "ignore")

_SERIES = re.compile(r"^([^{]*)(?:\{(.*)\})?$")


def series_parts(series: str) -> tuple[str, dict[str, str]]:
    """The metric and the dimensions of a series name such as ``orders{market=DE}``.

    >>> series_parts("orders{market=DE,category=tv}")
    ('orders', {'market': 'DE', 'category': 'tv'})
    >>> series_parts("orders.DE")
    ('orders.DE', {})
    """
    m = _SERIES.match(series)
    if not m:
        return series, {}
    dims = m.group(2) or ""
    return m.group(1), dict(p.split("=", 1) for p in dims.split(",") if "=" in p)


@dataclass(frozen=True)
class Event:
    """A span ``[start, end)`` during which matching series are expected to differ.

    ``where`` restricts it to series whose dimensions take one of the listed values (a series
    without that dimension does not match), ``metrics`` to metrics by name, ``series`` to exact
    series names; empty means no restriction. ``factor`` scales the usual expectation (``1.5``:
    half again as much; ``higher`` needs it above 1, ``lower`` below). ``label`` is what reasons
    say ("Christmas Day (DE holiday)"); it defaults to the name.
    """

    name: str
    start: pd.Timestamp
    end: pd.Timestamp
    expect: str = "ignore"
    factor: float | None = None
    where: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()
    series: tuple[str, ...] = ()
    timezone: str | None = None
    label: str = ""
    until_normal: bool = False

    def __post_init__(self) -> None:
        if self.expect not in EXPECTS:
            raise ValueError(f"expect must be one of {', '.join(EXPECTS)}; got {self.expect!r}")
        object.__setattr__(self, "start", pd.Timestamp(self.start))
        object.__setattr__(self, "end", pd.Timestamp(self.end))
        if not self.label:
            object.__setattr__(self, "label", self.name)

    @property
    def text(self) -> str:
        """How reasons name it."""
        return self.label

    def matches(self, metric: str, dims: Mapping[str, str], series: str) -> bool:
        if self.series and series not in self.series:
            return False
        if self.metrics and metric not in self.metrics:
            return False
        return all(dims.get(d) in values for d, values in self.where.items())

    def wall_clock_span(self, clock: str) -> tuple[pd.Timestamp, pd.Timestamp]:
        """``[start, end)`` as naive times on the wall clock of time zone ``clock``."""
        return _on_clock(self.start, clock, self.timezone), _on_clock(
            self.end, clock, self.timezone
        )


@dataclass(frozen=True)
class LevelChange:
    """Series ``series`` settled on a new normal level at ``at`` (an instant)."""

    series: str
    at: pd.Timestamp
    label: str = "new normal"

    def __post_init__(self) -> None:
        at = pd.Timestamp(self.at)
        object.__setattr__(self, "at", at.tz_localize("UTC") if at.tzinfo is None else at)

    def wall_clock(self, clock: str) -> pd.Timestamp:
        return _on_clock(self.at, clock, None)


def _on_clock(ts: pd.Timestamp, clock: str, zone: str | None) -> pd.Timestamp:
    if ts.tzinfo is None:
        if zone is None or zone == clock:
            return ts
        # An autumn hour lived twice counts from its first occurrence; a spring hour that
        # does not exist, from the first time after it.
        ts = ts.tz_localize(zone, ambiguous=True, nonexistent="shift_forward")
    return ts.tz_convert(clock).tz_localize(None)
