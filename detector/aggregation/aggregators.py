"""Aggregators: what a metric keeps per window and series, and the value it reports.

One class per aggregation behind a small protocol, registered by name, so that a pipeline's
``aggregation: p95``-style typo is caught by name lookup and a new aggregation is one class.

Each aggregator updates a per-window ``dict[key, state]`` from a list of events in one tight
loop (``add_many``): at stream batch sizes a plain dict loop beats pandas/pyarrow here, because
it has no per-batch setup cost, and the same loop serves files and streams.

>>> agg = AGGREGATORS["sum"]("amount")
>>> states = {}
>>> agg.add_many(states, [({"amount": 2.5}, "DE", 0), ({"amount": 1.0}, "DE", 1), ({}, "FR", 2)])
1
>>> agg.value(states["DE"]), agg.empty
((3.5, None), 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import numpy as np

__all__ = ["AGGREGATORS", "Aggregator"]


class Aggregator(Protocol):
    """Per-window state of one series, and the reported value."""

    name: ClassVar[str]
    #: Value of a known series in a window with no events (an explicit 0 for counts and sums;
    #: None = no value, for means, extremes, rates and the like).
    empty: float | None

    def add_many(
        self, states: dict[Any, Any], items: list[tuple[dict[str, Any], Any, float]]
    ) -> int:
        """Fold ``(event, key, time)`` triples into ``states``; return how many had no value."""
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


@register
class Count:
    name = "count"
    empty = 0.0

    def __init__(self, field: str | None = None, **_: Any) -> None:
        self.field = field

    def add_many(
        self, states: dict[Any, Any], items: list[tuple[dict[str, Any], Any, float]]
    ) -> int:
        get = states.get
        for _ev, key, _t in items:
            states[key] = get(key, 0) + 1
        return 0

    def value(self, state: Any) -> tuple[float, float | None]:
        return float(state), None


@register
class Sum:
    name = "sum"
    empty = 0.0

    def __init__(self, field: str, **_: Any) -> None:
        self.field = field

    def add_many(
        self, states: dict[Any, Any], items: list[tuple[dict[str, Any], Any, float]]
    ) -> int:
        f, get, bad = self.field, states.get, 0
        for ev, key, _t in items:
            v = ev.get(f)
            if v.__class__ is not float and v.__class__ is not int:
                v = _number(v)
                if v is None:
                    bad += 1
                    continue
            states[key] = get(key, 0.0) + v
        return bad

    def value(self, state: Any) -> tuple[float, float | None]:
        return float(state), None


class _Values:
    """Collects the numeric values of ``field`` per series (for mean, extremes, percentiles)."""

    name = ""
    empty: float | None = None

    def __init__(self, field: str, **_: Any) -> None:
        self.field = field

    def add_many(
        self, states: dict[Any, Any], items: list[tuple[dict[str, Any], Any, float]]
    ) -> int:
        f, bad = self.field, 0
        for ev, key, _t in items:
            v = _number(ev.get(f))
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
class Mean(_Values):
    name = "mean"

    def value(self, state: Any) -> tuple[float, float | None]:
        return math.fsum(state) / len(state), float(len(state))


@register
class Min(_Values):
    name = "min"

    def value(self, state: Any) -> tuple[float, float | None]:
        return min(state), None


@register
class Max(_Values):
    name = "max"

    def value(self, state: Any) -> tuple[float, float | None]:
        return max(state), None


@register
class Percentile(_Values):
    name = "percentile"

    def __init__(self, field: str, q: float = 50.0, **_: Any) -> None:
        super().__init__(field)
        self.q = q

    def value(self, state: Any) -> tuple[float, float | None]:
        # numpy's default (linear) interpolation, as pandas' quantile and Prometheus users expect
        return float(np.percentile(np.asarray(state), self.q)), None


@register
class Distinct:
    name = "distinct"
    empty = 0.0

    def __init__(self, field: str, **_: Any) -> None:
        self.field = field

    def add_many(
        self, states: dict[Any, Any], items: list[tuple[dict[str, Any], Any, float]]
    ) -> int:
        f, bad = self.field, 0
        for ev, key, _t in items:
            v = ev.get(f)
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
class Last:
    """The value of the latest event (by event time; ties: the larger value, so order-free)."""

    name = "last"
    empty = None

    def __init__(self, field: str, **_: Any) -> None:
        self.field = field

    def add_many(
        self, states: dict[Any, Any], items: list[tuple[dict[str, Any], Any, float]]
    ) -> int:
        f, bad = self.field, 0
        for ev, key, t in items:
            v = _number(ev.get(f))
            if v is None:
                bad += 1
                continue
            mark = (t, v)
            cur = states.get(key)
            if cur is None or mark > cur:
                states[key] = mark
        return bad

    def value(self, state: Any) -> tuple[float, float | None]:
        return state[1], None


@register
class Ratio:
    """Events matching ``numerator`` / all events of the metric; the denominator is reported."""

    name = "ratio"
    empty = None

    def __init__(self, numerator: Callable[[dict[str, Any]], bool], **_: Any) -> None:
        self.numerator = numerator

    def add_many(
        self, states: dict[Any, Any], items: list[tuple[dict[str, Any], Any, float]]
    ) -> int:
        num = self.numerator
        for ev, key, _t in items:
            s = states.get(key)
            if s is None:
                s = states[key] = [0, 0]
            s[1] += 1
            if num(ev):
                s[0] += 1
        return 0

    def value(self, state: Any) -> tuple[float, float | None]:
        return state[0] / state[1], float(state[1])
