"""Checking a batch of one event type column by column: the hot path of aggregation.

A stream batch or a file chunk holds thousands of events of a handful of types, nearly all of
them valid. Checking them one by one costs a Python call per event; checking a whole column at
once (``set(map(type, column))``, a numpy comparison) costs a few C loops per batch. So each
event type gets a :class:`ColumnCheck` that takes its events of one batch, pulls the needed
fields out in one pass, and answers, per event, its time in epoch seconds, or NaN when the
event is not plainly valid. Only those few events then go through the per-event
:meth:`~detector.events.schema.EventValidator.check`, which finds the reason (or finds the event
valid after all, e.g. a time with a ``+02:00`` offset, which :func:`parse_times` leaves to
:func:`~detector.events.schema.parse_ts`).

The column checks accept exactly what the per-event checks accept, never more: a column that
fails a check sends the events that fail it to the per-event path, and the equivalence is
tested on random events (``tests/events/test_columns.py``).

>>> parse_times(["2026-01-05T10:00:00Z", "2026-01-05T10:00:00.250Z", "2026-01-05 10:00"])
array([1.7676072e+09, 1.7676072e+09,          nan])
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from itertools import compress
from typing import Any

import numpy as np

from detector.pipeline.config import EventSpec, FieldSpec

__all__ = ["ColumnCheck", "EventColumns", "parse_times"]

_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]  # in YYYY-MM-DDTHH:MM:SS
_SEPS = [(4, ord("-")), (7, ord("-")), (10, ord("T")), (13, ord(":")), (16, ord(":"))]
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_ZERO = ord("0")
_NUMBER = frozenset({int, float})
_SCALAR = frozenset({str, int, float, bool, type(None)})
_ID = frozenset({str, int})
_STR = frozenset({str})


def _pattern(width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per position of a ``width``-character UTC time: the lowest code allowed and the span."""
    low = np.full(width, _ZERO, dtype=np.uint8)
    span = np.full(width, 9, dtype=np.uint8)
    marks = [*_SEPS, (19, ord("Z") if width == 20 else ord("."))]
    if width == 24:
        marks.append((23, ord("Z")))
    for pos, char in marks:
        low[pos], span[pos] = char, 0
    return low, span


def _weights(width: int) -> np.ndarray:
    """Digit codes minus '0' -> (year, month, day, hour, minute, second, millisecond)."""
    w = np.zeros((width, 7))
    places = [(0, 1000), (0, 100), (0, 10), (0, 1), None, (1, 10), (1, 1), None, (2, 10),
              (2, 1), None, (3, 10), (3, 1), None, (4, 10), (4, 1), None, (5, 10), (5, 1),
              None, (6, 100), (6, 10), (6, 1), None]  # fmt: skip
    for pos, place in enumerate(places[:width]):
        if place is not None and (width == 24 or place[0] < 6):
            w[pos, place[0]] = place[1]
    return w


_PATTERNS = {20: _pattern(20), 24: _pattern(24)}
_WEIGHTS = {20: _weights(20), 24: _weights(24)}
_LOW = np.array([1, 1, 1, 0, 0, 0, 0])
_HIGH = np.array([9999, 12, 31, 23, 59, 59, 999])


def parse_times(values: Sequence[str]) -> np.ndarray:
    """Epoch seconds of UTC times ``YYYY-MM-DDTHH:MM:SSZ`` or ``...SS.fffZ``; NaN otherwise.

    A batch's times usually share one length: joined into one ASCII buffer, they are a
    ``(n, 24)`` byte matrix whose digits a few array operations check and read, instead of
    a ``fromisoformat`` call per event. Every value must be a ``str``. The result equals
    :func:`~detector.events.schema.parse_ts` to the last bit (the minute's epoch plus the
    seconds as one correctly rounded division), so a time read either way puts an event in
    the same window.
    """
    n = len(values)
    if n == 0:
        return np.empty(0)
    lengths = set(map(len, values))
    width = lengths.pop() if len(lengths) == 1 else 0
    if width in _PATTERNS:
        try:
            raw = "".join(values).encode("ascii")
        except UnicodeEncodeError:
            return _parse_mixed(values)
        x = np.frombuffer(raw, np.uint8).reshape(n, width) - _PATTERNS[width][0]
        good = x <= _PATTERNS[width][1]
        ok = np.ones(n, dtype=bool) if good.all() else good.all(axis=1)
        return _epoch(x @ _WEIGHTS[width], ok)
    return _parse_mixed(values)


