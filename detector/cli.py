"""The ``detector`` command line: the one place that turns errors into exit codes.

Exit codes follow click: 0 on success, 1 for a runtime failure, 2 for bad input or usage (an
unreadable file, a missing column, an unknown model), always with one line on stderr that says
what is wrong and where.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from detector import __version__
from detector.errors import DetectorError

log = logging.getLogger("detector")


#: Shared by every command that scores (score, backtest): one meaning, one help text.
causal_option = click.option(
    "--causal/--no-causal",
    default=True,
    show_default=True,
    help="Causal: each point judged from earlier points only, as the live detector would. "
    "--no-causal: retrospective, fitted on the whole series.",
)


def engine_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--engine`` and ``--scheduler``, shared by every command that scores series (score,
    backtest, repair); :func:`detector.scoring.engines.open_engine` reads them."""
    func = click.option(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="With --engine dask: the scheduler of an existing cluster (tcp://host:8786). "
        "Without it a local cluster of one worker per core is started.",
    )(func)
    return click.option(
        "--engine",
        type=click.Choice(["local", "dask"]),
        default="local",
        show_default=True,
        help="Where series are scored: in this process, or spread over a dask.distributed "
        "cluster (pip install 'detector[dask]'). The output is the same.",
    )(func)


def _fail_cleanly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn DetectorError into a one-line message and its exit code, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DetectorError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="detector")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option(
    "--log-json",
    is_flag=True,
    envvar="DETECTOR_LOG_JSON",
    help="Log one JSON object per line (with correlation fields: series, window, alert, "
    "notification), for a log pipeline. Also DETECTOR_LOG_JSON=1.",
)
def main(verbose: int, log_json: bool) -> None:
    """Anomaly detection for business metrics."""
    level = logging.WARNING - 10 * min(verbose, 2)
    if log_json:
        from detector.logs import setup_logging

        setup_logging(json=True, level=level)
    else:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@click.argument("input_path", metavar="INPUT", type=str)
@click.option(
    "-o", "--output", required=True, help="Output file (.csv, .csv.gz, .parquet; '-' = stdout)."
)
@causal_option
@click.option("--freq", default=None, help="Bucket size, e.g. 5min or 1h (inferred when absent).")
@click.option("--model", default="auto", show_default=True, help="auto or a model name.")
@click.option(
    "--sensitivity",
    type=float,
    default=1.0,
    show_default=True,
    help="> 1 flags more, < 1 flags less.",
)
@click.option("--timestamp-col", default="timestamp", show_default=True)
@click.option("--series-col", default="series", show_default=True)
@click.option("--value-col", default="value", show_default=True)
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A model or decision parameter, e.g. -p min_duration=3 -p direction=down (repeatable).",
)
@engine_options
@_fail_cleanly
def score(
    input_path: str,
    output: str,
    causal: bool,
    freq: str | None,
    model: str,
    sensitivity: float,
    timestamp_col: str,
    series_col: str,
    value_col: str,
    params: tuple[str, ...],
    engine: str,
    scheduler: str | None,
) -> None:
    """Score a long-format series file (timestamp, series, value) and write every point.

    Output columns: timestamp, series, value, expected, lower, upper, score, is_anomaly, kind,
    reason. Missing buckets appear with an empty value and kind 'missing'.
    """
    from detector.io.series import Columns, read_series, write_scores
    from detector.panel import parse_freq
    from detector.scoring import DetectionParams, score_frame
    from detector.scoring.engine import check_scoring
    from detector.scoring.engines import check_engine, open_engine

    # Usage errors first, before reading a possibly large file. Engine parameters (refit,
    # min_history, confidence_ramp, chunk) pass through -p as well.
    extra = parse_params(params)
    check_scoring(model, extra)
    detection = {k: v for k, v in extra.items() if k in DetectionParams.__dataclass_fields__}
    DetectionParams(sensitivity=sensitivity, **detection)
    if freq is not None:
        parse_freq(freq)
    check_engine(engine, scheduler)
    started = time.perf_counter()
    cols = Columns(timestamp=timestamp_col, series=series_col, value=value_col)
    # The cluster first: an address that does not answer fails before a large file is read.
    with open_engine(engine, scheduler) as eng:
        data = read_series(input_path, cols)
        scored = score_frame(
            data, model=model, causal=causal, sensitivity=sensitivity, freq=freq, engine=eng,
            **extra,
        )  # fmt: skip
    write_scores(scored, output)
    anomalies = int(scored["is_anomaly"].sum())
    series = scored["series"].nunique()
    log.info(
        "scored %d points of %d series in %.1fs", len(scored), series, time.perf_counter() - started
    )
    missing = int((scored["kind"] == "missing").sum())
    notes = [f"{missing} missing buckets"] if missing else []
    if data.attrs.get("duplicates_dropped"):
        notes.append(f"{data.attrs['duplicates_dropped']} exact duplicate rows kept once")
    if scored.attrs.get("merged_rows"):
        notes.append(
            f"{scored.attrs['merged_rows']} rows averaged into shared {freq or 'time'} buckets"
        )
    extra = f" ({'; '.join(notes)})" if notes else ""
    click.echo(
        f"{len(scored)} points of {series} series scored, {anomalies} anomalous points{extra}"
        + (f"; wrote {output}" if output != "-" else ""),
        err=True,
    )


