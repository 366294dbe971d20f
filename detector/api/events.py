"""Events and the metrics aggregated from them, as ``detector backtest`` reads and counts them.

:func:`load_events` reads the files in the CLI's chunks and :func:`aggregate` feeds them to
the backtest's own :class:`~detector.aggregation.windows.WindowAggregator`, so an event is
counted, or rejected with the same reason and ``file:line``, exactly as the CLI does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from detector.api.inputs import as_pipeline
from detector.errors import ConfigError, InputError

if TYPE_CHECKING:
    from detector.pipeline.config import Pipeline

__all__ = ["Events", "aggregate", "load_events"]


class Events(Sequence[Any]):
    """Decoded events in file order, read in the chunks ``detector backtest`` reads.

    Items are the decoded objects (dicts; a line that is not JSON is an
    :class:`~detector.events.schema.Undecodable` holding the raw text and the reason), so
    :func:`aggregate` rejects exactly the events the CLI rejects, with the same ``file:line``.
    """

    def __init__(self, chunks: Sequence[Any]) -> None:
        self.chunks = list(chunks)
        self._starts = np.cumsum([0, *(len(c.events) for c in self.chunks)])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        k = int(i) + len(self) if int(i) < 0 else int(i)
        if not 0 <= k < len(self):
            raise IndexError(f"event {i} of {len(self)}")
        c = int(np.searchsorted(self._starts, k, side="right")) - 1
        return self.chunks[c].events[k - self._starts[c]]

    def __iter__(self) -> Iterator[Any]:
        for c in self.chunks:
            yield from c.events

    def origin(self, i: int) -> str:
        """Where event ``i`` came from: ``file:line`` (row for Parquet)."""
        k = int(i) + len(self) if int(i) < 0 else int(i)
        c = int(np.searchsorted(self._starts, k, side="right")) - 1
        return str(self.chunks[c].origin(k - int(self._starts[c])))

    def to_frame(self) -> pd.DataFrame:
        """The decodable events as a table (one column per attribute) with their ``origin``."""
        rows, origins = [], []
        for c in self.chunks:
            for k, ev in enumerate(c.events):
                if isinstance(ev, dict):
                    rows.append(ev)
                    origins.append(c.origin(k))
        frame = pd.DataFrame.from_records(rows)
        frame.insert(0, "origin", origins)
        return frame

    def __repr__(self) -> str:
        files = list(dict.fromkeys(c.source for c in self.chunks))
        return f"Events({len(self):,} events from {', '.join(files) or 'no file'})"


def load_events(*paths: str | Path, chunk: int = 10_000) -> Events:
    """Read event files (``.jsonl``/``.ndjson``/``.json``, ``.csv``, ``.parquet``, each
    optionally ``.gz``) as ``detector backtest`` reads them.

    A line that is not JSON does not stop the reading: it becomes an undecodable record that
    :func:`aggregate` rejects with its line number, as the CLI does.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "events.jsonl"
    >>> _ = path.write_text('{"type": "heartbeat"}\\nnot json\\n')
    >>> events = load_events(path)
    >>> len(events), events[0], events.origin(1).endswith("events.jsonl:2")
    (2, {'type': 'heartbeat'}, True)
    >>> load_events(path.with_suffix(".txt"))
    Traceback (most recent call last):
    ...
    detector.errors.InputError: ...events.txt: unknown event file type; use .jsonl, .csv or ...
    """
    from detector.events.read import event_format, read_events

    if not paths:
        raise ConfigError("load_events needs at least one file")
    _check_chunk(chunk)
    for path in paths:
        event_format(path)
        if not Path(path).is_file():
            raise InputError("file not found", source=str(path))
    return Events(list(read_events(paths, chunk=chunk)))


def aggregate(events: Any, pipeline: str | Path | Pipeline, *, chunk: int = 10_000) -> pd.DataFrame:
    """Aggregate events into the pipeline's metrics, as ``detector backtest`` does.

    ``events`` is what :func:`load_events` returned, event file paths (read lazily, chunk by
    chunk), or decoded events in memory (dicts, e.g. ``make_shop_events().events``).
    ``pipeline`` is a pipeline file or a loaded :class:`~detector.pipeline.config.Pipeline`.

    Returns one row per window and series: ``timestamp`` (window start, UTC), ``series``,
    ``value`` (NaN: no value), ``denominator`` (ratios), ``metric`` and ``missing`` (an app
    feeding the metric was silent: no data, not zero). Its ``timestamp, series, value`` columns
    are ``metrics.csv``. ``frame.attrs`` holds ``counters`` (events read, accepted, rejected,
    late, duplicates), ``rejected_by_reason``, ``rejected`` (the first 100 rejected events:
    reason and origin) and ``timezones`` (series scored on a local wall clock).

    >>> from detector.pipeline.config import parse_pipeline
    >>> p = parse_pipeline('''
    ... name: x
    ... segments: {market: {values: [DE, FR]}}
    ... metrics: [{name: orders, event: order_placed, aggregation: count, group_by: [market]}]
    ... ''')
    >>> ev = lambda i, ts, m: {"event_id": str(i), "type": "order_placed", "ts": ts,
    ...                        "source": "shop", "market": m}
    >>> events = [ev(1, "2026-01-05T10:01:00Z", "DE"), ev(2, "2026-01-05T10:02:00Z", "DE"),
    ...           ev(3, "2026-01-05T10:09:00Z", "FR"), {"type": "order_placed"}]
    >>> metrics = aggregate(events, p)
    >>> metrics[["series", "value"]].values.tolist()  # 10:05-10:10 is still open
    [['orders{market=DE}', 2.0], ['orders{market=FR}', 0.0]]
    >>> metrics.attrs["counters"]["rejected"], metrics.attrs["rejected"][0]["origin"]
    (1, '<events>:4')
    """
    from detector.aggregation.windows import WindowAggregator
    from detector.backtest import points_frame

    pipe = as_pipeline(pipeline)
    _check_chunk(chunk)
    agg = WindowAggregator(pipe)
    points: list[Any] = []
    rejected: list[dict[str, str]] = []
    for batch, origin in _batches(events, chunk):
        for r in agg.add(batch, origin):
            if len(rejected) < 100:
                rejected.append({"reason": r.reason, "origin": r.origin})
        points.extend(agg.close())
    points.extend(agg.flush())
    if agg.counters["accepted"] == 0:
        first = f"; the first, {rejected[0]['origin']}: {rejected[0]['reason']}" if rejected else ""
        raise InputError(
            f"no valid event for pipeline {pipe.name!r} ({agg.counters['events']} read, "
            f"{agg.counters['rejected']} rejected{first})"
        )
    frame = points_frame(points)
    frame.attrs.update(
        pipeline=pipe.name,
        counters=dict(agg.counters),
        rejected_by_reason=dict(agg.rejected_by_reason),
        rejected=rejected,
        timezones=agg.series_timezones(),
    )
    return frame


def _batches(events: Any, chunk: int) -> Iterator[tuple[Sequence[Any], Any]]:
    """``(events, origin)`` batches: the CLI's file chunks, or slices of events in memory."""
    from detector.events.read import read_events

    if isinstance(events, Events):
        for c in events.chunks:
            yield c.events, c.origin
        return
    if isinstance(events, pd.DataFrame):
        raise InputError(
            "aggregate takes events (load_events(...), file paths or dicts), not a table; "
            "a metrics table is scored with score(metrics, pipeline=...)"
        )
    items = [events] if isinstance(events, str | os.PathLike) else list(events)
    if items and all(_is_path(e) for e in items):
        for p in items:
            if not Path(p).is_file():
                raise InputError("file not found", source=str(p))
        for c in read_events(items, chunk=chunk):
            yield c.events, c.origin
        return
    for a in range(0, len(items), chunk):
        yield [_decoded(e) for e in items[a : a + chunk]], (lambda i, a=a: f"<events>:{a + i + 1}")


def _is_path(item: Any) -> bool:
    """A path object, or a string naming an event file (not a raw JSON line)."""
    from detector.events.read import event_format

    if isinstance(item, os.PathLike):
        return True
    if not isinstance(item, str) or item.lstrip().startswith(("{", "[")):
        return False
    try:
        event_format(item)
    except InputError:
        return False
    return True


def _decoded(item: Any) -> Any:
    """A raw line among events in memory (``make_shop_events`` keeps malformed lines so) is
    decoded as the file reader would decode it once written."""
    import orjson

    from detector.events.schema import Undecodable

    if not isinstance(item, str | bytes):
        return item
    try:
        return orjson.loads(item)
    except orjson.JSONDecodeError as exc:
        text = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
        return Undecodable(text.rstrip("\r\n"), f"not valid JSON: {exc}")


def _check_chunk(chunk: int) -> None:
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ConfigError(f"The 'chunk' parameter must be an int >= 1. Got {chunk!r} instead.")
