"""Memory for 100,000 active series: the aggregator's state, and the scoring side's points.

Usage::

    python benchmarks/series_memory.py [--skus 50000] [--minutes 30] [--per-window 2]
                                       [--batch 10000] [--history-hours 6] [--budget N]

Target (issue 6): 100,000 active series held by one instance within 2 GiB of memory.

One event type (``order_placed`` with ``market``, ``sku``, ``amount``) and two metrics grouped
by ``sku`` (``orders``, a count, and ``revenue``, a sum of ``amount``), 5-minute windows and 2
minutes of lateness: ``--skus`` x 2 series. Every sku orders ``--per-window`` times in every
window over ``--minutes`` of event time, in time order, so every series has open windows and
the dedup horizon holds every recent event id, as in a busy shop. Events are made batch by
batch (the input is never held whole, as a consumer holds one poll) and fed to
:class:`~detector.aggregation.windows.WindowAggregator` with ``add`` then ``close`` per batch,
as ``detector run`` does. Figures:

- **peak RSS** (``ru_maxrss``) after the aggregator phase, and its growth over the baseline
  taken after the imports: what 100,000 series' open windows, names and dedup ids cost;
- **snapshot**: the aggregator's pickled state (``len(snapshot())``; ``snapshot()`` already
  returns the pickle's bytes), what a stream writes to its store per commit;
- **events/s** of ``add`` + ``close`` (event generation not counted), and the number of
  distinct series in the closed points;
- **scoring side** (``--history-hours``, 0 to skip): that much 5-minute history for every
  series is committed to a SQLite store (as a stream commits its points), then one scoring
  round runs as ``detector run`` runs it after a window closes
  (:func:`detector.stream.scoring.score_closed`: every series' new window scored with its
  whole stored history, one slice of at most ``--budget`` points at a time): its time, its
  points read and scored per second, and the peak RSS it adds. The slice budget, not the
  number of series or the history's length, bounds that peak; a longer history makes more
  slices, each of the same size. The process's peak RSS over the whole run is the figure
  for the target.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np

START = 1767571200  # 2026-01-05 00:00 UTC
WINDOW = 300
MARKETS = ("DE", "FR", "UK", "US")

PIPELINE = """
name: series-memory
events:
  order_placed:
    fields:
      market: {type: string, required: true}
      sku: {type: string, required: true}
      amount: {type: number, required: true, min: 0}
defaults: {window: 5m, lateness: 2m}
metrics:
  - {name: orders, event: order_placed, aggregation: count, group_by: [sku]}
  - {name: revenue, event: order_placed, aggregation: sum, field: amount, group_by: [sku]}
