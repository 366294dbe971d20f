"""Backtest: a pipeline over event files, end to end, with the code the stream consumer uses.

Events are read in stream-sized chunks and folded into :class:`WindowAggregator` exactly as a
Kafka batch would be, windows are closed on the watermark, and every metric is then scored
causally (each point judged from earlier points only), so a backtest shows what the live
detector would have said at the time. Outputs (in ``OUTDIR``):

- ``metrics.csv``: ``timestamp, series, value``; one row per window and series, the window's
  start in UTC; an empty value is a window with no value (missing data, or no event for a
  mean or ratio);
- ``anomalies.csv``: the columns of ``detector score``, anomalous rows only;
- ``scores.csv``: the same columns for every window (what ``detector evaluate`` needs to count
  series-weeks and the NAB score);
- ``rejected.jsonl``: one JSON object per event that was not counted: ``reason``, ``origin``
  (file:line) and ``event`` (as decoded, or the raw line);
- ``report.html``: summary and plots (self-contained).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from detector.aggregation.windows import Point, Rejected, WindowAggregator
from detector.calendars.calendar import Calendar
from detector.calendars.effects import CODES
from detector.calendars.events import Event, LevelChange
from detector.errors import InputError
from detector.events.read import read_events
from detector.io.series import write_scores
from detector.pipeline.config import Pipeline
from detector.scoring.engine import score_frame
from detector.scoring.engines import Engine, LocalEngine, open_engine
from detector.scoring.freshness import score_freshness
from detector.types import OUTPUT_COLUMNS

__all__ = ["BacktestResult", "aggregate_files", "points_frame", "run_backtest", "score_metrics"]


@dataclass
class BacktestResult:
    """What a backtest produced (the frames are also written to ``outdir``)."""

    metrics: pd.DataFrame  # timestamp, series, value, denominator, metric, missing
    scores: pd.DataFrame  # OUTPUT_COLUMNS, every window of every series
    counters: dict[str, int]
    rejected_by_reason: dict[str, int]
    bad_values: dict[str, int]
    outdir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)
    notifications: dict[str, Any] | None = None  # the router's dry run, when asked for

    @property
    def anomalies(self) -> pd.DataFrame:
        found = self.scores.loc[self.scores["is_anomaly"].astype(bool)]
        # In time order, as `detector anomalies` exports a stream's: comparable line by line.
        return found.sort_values(["timestamp", "series"], kind="stable").reset_index(drop=True)


def points_frame(points: Sequence[Point]) -> pd.DataFrame:
    """Closed points as a table: timestamp (UTC), series, value, denominator, metric, missing."""
    if not points:
        cols = ["timestamp", "series", "value", "denominator", "metric", "missing"]
        return pd.DataFrame({c: [] for c in cols})
    metric, series, start, value, den, missing = zip(*points, strict=True)
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(np.asarray(start, dtype="int64"), unit="s", utc=True),
            "series": series,
            "value": np.asarray(value, dtype=float),
            "denominator": np.asarray([np.nan if d is None else d for d in den], dtype=float),
            "metric": metric,
            "missing": np.asarray(missing, dtype=bool),
        }
    )
    # A window emitted again (updated after an early close) replaces its earlier version.
    frame = frame.drop_duplicates(["series", "timestamp"], keep="last")
    return frame.sort_values(["metric", "series", "timestamp"], kind="stable").reset_index(
        drop=True
    )


def aggregate_files(
    pipeline: Pipeline,
    paths: Sequence[str | Path],
    *,
    on_rejected: Callable[[list[Rejected]], None] | None = None,
    progress: Callable[[int], None] | None = None,
    chunk: int = 10_000,
    log_silence: bool = False,
) -> tuple[pd.DataFrame, WindowAggregator]:
    """Aggregate event files into the pipeline's metrics (as a stream would, chunk by chunk).

    ``log_silence`` keeps the aggregator's record of silent apps (``agg.drain_silence()``),
    for the alert router's dry run.
    """
    agg = WindowAggregator(pipeline)
    agg.log_silence = log_silence
    points: list[Point] = []
    done = 0
    for c in read_events(paths, chunk=chunk):
        rejected = agg.add(c.events, c.origin)
        if rejected and on_rejected is not None:
            on_rejected(rejected)
        points.extend(agg.close())
        if progress is not None:
            progress(c.bytes_read - done if c.bytes_read >= done else c.bytes_read)
            done = c.bytes_read
    points.extend(agg.flush())
    return points_frame(points), agg


def score_metrics(
    pipeline: Pipeline,
    metrics: pd.DataFrame,
    *,
    causal: bool = True,
    timezones: dict[str, str] | None = None,
    calendar: Calendar | None = None,
    feedback: Calendar | Iterable[Event | LevelChange] | None = None,
    engine: str | Engine | Any = "local",
) -> pd.DataFrame:
    """Score every metric with its model and parameters, and every freshness check.

    Series of a segment with a time zone (``segments.market.timezones``) are scored on their
    local wall clock, so that their daily and weekly shape stays put across daylight-saving
    changes (see :func:`score_local`).

    The pipeline's ``calendars:`` (holidays per market, declared events) apply to every metric,
    or ``calendar`` instead when given; ``feedback`` adds what labelled alerts teach
    (:func:`detector.calendars.load_feedback`). Freshness checks are not modelled, so only
    their ``ignore`` spans apply to them: not scored.

    ``engine`` scores each metric's series: in this process, or on a dask cluster
    (:mod:`detector.scoring.engines`); opened once here for every metric, and the same result.
    """
    with open_engine(engine) as eng:
        return _score_metrics(pipeline, metrics, causal, timezones or {}, calendar, feedback, eng)


def _score_metrics(
    pipeline: Pipeline,
    metrics: pd.DataFrame,
    causal: bool,
    timezones: dict[str, str],
    calendar: Calendar | None,
    feedback: Calendar | Iterable[Event | LevelChange] | None,
    engine: Engine,
) -> pd.DataFrame:
    cal = (calendar if calendar is not None else Calendar.from_pipeline(pipeline)).merged(feedback)
    groups: list[dict[str, Any]] = []  # one per metric and time zone, in output order
    for m in pipeline.metrics:
        data = metrics.loc[metrics["metric"] == m.name]
        if data.empty:
            continue
        cols = ["timestamp", "series", "value"]
        if m.aggregation == "ratio":
            cols.append("denominator")
        assert m.window is not None
        kwargs: dict[str, Any] = dict(
            model=m.model or "auto",
            causal=causal,
            sensitivity=m.sensitivity or 1.0,
            freq=pd.tseries.frequencies.to_offset(m.window).freqstr,
            **m.params,
        )
        if cal:
            kwargs["calendar"] = cal
        tz_of = data["series"].map(lambda s: timezones.get(s, "UTC"))
        for tz, group in data.loc[:, cols].groupby(tz_of, sort=True):
            groups.append({"data": group, "tz": str(tz), "kwargs": kwargs})
    parts = _score_groups(groups, engine)
    for f in pipeline.freshness:
        data = metrics.loc[metrics["metric"] == f.name]
        if not data.empty:
            assert f.window is not None
            fresh = score_freshness(data, f, f.window)
            parts.append(_mute(fresh, cal, f.window, timezones) if cal else fresh)
    if not parts:
        return pd.DataFrame({c: [] for c in OUTPUT_COLUMNS})
    return pd.concat(parts, ignore_index=True)


def _score_groups(groups: list[dict[str, Any]], engine: Engine) -> list[pd.DataFrame]:
    """The scores of each (metric, time zone) group, in order.

    In this process the groups are scored one after the other. On a cluster they are
    independent work too: groups of at most a worker's share of the series go to the workers
    whole and all at once (a pipeline has many small groups: a metric per market), and a
    larger group is spread over every worker by :func:`~detector.scoring.score_panel`'s
    chunks. Either way each series is scored by the same code on the same panel.
    """
    if isinstance(engine, LocalEngine):
        return [_score_group(**g) for g in groups]
    sizes = [g["data"]["series"].nunique() for g in groups]
    share = sum(sizes) / engine.slots
    out: list[pd.DataFrame | None] = [None] * len(groups)
    whole = [i for i, size in enumerate(sizes) if size <= share]
    for i, scored in zip(whole, engine.map(_score_group, [groups[i] for i in whole]), strict=True):
        out[i] = scored
    for i in sorted(set(range(len(groups))) - set(whole)):
        g = groups[i]
        out[i] = _score_group(g["data"], g["tz"], {**g["kwargs"], "engine": engine})
    return [o for o in out if o is not None]


def _score_group(data: pd.DataFrame, tz: str, kwargs: dict[str, Any]) -> pd.DataFrame:
    """One metric's series of one time zone (module level: a dask task pickles it by name)."""
    return score_frame(data, **kwargs) if tz == "UTC" else score_local(data, tz, **kwargs)


