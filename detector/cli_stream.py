"""Streaming commands: ``run`` (the pipeline on Kafka), ``metrics`` and ``anomalies`` (exports).

Where a setting comes from, first found wins: the command-line flag, the environment
(``DETECTOR_BOOTSTRAP_SERVERS``, ``DETECTOR_STORE``), the pipeline file (its Kafka source and
``store.url``), the default (``sqlite:///detector.db``).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

import click

from detector.cli import _fail_cleanly, engine_options, main
from detector.errors import ConfigError

DEFAULT_STORE = "sqlite:///detector.db"


def _kafka_source(pipeline: Any) -> Any:
    for source in pipeline.sources:
        if source.kafka is not None:
            return source.kafka
    return None


def _bootstrap(pipeline: Any, flag: str | None) -> str:
    if flag:
        return flag
    if os.environ.get("DETECTOR_BOOTSTRAP_SERVERS"):
        return os.environ["DETECTOR_BOOTSTRAP_SERVERS"]
    kafka = _kafka_source(pipeline)
    if kafka is not None and kafka.bootstrap_servers:
        servers = kafka.bootstrap_servers
        return servers if isinstance(servers, str) else ",".join(servers)
    raise ConfigError(
        "no Kafka bootstrap servers: give --bootstrap-servers, set DETECTOR_BOOTSTRAP_SERVERS, "
        "or add sources: [{kafka: {topic: ..., bootstrap_servers: [...]}}] to the pipeline"
    )


def _topic(pipeline: Any, flag: str | None) -> str:
    if flag:
        return flag
    kafka = _kafka_source(pipeline)
    if kafka is not None and kafka.topic:
        return str(kafka.topic)
    raise ConfigError("no topic: give --topic or a Kafka source with a topic in the pipeline")


def _store_url(pipeline: Any, flag: str | None) -> str:
    if flag:
        return flag
    if os.environ.get("DETECTOR_STORE"):
        return os.environ["DETECTOR_STORE"]
    if pipeline.store is not None and pipeline.store.url:
        return str(pipeline.store.url)
    return DEFAULT_STORE


store_option = click.option(
    "--store", "store_url", default=None, help="Store URL (sqlite:///FILE or postgresql://...)."
)


@main.command()
@click.option("--pipeline", "pipeline_file", required=True, help="Pipeline YAML file.")
@click.option("--group", default=None, help="Consumer group (default: detector-PIPELINE).")
@click.option("--bootstrap-servers", default=None, help="host:port[,host:port] of the brokers.")
@click.option("--topic", default=None, help="Topic (default: the pipeline's Kafka source).")
@store_option
@click.option(
    "--idle-close",
    default=30.0,
    show_default=True,
    help="Seconds without records after which stream time follows the wall clock "
    "(quiet series get their zero windows).",
)
@click.option("--score-every", default=5.0, show_default=True, help="Seconds between scorings.")
@click.option(
    "--score-budget",
    type=click.IntRange(min=1),
    default=400_000,
    show_default=True,
    help="Stored points read and scored at once; bounds scoring's memory (~500 B per point) "
    "whatever the number of series.",
)
@click.option(
    "--score-lookback",
    default="35d",
    show_default=True,
    help="History read before the windows scored ('none': all of it). The default holds the "
    "models' history, calibration and warm-up; a round then costs the same after a year.",
)
@click.option(
    "--max-idle",
    type=float,
    default=None,
    help="Exit after this many seconds without a record (catch up on a backlog, then stop). "
    "Default: run until SIGTERM.",
)
@click.option(
    "--session-timeout",
    default=10.0,
    show_default=True,
    help="Seconds the group waits for a silent member before handing its partitions on.",
)
@click.option(
    "--client",
    type=click.Choice(["kafka-python", "confluent"]),
    default=None,
    help="Consumer library (default: the pipeline's `client:`, else kafka-python).",
)
@click.option("--no-dlq", is_flag=True, help="Do not write rejected records to TOPIC.dlq.")
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Serve /metrics (Prometheus), /healthz and /readyz on this port (0: any free one).",
)
@click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, help="Address to serve them on."
)
@click.option(
    "--ready-max-lag",
    default=100_000,
    show_default=True,
    help="/readyz fails while the consumer is more records than this behind.",
)
@click.option(
    "--ready-window-age",
    default=900.0,
    show_default=True,
    help="/readyz fails when no window has closed for this many seconds.",
)
@click.option(
    "--series-gauges",
    is_flag=True,
    help="Also export each series' value/expected/lower/upper (one gauge set per series).",
)
@_fail_cleanly
def run(
    pipeline_file: str,
    group: str | None,
    bootstrap_servers: str | None,
    topic: str | None,
    store_url: str | None,
    idle_close: float,
    score_every: float,
    score_budget: int,
    score_lookback: str,
    max_idle: float | None,
    session_timeout: float,
    client: str | None,
    no_dlq: bool,
    metrics_port: int | None,
    metrics_host: str,
    ready_max_lag: int,
    ready_window_age: float,
    series_gauges: bool,
) -> None:
    """Run the pipeline on Kafka: aggregate, score, keep results in the store, exactly once.

    Several instances with the same --group split the topic's partitions. SIGTERM or SIGINT:
    the current batch is finished and committed, the group is left, exit 0. SIGHUP: the
    pipeline file is read again and, if valid, its scoring and alerting settings are applied;
    a bad file (or one that changes what is aggregated) is refused, logged, and the running
    pipeline goes on.
    """
    from detector.pipeline.config import load_pipeline
    from detector.runtime import tuned_gc
    from detector.store import open_store
    from detector.stream.runner import StreamRunner

    pipeline = load_pipeline(pipeline_file)
    kafka = _kafka_source(pipeline)
    group = group or (kafka.group if kafka is not None and kafka.group else None)
    group = group or f"detector-{pipeline.name}"
    store = open_store(_store_url(pipeline, store_url))
    # Load (or compile) the scoring's compiled loops now, not in the first round mid-stream.
    from detector.scoring.engine import warm_up

    logging.getLogger("detector").debug("scoring loops ready in %.1f s", warm_up())
    metrics = None
    if metrics_port is not None:
        from detector.ops.metrics import StreamMetrics

        metrics = StreamMetrics(series_gauges=series_gauges)
    runner = StreamRunner(
        pipeline,
        store,
        topic=_topic(pipeline, topic),
        group=group,
        bootstrap_servers=_bootstrap(pipeline, bootstrap_servers),
        dead_letters=not no_dlq,
        idle_close=idle_close,
        score_every=score_every,
        score_budget=score_budget,
        score_lookback=_lookback(score_lookback),
        session_timeout_ms=int(session_timeout * 1000),
        client=client or (kafka.client if kafka is not None else "kafka-python"),
        metrics=metrics,
    )
    server = None
    if metrics is not None:
        server = _ops_server(runner, store, metrics, metrics_host, metrics_port,
                             ready_max_lag, ready_window_age)  # fmt: skip
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        logging.getLogger("detector").info("signal %d: finishing the batch", signum)
        stop.set()

    def _reload(signum: int, _frame: Any) -> None:
        logging.getLogger("detector").info("SIGHUP: reloading %s", pipeline_file)
        runner.request_reload(lambda: load_pipeline(pipeline_file))

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, _reload)
    click.echo(
        f"detector run: pipeline {pipeline.name!r}, topic {runner.topic!r}, group {group!r}, "
        f"store {store.url}",
        err=True,
    )
    try:
        with tuned_gc():
            stats = runner.run(stop, max_idle=max_idle)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if server is not None:
            server.stop()
        store.close()
    click.echo(
        f"{stats.records:,} records, {stats.rejected:,} rejected ({stats.dead_letters:,} to "
        f"{runner.topic}.dlq), {stats.points:,} points, {stats.anomalies:,} anomalies, "
        f"{stats.commits:,} commits; {stats.forwarded:,} forwarded to the group's merger, "
        f"{stats.merged:,} merged from other instances",
        err=True,
    )


def _ops_server(
    runner: Any,
    store: Any,
    metrics: Any,
    host: str,
    port: int,
    max_lag: int,
    window_age: float,
) -> Any:
    """/metrics, /healthz (the consumer loop turns) and /readyz (its dependencies answer)."""
    import time

    from detector.ops.health import (
        Check,
        assignment_check,
        lag_check,
        recent_window_check,
        store_check,
    )
    from detector.ops.server import OpsServer

    def loop_alive() -> tuple[bool, str]:
        idle = time.monotonic() - runner.last_loop
        return idle < 60, f"consumer loop last turned {idle:.1f} s ago"

    def broker() -> tuple[bool, str]:
        quiet = time.monotonic() - runner.last_poll_ok
        return quiet < 30, f"last successful poll {quiet:.1f} s ago"

    def assigned() -> set[Any]:
        source = runner._source
        return set(source.assignment()) if source is not None else set()

    server = OpsServer(
        port,
        host,
        metrics=metrics,
        live=[Check("loop", loop_alive)],
        ready=[
            Check("broker", broker),
            assignment_check(assigned),
            store_check(store),
            lag_check(metrics.lag_total, max_lag),
            # a member closes no window itself: the group's merger says when it last did
            recent_window_check(
                lambda: (
                    metrics.last_window_closed() if runner.merging else runner.group_last_closed()
                ),
                window_age,
            ),
        ],
    )
    server.start()
    click.echo(f"detector run: metrics and health on {server.url}", err=True)
    return server


def _time(value: str | None) -> Any:
    if value is None:
        return None
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a time ({exc})") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _export_options(func: Any) -> Any:
    """The options of both exports (metrics, anomalies)."""
    for option in reversed([
        click.option("--pipeline", "pipeline_file", required=True, help="Pipeline YAML file."),
        click.option("--from", "start", default=None, help="First window (ISO, UTC if naive)."),
        click.option("--to", "end", default=None, help="Windows before this time."),
        store_option,
        click.option("-o", "--output", required=True, help="CSV file to write."),
    ]):  # fmt: skip
        func = option(func)
    return func


@main.command()
@_export_options
def metrics(
    pipeline_file: str, start: str | None, end: str | None, store_url: str | None, output: str
) -> None:
    """Export stored metrics as backtest's metrics.csv (timestamp, series, value)."""
    _export(pipeline_file, start, end, store_url, output, "metrics")


