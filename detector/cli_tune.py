"""``detector tune``: search each metric's scoring settings on its history and labels.

The history is what ``detector run`` stored (the pipeline's ``store:``, ``DETECTOR_STORE`` or
``--store``), or a backtest's ``metrics.csv`` (``--metrics``). Labels are labels files (the
format of ``detector evaluate``) plus the verdicts people gave with ``detector alerts label``
in that store. The search itself is :func:`detector.tuning.tune`; this module reads the
inputs, prints the figures and the diff, and writes the pipeline file only with ``--write``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import click

from detector.cli import _fail_cleanly
from detector.errors import ConfigError, InputError


def _read_labels(paths: tuple[str, ...]) -> Any:
    from detector.evaluation.incidents import Labels, load_labels

    incidents: list[Any] = []
    gaps: list[Any] = []
    for path in paths:
        labels = load_labels(path)
        incidents += labels.incidents
        gaps += labels.gaps
    return Labels(tuple(incidents), tuple(gaps))


def _write_atomically(path: Path, text: str, expected: str) -> None:
    """Replace ``path`` with ``text``, unless someone changed it since it was read."""
    if path.read_text(encoding="utf-8") != expected:
        raise ConfigError(f"{path} changed while tuning; run detector tune again")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.command("tune")
@click.option("--pipeline", "pipeline_file", required=True, help="Pipeline YAML file.")
@click.option(
    "--labels",
    "labels_paths",
    multiple=True,
    help="Labels JSON (incidents, gaps), as for detector evaluate (repeatable). Alerts "
    "labelled with `detector alerts label` in the store are used too.",
)
@click.option("--metric", "metric_names", multiple=True, help="Only this metric (repeatable).")
@click.option("--store", "store_url", default=None, help="Store URL (default: the pipeline's).")
@click.option(
    "--metrics",
    "metrics_path",
    default=None,
    help="Tune on this metrics.csv (from detector backtest) instead of the store's points.",
)
@click.option("--write", is_flag=True, help="Write the tuned settings into the pipeline file.")
@click.option(
    "--holdout",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.3,
    show_default=True,
    help="Fraction of the history, at its end, kept out of the search and reported apart.",
)
@click.option(
    "--warmup",
    default="7D",
    show_default=True,
    help="Time at the start of the history not evaluated (a causal detector learns there).",
)
@click.option("--grace", default="30min", show_default=True, help="Accepted alert delay.")
@click.option(
    "--penalty",
    type=click.FloatRange(min=0),
    default=0.1,
    show_default=True,
    help="Objective: F1 - PENALTY x false alerts per series-week.",
)
@click.option(
    "--models",
    default=None,
    help="Models to try, comma-separated (default: every registered model; see detector models).",
)
@click.option(
    "--search",
    "search",
    default="sensitivity,model,min_duration,min_change",
    show_default=True,
    help="The settings that may change, comma-separated.",
)
@_fail_cleanly
def tune(
    pipeline_file: str,
    labels_paths: tuple[str, ...],
    metric_names: tuple[str, ...],
    store_url: str | None,
    metrics_path: str | None,
    write: bool,
    holdout: float,
    warmup: str,
    grace: str,
    penalty: float,
    models: str | None,
    search: str,
) -> None:
    """Search model, sensitivity, min_duration and min_change per metric against labels.

    Settings are chosen on the earlier part of the history and reported on the held-out later
    part as well. The pipeline file is changed only with --write, after the diff is shown;
    comments and formatting stay.
    """
    import pandas as pd

    from detector.cli_stream import _store_url
    from detector.pipeline.config import parse_pipeline
    from detector.pipeline.edit import diff
    from detector.store import open_store
    from detector.tuning import feedback_labels, history_from_metrics_csv, stored_history
    from detector.tuning import tune as run_tune

    path = Path(pipeline_file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the pipeline: {exc.strerror or exc}", source=path) from None
    pipeline = parse_pipeline(text, source=pipeline_file)
    try:
        warmup_td, grace_td = pd.Timedelta(warmup), pd.Timedelta(grace)
    except ValueError as exc:
        raise ConfigError(
            f"--warmup/--grace must be durations such as 7D or 30min: {exc}"
        ) from None
    labels = _read_labels(labels_paths)
    store = None
    try:
        if metrics_path is None or store_url is not None:
            store = open_store(_store_url(pipeline, store_url))
        history = (
            history_from_metrics_csv(metrics_path, pipeline)
            if metrics_path is not None
            else stored_history(store, pipeline)
        )
        false_alerts: list[Any] = []
        taught = None
        if store is not None:
            from detector.calendars import load_feedback

            taught = load_feedback(store, pipeline.name)
            true, false_alerts, counts = feedback_labels(
                store, pipeline, history["timestamp"].max()
            )
            labels = type(labels)(labels.incidents + tuple(true), labels.gaps)
            click.echo(_feedback_line(store.url, counts), err=True)
    finally:
        if store is not None:
            store.close()
    result = run_tune(
        pipeline,
        history,
        labels,
        metrics=metric_names or None,
        false_alerts=false_alerts,
        holdout=holdout,
        warmup=warmup_td,
        grace=grace_td,
        penalty=penalty,
        models=[m.strip() for m in models.split(",") if m.strip()] if models else None,
        search=[s.strip() for s in search.split(",") if s.strip()],
        feedback=taught,
        progress=lambda line: click.echo(line, err=True),
    )
    click.echo(result.summary())
    new = result.apply(text, source=pipeline_file)
    click.echo("")
    if new == text:
        click.echo(f"Nothing to change in {pipeline_file}.")
        return
    click.echo(diff(text, new, pipeline_file), nl=False)
    if write:
        _write_atomically(path, new, text)
        click.echo(f"Wrote {pipeline_file}.")
    else:
        click.echo(
            f"Not written. To apply: run the same command with --write (or: patch -p0 < the diff "
            f"above); {pipeline_file} is unchanged."
        )


def _feedback_line(url: str, counts: dict[str, int]) -> str:
    if not counts:
        return f"Feedback in {url}: no alert labelled yet (detector alerts label ID --as ...)."
    used = [f"{counts[k]} {k}" for k in ("true", "false-positive") if counts.get(k)]
    other = [f"{counts[k]} {k}" for k in ("expected", "new-normal") if counts.get(k)]
    line = f"Feedback in {url}: " + (", ".join(used) or "none usable")
    if other:
        line += f" ({', '.join(other)}: not labels; the models learn from them)"
    return line + "."
