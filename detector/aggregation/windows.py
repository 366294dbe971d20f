"""Event-time tumbling windows with a watermark: events in, closed metric points out.

One :class:`WindowAggregator` per pipeline; ``backtest`` feeds it file chunks and ``run`` feeds
it Kafka batches, through the same :meth:`~WindowAggregator.add` and
:meth:`~WindowAggregator.close`, so a stream and a backtest over the same events give the same
points. The rules, chosen so that the result never depends on how events are split into
batches:

- **watermark** = the newest event time seen so far minus the allowed lateness. An event older
  than the watermark *when it arrives* is **late**: counted and dead-lettered with the reason.
  Anything newer is accepted, however shuffled. On Kafka each partition has its own
  watermark (an event is late if older than its partition's), and windows close on the
  slowest partition's, since a consumer reads partitions in no fixed interleaving; a file is
  one partition.
- windows are tumbling, aligned to UTC (a 5m window starts at :00, :05, ...), half-open
  ``[start, start + window)``; a window **closes** (its points are emitted) when the watermark
  passes its end. A stream may close windows earlier on a wall-clock idle timeout
  (``close(force_until=...)``), so that a quiet market still shows its zeros; an event within
  the lateness that lands in such a window updates it and the window is emitted again.
- an ``event_id`` accepted before within the lateness horizon (its minute not older than the
  oldest window that can still change, at the watermark when the repeat arrives) is a
  **duplicate**: counted once. A repeat after that is late anyway, unless it carries a new time.
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
import pickle
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress
from typing import Any, NamedTuple

import numpy as np

from detector.aggregation.aggregators import AGGREGATORS, Aggregator
from detector.aggregation.dedup import SeenIds
from detector.aggregation.groups import Groups, take_spans, window_spans
from detector.events.columns import ColumnCheck, EventColumns
from detector.events.schema import EventValidator, Undecodable, parse_ts
from detector.pipeline.config import Freshness, Metric, Pipeline, compile_condition

__all__ = ["Point", "Rejected", "WindowAggregator", "series_name"]

_MINUTE = 60
_source = operator.itemgetter("source")
_type = operator.itemgetter("type")


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


Mask = Callable[[EventColumns], Sequence[bool]]


def compile_where(where: dict[str, Any] | None) -> Mask | None:
    """One mask function for all conditions over a batch's columns (None when there are none).

    >>> m = compile_where({"category": "tv", "amount": {"gt": 100}})
    >>> m(EventColumns([{"category": "tv", "amount": 500}, {"category": "tv", "amount": 5}]))
    [True, False]
    """
    if not where:
        return None
    items = list(where.items())
    if len(items) == 1 and not isinstance(items[0][1], list | dict):
        f, v = items[0]
        return lambda cols: [x == v for x in cols[f]]
    preds = [(f, compile_condition(c)) for f, c in items]

    def mask(cols: EventColumns) -> Sequence[bool]:
        out: list[bool] | None = None
        for f, p in preds:
            m = list(map(p, cols[f]))
            out = m if out is None else [a and b for a, b in zip(out, m, strict=True)]
        return out or []

    return mask


def _keys(cols: EventColumns, dims: Sequence[str]) -> Sequence[Any]:
    """The series key of each event: its group-by value, or a tuple of them."""
    if len(dims) == 1:
        return cols[dims[0]]
    if not dims:
        return [None] * len(cols)
    return list(zip(*(cols[d] for d in dims), strict=True))


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
    where: Mask | None
    agg: Aggregator | None  # None for freshness checks
    freshness: Freshness | None = None
    windows: dict[int, dict[Any, Any]] = field(default_factory=dict)
    known: dict[Any, str] = field(default_factory=dict)  # key -> series name, in emission order
    next_start: int | None = None  # the first window not emitted yet
    dirty: set[int] = field(default_factory=set)
    bad_values: int = 0
    last_seen: dict[Any, float] = field(default_factory=dict)  # freshness: newest event
    last_change: dict[Any, tuple[float, Any]] = field(default_factory=dict)
    # Per open window, per series key: (event_id, trace_id) of the last event folded in, the
    # exemplar that lets an alert be followed back to its events. Not in the snapshot: it is
    # a pointer for people, and keeping it out keeps every commit's state small.
    exemplars: dict[int, dict[Any, tuple[str, str | None]]] = field(default_factory=dict)

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
        self._seen = SeenIds()
        self._part_max: dict[int, float] = {}  # per partition, the newest event time
        self._expected: set[int] = set()  # partitions assigned to this consumer
        self._idle: set[int] = set()  # ... read to their end and quiet
        #: Idle partitions known only from another instance's word, and since when (wall
        #: clock): see idle_partitions. ``_now``: the wall clock as last told (tick).
        self._idle_since: dict[int, float] = {}
        self._now = 0.0
        # (app, start, end) -> silent, within one close (metrics of one app share windows)
        self._silent_cache: dict[tuple[str, int, int], bool] = {}
        #: (app, start, end, silent) of every window closed, for whoever watches the apps
        #: (the alert router's "pipeline stale" alert); drained by :meth:`drain_silence`.
        self._silence_log: list[tuple[str, int, int, bool]] = []
        self.log_silence = False  # set by a consumer that drains it
        #: Keep each window's last event id (and trace id) per series: a stream turns them
        #: into the alert's ``event_id``/``trace_id``; see :meth:`drain_exemplars`.
        self.keep_exemplars = False
        self._exemplar_log: dict[tuple[str, int], tuple[str, str | None]] = {}
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
        self._widest = max((r.width for r in self.runs), default=_MINUTE)
        # Without validation: the standard keys and the time only (added per type as seen).
        self._columns = dict(self.validator.columns) if self.validator else {}

    def _metric_run(self, m: Metric) -> _Run:
        assert m.window is not None
        numerator = compile_where(m.numerator) if m.aggregation == "ratio" else None
        agg = AGGREGATORS[m.aggregation](field=m.field, q=m.q, numerator=numerator)
        run = _Run(
            m.name, m.event_types, int(m.window.total_seconds()), tuple(m.group_by),
            compile_where(m.where), agg,
        )  # fmt: skip
        for key in _declared_keys(self.pipeline, m.group_by):
            run.know(key)
        return run

    def _freshness_run(self, f: Freshness) -> _Run:
        assert f.window is not None
        run = _Run(
            f.name, f.event_types, int(f.window.total_seconds()), tuple(f.group_by),
            compile_where(f.where), None, f,
        )  # fmt: skip
        for key in _declared_keys(self.pipeline, f.group_by):
            run.know(key)
        return run

    # ----------------------------------------------------------------------------------------
    # Adding events
    # ----------------------------------------------------------------------------------------

    def add(
        self,
        events: Sequence[Any],
        origins: Callable[[int], str] | None = None,
        partitions: Sequence[int] | np.ndarray | None = None,
        traces: Callable[[int], str | None] | None = None,
    ) -> list[Rejected]:
        """Fold a batch of decoded events in; return the rejected ones with their reasons.

        ``origins(i)`` names where event ``i`` came from (file:line, topic[p]@offset) for the
        dead-letter record. Non-dict items (a line that was not JSON) are rejected too.
        ``partitions[i]`` is the Kafka partition of event ``i`` (None: one partition, as a
        file): lateness is judged within an event's own partition and windows close when every
        partition's watermark has passed them, so the result does not depend on how a
        consumer interleaves partitions (see the module docstring). ``traces(i)`` gives
        event ``i``'s trace id (a Kafka header) when :attr:`keep_exemplars` is on; it is
        asked only for the few events kept as exemplars.

        The batch is split by event type and checked a column at a time
        (:class:`~detector.events.columns.ColumnCheck`); the watermark, lateness and
        duplicates are then decided with array operations in event order, so the result is
        exactly that of taking the events one by one.
        """
        n = len(events)
        counters = self.counters
        counters["events"] += n
        if n == 0:
            return []
        tss = np.full(n, np.nan)
        groups = _by_type(events)
        rejected: list[tuple[int, Rejected]] = []

        def reject(i: int, reason: str, ev: Any) -> None:
            if isinstance(ev, Undecodable):
                ev = ev.raw
            rejected.append((i, Rejected(reason, origins(i) if origins else str(i), ev)))

        batches: dict[Any, tuple[np.ndarray, EventColumns]] = {}
        for t, idx in groups.items():
            evs = _pick(events, idx)
            check = self._columns.get(t) if t is not None else None
            if check is None and self.validator is None and t.__class__ is str:
                check = self._columns[t] = ColumnCheck(None)
            if check is not None:
                ts_t, cols = check(evs)
                tss[idx] = ts_t
                slow = np.flatnonzero(np.isnan(ts_t)).tolist()
                batches[t] = (idx, cols)
            else:
                slow = range(len(idx))
            for j in slow:
                i, ev = int(idx[j]), evs[j]
                reason = self._reason(ev)
                if reason is not None:
                    reject(i, reason, ev)
                    continue
                try:
                    tss[i] = parse_ts(ev.get("ts"))
                except (ValueError, TypeError, OverflowError) as exc:
                    reject(i, f"field 'ts': not an ISO 8601 time ({exc})", ev)
                    continue
        valid = ~np.isnan(tss)
        # The watermark when event i arrives: the newest time before it in its partition minus
        # the lateness. (Counting event i itself changes nothing: it is late only if it is
        # older than that.)
        timed = np.where(valid, tss, -np.inf)
        part = np.zeros(n, dtype=np.int64) if partitions is None else np.asarray(partitions)
        kinds = np.unique(part).tolist() if partitions is not None else [0]
        newest = np.empty(n)
        for p in kinds:
            rows = slice(None) if len(kinds) == 1 else np.flatnonzero(part == p)
            running = np.maximum.accumulate(timed[rows])
            newest[rows] = np.maximum(running, self._part_max.get(p, -math.inf))
            if len(running) and running[-1] > -math.inf:
                self._part_max[p] = max(self._part_max.get(p, -math.inf), float(running[-1]))
                self._idle.discard(p)
                self._idle_since.pop(p, None)
        # Never below the watermark that windows were closed and dropped at: an event for a
        # dropped window is late, whatever its partition's own progress.
        watermark = np.maximum(newest - self.lateness, self.watermark)
        late = valid & (tss < watermark)
        for i in np.flatnonzero(late).tolist():
            behind = watermark[i] - tss[i]
            reject(i, f"late: {behind:.0f} s behind the watermark (allowed lateness "
                      f"{self.lateness:.0f} s); its window has closed", events[i])  # fmt: skip
        ok = valid & ~late
        n_dup = self._drop_duplicates(batches, tss, ok, watermark)
        if valid.any():
            self.max_ts = max(self._part_max.values())
            self._advance_watermark()
        n_ok = 0
        for t, (idx, cols) in batches.items():
            keep = ok[idx]
            if not keep.all():
                cols = cols.take(keep.tolist())
                idx = idx[keep]
            if not len(idx):
                continue
            times = tss[idx]
            n_ok += len(idx)
            sources = self._note_activity(cols["source"], times)
            runs = self._by_type.get(t)
            if runs is None:
                continue
            self._type_sources.setdefault(t, set()).update(sources)
            for family in runs:
                self._fold(family, cols, times, idx, traces)
        counters["accepted"] += n_ok
        counters["duplicate"] += n_dup
        counters["late"] += int(late.sum())
        counters["rejected"] += len(rejected)
        rejected.sort(key=operator.itemgetter(0))
        for _, r in rejected:
            self.rejected_by_reason[_reason_class(r.reason)] += 1
        return [r for _, r in rejected]

    def _reason(self, ev: Any) -> str | None:
        return self.validator.check(ev) if self.validator else _basic_reason(ev)

    def _drop_duplicates(
        self,
        batches: dict[Any, tuple[np.ndarray, EventColumns]],
        tss: np.ndarray,
        ok: np.ndarray,
        watermark: np.ndarray,
    ) -> int:
        """Clear ``ok`` for repeated event ids (see the module docstring); count them.

        Set operations over the batch's ids in the usual case, where no id repeats (ids are
        strings, whose hashes Python caches); the few ids that do repeat are then decided
        one by one, in event order.
        """
        seen = self._seen
        groups: list[tuple[np.ndarray, Sequence[Any]]] = []
        fresh: set[Any] = set()
        total = 0
        for idx, cols in batches.values():
            ids = cols["event_id"]
            keep = ok[idx]
            if not keep.all():
                ids = list(compress(ids, keep.tolist()))
                idx = idx[keep]
            if len(idx):
                fresh.update(ids)
                total += len(idx)
                groups.append((idx, ids))
        if not total:
            return 0

        def minutes(rows: np.ndarray) -> np.ndarray:
            return tss[rows] // _MINUTE

        before = seen.repeats(fresh)
        if len(fresh) == total and not before:
            seen.add([(ids, minutes(idx)) for idx, ids in groups], fresh)
            return 0
        # Some ids repeat: mark every event whose id hash is among the repeated ones (a
        # hash collision only makes a needless candidate), and decide those one by one.
        hashes = [np.fromiter(map(hash, ids), np.int64, len(ids)) for _, ids in groups]
        marks = np.fromiter(map(hash, before), np.int64, len(before))
        if len(fresh) < total:
            h = np.sort(np.concatenate(hashes))
            marks = np.concatenate([marks, h[1:][h[1:] == h[:-1]]])
        latest = {i: seen.minute_of(i) for i in before}
        candidates: list[tuple[int, Any]] = []
        parts: list[tuple[Sequence[Any], np.ndarray]] = []
        for (idx, ids), h in zip(groups, hashes, strict=True):
            hit = np.isin(h, marks)
            rows = np.flatnonzero(hit)
            candidates += zip(idx[rows].tolist(), [ids[j] for j in rows.tolist()], strict=True)
            rest = ~hit
            parts.append((list(compress(ids, rest.tolist())), minutes(idx[rest])))
        candidates.sort(key=operator.itemgetter(0))
        fresh.difference_update(eid for _, eid in candidates)
        horizon = self._horizon(watermark)
        n_dup = 0
        accepted: list[tuple[int, Any]] = []
        for pos, eid in candidates:
            prev = latest.get(eid)
            if prev is not None and prev >= horizon[pos]:
                ok[pos] = False
                n_dup += 1
            else:
                latest[eid] = int(tss[pos] // _MINUTE)
                accepted.append((pos, eid))
                fresh.add(eid)
        if accepted:
            pos_, ids_ = zip(*accepted, strict=True)
            parts.append((ids_, minutes(np.array(pos_, dtype=np.intp))))
        seen.add(parts, fresh)
        return n_dup

    def _horizon(self, watermark: Any) -> Any:
        """The oldest minute that can still change at ``watermark`` (a number or an array)."""
        return (watermark - self._widest) // _MINUTE - 1

    def _note_activity(self, sources: Sequence[str], times: np.ndarray) -> set[str]:
        """Mark the minutes in which each app sent something (one type's events of a batch);
        return the apps."""
        self.min_ts = min(self.min_ts, float(times.min()))
        apps = set(sources)
        if len(apps) == 1:  # the usual case: one app emits a type
            by_app = {next(iter(apps)): times}
        else:
            names = np.array(sources, dtype=object)
            by_app = {app: times[names == app] for app in apps}
        for app, t in by_app.items():
            m = (t // _MINUTE).astype(np.int64)
            lo, hi = int(m.min()), int(m.max())
            if hi - lo <= 4 * len(m):  # the usual: a bincount over the span (O(n), no sort)
                minutes = (np.flatnonzero(np.bincount(m - lo)) + lo).tolist()
            else:  # stray far-off times: a span array could be huge
                minutes = np.unique(m).tolist()
            first = float(t.min())
            act = self._activity.get(app)
            if act is None:
                self._activity[app] = set(minutes)
                self._first_seen[app] = first
            else:
                act.update(minutes)
                if first < self._first_seen[app]:
                    self._first_seen[app] = first
        return apps

    def _fold(
        self,
        runs: list[_Run],
        cols: EventColumns,
        times: np.ndarray,
        idx: np.ndarray,
        traces: Callable[[int], str | None] | None = None,
    ) -> None:
        """Fold events of one type into runs that share window size and group-by.

        Windows, series keys and their group codes are computed once for the whole family
        (orders, revenue and tv_orders per market share them); each run takes its subset
        with a mask and folds the batch in one go (a bincount for counts, sums and ratios).
        """
        width, dims = runs[0].width, runs[0].dims
        keys = _keys(cols, dims)
        tss = times.tolist()
        groups = Groups((times // width).astype(np.int64) * width, keys, width)
        for run in runs:
            if run.where is not None:
                mask = run.where(cols)
                picked = np.asarray(mask, dtype=bool)
                if not picked.any():
                    continue
                c_r, g_r = cols.take(mask), groups.subset(picked)
                k_r, t_r = list(compress(keys, mask)), list(compress(tss, mask))
                i_r = idx[picked]
            else:
                c_r, g_r, k_r, t_r, i_r = cols, groups, keys, tss, idx
            if self.keep_exemplars:
                _keep_exemplars(run, g_r, c_r, i_r, traces)
            if run.next_start is not None:  # closed early (idle timeout): emit again later
                early = g_r.ws[g_r.ws < run.next_start]
                if len(early):
                    run.dirty.update(np.unique(early).tolist())
            if run.agg is not None:
                run.bad_values += run.agg.add_windows(run.windows, g_r, c_r, k_r, t_r)
                continue
            for w, spans in window_spans(g_r.ws).items():
                states = run.windows.get(w)
                if states is None:
                    states = run.windows[w] = {}
                _fold_freshness(
                    run, states, c_r.spans(spans), take_spans(k_r, spans), take_spans(t_r, spans)
                )

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
        self._silent_cache.clear()  # activity may have changed since the last close
        for run in self.runs:
            self._close_run(run, until, points)
        if self.log_silence and self._silent_cache:
            self._silence_log += [(src, a, b, v) for (src, a, b), v in self._silent_cache.items()]
        self._evict()
        return points

    def drain_exemplars(self) -> dict[tuple[str, int], tuple[str, str | None]]:
        """(series, window start) -> (event_id, trace_id) of the last event of each window
        emitted since the last call (windows with events only; needs :attr:`keep_exemplars`)."""
        out, self._exemplar_log = self._exemplar_log, {}
        return out

    def drain_silence(self) -> list[tuple[str, int, int, bool]]:
        """Whether each app was silent in each window closed since the last call, as
        (app, start, end, silent), oldest first: what a "pipeline stale" alert is made of."""
        out, self._silence_log = self._silence_log, []
        out.sort(key=lambda r: (r[1], r[2], r[0]))
        return out

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
            run.exemplars.pop(start, None)
        if len(run.exemplars) > len(run.windows):  # restored state: windows without exemplars
            for start in [s for s in run.exemplars if s not in run.windows]:
                del run.exemplars[start]

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
        exemplars = run.exemplars.get(w) if self.keep_exemplars else None
        if exemplars:
            log = self._exemplar_log
            for key, ex in exemplars.items():
                run.know(key)
                log[run.known[key], w] = ex
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
        cache = self._silent_cache
        for t in run.types:
            for src in self._type_sources.get(t, ()):
                silent = cache.get((src, start, end))
                if silent is None:
                    silent = cache[src, start, end] = self._silent(src, start, end)
                if silent:
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
            return act.isdisjoint(range(lo, hi))
        if every == 1:
            return not act.issuperset(range(lo, hi))
        return any(act.isdisjoint(range(a, min(a + every, hi))) for a in range(lo, hi, every))

    def _evict(self) -> None:
        """Forget dedup ids and activity older than any window that can still change."""
        if self.watermark == -math.inf:
            return
        widest = self._widest
        horizon = int(self._horizon(self.watermark))
        self._seen.forget(before=horizon)
        for act in self._activity.values():
            if len(act) > 2 * (widest // _MINUTE) + 64:
                stale = [b for b in act if b < horizon]
                act.difference_update(stale)

    # ----------------------------------------------------------------------------------------

    def flush(self) -> list[Point]:
        """Close every window that ends by the newest event (the end of a bounded input)."""
        return self.close(final=True)

    def _advance_watermark(self) -> None:
        """The slowest partition's watermark, once every expected partition has been heard
        from (idle ones aside); it never goes back."""
        if self._expected - self._part_max.keys() - self._idle:
            return  # an assigned partition has said nothing yet: it may hold older events
        idle, since = self._idle, self._idle_since
        active = [m for p, m in self._part_max.items() if p not in idle]
        # An idle partition known from another instance's word (or doubted after a restore or
        # a rebalance) may have spoken since: it holds the watermark at its newest event plus
        # the wall-clock time since it went quiet, as stream time would have moved on
        # (idle_partitions). It does so even when every other partition is idle too: a
        # merger that takes over finds them all idle in the state it loads, and the
        # partition its dead predecessor was reading still has records on their way.
        active += [m + max(0.0, self._now - since[p])
                   for p, m in self._part_max.items() if p in idle and p in since]  # fmt: skip
        if active:
            self.watermark = max(self.watermark, min(active) - self.lateness)
        elif self._part_max:  # every partition read to its end: nothing older is on its way
            self.watermark = max(self.watermark, max(self._part_max.values()) - self.lateness)

    def expect_partitions(self, partitions: Iterable[int]) -> None:
        """Partitions this consumer now reads: windows wait for each one's first events."""
        self._expected.update(partitions)

    def idle_partitions(self, partitions: Iterable[int], *, since: float | None = None) -> None:
        """Partitions read to their end and quiet: stop waiting for them (until they speak).

        ``since`` (wall clock): the word comes from another instance, which read them
        (:mod:`detector.stream.sharing`); their next events may already be on their way
        while this consumer reads others' at full speed. Until such a partition speaks (or
        its reader finds it idle itself), it lets the watermark run ahead of its newest event
        only as fast as the wall clock (:meth:`tick`): so a backlog flushed into every
        partition at once is not judged late on the partitions forwarded last.
        """
        for p in partitions:
            self._idle.add(p)
            if since is None:
                self._idle_since.pop(p, None)
            else:
                self._idle_since.setdefault(p, since)
        self._advance_watermark()

    def doubt_idle(self, now: float, partitions: Iterable[int] | None = None) -> None:
        """After a restore, or a rebalance that gave idle ``partitions`` (default: all) to
        another consumer: they may have spoken since, so they hold the watermark as if idle
        on another's word from ``now`` (idle_partitions) until they speak or are found idle
        again."""
        self._now = now
        for p in self._idle if partitions is None else set(partitions) & self._idle:
            self._idle_since[p] = now
        self._advance_watermark()

    def tick(self, now: float) -> None:
        """The wall clock moved on (for the partitions idle on another's word)."""
        self._now = now
        if self._idle_since:
            self._advance_watermark()

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """Stop waiting for partitions this consumer no longer reads (after a rebalance)."""
        for p in partitions:
            self._part_max.pop(p, None)
            self._expected.discard(p)
            self._idle.discard(p)
            self._idle_since.pop(p, None)
        self._advance_watermark()

    # ----------------------------------------------------------------------------------------
    # State, for a stream that must survive a crash
    # ----------------------------------------------------------------------------------------

    _RUN_STATE = ("windows", "known", "next_start", "dirty", "bad_values", "last_seen",
                  "last_change")  # fmt: skip
    _STATE = ("counters", "rejected_by_reason", "max_ts", "min_ts", "watermark", "_seen",
              "_activity", "_first_seen", "_type_sources", "_part_max",
              "_expected", "_idle", "_idle_since")  # fmt: skip

    def snapshot(self) -> bytes:
        """Everything that later events depend on, as bytes for the store (see :meth:`restore`).

        Only data: open windows, known series, dedup ids, app activity, the watermark and the
        counters, per metric by name, so that the compiled parts (conditions, aggregators) are
        rebuilt from the pipeline and a pipeline edit keeps the state of unchanged metrics.
        The bytes are a pickle: read them only from the detector's own store.
        """
        state = {
            "version": 1,
            "aggregator": {k: getattr(self, k) for k in self._STATE},
            "runs": {r.name: {k: getattr(r, k) for k in self._RUN_STATE} for r in self.runs},
        }
        return pickle.dumps(state, protocol=5)

    def restore(self, blob: bytes) -> None:
        """Take up the state of :meth:`snapshot` (metrics the pipeline no longer has are
        dropped; new ones start empty)."""
        state = pickle.loads(blob)  # written by snapshot() into our own store
        if state.get("version") != 1:
            raise ValueError(f"unknown aggregator state version {state.get('version')!r}")
        for k, v in state["aggregator"].items():
            setattr(self, k, v)
        for run in self.runs:
            saved = state["runs"].get(run.name)
            if saved is not None:
                for k, v in saved.items():
                    setattr(run, k, v)

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


def _by_type(events: Sequence[Any]) -> dict[Any, np.ndarray]:
    """Positions of the events of each type, in order; None collects what is not a plain
    dict with a hashable type (rejected, or checked one by one)."""
    n = len(events)
    try:
        if set(map(type, events)) != {dict}:
            raise TypeError
        types = list(map(_type, events))
        kinds = set(types)
    except (TypeError, KeyError):
        types = [_hashable_type(e) for e in events]
        kinds = set(types)
    if len(kinds) == 1:
        return {kinds.pop(): np.arange(n)}
    code = {t: k for k, t in enumerate(kinds)}
    codes = np.fromiter(map(code.__getitem__, types), np.intp, n)
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes, minlength=len(code)))[:-1]
    return dict(zip(code, np.split(order, bounds), strict=True))