@main.command()
@_export_options
def anomalies(
    pipeline_file: str, start: str | None, end: str | None, store_url: str | None, output: str
) -> None:
    """Export stored anomalies as backtest's anomalies.csv (the columns of `detector score`)."""
    _export(pipeline_file, start, end, store_url, output, "anomalies")


@_fail_cleanly
def _export(
    pipeline_file: str,
    start: str | None,
    end: str | None,
    store_url: str | None,
    output: str,
    what: str,
) -> None:
    from detector.backtest import write_metrics
    from detector.io.series import write_scores
    from detector.pipeline.config import load_pipeline
    from detector.store import open_store
    from detector.types import OUTPUT_COLUMNS

    pipeline = load_pipeline(pipeline_file)
    store = open_store(_store_url(pipeline, store_url))
    try:
        if what == "metrics":
            data = store.points(pipeline.name, start=_time(start), end=_time(end))
            data = data.sort_values(["metric", "series", "timestamp"], kind="stable")
            write_metrics(data, output)
        else:
            data = store.anomalies(pipeline.name, start=_time(start), end=_time(end))
            write_scores(data.loc[:, list(OUTPUT_COLUMNS)], output)
    finally:
        store.close()
    click.echo(f"{len(data):,} rows -> {Path(output)}", err=True)


