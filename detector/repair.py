"""``detector repair``: recompute a time range from the source of truth and reconcile the store.

A stream's stored metrics can drift from the truth: a consumer ran with a broken pipeline, a
bug dropped a batch, events arrived after the lateness, a topic was replayed. Repair reads the
range again (event files, or the Kafka topic from the offsets of its start time), aggregates it
with the same :class:`~detector.aggregation.windows.WindowAggregator` as backtest and the
stream, and compares window by window with what the store holds:

- points whose value or missing flag differ are **changed**; points the store lacks are
  **added**; stored points the events do not produce are **extra** (reported, kept: they may come
  from events outside what was read);
- then the stored history is scored again and the anomalies of the range are replaced by the new
  verdicts, reporting the anomalies that **appeared** and those that are **gone**.

``--dry-run`` reports without writing. Events are read from a margin before the range (the
widest window plus the lateness) so the first windows are whole; windows are compared only
inside ``[from, to)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from detector.aggregation.windows import Point, WindowAggregator
from detector.pipeline.config import Pipeline

__all__ = ["RepairReport", "events_from_kafka", "repair"]


@dataclass
class RepairReport:
    """What repair found (and, unless a dry run, fixed)."""

    start: pd.Timestamp
    end: pd.Timestamp
    events: int = 0
    windows: int = 0  # recomputed windows inside the range
    changed: list[tuple[str, pd.Timestamp, float, float]] = field(default_factory=list)
    added: int = 0
    extra: int = 0
    anomalies_new: list[tuple[str, pd.Timestamp]] = field(default_factory=list)
    anomalies_gone: list[tuple[str, pd.Timestamp]] = field(default_factory=list)
    written: bool = False

    def to_text(self, top: int = 10) -> str:
        lines = [
            f"repair {self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M} UTC: "
            f"{self.events:,} events read, {self.windows:,} windows recomputed",
            f"  {len(self.changed):,} windows changed, {self.added:,} added, {self.extra:,} in the "
            "store only (kept)",
        ]
        for series, ts, old, new in sorted(
            self.changed, key=lambda c: -abs(_num(c[3]) - _num(c[2]))
        )[:top]:
            lines.append(f"    {series} {ts:%Y-%m-%d %H:%M}: {_fmt(old)} -> {_fmt(new)}")
        lines.append(
            f"  anomalies: {len(self.anomalies_new):,} new, {len(self.anomalies_gone):,} gone"
        )
        for series, ts in self.anomalies_new[:top]:
            lines.append(f"    + {series} {ts:%Y-%m-%d %H:%M}")
        for series, ts in self.anomalies_gone[:top]:
            lines.append(f"    - {series} {ts:%Y-%m-%d %H:%M}")
        lines.append("  written to the store" if self.written else "  dry run: nothing written")
        return "\n".join(lines)


def _num(x: Any) -> float:
    return 0.0 if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _fmt(x: Any) -> str:
    return "missing" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:g}"


def margin(pipeline: Pipeline) -> pd.Timedelta:
    """How far before the range to start reading: the widest window plus the lateness."""
    widths = [m.window for m in pipeline.metrics] + [f.window for f in pipeline.freshness]
    return max((w for w in widths if w is not None), default=pd.Timedelta("5min")) + (
        pipeline.lateness
    )


def events_from_kafka(
    bootstrap_servers: str, topic: str, since: pd.Timestamp, timeout: float = 10.0
) -> Iterable[list[Any]]:
    """Batches of decoded records of ``topic`` from the offsets of ``since`` to the end.

    The end is each partition's high watermark when reading starts (from a fetch, not a
    "latest offset" answer, which some Kafka-compatible brokers give short).
    """
    import orjson
    from kafka import KafkaConsumer, TopicPartition

    from detector.cli_stream import _ends
    from detector.stream.runner import _decode

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, request_timeout_ms=30000
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            from detector.errors import ConfigError

            raise ConfigError(f"topic {topic!r} not found at {bootstrap_servers}")
        ends = _ends(consumer, tps)
        starts = consumer.offsets_for_times({tp: int(since.value // 10**6) for tp in tps})
        todo: dict[Any, int] = {}
        first: dict[Any, int] = {}
        for tp in tps:
            found = starts.get(tp)
            offset = found.offset if found is not None else ends[tp.partition]
            if offset < ends[tp.partition]:
                todo[tp], first[tp] = ends[tp.partition], offset
        consumer.assign(list(todo))
        for tp, offset in first.items():
            consumer.seek(tp, offset)
        while todo:
            got = consumer.poll(timeout_ms=int(timeout * 1000), max_records=10_000)
            if not got:
                break
            batch: list[Any] = []
            for tp, records in got.items():
                end = todo.get(tp)
                if end is None:
                    continue
                for r in records:
                    if r.offset < end:
                        try:
                            batch.append(orjson.loads(r.value))
                        except (orjson.JSONDecodeError, TypeError):
                            batch.append(_decode(r.value))
                if records and records[-1].offset + 1 >= end:
                    del todo[tp]
            if batch:
                yield batch
    finally:
        consumer.close()


def repair(
    pipeline: Pipeline,
    store: Any,
    start: pd.Timestamp,
    end: pd.Timestamp,
    batches: Iterable[Sequence[Any]],
    *,
    dry_run: bool = False,
    engine: Any = "local",
) -> RepairReport:
    """Recompute ``[start, end)`` from ``batches`` of decoded events; reconcile the store.

    ``engine`` re-scores the history (``"local"``, ``"dask"``, or an engine or
    ``distributed.Client``: see :mod:`detector.scoring.engines`); the verdicts are the same.
    """
    from detector.backtest import points_frame, score_metrics

    report = RepairReport(start, end)
    agg = WindowAggregator(pipeline)
    points: list[Point] = []
    lo, hi = start.value // 10**9, end.value // 10**9
    for batch in batches:
        report.events += len(batch)
        agg.add(list(batch))
        points += agg.close()
    points += agg.flush()
    fresh = points_frame([p for p in points if lo <= p.start < hi])
    fresh = fresh.drop_duplicates(["series", "timestamp"], keep="last")
    report.windows = len(fresh)
    stored = store.points(pipeline.name, start=start, end=end)
    merged = fresh.merge(
        stored, on=["series", "timestamp"], how="outer", suffixes=("", "_stored"), indicator=True
    )
    report.added = int((merged["_merge"] == "left_only").sum())
    report.extra = int((merged["_merge"] == "right_only").sum())
    both = merged[merged["_merge"] == "both"]
    differs = (both["missing"] != both["missing_stored"]) | ~(
        ((both["value"] - both["value_stored"]).abs() <= 1e-9 * both["value"].abs().clip(lower=1))
        | (both["value"].isna() & both["value_stored"].isna())
    )
    for row in both[differs].itertuples(index=False):
        report.changed.append((row.series, row.timestamp, row.value_stored, row.value))
    fix = merged[(merged["_merge"] == "left_only") | merged.index.isin(both[differs].index)]
    to_write = [
        Point(r.metric, r.series, int(r.timestamp.value // 10**9), r.value,
              None if pd.isna(r.denominator) else r.denominator, bool(r.missing))
        for r in fix.itertuples(index=False)
    ]  # fmt: skip
    if not dry_run and to_write:
        store.commit(pipeline.name, "repair", offsets={}, state=None, points=to_write)
    # Re-score with the repaired history (or, in a dry run, with the fixes laid over it).
    history = store.points(pipeline.name)
    if dry_run and len(fresh):
        history = pd.concat([history, fresh], ignore_index=True).drop_duplicates(
            ["series", "timestamp"], keep="last"
        )
    from detector.calendars import load_feedback

    scores = score_metrics(
        pipeline, history, causal=True, timezones=agg.series_timezones(),
        feedback=load_feedback(store, pipeline.name), engine=engine,
    )  # fmt: skip
    in_range = scores[(scores["timestamp"] >= start) & (scores["timestamp"] < end)]
    now_anomalous = in_range[in_range["is_anomaly"].astype(bool)]
    before = store.anomalies(pipeline.name, start=start, end=end)
    before = before[before["is_anomaly"].astype(bool)]
    old = set(zip(before["series"], before["timestamp"], strict=True))
    new = set(zip(now_anomalous["series"], now_anomalous["timestamp"], strict=True))
    report.anomalies_new = sorted(new - old, key=lambda x: (x[1], x[0]))
    report.anomalies_gone = sorted(old - new, key=lambda x: (x[1], x[0]))
    if not dry_run:
        # The changed verdicts also go to a running `detector run`, which corrects the alerts
        # they concern (a page for a window now normal gets its resolved notice).
        flips = new ^ old
        key = pd.MultiIndex.from_frame(in_range[["series", "timestamp"]])
        changed = in_range[key.isin(list(flips))] if flips else in_range.iloc[:0]
        store.replace_anomalies(pipeline.name, start, end, now_anomalous, changed=changed)
        report.written = True
    return report


def events_from_files(paths: Sequence[str | Path]) -> Iterable[list[Any]]:
    from detector.events.read import read_events

    for chunk in read_events(paths):
        yield chunk.events
