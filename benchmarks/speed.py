"""Speed and memory of causal scoring on a large panel.

Usage::

    python benchmarks/speed.py [--series 1000] [--weeks 4] [--model auto]

Generates ``--series`` seasonal count/sum series of ``--weeks`` weeks at 5 minutes with
:func:`detector.datasets.shop.make_panel` and scores them causally with
:func:`detector.scoring.score_frame` (the same call as ``detector score``, without file I/O).
Prints wall time per stage and the process's peak resident memory. The target is 1,000 series
x 8,064 points in <= 30 s with <= 2 GiB on a 2-core machine (one process, ``--engine local``).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time


def peak_rss_gib() -> float:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--weeks", type=int, default=4)
    parser.add_argument("--model", default="auto")
    parser.add_argument(
        "--chunk", type=int, default=None, help="Series per chunk (default: the engine's)."
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="Score under cProfile and print where the time went (slower than without).",
    )
    parser.add_argument("--write", metavar="PATH", help="Also write the generated series here.")
    args = parser.parse_args(argv)

    from detector.datasets.shop import make_panel
    from detector.scoring import score_frame

    t0 = time.perf_counter()
    data = make_panel(n_series=args.series, weeks=args.weeks, seed=0)
    if args.write:  # e.g. .parquet, to time the whole `detector score` command on it
        data.to_parquet(args.write) if args.write.endswith(".parquet") else data.to_csv(
            args.write, index=False
        )
    chunk = {} if args.chunk is None else {"chunk": args.chunk}
    t1 = time.perf_counter()
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        out = profiler.runcall(score_frame, data, model=args.model, causal=True, **chunk)
    else:
        out = score_frame(data, model=args.model, causal=True, **chunk)
    t2 = time.perf_counter()
    points = len(data)
    print(f"### Speed: {args.series} series x {points // args.series} points, model {args.model}")
    print()
    print("| stage | seconds |")
    print("|---|---:|")
    print(f"| generate data (not part of the target) | {t1 - t0:.1f} |")
    print(f"| score, causal (to_panel + model + decisions + output table) | {t2 - t1:.1f} |")
    print()
    print(
        f"{points:,} points scored at {points / (t2 - t1):,.0f} points/s; "
        f"{int(out['is_anomaly'].sum()):,} anomalous points; "
        f"peak memory {peak_rss_gib():.2f} GiB"
    )
    if args.profile:
        print()
        print("Where the time went (cProfile, cumulative seconds, the scoring's own functions):")
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(
            r"detector/(panel|kernels|models/(profile|noise|seasonality)|scoring/(engine|detect|calibration))",
            25,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
