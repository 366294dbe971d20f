"""Event-time tumbling windows with a watermark: events in, closed metric points out.

One :class:`WindowAggregator` per pipeline; ``backtest`` feeds it file chunks and ``run`` feeds
it Kafka batches, through the same :meth:`~WindowAggregator.add` and
:meth:`~WindowAggregator.close`, so a stream and a backtest over the same events give the same
points. The rules, chosen so that the result never depends on how events are split into
batches:

- **watermark** = the newest event time seen so far minus the allowed lateness. An event older
  than the watermark *when it arrives* is **late**: counted and dead-lettered with the reason.
  Anything newer is accepted, however shuffled.
- windows are tumbling, aligned to UTC (a 5m window starts at :00, :05, ...), half-open
  ``[start, start + window)``; a window **closes** (its points are emitted) when the watermark
  passes its end. A stream may close windows earlier on a wall-clock idle timeout
  (``close(force_until=...)``), so that a quiet market still shows its zeros; an event within
  the lateness that lands in such a window updates it and the window is emitted again.
- an ``event_id`` seen before within the lateness horizon is a **duplicate**: counted once.
- **explicit zeros**: a known series (a segment value from the pipeline, or one seen before) with
  no events in a window gets 0 for counts, sums and distinct counts, and no value for means,
  extremes, last values and ratios.
- **no data is not zero**: each emitting app (``source``) is tracked per minute; a window in
  which an app that feeds the metric was silent (no heartbeat in an ``every`` interval, or no
  event at all in the window for apps without heartbeats) is emitted as **missing**, so an
  ingestion gap is never scored as a sales drop.
- **freshness** checks emit, per window and series, the age in seconds of the newest event
  (or of the last change of a field) at the window's end.

>>> from detector.pipeline.config import parse_pipeline
>>> p = parse_pipeline('''
... name: x
... segments: {market: {values: [DE, FR]}}
... metrics: [{name: orders, event: order_placed, aggregation: count, group_by: [market]}]
... ''')
>>> agg = WindowAggregator(p)
>>> ev = lambda i, ts, m: {"event_id": str(i), "type": "order_placed", "ts": ts, "source": "a",
...                        "market": m}
>>> _ = agg.add([ev(1, "2026-01-05T10:01:00Z", "DE"), ev(2, "2026-01-05T10:02:00Z", "DE"),
...              ev(2, "2026-01-05T10:02:00Z", "DE"), ev(3, "2026-01-05T10:09:00Z", "FR")])
>>> [(p.series, p.value) for p in agg.close()]
[('orders{market=DE}', 2.0), ('orders{market=FR}', 0.0)]
>>> agg.counters["duplicate"]
1
"""

from __future__ import annotations

import itertools
import math
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress
from typing import Any, NamedTuple

from detector.aggregation.aggregators import AGGREGATORS, Aggregator
from detector.events.schema import EventValidator, Undecodable, _compile_fast, parse_ts
from detector.pipeline.config import Freshness, Metric, Pipeline, compile_condition

__all__ = ["Point", "Rejected", "WindowAggregator", "series_name"]

_MINUTE = 60
_source = operator.itemgetter("source")


class Point(NamedTuple):
    """One closed window of one series."""

    metric: str
    series: str
    start: int  # window start, seconds since the epoch (UTC)
    value: float  # NaN when there is no value (missing data, or no event for a mean/ratio)
    denominator: float | None
    missing: bool  # True when an app feeding the metric was silent: no data, not zero


class Rejected(NamedTuple):
    """An event that was not counted, with the reason (a line of the dead-letter output)."""

    reason: str
    origin: str  # file:line or topic[partition]@offset
    event: Any  # the decoded event, or the raw text when it could not be decoded


def series_name(metric: str, dims: Sequence[str], key: Any) -> str:
    """``orders{market=DE}``: the metric name and its group-by values, Prometheus style.

    >>> series_name("orders", ("market", "category"), ("DE", "tv"))
    'orders{market=DE,category=tv}'
    """
    if not dims:
        return metric
    values = key if len(dims) > 1 else (key,)
    labels = ",".join(f"{d}={'' if v is None else v}" for d, v in zip(dims, values, strict=True))
    return f"{metric}{{{labels}}}"


def compile_where(where: dict[str, Any] | None) -> Callable[[dict[str, Any]], bool] | None:
    """One predicate for all conditions (None when there are none)."""
    if not where:
        return None
    items = list(where.items())
    if len(items) == 1 and not isinstance(items[0][1], list | dict):
        f, v = items[0]
        return lambda ev: ev.get(f) == v
    preds = [(f, compile_condition(c)) for f, c in items]
    return lambda ev: all(p(ev.get(f)) for f, p in preds)