def _ends(consumer: Any, tps: list[Any], timeout: float = 5.0) -> dict[int, int]:
    """The end of each partition from a fetch's high watermark.

    A "latest offset" answer can be short by up to a producer batch on some Kafka-compatible
    brokers, while a fetch response carries the true high watermark: fetch one record from
    just before the answered end and read the watermark off the response.
    """
    import time

    answered = {tp: int(o) for tp, o in consumer.end_offsets(tps).items()}
    consumer.assign(tps)
    for tp, end in answered.items():
        consumer.seek(tp, max(0, end - 1))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        consumer.poll(timeout_ms=200, max_records=len(tps))
        if all(consumer.highwater(tp) is not None for tp in tps if answered[tp] > 0):
            break
    return {tp.partition: max(answered[tp], consumer.highwater(tp) or 0) for tp in tps}


@main.command()
@click.option("--pipeline", "pipeline_file", required=True, help="Pipeline YAML file.")
@click.option("--group", default=None, help="Consumer group (default: detector-PIPELINE).")
@click.option("--bootstrap-servers", default=None, help="host:port[,host:port] of the brokers.")
@click.option("--topic", default=None, help="Topic (default: the pipeline's Kafka source).")
@store_option
@click.option("--max-lag", default=100_000, show_default=True, help="Lag bound, in records.")
@click.option(
    "--window-age",
    default=900.0,
    show_default=True,
    help="Seconds (of stream time behind now) after which the newest window is too old.",
)
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@_fail_cleanly
def health(
    pipeline_file: str,
    group: str | None,
    bootstrap_servers: str | None,
    topic: str | None,
    store_url: str | None,
    max_lag: int,
    window_age: float,
    as_json: bool,
) -> None:
    """The checks /readyz makes, for a person: broker, topic, store, lag, windows, outbox.

    Looks from outside: the group's progress comes from the store (where `detector run`
    keeps its offsets), the topic's ends from the broker. Exit 1 if a critical check fails.
    """
    import sys

    from detector.ops.health import Check, run_checks, store_check
    from detector.pipeline.config import load_pipeline
    from detector.store import open_store

    pipeline = load_pipeline(pipeline_file)
    kafka = _kafka_source(pipeline)
    group = group or (kafka.group if kafka is not None and kafka.group else None)
    group = group or f"detector-{pipeline.name}"
    servers = _bootstrap(pipeline, bootstrap_servers)
    name = _topic(pipeline, topic)
    store = open_store(_store_url(pipeline, store_url))
    ends: dict[int, int] = {}

    def broker() -> tuple[bool, str]:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=servers, request_timeout_ms=5000)
        try:
            parts = consumer.partitions_for_topic(name)
            if not parts:
                return False, f"topic {name!r} not found at {servers}"
            ends.update(_ends(consumer, [TopicPartition(name, p) for p in parts]))
            return True, f"{servers}: topic {name!r} has {len(parts)} partitions"
        finally:
            consumer.close()

    def lag() -> tuple[bool, str]:
        if not ends:
            return False, "unknown (broker not reachable)"
        done = store.load(pipeline.name, group).offsets
        behind = {p: max(0, end - done.get((name, p), 0)) for p, end in ends.items()}
        n = sum(behind.values())
        parts = ", ".join(f"{name}[{p}] {b:,}" for p, b in sorted(behind.items()))
        return n <= max_lag, f"group {group!r} is {n:,} records behind ({parts})"

    def windows() -> tuple[bool, str]:
        import pandas as pd

        newest = store.newest_point(pipeline.name)
        if newest is None:
            return False, "no window stored yet"

        age = (pd.Timestamp.now(tz="UTC") - newest).total_seconds()
        return (
            age <= window_age,
            f"newest window starts {newest:%Y-%m-%d %H:%M} UTC ({age:,.0f} s ago)",
        )

    def outbox() -> tuple[bool, str]:
        from detector.alerting.state import AlertState

        counts = AlertState(store, pipeline.name).outbox_counts()
        failed = counts.get("failed", 0)
        text = ", ".join(f"{k} {v}" for k, v in counts.items()) or "empty"
        return failed == 0, f"notifications: {text}"

    checks = [
        Check("broker", broker, timeout=15.0),
        store_check(store),
        Check("lag", lag, timeout=15.0),
        Check("windows", windows, critical=False),
        Check("outbox", outbox, critical=False),
    ]
    # The lag needs the broker's answer: run the broker check first.
    first = run_checks(checks[:1], timeout_per_check=15.0)
    rest = run_checks(checks[1:], timeout_per_check=15.0)
    from detector.ops.health import HealthReport

    report = HealthReport([*first.results, *rest.results])
    store.close()
    click.echo(report.to_json() if as_json else report.to_text())
    if not report.ok:
        sys.exit(1)


