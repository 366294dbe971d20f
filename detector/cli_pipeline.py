"""Commands that work on pipelines and events: ``validate``, ``backtest``, ``evaluate``, ``demo``.

Registered on the ``detector`` group by :mod:`detector.cli`; kept apart so that ``cli.py`` stays
the small place that maps errors to exit codes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from detector.cli import _fail_cleanly, causal_option, engine_options, main
from detector.errors import InputError
from detector.runtime import tuned_gc


@main.command()
@click.argument("pipeline_file", metavar="FILE")
@_fail_cleanly
def validate(pipeline_file: str) -> None:
    """Check a pipeline file; list every problem with its line (exit 2 if there is one)."""
    from detector.pipeline.config import load_pipeline

    p = load_pipeline(pipeline_file)
    n_series = len(p.metrics) + len(p.freshness)
    click.echo(
        f"{pipeline_file}: OK: pipeline {p.name!r}, {len(p.metrics)} metrics, "
        f"{len(p.freshness)} freshness checks, {len(p.events)} event types, "
        f"{len(p.emitters)} emitters ({n_series} definitions)"
    )


def _progress_total(paths: tuple[str, ...]) -> int:
    return sum(Path(p).stat().st_size for p in paths if Path(p).is_file())


@main.command()
@click.option("--pipeline", "pipeline_file", required=True, help="Pipeline YAML file.")
@click.argument("events", nargs=-1, required=True, metavar="EVENTS...")
@click.option("-o", "--output", "outdir", required=True, help="Output directory.")
@causal_option
@click.option("--no-report", is_flag=True, help="Skip report.html (faster).")
@click.option(
    "--notifications",
    is_flag=True,
    help="Run the alert router in dry-run mode: OUTDIR/notifications.jsonl (nothing is sent).",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a tty).")
@engine_options
@_fail_cleanly
def backtest(
    pipeline_file: str,
    events: tuple[str, ...],
    outdir: str,
    causal: bool,
    no_report: bool,
    notifications: bool,
    progress: bool | None,
    engine: str,
    scheduler: str | None,
) -> None:
    """Aggregate EVENTS (JSONL, CSV or Parquet; .gz allowed) and score them as the stream would.

    Writes OUTDIR/metrics.csv (timestamp, series, value), OUTDIR/anomalies.csv (the columns of
    `detector score`, anomalous rows only), OUTDIR/scores.csv (every window scored),
    OUTDIR/rejected.jsonl (events not counted, with the reason) and OUTDIR/report.html.
    """
    from detector.backtest import run_backtest
    from detector.events.read import event_format
    from detector.pipeline.config import load_pipeline
    from detector.scoring.engines import check_engine, open_engine

    pipeline = load_pipeline(pipeline_file)
    for path in events:
        event_format(path)
        if not Path(path).is_file():
            raise InputError("file not found", source=path)
    check_engine(engine, scheduler)
    show = sys.stderr.isatty() if progress is None else progress
    started = time.perf_counter()
    with (
        open_engine(engine, scheduler) as eng,
        tuned_gc(),
        click.progressbar(
            length=_progress_total(events),
            label="reading events",
            file=sys.stderr if show else None,
        )
        if show
        else _NoBar() as bar,
    ):
        result = run_backtest(
            pipeline,
            events,
            outdir,
            causal=causal,
            progress=bar.update,
            report=not no_report,
            notifications=notifications,
            engine=eng,
        )
    _print_run(result, time.perf_counter() - started)


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        return None


def _print_run(result: Any, seconds: float) -> None:
    c = result.counters
    anomalies = result.anomalies
    click.echo(
        f"{c.get('events', 0):,} events read in {seconds:.1f} s: {c.get('accepted', 0):,} counted, "
        f"{c.get('rejected', 0):,} rejected ({c.get('late', 0):,} late), "
        f"{c.get('duplicate', 0):,} duplicates counted once",
        err=True,
    )
    n_missing = int(result.metrics["missing"].sum())
    click.echo(
        f"{result.metrics['series'].nunique()} series, {len(result.metrics):,} windows "
        f"({n_missing} missing: no data), {len(anomalies)} anomalous windows in "
        f"{anomalies['series'].nunique() if len(anomalies) else 0} series",
        err=True,
    )
    for reason, n in sorted(result.rejected_by_reason.items(), key=lambda kv: -kv[1])[:8]:
        click.echo(f"  rejected {n:>6,}  {reason}", err=True)
    if result.notifications is not None:
        n = result.notifications
        per = ", ".join(f"{k}: {v}" for k, v in n["by receiver"].items()) or "none"
        click.echo(
            f"alert router (dry run): {n['alerts fired']} alerts fired, {n['notifications']} "
            f"notifications ({per})",
            err=True,
        )
    for name, path in result.files.items():
        click.echo(f"  {name:<13} {path}", err=True)


@main.command()
@click.option("--labels", "labels_path", required=True, help="Labels JSON (incidents, gaps).")
@click.argument("predictions")
@click.option(
    "--metrics",
    "metrics_path",
    default=None,
    help="metrics.csv of the same run: the scored span, when PREDICTIONS holds anomalies only.",
)
@click.option("--grace", default="30min", show_default=True, help="Accepted alert delay.")
@click.option("--start", default=None, help="Ignore rows (and incidents) before this time.")
@_fail_cleanly
def evaluate(
    labels_path: str,
    predictions: str,
    metrics_path: str | None,
    grace: str,
    start: str | None,
) -> None:
    """Incident recall, alert precision, F1, false alerts per series-week, delay, NAB score.

    PREDICTIONS is scored output (the columns of `detector score`): backtest's scores.csv, or
    its anomalies.csv together with --metrics metrics.csv. The labels format is documented in
    detector/evaluation/incidents.py and the README.
    """
    # The steps of detector.evaluate, run here so the report is printed before the NAB score,
    # which stops the command with an error where it is undefined.
    from detector.api.evaluation import anomalous_rows_only, incident_nab, nab_line, on_scored_span
    from detector.api.inputs import load_scores, load_series
    from detector.evaluation.incidents import evaluate as run_evaluate
    from detector.evaluation.incidents import load_labels

    labels = load_labels(labels_path)
    pred = load_scores(predictions)
    if metrics_path:
        pred = on_scored_span(pred, load_series(metrics_path))
    elif anomalous_rows_only(pred):
        click.echo(
            "Warning: PREDICTIONS holds anomalous rows only, so false alerts per series-week "
            "and the NAB score lack the quiet rows; pass --metrics metrics.csv or use scores.csv.",
            err=True,
        )
    report = run_evaluate(pred, labels, grace=grace, start=start)
    click.echo(report.summary())
    click.echo(nab_line(incident_nab(pred, labels, start)))


@main.command()
@click.option("-o", "--output", "outdir", default="detector-demo", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--weeks", type=int, default=3, show_default=True, help="Weeks of events (>= 2).")
@_fail_cleanly
def demo(outdir: str, seed: int, weeks: int) -> None:
    """A generated shop with the mission's incidents: backtest, evaluate, report (offline).

    Writes DIR/events.jsonl and DIR/labels.json, runs the backtest of pipelines/shop.yaml over
    them into DIR, and prints which incidents were found, the false alerts, and how the
    ingestion gap was reported. Exit 0 when every incident is found with no false alert and
    the gap is reported as missing data, 1 otherwise.
    """
    from detector.demo import format_demo, run_demo

    started = time.perf_counter()
    click.echo(f"Generating {weeks} weeks of shop events (seed {seed}) in {outdir}/ ...", err=True)
    with tuned_gc():
        result = run_demo(outdir, seed=seed, weeks=weeks)
    click.echo(format_demo(result))
    click.echo(f"Done in {time.perf_counter() - started:.0f} s.", err=True)
    if not result.success:
        sys.exit(1)
