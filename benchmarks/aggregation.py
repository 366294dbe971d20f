"""Aggregation throughput: events/s in memory and from a JSONL file, with a bare loop beside.

Usage::

    python benchmarks/aggregation.py [--weeks 2] [--batch 10000] [--repeat 3]

Events are the demo shop's (:func:`detector.datasets.events.make_shop_events`: orders,
payments, currency rates, tickets and heartbeats, with the few malformed, late and duplicate
events it injects) aggregated with ``pipelines/shop.yaml``: 5 metrics and 2 freshness checks,
every event validated against its schema. Four figures, best of ``--repeat`` runs:

- **bare loop**: a plain dict count of events per (type, minute) from the same decoded events,
  parsing each time with ``datetime.fromisoformat``: the floor of any pure-Python aggregation,
  for scale;
- **in memory**: :class:`~detector.aggregation.windows.WindowAggregator` over the decoded
  events in ``--batch`` sized batches, windows closed after each (what ``detector run`` does
  per poll): validation, time parsing, watermark, dedup, app activity, all metrics. The
  million decoded events are frozen out of the garbage collector's sight (``gc.freeze``),
  as in a stream consumer, which holds one poll's batch, not the whole input;
- **in memory, GC scanning the input**: the same with the input left to the collector, whose
  full collections then walk a million dicts: the price of holding a large input decoded;
- **JSONL file**: :func:`detector.backtest.aggregate_files` on the events written to a file:
  reading, orjson decoding and the above (what ``detector backtest`` does before scoring),
  with nothing else held and the collector tuned as the CLI tunes it
  (:func:`detector.runtime.tuned_gc`).

Targets (issue 3): >= 500,000 events/s in memory and >= 150,000 events/s from JSONL, one core.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def best(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time of ``repeat`` runs (the least disturbed by other processes)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weeks", type=int, default=2)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    from detector.aggregation.windows import WindowAggregator
    from detector.backtest import aggregate_files
    from detector.datasets.events import make_shop_events, write_events
    from detector.pipeline.config import load_pipeline
    from detector.runtime import tuned_gc

    pipeline = load_pipeline(ROOT / "pipelines" / "shop.yaml")
    shop = make_shop_events(seed=0, weeks=args.weeks)
    events = [e for e in shop.events if isinstance(e, dict)]
    n = len(events)
    print(f"{n:,} events ({args.weeks} week(s) of the demo shop), batches of {args.batch:,}")

    def bare() -> None:
        counts: dict[tuple[str, int], int] = {}
        parse = datetime.fromisoformat
        for ev in events:
            try:
                key = (ev["type"], int(parse(ev["ts"]).timestamp()) // 60)
            except (KeyError, TypeError, ValueError):
                continue
            counts[key] = counts.get(key, 0) + 1

    def in_memory() -> None:
        agg = WindowAggregator(pipeline)
        for a in range(0, n, args.batch):
            agg.add(events[a : a + args.batch])
            agg.close()
        agg.flush()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        write_events(events, path)
        size = path.stat().st_size

        def from_file() -> None:
            aggregate_files(pipeline, [path], chunk=args.batch)

        t_scanned = best(in_memory, args.repeat)
        gc.freeze()
        t_bare = best(bare, args.repeat)
        t_mem = best(in_memory, args.repeat)
        gc.unfreeze()
        events.clear()  # hold nothing while reading the file, as `detector backtest` does
        del shop
        gc.collect()
        with tuned_gc():
            t_file = best(from_file, args.repeat)
    print(f"bare dict loop     {n / t_bare:>12,.0f} events/s")
    print(f"in memory          {n / t_mem:>12,.0f} events/s   (target >= 500,000)")
    print(f"  GC scanning input{n / t_scanned:>12,.0f} events/s")
    print(
        f"JSONL file         {n / t_file:>12,.0f} events/s   (target >= 150,000; "
        f"{size / t_file / 1e6:.0f} MB/s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