@main.command()
@click.option("--pipeline", "pipeline_file", required=True, help="Pipeline YAML file.")
@click.option("--from", "start", required=True, help="First window to repair (ISO, UTC if naive).")
@click.option("--to", "end", required=True, help="Repair the windows before this time.")
@click.argument("events", nargs=-1, metavar="[EVENTS...]")
@click.option("--bootstrap-servers", default=None, help="host:port[,host:port] of the brokers.")
@click.option("--topic", default=None, help="Topic (default: the pipeline's Kafka source).")
@store_option
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@engine_options
@_fail_cleanly
def repair(
    pipeline_file: str,
    start: str,
    end: str,
    events: tuple[str, ...],
    bootstrap_servers: str | None,
    topic: str | None,
    store_url: str | None,
    dry_run: bool,
    engine: str,
    scheduler: str | None,
) -> None:
    """Recompute [--from, --to) from EVENTS files (or, without them, the Kafka topic) and
    reconcile the store's metrics and anomalies, reporting what changed."""
    from detector.errors import InputError
    from detector.pipeline.config import load_pipeline
    from detector.repair import events_from_files, events_from_kafka, margin
    from detector.repair import repair as run_repair
    from detector.runtime import tuned_gc
    from detector.scoring.engines import check_engine, open_engine
    from detector.store import open_store

    pipeline = load_pipeline(pipeline_file)
    t1, t2 = _time(start), _time(end)
    if t2 <= t1:
        raise click.BadParameter("--to must be after --from", param_hint="--to")
    for path in events:
        if not Path(path).is_file():
            raise InputError("file not found", source=path)
    check_engine(engine, scheduler)
    if events:
        batches = events_from_files(events)
    else:
        servers, name = _bootstrap(pipeline, bootstrap_servers), _topic(pipeline, topic)
        batches = events_from_kafka(servers, name, t1 - margin(pipeline))
    store = open_store(_store_url(pipeline, store_url))
    try:
        with open_engine(engine, scheduler) as eng, tuned_gc():
            report = run_repair(pipeline, store, t1, t2, batches, dry_run=dry_run, engine=eng)
    finally:
        store.close()
    click.echo(report.to_text())


def _lookback(text: str) -> Any:
    """``--score-lookback``: a duration, or ``none`` for the whole history."""
    if text.strip().lower() in ("none", "all", "0"):
        return None
    from detector.pipeline.config import parse_duration

    try:
        return parse_duration(text)
    except (ValueError, TypeError) as exc:
        msg = f"{exc} (e.g. 35d, 12h, or none)"
        raise click.BadParameter(msg, param_hint="--score-lookback") from exc
