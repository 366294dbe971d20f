"""A calendar: holidays per market, declared events and level changes, resolved onto a panel.

The scoring engine asks a :class:`Calendar` which effects apply to the series of a panel
(:meth:`Calendar.resolve`) and gets an :class:`~detector.calendars.effects.Effects`, or None
when nothing applies (then scoring is exactly what it is without a calendar). The panel's
timestamps are read on the wall clock of ``clock``: series of a market with a time zone are
scored on local time, and that is where its holidays and its naive event times live.

>>> from detector.calendars.holidays import HolidayRule
>>> cal = Calendar(holidays=[HolidayRule("market", "DE", "DE")])
>>> idx = pd.date_range("2025-12-24", periods=3, freq="1D", tz="UTC")
>>> eff = cal.resolve(["orders{market=DE}", "orders{market=FR}"], idx, pd.Timedelta("1D"))
>>> eff.code.tolist()
[[0, 0], [1, 0], [1, 0]]
>>> [eff.labels[i] for i in eff.label[1:, 0]]
['Christmas Day (DE holiday)', 'Second Day of Christmas (DE holiday)']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from detector.calendars.effects import CODES, HOLIDAY, Effects, deviation_span
from detector.calendars.events import Event, LevelChange, series_parts
from detector.calendars.holidays import HolidayRule

__all__ = ["Calendar"]


class Calendar:
    """Holiday rules, events and level changes; immutable, cheap to build per scoring."""

    def __init__(
        self,
        holidays: Iterable[HolidayRule] = (),
        events: Iterable[Event] = (),
        changes: Iterable[LevelChange] = (),
    ) -> None:
        self.holidays = tuple(holidays)
        self.events = tuple(events)
        self.changes = tuple(changes)

    def __bool__(self) -> bool:
        return bool(self.holidays or self.events or self.changes)

    def __repr__(self) -> str:
        return (
            f"Calendar({len(self.holidays)} holiday rules, {len(self.events)} events, "
            f"{len(self.changes)} level changes)"
        )

    @classmethod
    def from_pipeline(cls, pipeline: Any) -> Calendar:
        """The ``calendars:`` section of a pipeline (see :mod:`detector.pipeline.config`)."""
        section = getattr(pipeline, "calendars", None)
        if section is None:
            return cls()
        return cls(section.holiday_rules(), section.event_list())

    def merged(self, *others: Calendar | Iterable[Event | LevelChange] | None) -> Calendar:
        """This calendar plus others (calendars, or events and level changes such as
        :func:`~detector.calendars.feedback.feedback_calendar` returns)."""
        hol, ev, ch = list(self.holidays), list(self.events), list(self.changes)
        for other in others:
            if other is None:
                continue
            if isinstance(other, Calendar):
                hol += other.holidays
                ev += other.events
                ch += other.changes
                continue
            for item in other:
                if isinstance(item, LevelChange):
                    ch.append(item)
                elif isinstance(item, Event):
                    ev.append(item)
                else:
                    raise TypeError(f"not an Event or LevelChange: {item!r}")
        return Calendar(hol, ev, ch)

    # -- onto a panel --------------------------------------------------------------------------

    def resolve(
        self,
        series: Sequence[str],
        index: pd.DatetimeIndex,
        freq: pd.Timedelta,
        clock: str = "UTC",
        values: np.ndarray | None = None,
    ) -> Effects | None:
        """The effects on a panel whose rows are ``index`` read on the wall clock ``clock``.

        ``values`` (the panel's, ``(time, series)``) lets spans labelled ``until_normal``
        run on while their series stays away from its usual level.
        """
        if not self or len(index) == 0:
            return None
        t, n = len(index), len(series)
        code = np.zeros((t, n), dtype=np.int8)
        factor = np.full((t, n), np.nan)
        label = np.full((t, n), -1, dtype=np.int32)
        holiday_day = np.zeros((t, n), dtype=bool)
        labels: list[str] = []
        ids: dict[str, int] = {}

        def lab(text: str) -> int:
            if text not in ids:
                ids[text] = len(labels)
                labels.append(text)
            return ids[text]

        def put(rows: np.ndarray, j: int, c: int, f: float | None, text: str) -> None:
            # Precedence where effects overlap: the later code in CODES (ignore) wins.
            take = rows[code[rows, j] <= c]
            code[take, j] = c
            factor[take, j] = np.nan if f is None else f
            label[take, j] = lab(text)

        wall = index.tz_localize(None) if index.tz is not None else index
        day = wall.normalize()
        parts = [series_parts(s) for s in series]
        for rule in self.holidays:
            cols = [
                j for j, (_m, dims) in enumerate(parts) if dims.get(rule.dimension) == rule.value
            ]
            if not cols:
                continue
            days = rule.days(wall[0].year, wall[-1].year)
            if not days:
                continue
            named = pd.Series(days)
            named.index = pd.DatetimeIndex(named.index)
            hit = day.isin(named.index)
            rows = np.flatnonzero(hit)
            if rows.size == 0:
                continue
            texts = named.reindex(day[rows]).to_numpy()
            c = CODES.index(rule.expect)
            for j in cols:
                holiday_day[rows, j] = True
                for text in np.unique(texts):
                    put(rows[texts == text], j, c, None, str(text))
        for ev in self.events:
            cols = [j for j, (m, dims) in enumerate(parts) if ev.matches(m, dims, series[j])]
            if not cols:
                continue
            start, end = ev.wall_clock_span(clock)
            # A bucket is under the event when it overlaps the span.
            rows = np.flatnonzero((wall < end) & (wall + freq > start))
            if rows.size == 0:
                continue
            per_day = pd.Timedelta("1D") // freq
            extend = (
                ev.until_normal
                and values is not None
                and pd.Timedelta("1D") % freq == pd.Timedelta(0)
            )
            for j in cols:
                span, c = rows, CODES.index(ev.expect)
                if extend:
                    assert values is not None
                    sign = {"higher": 1, "lower": -1}.get(ev.expect, 0)
                    a, b = int(rows[0]), int(rows[-1]) + 1
                    begin, stop = deviation_span(values[:, j], a, b, per_day, sign)
                    span = np.arange(min(begin, a), max(stop, b))
                put(span, j, c, ev.factor, ev.text)
        changes: list[tuple[int, int]] = []
        where = {s: j for j, s in enumerate(series)}
        for ch in self.changes:
            j = where.get(ch.series)
            if j is None:
                continue
            row = int(np.searchsorted(wall, ch.wall_clock(clock)))
            if row < t:
                changes.append((row, j))
        holiday_day &= code == HOLIDAY
        if not code.any() and not changes:
            return None
        return Effects(code, factor, label, labels, holiday_day, sorted(changes))