"""

MIB = 1024 * 1024


def peak_rss() -> int:
    """Peak resident memory of this process so far, in bytes (``ru_maxrss`` is KiB on Linux,
    bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def current_rss() -> int | None:
    """Resident memory now, in bytes (Linux only; None elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def mib(n: float | None) -> str:
    return "n/a" if n is None else f"{n / MIB:,.1f} MiB"


def events(skus: int, minutes: int, per_window: int, batch: int) -> Iterator[list[dict[str, Any]]]:
    """Batches of orders in time order: each window, ``per_window`` rounds over every sku,
    spread evenly over the window's seconds."""
    names = [f"sku-{i:06d}" for i in range(skus)]
    rng = np.random.default_rng(0)
    ts_text: dict[int, str] = {}
    per = skus * per_window  # events per window
    out: list[dict[str, Any]] = []
    n = 0
    for w in range(START, START + minutes * 60, WINDOW):
        amounts = np.round(rng.gamma(2.0, 20.0, per), 2).tolist()
        markets = rng.integers(0, len(MARKETS), per).tolist()
        for j in range(per):
            sec = w + j * WINDOW // per
            ts = ts_text.get(sec)
            if ts is None:
                ts = ts_text[sec] = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            out.append(
                {
                    "event_id": f"e{n}",
                    "type": "order_placed",
                    "ts": ts,
                    "source": "shop-api",
                    "market": MARKETS[markets[j]],
                    "sku": names[j % skus],
                    "amount": amounts[j],
                }
            )
            n += 1
            if len(out) == batch:
                yield out
                out = []
    if out:
        yield out


def write_history(store: Any, pipeline: str, series: list[str], hours: float) -> int:
    """``hours`` of 5-minute points before START for every series, committed to ``store``
    a few hundred thousand points at a time (as a stream commits them); returns the count."""
    from detector.aggregation.windows import Point

    steps = int(hours * 3600 // WINDOW)
    first = START - steps * WINDOW
    rng = np.random.default_rng(1)
    per = max(1, 300_000 // max(steps, 1))
    n = 0
    for a in range(0, len(series), per):
        names = series[a : a + per]
        values = rng.poisson(3.0, (len(names), steps)).astype(float).tolist()
        pts = [
            Point(name.split("{", 1)[0], name, first + k * WINDOW, v, None, False)
            for name, row in zip(names, values, strict=True)
            for k, v in enumerate(row)
        ]
        store.commit(pipeline, "bench", offsets={}, state=None, points=pts)
        n += len(pts)
    return n


def points_frame_of(series: list[str], start: int) -> Any:
    """One closed window at ``start`` for every series, as the runner hands it to scoring."""
    from detector.aggregation.windows import Point
    from detector.backtest import points_frame

    rng = np.random.default_rng(2)
    values = rng.poisson(3.0, len(series)).astype(float).tolist()
    pts = [
        Point(n.split("{", 1)[0], n, start, v, None, False)
        for n, v in zip(series, values, strict=True)
    ]
    return points_frame(pts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skus", type=int, default=50_000, help="series = 2 x skus")
    parser.add_argument("--minutes", type=int, default=30, help="event time covered")
    parser.add_argument("--per-window", type=int, default=2, help="orders per sku per window")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument(
        "--history-hours", type=float, default=6.0, help="stored history; 0: skip scoring"
    )
    parser.add_argument("--budget", type=int, default=None, help="points per scoring slice")
    args = parser.parse_args(argv)

    # pandas before the baseline too: a running detector always has it loaded.
    import pandas as pd

    from detector.aggregation.windows import WindowAggregator
    from detector.pipeline.config import parse_pipeline

    gc.collect()
    base_peak, base_now = peak_rss(), current_rss()
    print(f"baseline after imports: peak RSS {mib(base_peak)}, current RSS {mib(base_now)}")

    agg = WindowAggregator(parse_pipeline(PIPELINE))
    series: set[str] = set()
    n_events = n_points = 0
    busy = 0.0
    for batch in events(args.skus, args.minutes, args.per_window, args.batch):
        t = time.perf_counter()
        rejected = agg.add(batch)
        points = agg.close()
        busy += time.perf_counter() - t
        if rejected:
            raise SystemExit(f"unexpected rejections: {rejected[:3]}")
        n_events += len(batch)
        n_points += len(points)
        series.update(p.series for p in points)
    del batch, points
    gc.collect()
    agg_peak, agg_now = peak_rss(), current_rss()

    t = time.perf_counter()
    state = agg.snapshot()
    snap_s = time.perf_counter() - t
    snapshot_bytes = len(state)
    del state
    known = sum(len(r.known) for r in agg.runs)

    print(
        f"events: {n_events:,} ({args.skus:,} skus x 2 metrics, {args.per_window}/sku/window, "
        f"{args.minutes} min of event time, batches of {args.batch:,})"
    )
    print(f"series: {len(series):,} distinct in {n_points:,} closed points ({known:,} known)")
    states = sum(len(s) for r in agg.runs for s in r.windows.values())
    print(f"open: {agg.open_windows} windows over both metrics, {states:,} series states in them")
    print(f"throughput: {n_events / busy:,.0f} events/s (add + close, generation excluded)")
    print(f"aggregator peak RSS: {mib(agg_peak)} (+{mib(agg_peak - base_peak)} over baseline)")
    if agg_now is not None and base_now is not None:
        print(f"aggregator held RSS: {mib(agg_now)} (+{mib(agg_now - base_now)} over baseline)")
    print(f"snapshot: {mib(snapshot_bytes)} pickled, written in {snap_s:.2f} s")

    if args.history_hours > 0:
        import tempfile

        from detector.stream.scoring import BUDGET_ROWS, SeriesCatalogue, score_closed

        budget = args.budget or BUDGET_ROWS
        pipeline = parse_pipeline(PIPELINE)
        names = sorted(series)
        with tempfile.TemporaryDirectory() as tmp:
            from detector.store import open_store

            store = open_store(f"sqlite:///{tmp}/store.db")
            t = time.perf_counter()
            stored = write_history(store, pipeline.name, names, args.history_hours)
            print(
                f"stored history: {stored:,} points ({len(names):,} series x "
                f"{args.history_hours:g} h of 5m) written in {time.perf_counter() - t:.0f} s"
            )
            gc.collect()
            before_peak, before = peak_rss(), current_rss()
            t = time.perf_counter()
            catalogue = SeriesCatalogue.load(store, pipeline.name)
            load_s = time.perf_counter() - t
            # One new window for every series: what a scoring round after a window closes reads.
            fresh = points_frame_of(names, START)
            closed = {(name, START) for name in names}
            t = time.perf_counter()
            scores, _ = score_closed(
                store, pipeline, fresh, catalogue, since=fresh["timestamp"].min()
                - pd.Timedelta("5min"), closed=closed, timezones={}, budget_rows=budget,
            )  # fmt: skip
            round_s = time.perf_counter() - t
            slices = sum(1 for _ in catalogue.slices(budget))
            points_read = stored + len(fresh)
            print(
                f"scoring round: {len(scores):,} new windows scored with their history in "
                f"{slices} slices of <= {budget:,} points, {round_s:.0f} s "
                f"({points_read / round_s:,.0f} points/s read and scored; catalogue "
                f"loaded in {load_s:.1f} s)"
            )
            after_peak, after = peak_rss(), current_rss()
            if before is not None and after is not None:
                print(f"scoring held RSS after the round: +{mib(after - before)}")
            grew = after_peak - before_peak
            print(f"scoring peak RSS: {mib(after_peak)} (+{mib(grew)} over the stored phase)")
            del scores, fresh
            store.close()

    total_peak = peak_rss()
    verdict = "within" if total_peak <= 2 * 1024 * MIB else "OVER"
    what = "aggregator"
    if args.history_hours > 0:
        what += " + a scoring round over the stored history"
    print(f"process peak RSS: {mib(total_peak)} ({what}; {verdict} the 2 GiB target)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