def _pick(events: Sequence[Any], idx: np.ndarray) -> Sequence[Any]:
    """``events[i] for i in idx``, in C."""
    if len(idx) == len(events):
        return events
    if len(idx) == 1:
        return [events[int(idx[0])]]
    return operator.itemgetter(*idx.tolist())(events)  # type: ignore[no-any-return]


def _hashable_type(ev: Any) -> Any:
    if ev.__class__ is not dict:
        return None
    t = ev.get("type")
    return t if t.__class__ is str else None


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
    if not isinstance(ev["type"], str):
        return f"field 'type': expected a string, got {ev['type']!r}"
    return None


def _reason_class(reason: str) -> str:
    """The reason without its specifics, for counters (``field 'amount': expected a number``)."""
    head = reason.split(":")[0]
    if head.startswith("unknown event type"):
        return "unknown event type"
    if head.startswith("field") or head.startswith("missing required field"):
        return head.split(",")[0]
    return head[:60]


def _keep_exemplars(
    run: _Run,
    groups: Groups,
    cols: EventColumns,
    idx: np.ndarray,
    traces: Callable[[int], str | None] | None,
) -> None:
    """Remember the last event of each (window, series) of the batch as its exemplar.

    One sort of the batch's group codes (reversed, so ``unique`` finds each group's last
    event) instead of a dict write per event; the trace id is looked up for those few only.
    """
    codes = groups.codes
    if not len(codes):
        return
    uniq, first = np.unique(codes[::-1], return_index=True)
    last = (len(codes) - 1 - first).tolist()
    ids = cols["event_id"]
    n_keys = len(groups.keys)
    for code, j in zip(uniq.tolist(), last, strict=True):
        w, k = divmod(code, n_keys)
        start = groups.w0 + w * groups.width
        trace = traces(int(idx[j])) if traces is not None else None
        run.exemplars.setdefault(start, {})[groups.keys[k]] = (str(ids[j]), trace)


def _fold_freshness(
    run: _Run,
    states: dict[Any, Any],
    cols: EventColumns,
    keys: Sequence[Any],
    tss: Sequence[float],
) -> None:
    """Per window and series, the (time, value) of every event: ordered at close."""
    f = run.freshness
    assert f is not None
    values = cols[f.field] if f.field else itertools.repeat(None)
    for key, ts, v in zip(keys, tss, values):  # noqa: B905 (repeat is endless)
        lst = states.get(key)
        if lst is None:
            lst = states[key] = []
        lst.append((ts, v))


def _emit_freshness(
    run: _Run, w: int, states: dict[Any, Any], missing: bool, points: list[Point], start: float
) -> None:
    f = run.freshness
    assert f is not None
    end = w + run.width
    for key, rows in states.items():
        try:
            rows.sort()
        except TypeError:  # values of several types: any fixed order will do
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