def parse_params(items: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values are read as JSON when they can be (3, 0.5, true, [1, 2]).

    >>> parse_params(("min_duration=3", "direction=down", "scale_thresholds=[1,1,1,1,0.9]"))
    {'min_duration': 3, 'direction': 'down', 'scale_thresholds': [1, 1, 1, 1, 0.9]}
    """
    import json

    from detector.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"A --param must look like KEY=VALUE. Got {item!r} instead.")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out[key.strip()] = value
    return out


@main.command()
@click.argument("dataset", type=click.Choice(["shop"]))
@click.option("-o", "--output", required=True, help="Series file to write (.csv, .parquet).")
@click.option(
    "--labels", "labels_path", default=None, help="Also write the incident labels (JSON)."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--weeks", type=int, default=4, show_default=True)
@click.option("--no-incidents", is_flag=True, help="Clean data: no incidents, no gaps.")
@_fail_cleanly
def generate(
    dataset: str,
    output: str,
    labels_path: str | None,
    seed: int,
    weeks: int,
    no_incidents: bool,
) -> None:
    """Write a labelled synthetic data set (5-minute shop metrics with injected incidents).

    The series file has the columns detector score reads (timestamp, series, value,
    denominator); the labels file is what benchmarks/quality.py evaluates against.
    """
    from detector.datasets.shop import make_shop_metrics
    from detector.evaluation.incidents import labels_from_shop, save_labels

    clean = not no_incidents
    shop = make_shop_metrics(seed=seed, weeks=weeks, incidents=clean, gaps=clean)
    data = shop.data.copy()
    if output.lower().endswith((".parquet", ".pq")):
        data.to_parquet(output, index=False)
    else:
        data.assign(timestamp=data["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(
            output, index=False, float_format="%.6g"
        )
    if labels_path:
        save_labels(labels_from_shop(shop), labels_path)
    click.echo(
        f"{data['series'].nunique()} series, {len(data)} rows, {len(shop.incidents)} incidents "
        f"(seed {seed}); wrote {output}" + (f" and {labels_path}" if labels_path else ""),
        err=True,
    )


@main.command("models")
def list_models() -> None:
    """List the model names accepted by --model."""
    from detector.models import available_models

    click.echo("auto")
    for name in available_models():
        click.echo(name)


# The other commands register themselves on ``main``: validate, backtest, evaluate, demo
# (cli_pipeline); emit, replay (cli_emit); run, metrics, anomalies (cli_stream).
from detector import cli_alerts, cli_emit, cli_pipeline, cli_stream  # noqa: E402, F401
from detector.cli_tune import tune as _tune  # noqa: E402

main.add_command(_tune)

if __name__ == "__main__":  # pragma: no cover
    main()