def score_local(data: pd.DataFrame, tz: str, **kwargs: Any) -> pd.DataFrame:
    """Score series on the wall clock of ``tz``; rows come back on their UTC timestamps.

    The models' daily and weekly lags count buckets, so in UTC a market's evening peak moves
    by an hour at each daylight-saving change. On the local wall clock it stays put; the hour
    skipped in spring is simply missing there, and the hour lived twice in autumn is merged
    into one local bucket (its two values averaged for the model; each UTC row keeps its own
    value in the output). Anomaly reasons of such series give local times, and say so.
    """
    local = data["timestamp"].dt.tz_convert(tz).dt.tz_localize(None).dt.tz_localize("UTC")
    if kwargs.get("calendar") is not None:
        kwargs = {**kwargs, "clock": tz}  # holidays and naive event times are local
    scored = score_frame(data.assign(timestamp=local), **kwargs)
    scored = scored.rename(columns={"timestamp": "_local", "value": "_local_value"})
    back = data.loc[:, ["timestamp", "series", "value"]].assign(_local=local.to_numpy())
    out = back.merge(scored, on=["_local", "series"], how="left", validate="many_to_one")
    flagged = out["is_anomaly"].fillna(False).astype(bool).to_numpy()
    out["is_anomaly"] = flagged
    reasons = out["reason"].astype(object).fillna("")
    reasons[flagged] = reasons[flagged] + f" (times in {tz})"
    out["reason"] = reasons
    out["kind"] = out["kind"].astype(object).fillna("")
    return out.loc[:, list(OUTPUT_COLUMNS)]