def _parse_mixed(values: Sequence[str]) -> np.ndarray:
    """:func:`parse_times` for times of several lengths (or non-ASCII ones): row by length."""
    n = len(values)
    arr = np.array(values, dtype=str)
    width = arr.dtype.itemsize // 4
    u = arr.view(np.uint32).reshape(n, width)
    lengths = np.fromiter(map(len, values), np.intp, n)  # numpy drops trailing NULs
    ok = np.zeros(n, dtype=bool)
    fields = np.zeros((n, 7))
    for w, (low, span) in _PATTERNS.items():
        rows = np.flatnonzero(lengths == w)
        if len(rows) and width >= w:
            part = u[rows, :w] - low.astype(np.uint32)
            ok[rows] = (part <= span).all(axis=1)
            fields[rows] = part @ _WEIGHTS[w]
    return _epoch(fields, ok)


def _epoch(fields: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Epoch seconds from (year, month, day, hour, minute, second, ms) rows; NaN where not
    ``ok`` or not a real date and time."""
    f = fields.astype(np.int64)
    if not ((f >= _LOW) & (f <= _HIGH)).all():
        ok = ok & ((f >= _LOW) & (f <= _HIGH)).all(axis=1)
        f[~ok] = _LOW  # keep rejected rows from upsetting the arithmetic
    year, month, day, hour, minute, second, millis = f.T
    late = np.flatnonzero(day > 28)  # only the end of a month can be past its end
    if len(late):
        y, m = year[late], month[late]
        leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
        ok[late] &= day[late] <= _MONTH_DAYS[m] + ((m == 2) & leap)
    # Days since 1970-01-01 of a proleptic Gregorian date (the "days from civil" formula).
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    base = (days * 86400 + hour * 3600 + minute * 60).astype(np.float64)
    times = base + (second * 1000 + millis) / 1000.0
    if ok.all():
        return times
    times[~ok] = np.nan
    return times


class ColumnCheck:
    """The checks of one event type, applied a column at a time (see the module docstring).

    ``spec`` is the type's schema (None: the standard keys only); ``scalars`` are fields that
    metrics use without a schema, which must hold single values.
    """

    def __init__(self, spec: EventSpec | None, scalars: Sequence[str] = ()) -> None:
        self.fields: list[tuple[str, FieldSpec | None]] = [
            *((spec.fields.items()) if spec else ()),
            *((s, None) for s in scalars),
        ]
        self.names = ("event_id", "source", "ts", *(n for n, _ in self.fields))
        self._getters = [operator.itemgetter(name) for name in self.names]

    def __call__(self, events: Sequence[dict[str, Any]]) -> tuple[np.ndarray, EventColumns]:
        """Per event, its time (epoch seconds), or NaN when it needs the per-event check; and
        the events as columns (the checked fields already fetched, for the aggregation)."""
        n = len(events)
        if n == 0:
            return np.empty(0), EventColumns(events)
        try:  # a C pass per field: three times faster than transposing per-event tuples
            cols: list[Sequence[Any]] = [list(map(get, events)) for get in self._getters]
        except KeyError:  # an optional field left out somewhere: fetch column by column
            cols = [[e.get(k) for e in events] for k in self.names]
        fetched = EventColumns(events, dict(zip(self.names, cols, strict=True)))
        bad = np.zeros(n, dtype=bool)
        ids, sources, times = cols[0], cols[1], cols[2]
        if not (set(map(type, ids)) <= _ID and all(ids)):
            bad |= [not (v.__class__ in _ID and v) for v in ids]
        if not (set(map(type, sources)) <= _STR and all(sources)):
            bad |= [not (v.__class__ is str and v) for v in sources]
        for (_name, spec), col in zip(self.fields, cols[3:], strict=True):
            rows = _bad_rows(col, spec)
            if rows is not None:
                bad |= rows
        if set(map(type, times)) <= _STR:
            ts = parse_times(times)
        else:
            ts = np.full(n, np.nan)
            strs = np.flatnonzero([v.__class__ is str for v in times])
            ts[strs] = parse_times([times[i] for i in strs])
        ts[bad] = np.nan
        return ts, fetched


class EventColumns:
    """Events of one type as columns (lists), each field fetched from the dicts once.

    The aggregation reads the same fields for several metrics and windows; reading a dict
    field costs a hash lookup and, on a stream, a cache miss per event, so a column is pulled
    once per batch and subsets (:meth:`take`, :meth:`slice`) derive theirs from it lazily.

    >>> cols = EventColumns([{"m": "DE", "x": 1}, {"m": "FR"}, {"m": "DE", "x": 3}])
    >>> cols["x"], cols.take([True, False, True])["m"], cols.slice(1, 3)["x"]
    ([1, None, 3], ['DE', 'DE'], [None, 3])

    Columns are lists or tuples.
    """

    __slots__ = ("_cols", "_events", "_parent", "_pick", "size")

    def __init__(
        self,
        events: Sequence[dict[str, Any]] | None,
        cols: dict[str, Any] | None = None,
        *,
        parent: EventColumns | None = None,
        pick: Callable[[Sequence[Any]], Sequence[Any]] | None = None,
        size: int | None = None,
    ) -> None:
        self._events = events
        self._cols: dict[str, Any] = cols if cols is not None else {}
        self._parent, self._pick = parent, pick
        self.size = len(events) if events is not None else (size or 0)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, name: str) -> Sequence[Any]:
        col = self._cols.get(name)
        if col is None:
            if self._parent is not None and self._pick is not None:
                col = self._pick(self._parent[name])
            else:
                col = [e.get(name) for e in self._events or ()]
            self._cols[name] = col
        return col  # type: ignore[no-any-return]

    def take(self, mask: Sequence[bool]) -> EventColumns:
        """The events where ``mask`` is true."""
        m = list(mask)
        return EventColumns(None, parent=self, pick=lambda c: list(compress(c, m)), size=sum(m))

    def slice(self, start: int, stop: int) -> EventColumns:
        """Events ``start`` to ``stop`` (a window's stretch of a batch)."""
        if start == 0 and stop >= self.size:
            return self
        return EventColumns(None, parent=self, pick=lambda c: c[start:stop], size=stop - start)

    def spans(self, spans: Sequence[tuple[int, int]]) -> EventColumns:
        """The events of several stretches, in order."""
        if len(spans) == 1:
            return self.slice(*spans[0])
        size = sum(b - a for a, b in spans)
        return EventColumns(
            None, parent=self, pick=lambda c: [x for a, b in spans for x in c[a:b]], size=size
        )


def _bad_rows(col: Sequence[Any], spec: FieldSpec | None) -> np.ndarray | None:
    """A mask of the values of ``col`` that fail ``spec`` (None when all pass, the usual)."""
    types = set(map(type, col))
    if spec is None:  # a field metrics use without a schema: any single value
        if types <= _SCALAR:
            return None
        return np.array([v.__class__ not in _SCALAR for v in col])
    none_ok = not spec.required
    kinds = {
        "number": _NUMBER,
        "integer": _NUMBER,
        "string": _STR,
        "boolean": frozenset({bool}),
    }[spec.type]
    allowed_types = kinds | {type(None)} if none_ok else kinds
    if types <= allowed_types:
        bad = None
    else:
        bad = np.array([v.__class__ not in allowed_types for v in col])
    if spec.type in ("number", "integer"):
        bad = _bad_numbers(col, spec, bad, type(None) in types)
    if spec.allowed is not None:
        allowed = frozenset(spec.allowed)
        try:
            values = set(col)
        except TypeError:  # unhashable values were already marked by type
            values = None
        if values is None or not values - {None} <= allowed:
            rows = np.array([v is not None and _not_in(v, allowed) for v in col])
            bad = rows if bad is None else bad | rows
    return bad


def _bad_numbers(
    col: Sequence[Any], spec: FieldSpec, bad: np.ndarray | None, has_none: bool
) -> np.ndarray | None:
    """Mark NaN, non-integers (for integer fields) and values outside min/max."""
    if bad is not None:  # some values are not numbers: look at the numbers only
        num = [v if v.__class__ in _NUMBER else None for v in col]
        has_none = True
    else:
        num = list(col)
    try:
        arr = np.array(num, dtype=np.float64)
    except OverflowError:  # an integer beyond float: let the per-event check decide
        return np.ones(len(col), dtype=bool)
    rows = np.isnan(arr)
    if spec.type == "integer":
        rows |= np.isinf(arr) | (arr != np.trunc(arr))
    if has_none:
        rows &= ~np.array([v is None for v in num])
    if spec.min is not None:
        rows |= arr < spec.min
    if spec.max is not None:
        rows |= arr > spec.max
    if not rows.any():
        return bad
    return rows if bad is None else bad | rows


def _not_in(v: Any, allowed: frozenset[Any]) -> bool:
    try:
        return v not in allowed
    except TypeError:
        return True
