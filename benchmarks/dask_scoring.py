"""Scoring history on a dask LocalCluster: the speed-up over one process, and the cost per task.

Usage::

    python benchmarks/dask_scoring.py [--series 300] [--weeks 4] [--workers 2] [--tasks 200]

Generates ``--series`` seasonal series of ``--weeks`` weeks at 5 minutes
(:func:`detector.datasets.shop.make_panel`, as ``benchmarks/speed.py``) and scores them
causally with :func:`detector.scoring.score_frame` (``detector score`` without file I/O) three
times: in this process (``--engine local``: ``score_panel``'s default chunks), in this process cut
into the chunks the cluster gets (one per worker: what the split alone costs), and on a
``LocalCluster`` of ``--workers`` single-threaded worker processes (``--engine dask``). The
three tables must be identical (checked exactly). Wall and CPU seconds are printed for each,
the workers' CPU read from their processes before and after: on a shared machine, how many
cores the workers actually had explains the speed-up.

The overhead per task is measured two ways: ``--tasks`` trivial tasks submitted at once
through the engine (scatter, schedule, run, gather: wall time / tasks), and one trivial task
at a time (a round trip, median of 20). Before any clock runs, this process and every worker
score a small panel once, so imports and the compiled kernels' first load are not counted
(the cluster's start-up is printed on its own line).
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import sys
import time
from typing import Any


def _noop() -> None:
    """A task that does nothing: what remains of its time is the engine's."""


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=300)
    parser.add_argument("--weeks", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=200)
    args = parser.parse_args(argv)

    import pandas as pd

    from detector.datasets.shop import make_panel
    from detector.scoring import score_frame, score_panel
    from detector.scoring.engines import chunk_slices, open_engine

    data = make_panel(n_series=args.series, weeks=args.weeks, seed=0)
    # Imports and compiled kernels, once, before any clock runs; chunks of two series or more,
    # so that the kernels see arrays laid out as the timed chunks' are.
    warm = make_panel(n_series=2 * args.workers, weeks=1, seed=1)
    score_frame(warm)
    score_frame(warm, chunk=2)

    def run(**kwargs: Any) -> tuple[pd.DataFrame, float, float]:
        c0 = time.process_time()
        out, wall = timed(score_frame, data, **kwargs)
        return out, wall, time.process_time() - c0

    local, t_local, cpu_local = run()
    chunk = inspect.signature(score_panel).parameters["chunk"].default
    split = len(chunk_slices(args.series, chunk, args.workers))
    width = -(-args.series // split)
    local_split, t_split, cpu_split = run(chunk=width)
    pd.testing.assert_frame_equal(local_split, local, check_exact=True)

    load = os.getloadavg()[0]
    started = time.perf_counter()
    with open_engine("dask", n_workers=args.workers) as engine:
        t_start = time.perf_counter() - started
        _, t_warm = timed(score_frame, warm, chunk=2, engine=engine)  # every worker imports
        before = engine.client.run(time.process_time)
        remote, t_dask, cpu_here = run(engine=engine)
        after = engine.client.run(time.process_time)
        cpu_workers = sum(after[w] - before[w] for w in after)
        pd.testing.assert_frame_equal(remote, local, check_exact=True)
        _, t_many = timed(engine.map, _noop, [{}] * args.tasks)
        rounds = [timed(engine.map, _noop, [{}])[1] for _ in range(20)]

    points = len(data)
    print(
        f"### Dask: {args.series} series x {points // args.series} points, causal, "
        f"{args.workers} workers (LocalCluster, 1 thread each); {os.cpu_count()} cores, "
        f"load average {load:.2f} before the cluster started"
    )
    print()
    print("| score_frame | wall s | CPU s |")
    print("|---|---:|---:|")
    print(f"| --engine local (chunks of up to {chunk}) | {t_local:.2f} | {cpu_local:.2f} |")
    print(
        f"| local, {split} chunks of {width} (the tasks' split) | {t_split:.2f} | {cpu_split:.2f} |"
    )
    print(
        f"| --engine dask ({split} tasks) | {t_dask:.2f} | {cpu_workers:.2f} workers + "
        f"{cpu_here:.2f} here |"
    )
    print(f"| cluster start-up (not in the rows above) | {t_start:.2f} | |")
    print(f"| workers' first task: imports, kernels (not above) | {t_warm:.2f} | |")
    print()
    extra = cpu_workers + cpu_here - cpu_split
    print(
        f"Speed-up with {args.workers} workers: {t_local / t_dask:.2f}x ({t_local:.1f} s -> "
        f"{t_dask:.1f} s); outputs identical. The workers had {cpu_workers / t_dask:.2f} "
        f"cores' worth over the run (their CPU s / wall s); the cluster spent {extra:+.2f} CPU s "
        f"more than this process on the same chunks ({extra / split:+.2f} s per task: moving "
        "chunks and results, this process's share)."
    )
    print(
        f"Overhead per task: {t_many / args.tasks * 1e3:.2f} ms ({args.tasks} trivial tasks "
        f"submitted at once: {t_many:.2f} s / {args.tasks}), "
        f"{statistics.median(rounds) * 1e3:.1f} ms for one task's round trip (median of 20)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
