"""Memory for 100,000 active series: the aggregator's state, and the scoring side's points.

Usage::

    python benchmarks/series_memory.py [--skus 50000] [--minutes 30] [--per-window 2]
                                       [--batch 10000] [--history-days 1]

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
- **scoring side** (``--history-days``, 0 to skip): ``history-days`` of 5-minute points for
  every series in the layout the runner scores (:func:`detector.backtest.points_frame`'s
  columns and dtypes: timestamp, series, value, denominator, metric, missing; with pandas 3
  the series and metric columns are Arrow strings, each row holding its own bytes), held
  *beside* the aggregator, as a stream holds both: its size by ``memory_usage`` and by
  resident memory, what a categorical series column would take instead, the same points as a
  ``(time x series)`` float64 panel, and the process's peak RSS over the whole run. The
  runner reads this history from its store at each scoring; the store's row decoding is not
  measured here. Two days (the models' usual history) would double the frame.
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


def points_history(series: list[str], days: float) -> Any:
    """``days`` of 5-minute points for every series, in ``points_frame``'s columns."""
    import pandas as pd

    steps = int(days * 86400 // WINDOW)
    n = steps * len(series)
    first = pd.Timestamp(START, unit="s", tz="UTC") - pd.Timedelta(days=days)
    stamps = pd.date_range(first, periods=steps, freq="5min")
    names = np.array(series, dtype=object)
    metrics = np.array([s.split("{", 1)[0] for s in series], dtype=object)
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "timestamp": np.tile(stamps.values, len(series)),
            "series": np.repeat(names, steps),
            "value": rng.poisson(3.0, n).astype(float),
            "denominator": np.full(n, np.nan),
            "metric": np.repeat(metrics, steps),
            "missing": np.zeros(n, dtype=bool),
        }
    ).assign(timestamp=lambda f: f["timestamp"].dt.tz_localize("UTC"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skus", type=int, default=50_000, help="series = 2 x skus")
    parser.add_argument("--minutes", type=int, default=30, help="event time covered")
    parser.add_argument("--per-window", type=int, default=2, help="orders per sku per window")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--history-days", type=float, default=1.0, help="0: skip scoring side")
    args = parser.parse_args(argv)

    # pandas before the baseline too: a running detector always has it loaded.
    import pandas as pd  # noqa: F401

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

    if args.history_days > 0:
        names = sorted(series)
        before = current_rss()
        t = time.perf_counter()
        frame = points_history(names, args.history_days)
        build_s = time.perf_counter() - t
        gc.collect()
        after = current_rss()
        size = int(frame.memory_usage(index=True, deep=True).sum())
        steps = len(frame) // max(len(names), 1)
        panel_bytes = steps * len(names) * 8
        print(
            f"scoring history: {len(frame):,} points ({len(names):,} series x {steps} x 5m, "
            f"{args.history_days:g} day(s)), built in {build_s:.1f} s"
        )
        print(f"points frame: {mib(size)} ({size / max(len(frame), 1):.0f} B/point)")
        if before is not None and after is not None:
            print(f"points frame held RSS: +{mib(after - before)} beside the aggregator")
        t = time.perf_counter()
        cats = frame["series"].astype("category").memory_usage(index=False, deep=True)
        text = frame["series"].memory_usage(index=False, deep=True)
        print(
            f"series column: {mib(text)} as strings, {mib(cats)} as a categorical "
            f"(converted in {time.perf_counter() - t:.1f} s)"
        )
        print(f"as a float64 panel (time x series): {mib(panel_bytes)}")
        del frame

    total_peak = peak_rss()
    verdict = "within" if total_peak <= 2 * 1024 * MIB else "OVER"
    what = "aggregator"
    if args.history_days > 0:
        what += " + points frame, with its build's temporaries"
    print(f"process peak RSS: {mib(total_peak)} ({what}; {verdict} the 2 GiB target)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