def _mute(
    scored: pd.DataFrame, cal: Calendar, window: pd.Timedelta, timezones: dict[str, str]
) -> pd.DataFrame:
    """Take the ``ignore`` spans of a calendar out of scored rows (freshness checks)."""
    flagged = scored["is_anomaly"].astype(bool).to_numpy()
    if not flagged.any():
        return scored
    out = scored.copy()
    reasons = out["reason"].astype(object).to_numpy(copy=True)
    for series, rows in out.loc[flagged].groupby("series", sort=False):
        clock = timezones.get(str(series), "UTC")
        ts = pd.DatetimeIndex(rows["timestamp"]).tz_convert(clock).tz_localize(None)
        index = ts.tz_localize("UTC")
        effects = cal.resolve([str(series)], index, window, clock)
        if effects is None:
            continue
        muted = effects.code[:, 0] == CODES.index("ignore")
        at = out.index.get_indexer(rows.index[muted])
        for k, label in zip(at, effects.label[muted, 0], strict=True):
            reasons[k] = f"not scored: {effects.labels[label]}"
        out.iloc[at, out.columns.get_loc("is_anomaly")] = False
        out.iloc[at, out.columns.get_loc("kind")] = ""
    out["reason"] = reasons
    return out


def write_metrics(metrics: pd.DataFrame, path: str | Path) -> None:
    """``timestamp, series, value`` CSV (UTC ISO 8601 with Z), written atomically."""
    out = pd.DataFrame(
        {
            "timestamp": metrics["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "series": metrics["series"],
            "value": metrics["value"],
        }
    )
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        out.to_csv(tmp, index=False, float_format="%.10g")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; an output file is for others to read
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _RejectedWriter:
    """Appends rejected events to ``rejected.jsonl`` as they come (nothing is held in memory)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh = open(path, "wb")  # noqa: SIM115 - closed in close()
        self.count = 0
        self.first: Rejected | None = None

    def __call__(self, rejected: list[Rejected]) -> None:
        if rejected and self.first is None:
            self.first = rejected[0]
        for r in rejected:
            rec = {"reason": r.reason, "origin": r.origin, "event": r.event}
            self.fh.write(orjson.dumps(rec, default=str) + b"\n")
        self.count += len(rejected)

    def close(self) -> None:
        self.fh.close()


def run_backtest(
    pipeline: Pipeline,
    paths: Sequence[str | Path],
    outdir: str | Path,
    *,
    causal: bool = True,
    progress: Callable[[int], None] | None = None,
    report: bool = True,
    evaluation: Any = None,
    summary_extra: dict[str, Any] | None = None,
    notifications: bool = False,
    engine: str | Engine | Any = "local",
) -> BacktestResult:
    """Aggregate, score, and write the four outputs (see the module docstring).

    ``engine`` scores the series (see :func:`score_metrics`); aggregation runs here.
    """
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    writer = _RejectedWriter(out / "rejected.jsonl")
    try:
        metrics, agg = aggregate_files(
            pipeline, paths, on_rejected=writer, progress=progress, log_silence=notifications
        )
    finally:
        writer.close()
    if agg.counters["accepted"] == 0:
        first = writer.first
        why = f"; the first, {first.origin}: {first.reason}" if first is not None else ""
        raise InputError(
            f"no valid event in {', '.join(map(str, paths))} ({writer.count} rejected{why}); "
            f"the reasons are in {writer.path}"
        )
    scores = score_metrics(
        pipeline, metrics, causal=causal, timezones=agg.series_timezones(), engine=engine
    )
    files = {
        "metrics": out / "metrics.csv",
        "anomalies": out / "anomalies.csv",
        "scores": out / "scores.csv",
        "rejected": out / "rejected.jsonl",
    }
    write_metrics(metrics, files["metrics"])
    result = BacktestResult(
        metrics, scores, dict(agg.counters), dict(agg.rejected_by_reason), agg.bad_values(), out,
        files,
    )  # fmt: skip
    write_scores(result.anomalies, str(files["anomalies"]))
    write_scores(scores, str(files["scores"]))
    if notifications:
        from detector.alerting.dryrun import dry_run

        files["notifications"] = out / "notifications.jsonl"
        result.notifications = dry_run(
            pipeline, scores, files["notifications"], metrics, silence=agg.drain_silence()
        )
    if report:
        files["report"] = out / "report.html"
        write_html_report(result, pipeline, files["report"], evaluation, summary_extra)
    return result


def summary(result: BacktestResult, pipeline: Pipeline) -> dict[str, Any]:
    """Run facts for people: what was read, what was not counted and why, what was found."""
    c = result.counters
    facts: dict[str, Any] = {
        "pipeline": pipeline.source_file,
        "events read": c.get("events", 0),
        "events counted": c.get("accepted", 0),
        "rejected (rejected.jsonl)": c.get("rejected", 0),
        "  of which late": c.get("late", 0),
        "duplicates (counted once)": c.get("duplicate", 0),
        "series": result.metrics["series"].nunique(),
        "windows": len(result.metrics),
        "missing windows (no data)": int(result.metrics["missing"].sum()),
        "anomalous windows": int(result.scores["is_anomaly"].sum()),
    }
    for reason, n in sorted(result.rejected_by_reason.items(), key=lambda kv: -kv[1]):
        facts[f"  rejected: {reason}"] = n
    for metric, n in result.bad_values.items():
        facts[f"  {metric}: events without a usable value"] = n
    return facts


def write_html_report(
    result: BacktestResult,
    pipeline: Pipeline,
    path: Path,
    evaluation: Any = None,
    extra: dict[str, Any] | None = None,
) -> None:
    from detector.report import write_report

    write_report(
        path,
        result.scores,
        title=f"detector backtest: {pipeline.name}",
        summary={**summary(result, pipeline), **(extra or {})},
        evaluation=evaluation,
    )