def _key_fn(dims: Sequence[str]) -> Callable[[dict[str, Any]], Any]:
    if not dims:
        return lambda ev: None
    if len(dims) == 1:
        (d,) = dims
        return lambda ev: ev.get(d)
    return lambda ev: tuple(ev.get(d) for d in dims)


def _declared_keys(pipeline: Pipeline, dims: Sequence[str]) -> list[Any]:
    """Keys from the pipeline's segments (all combinations), if every dimension is declared."""
    if not dims:
        return [None]
    if not all(d in pipeline.segments for d in dims):
        return []
    values = [pipeline.segments[d].values for d in dims]
    if len(dims) == 1:
        return list(values[0])
    return list(itertools.product(*values))


@dataclass
class _Run:
    """The state of one metric: open windows per start, known series, emission progress."""

    name: str
    types: tuple[str, ...]
    width: int
    dims: tuple[str, ...]
    key_of: Callable[[dict[str, Any]], Any]
    where: Callable[[dict[str, Any]], bool] | None
    agg: Aggregator | None  # None for freshness checks
    freshness: Freshness | None = None
    where_eq: tuple[str, Any] | None = None  # the common one-field equality, inlined
    windows: dict[int, dict[Any, Any]] = field(default_factory=dict)
    known: dict[Any, str] = field(default_factory=dict)  # key -> series name, in emission order
    next_start: int | None = None  # the first window not emitted yet
    dirty: set[int] = field(default_factory=set)
    bad_values: int = 0
    last_seen: dict[Any, float] = field(default_factory=dict)  # freshness: newest event
    last_change: dict[Any, tuple[float, Any]] = field(default_factory=dict)

    def know(self, key: Any) -> None:
        if key not in self.known:
            self.known[key] = series_name(self.name, self.dims, key)


