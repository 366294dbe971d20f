"""Aggregators: what a metric keeps per window and series, and the value it reports.

One class per aggregation behind a small protocol, registered by name, so that a new
aggregation is one class and a pipeline's typo is caught by name lookup.

Events arrive as parallel columns (``cols``, ``keys``, ``tss``: the events' fields as
:class:`~detector.events.columns.EventColumns`, their series keys and their times), so the
common work runs at C speed. Counts, sums and ratios fold a whole batch at once
(``add_windows``: a ``numpy.bincount`` over each event's (window, series) code, see
:mod:`detector.aggregation.groups`); the others go window by window (``add_columns``), where
``Counter`` counts keys and ``set(map(type, ...))`` checks that all values are numbers. At
stream batch sizes this beats handing the batch to pandas (whose per-call setup costs more
than a 10,000-event batch takes here), and the same code serves files and streams.

>>> from detector.events.columns import EventColumns
>>> agg = AGGREGATORS["sum"](field="amount")
>>> states = {}
>>> cols = EventColumns([{"amount": 2.5}, {"amount": 1}, {}])
>>> agg.add_columns(states, cols, ["DE", "DE", "FR"], [0, 1, 2])
1
>>> agg.value(states["DE"]), agg.empty
((3.5, None), 0.0)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import compress
from typing import Any, ClassVar, Protocol

import numpy as np

from detector.aggregation.groups import Groups, take_spans, window_spans
from detector.events.columns import EventColumns

__all__ = ["AGGREGATORS", "Aggregator"]

_NUMBERS = frozenset((float, int))


class Aggregator(Protocol):
    """Per-window state of one series, and the reported value."""

    name: ClassVar[str]
    #: Value of a known series in a window with no events (an explicit 0 for counts and sums;
    #: None = no value, for means, extremes, rates and the like).
    empty: float | None

    def add_columns(
        self, states: dict[Any, Any], cols: EventColumns, keys: Sequence[Any], tss: Sequence[float]
    ) -> int:
        """Fold one window's events into ``states`` (per key); return how many had no value."""
        ...

    def add_windows(
        self,
        windows: dict[int, dict[Any, Any]],
        groups: Groups,
        cols: EventColumns,
        keys: Sequence[Any],
        tss: Sequence[float],
    ) -> int:
        """Fold a batch spanning several windows into ``windows`` (start -> states)."""
        ...

    def value(self, state: Any) -> tuple[float, float | None]:
        """(value, denominator or None) of a window's state."""
        ...


AGGREGATORS: dict[str, Callable[..., Aggregator]] = {}


def register(cls: type) -> type:
    AGGREGATORS[cls.name] = cls
    return cls


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return float(v) if v == v else None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _values(field: str, cols: EventColumns) -> tuple[Sequence[Any], bool]:
    """The field of every event, and whether all of them are plain numbers (checked in C).

    JSON has no NaN, CSV/Parquet readers drop empty cells and schemas reject NaN, so a plain
    number here is a finite one.
    """
    vals = cols[field]
    return vals, set(map(type, vals)) <= _NUMBERS


class _ByWindow:
    """The general way to fold a batch: window by window, through ``add_columns``."""

    def add_columns(
        self, states: dict[Any, Any], cols: EventColumns, keys: Sequence[Any], tss: Sequence[float]
    ) -> int:
        raise NotImplementedError

    def add_windows(
        self,
        windows: dict[int, dict[Any, Any]],
        groups: Groups,
        cols: EventColumns,
        keys: Sequence[Any],
        tss: Sequence[float],
    ) -> int:
        bad = 0
        for w, spans in window_spans(groups.ws).items():
            states = windows.get(w)
            if states is None:
                states = windows[w] = {}
            bad += self.add_columns(
                states, cols.spans(spans), take_spans(keys, spans), take_spans(tss, spans)
            )
        return bad


def _states(windows: dict[int, dict[Any, Any]], w: int) -> dict[Any, Any]:
    states = windows.get(w)
    if states is None:
        states = windows[w] = {}
    return states


class _OnField(_ByWindow):
    """An aggregation of one event field (``field:`` in the pipeline)."""

    def __init__(self, field: str, **_: Any) -> None:
        self.field = field


@register
class Count(_ByWindow):
    name = "count"
    empty = 0.0

    def __init__(self, **_: Any) -> None:
        pass

    def add_windows(
        self,
        windows: dict[int, dict[Any, Any]],
        groups: Groups,
        cols: EventColumns,
        keys: Sequence[Any],
        tss: Sequence[float],
    ) -> int:
        counts = groups.count()
        for w, key, code in groups.present(counts):
            states = _states(windows, w)
            states[key] = states.get(key, 0) + int(counts[code])
        return 0

    def add_columns(
        self, states: dict[Any, Any], cols: EventColumns, keys: Sequence[Any], tss: Sequence[float]
    ) -> int:
        get = states.get
        for key, n in Counter(keys).items():
            states[key] = get(key, 0) + n
        return 0

    def value(self, state: Any) -> tuple[float, float | None]:
        return float(state), None


