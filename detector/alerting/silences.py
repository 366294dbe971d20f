"""Silences (mute what matches, for a while) and time intervals (mute or allow by the clock).

A :class:`Silence` is Alertmanager's: matchers, a start and an end, who made it and why. The
:class:`Silencer` answers which silences mute a label set at an instant.

A :class:`TimeInterval` is Alertmanager's ``time_intervals`` entry, used by a route's
``mute_time_intervals`` (no notifications then) and ``active_time_intervals`` (notifications
only then)::

    time_intervals:
      - name: nights
        time_intervals:
          - times: [{start_time: "22:00", end_time: "06:00"}]
            location: Europe/Berlin
      - name: month-end-close
        time_intervals:
          - weekdays: ["monday:friday"]
            days_of_month: ["-3:-1"]          # the last three days of the month
            months: ["january:march", "12"]
            years: ["2026:2027"]

An instant is inside an entry when every field given matches (a field left out matches
everything), and inside the named interval when any entry contains it. Fields are read on the
wall clock of ``location`` (default UTC), so "09:00" stays 09:00 across a DST change. Times are
``[start, end)`` in minutes, ``end_time`` up to ``"24:00"``.

Unlike Alertmanager, which rejects a start after the end, ``22:00``–``06:00`` is accepted and
split into ``22:00``–``24:00`` and ``00:00``–``06:00``. The day fields are then checked on
the calendar day of the instant, exactly as if both ranges had been written: with
``weekdays: [friday]`` a night interval covers Friday 00:00–06:00 and 22:00–24:00, not the
Saturday morning. Write ``weekdays: ['friday:saturday']`` to include it.

>>> night = TimeInterval.model_validate({"name": "nights", "time_intervals": [
...     {"times": [{"start_time": "22:00", "end_time": "06:00"}], "location": "Europe/Berlin"}]})
>>> night.contains(ts("2026-01-05T22:30Z")), night.contains(ts("2026-01-05T12:00Z"))
(True, False)
"""

from __future__ import annotations

import calendar
import re
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from detector.alerting.matchers import Matcher, parse_matchers
from detector.alerting.model import ts

__all__ = [
    "Silence",
    "Silencer",
    "TimeInterval",
    "TimeIntervalSpec",
    "TimeRange",
    "time_muted",
]


# --------------------------------------------------------------------------------------------
# Silences
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Silence:
    """Mute alerts whose labels match every matcher, from ``starts_at`` until ``ends_at``.

    ``matchers`` may be given as text (``"market=DE"``); they are parsed once here.

    >>> s = Silence("s1", ["market=DE", 'kind=~"dip|spike"'], "2026-01-01T10:00Z",
    ...             "2026-01-01T12:00Z", created_by="ana", comment="promo")
    >>> s.active(ts("2026-01-01T11:00Z")), s.active(ts("2026-01-01T12:00Z"))
    (True, False)
    >>> s.matches({"market": "DE", "kind": "dip"}), s.matches({"market": "FR", "kind": "dip"})
    (True, False)
    """

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: pd.Timestamp
    ends_at: pd.Timestamp
    created_by: str = ""
    comment: str = ""

    def __init__(
        self,
        id: str,
        matchers: Iterable[Matcher | str],
        starts_at: Any,
        ends_at: Any,
        created_by: str = "",
        comment: str = "",
    ) -> None:
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "matchers", tuple(parse_matchers(list(matchers))))
        object.__setattr__(self, "starts_at", ts(starts_at))
        object.__setattr__(self, "ends_at", ts(ends_at))
        object.__setattr__(self, "created_by", created_by)
        object.__setattr__(self, "comment", comment)

    def active(self, at: pd.Timestamp) -> bool:
        """Whether the silence mutes at ``at`` (``[starts_at, ends_at)``)."""
        return self.starts_at <= at < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether every matcher matches ``labels`` (a silence without matchers matches none,
        so an empty silence can never mute everything by accident)."""
        return bool(self.matchers) and all(m.matches(labels) for m in self.matchers)


class Silencer:
    """The silences in force: which of them mute a label set at an instant."""

    def __init__(self, silences: Iterable[Silence] = ()) -> None:
        self.silences = sorted(silences, key=lambda s: s.id)

    def silenced_by(self, labels: Mapping[str, str], at: pd.Timestamp) -> list[str]:
        """Ids of the silences active at ``at`` that match ``labels`` (sorted)."""
        return [s.id for s in self.silences if s.active(at) and s.matches(labels)]


# --------------------------------------------------------------------------------------------
# Time intervals
# --------------------------------------------------------------------------------------------

_WEEKDAYS = {d.lower(): (i + 1) % 7 for i, d in enumerate(calendar.day_name)}  # sunday = 0
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_TIME = re.compile(r"^(\d{2}):(\d{2})$")


def _minutes(value: str) -> int:
    match = _TIME.match(value)
    if not match:
        raise ValueError(f"expected a time as HH:MM, got {value!r}")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise ValueError(f"{value!r} is not a time between 00:00 and 24:00")
    return hours * 60 + minutes


class TimeRange(BaseModel):
    """``start_time``–``end_time`` of a day (``"HH:MM"``; a start after the end wraps midnight)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_time: str
    end_time: str

    @field_validator("start_time", "end_time")
    @classmethod
    def _check(cls, value: str) -> str:
        _minutes(value)
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> TimeRange:
        if _minutes(self.start_time) == _minutes(self.end_time):
            raise ValueError(
                f"start_time {self.start_time!r} equals end_time: an empty range "
                "(leave 'times' out for the whole day)"
            )
        return self

    def spans(self) -> list[tuple[int, int]]:
        """``[start, end)`` minute ranges, split at midnight."""
        start, end = _minutes(self.start_time), _minutes(self.end_time)
        return [(start, end)] if start < end else [(start, 1440), (0, end)]