class WindowAggregator:
    """Aggregates a pipeline's metrics over event-time windows (see the module docstring)."""

    def __init__(self, pipeline: Pipeline, *, validate: bool = True) -> None:
        self.pipeline = pipeline
        self.validator = EventValidator(pipeline) if validate else None
        self.lateness = pipeline.lateness.total_seconds()
        self.counters: Counter[str] = Counter()
        self.rejected_by_reason: Counter[str] = Counter()
        self.max_ts = -math.inf
        self.min_ts = math.inf
        self.watermark = -math.inf
        self._seen: dict[int, set[Any]] = {}
        self._activity: dict[str, set[int]] = {}
        self._first_seen: dict[str, float] = {}
        self._type_sources: dict[str, set[str]] = {}
        self._every = {
            name: max(1, int(em.every.total_seconds() // _MINUTE))
            for name, em in pipeline.emitters.items()
            if em.heartbeat
        }
        self.runs: list[_Run] = []
        for m in pipeline.metrics:
            self.runs.append(self._metric_run(m))
        for f in pipeline.freshness:
            self.runs.append(self._freshness_run(f))
        # Per event type, its runs in families sharing window size and group-by.
        families: dict[tuple[str, int, tuple[str, ...]], list[_Run]] = {}
        for run in self.runs:
            for t in run.types:
                families.setdefault((t, run.width, run.dims), []).append(run)
        self._by_type: dict[str, list[list[_Run]]] = {}
        for (t, _w, _d), family in families.items():
            self._by_type.setdefault(t, []).append(family)
        # Without validation: the standard keys and the time only, for every aggregated type.
        self._fast = {t: _compile_fast(None) for t in self._by_type}

    def _metric_run(self, m: Metric) -> _Run:
        assert m.window is not None
        numerator = compile_where(m.numerator) if m.aggregation == "ratio" else None
        agg = AGGREGATORS[m.aggregation](field=m.field, q=m.q, numerator=numerator)
        run = _Run(
            m.name, m.event_types, int(m.window.total_seconds()), tuple(m.group_by),
            _key_fn(m.group_by), compile_where(m.where), agg,
        )  # fmt: skip
        if len(m.where) == 1 and not isinstance(next(iter(m.where.values())), list | dict):
            run.where_eq = next(iter(m.where.items()))
        for key in _declared_keys(self.pipeline, m.group_by):
            run.know(key)
        return run

    def _freshness_run(self, f: Freshness) -> _Run:
        assert f.window is not None
        run = _Run(
            f.name, f.event_types, int(f.window.total_seconds()), tuple(f.group_by),
            _key_fn(f.group_by), compile_where(f.where), None, f,
        )  # fmt: skip
        for key in _declared_keys(self.pipeline, f.group_by):
            run.know(key)
        return run

    # ----------------------------------------------------------------------------------------
    # Adding events
    # ----------------------------------------------------------------------------------------

    def add(
        self, events: Sequence[Any], origins: Callable[[int], str] | None = None
    ) -> list[Rejected]:
        """Fold a batch of decoded events in; return the rejected ones with their reasons.

        ``origins(i)`` names where event ``i`` came from (file:line, topic[p]@offset) for the
        dead-letter record. Non-dict items (a line that was not JSON) are rejected too.
        """
        rejected: list[Rejected] = []
        counters = self.counters
        check = self.validator.check if self.validator else None
        by_type = self._by_type
        accepted: dict[str, tuple[list[dict[str, Any]], list[float]]] = {}
        seen, type_sources = self._seen, self._type_sources
        max_ts, wm, lateness = self.max_ts, self.watermark, self.lateness
        cur_b, cur_seen = None, set()
        n_dup = n_late = 0

        def reject(i: int, reason: str, ev: Any) -> None:
            rejected.append(Rejected(reason, origins(i) if origins else str(i), ev))

        fast = self.validator.fast if self.validator else self._fast
        for i, ev in enumerate(events):
            # One generated call checks the event and parses its time (see EventValidator);
            # anything unusual takes the slow path, which finds the reason or parses the time.
            ts = None
            if ev.__class__ is dict:
                f = fast.get(ev.get("type"))
                if f is not None:
                    ts = f(ev)
            if ts is None:
                reason = check(ev) if check is not None else _basic_reason(ev)
                if reason is not None:
                    reject(i, reason, ev.raw if isinstance(ev, Undecodable) else ev)
                    continue
                try:
                    ts = parse_ts(ev.get("ts"))
                except (ValueError, TypeError) as exc:
                    reject(i, f"field 'ts': not an ISO 8601 time ({exc})", ev)
                    continue
            if ts < wm:
                reject(i, f"late: {wm - ts:.0f} s behind the watermark (allowed lateness "
                          f"{lateness:.0f} s); its window has closed", ev)  # fmt: skip
                n_late += 1
                continue
            b = int(ts // _MINUTE)
            if b != cur_b:
                cur_b = b
                cur_seen = seen.get(b)
                if cur_seen is None:
                    cur_seen = seen[b] = set()
            eid = ev["event_id"]
            if eid in cur_seen:
                n_dup += 1
                continue
            cur_seen.add(eid)
            if ts > max_ts:
                max_ts = ts
                wm = ts - lateness
            t = ev["type"]
            cols = accepted.get(t)
            if cols is None:
                cols = accepted[t] = ([], [])
            cols[0].append(ev)
            cols[1].append(ts)
        self.max_ts, self.watermark = max_ts, wm
        n_ok = 0
        for t, (evs, tss) in accepted.items():
            n_ok += len(evs)
            self._note_activity(evs, tss)
            runs = by_type.get(t)
            if runs is None:
                continue
            srcs = type_sources.setdefault(t, set())
            srcs.update(map(_source, evs))
            for family in runs:
                self._fold(family, evs, tss)
        counters["events"] += len(events)
        counters["accepted"] += n_ok
        counters["duplicate"] += n_dup
        counters["late"] += n_late
        counters["rejected"] += len(rejected)
        for r in rejected:
            self.rejected_by_reason[_reason_class(r.reason)] += 1
        return rejected

    def _note_activity(self, evs: list[dict[str, Any]], tss: list[float]) -> None:
        """Mark the minutes in which each app sent something (one type's events of a batch)."""
        self.min_ts = min(self.min_ts, min(tss))
        sources = set(map(_source, evs))
        if len(sources) == 1:  # the usual case: one app emits a type
            by_src = {sources.pop(): tss}
        else:
            by_src = {src: [] for src in sources}
            for e, t in zip(evs, tss, strict=True):
                by_src[e["source"]].append(t)
        for src, times in by_src.items():
            minutes = {int(t // _MINUTE) for t in times}
            first = min(times)
            act = self._activity.get(src)
            if act is None:
                self._activity[src] = minutes
                self._first_seen[src] = first
            else:
                act.update(minutes)
                if first < self._first_seen[src]:
                    self._first_seen[src] = first

    def _fold(self, runs: list[_Run], evs: list[dict[str, Any]], tss: list[float]) -> None:
        """Fold events of one type into runs that share window size and group-by.

        Windows and series keys are computed once for the whole family (orders, revenue and
        tv_orders per market share them) with list comprehensions, split by window, and each
        run takes its subset with ``compress``: per event, almost everything runs in C.
        """
        width, dims = runs[0].width, runs[0].dims
        if len(dims) == 1:
            (d,) = dims
            keys = [ev.get(d) for ev in evs]
        elif not dims:
            keys = [None] * len(evs)
        else:
            keys = [tuple(ev.get(x) for x in dims) for ev in evs]
        ws = [int(t // width) * width for t in tss]
        # Contiguous stretches of one window (events are nearly in time order).
        segments: dict[int, list[tuple[int, int]]] = {}
        a, n = 0, len(ws)
        while a < n:
            w = ws[a]
            b = a + 1
            if ws[-1] == w and ws[a:].count(w) == n - a:
                b = n
            else:
                while b < n and ws[b] == w:
                    b += 1
            segments.setdefault(w, []).append((a, b))
            a = b
        for w, spans in segments.items():
            if len(spans) == 1:
                (a, b) = spans[0]
                if a == 0 and b == n:
                    e_w, k_w, t_w = evs, keys, tss
                else:
                    e_w, k_w, t_w = evs[a:b], keys[a:b], tss[a:b]
            else:
                e_w = [e for a, b in spans for e in evs[a:b]]
                k_w = [k for a, b in spans for k in keys[a:b]]
                t_w = [t for a, b in spans for t in tss[a:b]]
            for run in runs:
                if run.where_eq is not None:
                    f, v = run.where_eq
                    mask = [ev.get(f) == v for ev in e_w]
                elif run.where is not None:
                    mask = list(map(run.where, e_w))
                else:
                    mask = None
                if mask is not None:
                    e_r = list(compress(e_w, mask))
                    if not e_r:
                        continue
                    k_r, t_r = list(compress(k_w, mask)), list(compress(t_w, mask))
                else:
                    e_r, k_r, t_r = e_w, k_w, t_w
                states = run.windows.get(w)
                if states is None:
                    states = run.windows[w] = {}
                if run.next_start is not None and w < run.next_start:
                    run.dirty.add(w)  # closed early (idle timeout); emit again when it closes
                if run.agg is not None:
                    run.bad_values += run.agg.add_columns(states, e_r, k_r, t_r)
                else:
                    _fold_freshness(run, states, zip(e_r, k_r, t_r, strict=True))

    # ----------------------------------------------------------------------------------------
    # Closing windows
    # ----------------------------------------------------------------------------------------

    def close(self, force_until: float | None = None, *, final: bool = False) -> list[Point]:
        """Emit the windows the watermark has passed (and re-emit updated early-closed ones).

        ``force_until`` (epoch seconds) also closes windows ending by then: a stream passes
        its wall clock minus the lateness when no event has come for a while. ``final``
        closes every window that ends by the newest event time: the end of a bounded input
        (a backtest), where no more events can come; the last, incomplete window stays open.
        """
        if self.max_ts == -math.inf:
            return []
        until = self.max_ts if final else self.watermark
        if force_until is not None:
            until = max(until, force_until)
        points: list[Point] = []
        for run in self.runs:
            self._close_run(run, until, points)
        self._evict()
        return points

    def _close_run(self, run: _Run, until: float, points: list[Point]) -> None:
        width = run.width
        if run.next_start is None:
            run.next_start = int(self.min_ts // width) * width
        redo = sorted(w for w in run.dirty if w < run.next_start)
        run.dirty.difference_update(redo)
        for w in redo:
            self._emit(run, w, points)
        w = run.next_start
        while w + width <= until:
            self._emit(run, w, points)
            w += width
        run.next_start = w
        # Drop the state of windows that can no longer change (the watermark is past them).
        for start in [s for s in run.windows if s + width <= self.watermark and s < w]:
            del run.windows[start]

    def _emit(self, run: _Run, w: int, points: list[Point]) -> None:
        states = run.windows.get(w, {})
        for key in states:
            run.know(key)
        missing = self._missing(run, w, w + run.width)
        if run.freshness is not None:
            _emit_freshness(run, w, states, missing, points, self._pipeline_start(run))
            return
        agg = run.agg
        assert agg is not None
        for key, series in run.known.items():
            state = states.get(key)
            if missing:
                points.append(Point(run.name, series, w, math.nan, None, True))
            elif state is None:
                value = math.nan if agg.empty is None else agg.empty
                points.append(Point(run.name, series, w, value, None, False))
            else:
                value, den = agg.value(state)
                points.append(Point(run.name, series, w, value, den, False))

    def _pipeline_start(self, run: _Run) -> float:
        return math.floor(self.min_ts / run.width) * run.width

    def _missing(self, run: _Run, start: int, end: int) -> bool:
        """True when an app feeding ``run`` was silent during [start, end)."""
        for t in run.types:
            for src in self._type_sources.get(t, ()):
                if self._silent(src, start, end):
                    return True
        return False

    def _silent(self, src: str, start: int, end: int) -> bool:
        first = self._first_seen.get(src)
        if first is None or first >= end:
            return False  # the app had not started yet
        act = self._activity.get(src, set())
        lo = max(start, int(first // _MINUTE) * _MINUTE) // _MINUTE
        hi = -(-end // _MINUTE)
        every = self._every.get(src)
        if every is None:
            return not any(b in act for b in range(lo, hi))
        for a in range(lo, hi, every):
            if not any(b in act for b in range(a, min(a + every, hi))):
                return True
        return False

    def _evict(self) -> None:
        """Forget dedup ids and activity older than any window that can still change."""
        if self.watermark == -math.inf:
            return
        widest = max((r.width for r in self.runs), default=_MINUTE)
        horizon = int((self.watermark - widest) // _MINUTE) - 1
        for b in [b for b in self._seen if b < horizon]:
            del self._seen[b]
        for act in self._activity.values():
            if len(act) > 2 * (widest // _MINUTE) + 64:
                stale = [b for b in act if b < horizon]
                act.difference_update(stale)

    # ----------------------------------------------------------------------------------------

    def flush(self) -> list[Point]:
        """Close every window that ends by the newest event (the end of a bounded input)."""
        return self.close(final=True)

    @property
    def open_windows(self) -> int:
        return sum(len(r.windows) for r in self.runs)

    def series_timezones(self) -> dict[str, str]:
        """Series whose segment has a time zone in the pipeline (for local-time seasonality)."""
        out: dict[str, str] = {}
        for run in self.runs:
            if not run.dims:
                continue
            for key, series in run.known.items():
                values = key if len(run.dims) > 1 else (key,)
                for d, v in zip(run.dims, values, strict=True):
                    tz = self.pipeline.timezone_of(d, str(v))
                    if tz:
                        out[series] = tz
                        break
        return out

    def bad_values(self) -> dict[str, int]:
        """Per metric, events whose value field was missing or not a number (not aggregated)."""
        return {r.name: r.bad_values for r in self.runs if r.bad_values}


def _basic_reason(ev: Any) -> str | None:
    """Without a validator: an event needs to be an object with the standard keys."""
    if isinstance(ev, Undecodable):
        return ev.reason
    if not isinstance(ev, dict):
        return f"expected a JSON object, got {type(ev).__name__}"
    for key in ("event_id", "type", "ts", "source"):
        if ev.get(key) is None:
            return f"missing required field {key!r}"
    for key in ("event_id", "type", "source"):
        if not isinstance(ev[key], str | int) or isinstance(ev[key], bool):
            return f"field {key!r}: expected a string, got {ev[key]!r}"
    return None


def _reason_class(reason: str) -> str:
    """The reason without its specifics, for counters (``field 'amount': expected a number``)."""
    head = reason.split(":")[0]
    if head.startswith("unknown event type"):
        return "unknown event type"
    if head.startswith("field") or head.startswith("missing required field"):
        return head.split(",")[0]
    return head[:60]


def _fold_freshness(
    run: _Run, states: dict[Any, Any], items: Iterable[tuple[dict[str, Any], Any, float]]
) -> None:
    """Per window and series, the (time, value) of every event: ordered at close."""
    f = run.freshness
    assert f is not None
    fld = f.field
    for ev, key, ts in items:
        lst = states.get(key)
        if lst is None:
            lst = states[key] = []
        lst.append((ts, ev.get(fld) if fld else None))


def _emit_freshness(
    run: _Run, w: int, states: dict[Any, Any], missing: bool, points: list[Point], start: float
) -> None:
    f = run.freshness
    assert f is not None
    end = w + run.width
    for key, rows in states.items():
        rows.sort(key=lambda r: (r[0], repr(r[1])))
        newest = rows[-1][0]
        if newest > run.last_seen.get(key, -math.inf):
            run.last_seen[key] = newest
        if f.field:
            prev = run.last_change.get(key)
            for ts, value in rows:
                if prev is None or (value != prev[1] and ts >= prev[0]):
                    prev = (ts, value)
            if prev is not None:
                run.last_change[key] = prev
    for key, series in run.known.items():
        if missing:
            points.append(Point(run.name, series, w, math.nan, None, True))
            continue
        if f.field:
            last = run.last_change.get(key)
            since = last[0] if last is not None else start
        else:
            since = run.last_seen.get(key, start)
        points.append(Point(run.name, series, w, round(end - since, 3), None, False))