@register
class Sum(_OnField):
    name = "sum"
    empty = 0.0

    def add_columns(
        self, states: dict[Any, Any], cols: EventColumns, keys: Sequence[Any], tss: Sequence[float]
    ) -> int:
        vals, plain = _values(self.field, cols)
        get, bad = states.get, 0
        if plain:
            for key, v in zip(keys, vals, strict=True):
                states[key] = get(key, 0.0) + v
            return 0
        for key, raw in zip(keys, vals, strict=True):
            v = _number(raw)
            if v is None:
                bad += 1
                continue
            states[key] = get(key, 0.0) + v
        return bad

    def add_windows(
        self,
        windows: dict[int, dict[Any, Any]],
        groups: Groups,
        cols: EventColumns,
        keys: Sequence[Any],
        tss: Sequence[float],
    ) -> int:
        vals, plain = _values(self.field, cols)
        try:
            weights = np.asarray(vals, dtype=np.float64) if plain else None
        except OverflowError:  # an integer beyond float
            weights = None
        if weights is None:
            return super().add_windows(windows, groups, cols, keys, tss)
        counts, sums = groups.count(), groups.sum(weights)
        for w, key, code in groups.present(counts):
            states = _states(windows, w)
            states[key] = states.get(key, 0.0) + float(sums[code])
        return 0

    def value(self, state: Any) -> tuple[float, float | None]:
        return float(state), None


class _Collect(_OnField):
    """Collects the numeric values of ``field`` per series (for mean, extremes, percentiles)."""

    name = ""
    empty: float | None = None

    def add_columns(
        self, states: dict[Any, Any], cols: EventColumns, keys: Sequence[Any], tss: Sequence[float]
    ) -> int:
        vals, plain = _values(self.field, cols)
        bad = 0
        for key, raw in zip(keys, vals, strict=True):
            v = raw if plain else _number(raw)
            if v is None:
                bad += 1
                continue
            lst = states.get(key)
            if lst is None:
                states[key] = [v]
            else:
                lst.append(v)
        return bad


@register
class Mean(_Collect):
    name = "mean"

    def value(self, state: Any) -> tuple[float, float | None]:
        return math.fsum(state) / len(state), float(len(state))


@register
class Min(_Collect):
    name = "min"

    def value(self, state: Any) -> tuple[float, float | None]:
        return float(min(state)), None


@register
class Max(_Collect):
    name = "max"

    def value(self, state: Any) -> tuple[float, float | None]:
        return float(max(state)), None


@register
class Percentile(_Collect):
    name = "percentile"

    def __init__(self, field: str, q: float = 50.0, **_: Any) -> None:
        super().__init__(field)
        self.q = q

    def value(self, state: Any) -> tuple[float, float | None]:
        # numpy's default (linear) interpolation, as pandas' quantile and Prometheus users expect
        return float(np.percentile(np.asarray(state, dtype=float), self.q)), None


@register
class Distinct(_OnField):
    name = "distinct"
    empty = 0.0

    def add_columns(
        self, states: dict[Any, Any], cols: EventColumns, keys: Sequence[Any], tss: Sequence[float]
    ) -> int:
        bad = 0
        for key, v in zip(keys, cols[self.field], strict=True):
            if v is None:
                bad += 1
                continue
            s = states.get(key)
            if s is None:
                states[key] = {v}
            else:
                s.add(v)
        return bad

    def value(self, state: Any) -> tuple[float, float | None]:
        return float(len(state)), None


@register
class Last(_OnField):
    """The value of the latest event (by event time; ties: the larger value, so order-free)."""

    name = "last"
    empty = None

    def add_columns(
        self, states: dict[Any, Any], cols: EventColumns, keys: Sequence[Any], tss: Sequence[float]
    ) -> int:
        vals, plain = _values(self.field, cols)
        bad = 0
        for key, raw, t in zip(keys, vals, tss, strict=True):
            v = raw if plain else _number(raw)
            if v is None:
                bad += 1
                continue
            mark = (t, v)
            cur = states.get(key)
            if cur is None or mark > cur:
                states[key] = mark
        return bad

    def value(self, state: Any) -> tuple[float, float | None]:
        return float(state[1]), None


@register
class Ratio(_ByWindow):
    """Events matching ``numerator`` / all events of the metric; the denominator is reported."""

    name = "ratio"
    empty = None

    def __init__(self, numerator: Callable[[EventColumns], Sequence[bool]], **_: Any) -> None:
        self.numerator = numerator

    def add_columns(
        self, states: dict[Any, Any], cols: EventColumns, keys: Sequence[Any], tss: Sequence[float]
    ) -> int:
        hits = Counter(compress(keys, self.numerator(cols)))
        for key, n in Counter(keys).items():
            s = states.get(key)
            if s is None:
                s = states[key] = [0, 0]
            s[0] += hits.get(key, 0)
            s[1] += n
        return 0

    def add_windows(
        self,
        windows: dict[int, dict[Any, Any]],
        groups: Groups,
        cols: EventColumns,
        keys: Sequence[Any],
        tss: Sequence[float],
    ) -> int:
        counts = groups.count()
        hits = np.bincount(
            groups.codes[np.asarray(self.numerator(cols), dtype=bool)], minlength=groups.size
        )
        for w, key, code in groups.present(counts):
            states = _states(windows, w)
            s = states.get(key)
            if s is None:
                s = states[key] = [0, 0]
            s[0] += int(hits[code])
            s[1] += int(counts[code])
        return 0

    def value(self, state: Any) -> tuple[float, float | None]:
        return state[0] / state[1], float(state[1])