def _range(
    text: str, names: Mapping[str, int], what: str, numbers: tuple[int, int] | None
) -> tuple[int, int]:
    """``"monday:friday"`` or ``"3"`` as an inclusive ``(begin, end)`` pair of numbers."""

    def one(part: str) -> int:
        part = part.strip().lower()
        if part in names:
            return names[part]
        expected = (f"a name such as {next(iter(names))!r}" if names else "a number") + (
            " or a number" if names and numbers else ""
        )
        try:
            if numbers is None:
                raise ValueError
            number = int(part)
        except ValueError:
            raise ValueError(f"{what} {text!r}: {part!r} is not {expected}") from None
        lo, hi = numbers
        if not lo <= number <= hi or number == 0:
            raise ValueError(f"{what} {text!r}: {number} is out of range {lo}..{hi}")
        return number

    first, sep, last = str(text).partition(":")
    begin = one(first)
    end = one(last) if sep else begin
    return begin, end


def _ordered(pairs: list[tuple[int, int]], texts: Sequence[str], what: str) -> None:
    for (begin, end), text in zip(pairs, texts, strict=True):
        if begin > end:
            raise ValueError(f"{what} {text!r}: the start comes after the end")


class TimeIntervalSpec(BaseModel):
    """One entry of a named interval's ``time_intervals`` list (all given fields must match)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    times: list[TimeRange] = Field(default_factory=list)
    weekdays: list[str] = Field(default_factory=list)
    days_of_month: list[str] = Field(default_factory=list)
    months: list[str] = Field(default_factory=list)
    years: list[str] = Field(default_factory=list)
    location: str = "UTC"

    _spans: list[tuple[int, int]] = PrivateAttr(default_factory=list)
    _weekdays: list[tuple[int, int]] = PrivateAttr(default_factory=list)
    _days: list[tuple[int, int]] = PrivateAttr(default_factory=list)
    _months: list[tuple[int, int]] = PrivateAttr(default_factory=list)
    _years: list[tuple[int, int]] = PrivateAttr(default_factory=list)
    _zone: zoneinfo.ZoneInfo | None = PrivateAttr(default=None)

    @field_validator("weekdays")
    @classmethod
    def _check_weekdays(cls, value: list[str]) -> list[str]:
        _ordered([_range(v, _WEEKDAYS, "weekday", None) for v in value], value, "weekday")
        return value

    @field_validator("days_of_month")
    @classmethod
    def _check_days(cls, value: list[str]) -> list[str]:
        for text in value:
            begin, end = _range(text, {}, "day of month", (-31, 31))
            if begin < 0 < end:
                raise ValueError(f"day of month {text!r}: the end must be negative too")
            # As Alertmanager: catch ranges that are empty in every month (28 days minimum).
            if (begin + 29 if begin < 0 else begin) > (end + 29 if end < 0 else end):
                raise ValueError(f"day of month {text!r}: the start comes after the end")
        return value

    @field_validator("months")
    @classmethod
    def _check_months(cls, value: list[str]) -> list[str]:
        _ordered([_range(v, _MONTHS, "month", (1, 12)) for v in value], value, "month")
        return value

    @field_validator("years")
    @classmethod
    def _check_years(cls, value: list[str]) -> list[str]:
        _ordered([_range(v, {}, "year", (1, 9999)) for v in value], value, "year")
        return value

    @field_validator("location")
    @classmethod
    def _check_location(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    def model_post_init(self, _context: Any) -> None:
        self._spans = [span for t in self.times for span in t.spans()]
        self._weekdays = [_range(v, _WEEKDAYS, "weekday", None) for v in self.weekdays]
        self._days = [_range(v, {}, "day of month", (-31, 31)) for v in self.days_of_month]
        self._months = [_range(v, _MONTHS, "month", (1, 12)) for v in self.months]
        self._years = [_range(v, {}, "year", (1, 9999)) for v in self.years]
        self._zone = None if self.location == "UTC" else zoneinfo.ZoneInfo(self.location)

    def contains(self, at: pd.Timestamp) -> bool:
        """Whether ``at`` (an aware or UTC-naive timestamp) falls in this entry."""
        local = ts(at)
        if self._zone is not None:
            local = local.tz_convert(self._zone)
        if self._spans:
            minute = local.hour * 60 + local.minute
            if not any(start <= minute < end for start, end in self._spans):
                return False
        if self._weekdays:
            weekday = (local.day_of_week + 1) % 7  # pandas: monday = 0; Alertmanager: sunday = 0
            if not any(b <= weekday <= e for b, e in self._weekdays):
                return False
        if self._days and not self._in_days(local):
            return False
        if self._months and not any(b <= local.month <= e for b, e in self._months):
            return False
        return not self._years or any(b <= local.year <= e for b, e in self._years)

    def _in_days(self, local: pd.Timestamp) -> bool:
        # Alertmanager's rules: negative days count from the month's end (-1 = last day);
        # a range starting after the month's end is skipped, one ending after it is clamped.
        length = local.days_in_month
        for begin, end in self._days:
            first = length + begin + 1 if begin < 0 else begin
            last = length + end + 1 if end < 0 else end
            if first > length:
                continue
            if max(first, 1) <= local.day <= min(last, length):
                return True
        return False


class TimeInterval(BaseModel):
    """A named list of entries (``time_intervals:`` or ``mute_time_intervals:`` at top level)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    time_intervals: list[TimeIntervalSpec] = Field(default_factory=list)

    def contains(self, at: pd.Timestamp) -> bool:
        """Whether any entry contains ``at``.

        As in Alertmanager, an interval without entries contains no time, while an entry
        without fields (``time_intervals: [{}]``) contains all of it.
        """
        return any(spec.contains(at) for spec in self.time_intervals)


def time_muted(
    mute: Iterable[str],
    active: Iterable[str],
    intervals: Mapping[str, TimeInterval],
    at: pd.Timestamp,
) -> str | None:
    """Why a route is muted by the clock at ``at``, or None: Alertmanager's rule.

    Muted when ``at`` falls in any of the route's ``mute_time_intervals``, or when the route has
    ``active_time_intervals`` and ``at`` falls in none of them.

    >>> nights = TimeInterval.model_validate({"name": "nights",
    ...     "time_intervals": [{"times": [{"start_time": "22:00", "end_time": "06:00"}]}]})
    >>> time_muted(["nights"], [], {"nights": nights}, ts("2026-01-05T23:00Z"))
    "in mute_time_interval 'nights'"
    >>> time_muted([], ["nights"], {"nights": nights}, ts("2026-01-05T12:00Z"))
    'outside every active_time_interval (nights)'
    """
    for name in mute:
        if intervals[name].contains(at):
            return f"in mute_time_interval {name!r}"
    active = list(active)
    if active and not any(intervals[name].contains(at) for name in active):
        return f"outside every active_time_interval ({', '.join(active)})"
    return None
