"""Parameter search per metric on stored history and labels: what ``detector tune`` runs.

A metric's scoring has four settings people tune: the ``model``, the ``sensitivity`` and the
detection parameters ``min_duration`` (buckets beyond the threshold before an anomaly opens)
and ``min_change`` (the smallest relative change of a count or sum worth an alert). This
module searches them for each metric, on that metric's series only, against labelled
incidents, and says what the change would have done.

Honest by construction:

- **Time split.** The history is cut at ``1 - holdout`` of its span. Settings are chosen on the
  earlier *tuning* part; the later *held-out* part is only scored for the before/after report,
  never to choose. Scoring is causal (each point judged from earlier points only), so one
  scoring of the whole history per candidate serves both parts without leaking the future.
- **One objective.** ``F1 - penalty x false alerts per series-week`` on the tuning part
  (incident-level, as :func:`detector.evaluation.incidents.evaluate` defines them), after a
  warm-up in which a causal detector has no history yet.
- **Recall is not traded away.** A candidate that detects fewer tuning incidents than the
  current settings is never accepted, however few false alerts it raises; the report counts
  such candidates.
- **No labels, no tuning.** A metric without a labelled incident in its tuning part is left
  alone: with nothing to find, the search could only make it deaf.

The search is small: a coordinate descent from the current settings (sensitivity along a
coarse grid, then each registered model, then minimum duration and minimum change, then
sensitivity again), each line walked outward from the current value and stopped after two
candidates in a row that do not improve, or at once when a candidate raises exactly the same
alerts (the setting does not matter for this metric); it ends when every tuning incident is
found without a false alert. Identical candidates are scored once.

Labels come from labels files (the format of ``detector evaluate``) and from the feedback of
``detector alerts label``: an alert labelled ``true`` becomes an incident over its episode; one
labelled ``false-positive`` is a known false alert (evaluation already counts every alert
outside an incident as false; the report also says how many of the labelled ones the settings
still raise). ``expected`` and ``new-normal`` are not labels: they teach the models
(:mod:`detector.calendars`), in every candidate's scoring too (``feedback``).

>>> s = Settings("auto", 1.0, 2, 0.1)
>>> s.replace(sensitivity=0.7).changes_from(s)
{'sensitivity': 0.7}
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import pandas as pd

from detector.datasets.shop import Incident
from detector.errors import ConfigError, InputError
from detector.evaluation.incidents import EvaluationReport, Labels, evaluate
from detector.pipeline.config import Metric, Pipeline, _suggest
from detector.scoring.detect import DetectionParams

__all__ = [
    "MetricTuning",
    "PartScores",
    "Settings",
    "TuneResult",
    "feedback_labels",
    "history_from_metrics_csv",
    "series_timezones",
    "tune",
]

log = logging.getLogger(__name__)

SENSITIVITIES: tuple[float, ...] = (0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 3.0, 4.0)
MIN_DURATIONS: tuple[int, ...] = (1, 2, 3, 4, 6)
MIN_CHANGES: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
#: How much better (in objective) a candidate must be to replace the best so far.
MARGIN = 1e-3
#: What the search may change, in the order of the coordinate descent's first pass.
DIMENSIONS: tuple[str, ...] = ("sensitivity", "model", "min_duration", "min_change")
#: Non-improving candidates in a row after which a line of the search stops.
PATIENCE = 2
_DEFAULTS = DetectionParams()


# --------------------------------------------------------------------------------------------
# Settings and scores
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The tuned settings of one metric (``auto`` and ``profile`` are the same model)."""

    model: str
    sensitivity: float
    min_duration: int
    min_change: float

    @classmethod
    def of(cls, metric: Metric) -> Settings:
        p = metric.params
        return cls(
            str(metric.model or "auto"),
            float(metric.sensitivity or 1.0),
            int(p.get("min_duration", _DEFAULTS.min_duration)),
            float(p.get("min_change", _DEFAULTS.min_change)),
        )

    @property
    def key(self) -> tuple[Any, ...]:
        model = "profile" if self.model == "auto" else self.model
        return (model, self.sensitivity, self.min_duration, self.min_change)

    def replace(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def changes_from(self, old: Settings) -> dict[str, Any]:
        """What differs from ``old``, as :func:`detector.pipeline.edit.set_metric_params` takes."""
        out = {}
        for f in fields(self):
            new, was = getattr(self, f.name), getattr(old, f.name)
            if f.name == "model" and {new, was} == {"auto", "profile"}:
                continue
            if new != was:
                out[f.name] = new
        return out

    def apply(self, metric: Metric) -> Metric:
        params = {
            **metric.params,
            "min_duration": self.min_duration,
            "min_change": self.min_change,
        }
        return metric.model_copy(
            update={"model": self.model, "sensitivity": self.sensitivity, "params": params}
        )

    def __str__(self) -> str:
        return (
            f"model={self.model} sensitivity={self.sensitivity:g} "
            f"min_duration={self.min_duration} min_change={self.min_change:g}"
        )


@dataclass(frozen=True)
class PartScores:
    """Incident recall, alert precision and false alerts of one setting on one part."""

    incidents: int
    detected: int
    alerts: int
    false_alerts: int
    series_weeks: float
    penalty: float

    @classmethod
    def of(cls, report: EvaluationReport, penalty: float) -> PartScores:
        return cls(
            report.n_incidents,
            report.n_detected,
            report.n_alerts,
            report.n_false_alerts,
            report.series_weeks,
            penalty,
        )

    @property
    def recall(self) -> float:
        return self.detected / self.incidents if self.incidents else math.nan

    @property
    def precision(self) -> float:
        return (self.alerts - self.false_alerts) / self.alerts if self.alerts else math.nan

    @property
    def f1(self) -> float:
        """F1 of recall and precision; 0 when nothing is found (NaN without incidents)."""
        if not self.incidents:
            return math.nan
        p, r = self.precision, self.recall
        if math.isnan(p) or p + r == 0:
            return 0.0
        return 2 * p * r / (p + r)

    @property
    def false_per_week(self) -> float:
        """False alerts per series-week."""
        return self.false_alerts / self.series_weeks if self.series_weeks else math.nan

    @property
    def objective(self) -> float:
        """``F1 - penalty x false alerts per series-week`` (higher is better)."""
        f1 = 0.0 if math.isnan(self.f1) else self.f1
        fpw = 0.0 if math.isnan(self.false_per_week) else self.false_per_week
        return f1 - self.penalty * fpw


@dataclass(frozen=True)
class Candidate:
    """One scored setting: its tuning-part figures and how long scoring took."""

    settings: Settings
    tuning: PartScores
    seconds: float
    accepted: bool
    note: str = ""


@dataclass
class MetricTuning:
    """The search of one metric: before, after, and every candidate on the way."""

    metric: str
    series: int
    before: Settings
    after: Settings
    tuning_before: PartScores | None = None
    tuning_after: PartScores | None = None
    held_out_before: PartScores | None = None
    held_out_after: PartScores | None = None
    known_false: int = 0  # alerts labelled false-positive on this metric
    known_false_before: int = 0  # ... of which the settings raise again
    known_false_after: int = 0
    candidates: list[Candidate] = field(default_factory=list)
    note: str = ""  # why the metric was not tuned

    @property
    def changes(self) -> dict[str, Any]:
        return self.after.changes_from(self.before)

    @property
    def lost_recall(self) -> int:
        """Candidates with a better objective that were refused for losing tuning recall."""
        return sum(c.note == "loses recall" for c in self.candidates)


@dataclass
class TuneResult:
    """Every metric's search, and the time split they share."""

    metrics: list[MetricTuning]
    start: pd.Timestamp  # the first evaluated time (after the warm-up)
    split: pd.Timestamp  # tuning before, held out from here
    end: pd.Timestamp
    penalty: float
    holdout: float
    labels_used: int = 0
    notes: list[str] = field(default_factory=list)

    def changes(self) -> dict[str, dict[str, Any]]:
        """Per metric, the settings to write (only metrics that change)."""
        return {m.metric: m.changes for m in self.metrics if m.changes}

    def summary(self) -> str:
        """Before and after, per metric, on the tuning and the held-out part."""
        fmt = "%Y-%m-%d %H:%M"
        held = (
            f"held out {self.split:{fmt}} .. {self.end:{fmt}} UTC ({self.holdout:.0%} of the "
            "history; never used to choose)"
            if self.holdout
            else "nothing held out (--holdout 0): every figure is on the data it was chosen on"
        )
        lines = [
            f"Tuning part {self.start:{fmt}} .. {self.split:{fmt}} UTC (after the warm-up), "
            f"{held}.",
            f"Objective: F1 - {self.penalty:g} x false alerts per series-week on the tuning "
            "part; a change that detects fewer tuning incidents is never taken.",
            *self.notes,
        ]
        for m in self.metrics:
            lines.append("")
            if m.note:
                lines.append(f"{m.metric}: {m.note}")
                continue
            changes = ", ".join(f"{k} {getattr(m.before, k)} -> {v}" for k, v in m.changes.items())
            lines.append(
                f"{m.metric} ({m.series} series, {len(m.candidates)} settings scored): "
                + (changes or "no change: the current settings scored best")
            )
            lines.append(
                f"  {'':<9} {'incidents':>9}  {'recall':<12}  {'precision':<12}  "
                f"{'false/series-week':<17}  F1"
            )
            parts = [("tuning", m.tuning_before, m.tuning_after)]
            if self.holdout:
                parts.append(("held out", m.held_out_before, m.held_out_after))
            for name, a, b in parts:
                assert a is not None and b is not None
                lines.append(
                    f"  {name:<9} {a.incidents:>9}  {_pair(a.recall, b.recall):<12}  "
                    f"{_pair(a.precision, b.precision):<12}  "
                    f"{_pair(a.false_per_week, b.false_per_week):<17}  {_pair(a.f1, b.f1)}"
                )
            if m.known_false:
                lines.append(
                    f"  alerts labelled false-positive raised again: {m.known_false_before} -> "
                    f"{m.known_false_after} (of {m.known_false})"
                )
            if m.lost_recall:
                best = max(
                    (c for c in m.candidates if c.note == "loses recall"),
                    key=lambda c: c.tuning.objective,
                )
                lines.append(
                    f"  {m.lost_recall} settings had a better objective but detected fewer "
                    f"tuning incidents: not taken (the best: {best.settings}, recall "
                    f"{best.tuning.recall:.2f}, false/series-week {best.tuning.false_per_week:.2f})"
                )
            ho_a, ho_b = m.held_out_before, m.held_out_after
            worse = ho_a and ho_b and ho_b.objective < ho_a.objective - MARGIN
            if m.changes and self.holdout and worse:
                lines.append("  warning: worse on the held-out part; the change may not generalise")
        return "\n".join(lines)

    def apply(self, text: str, *, source: str = "<string>") -> str:
        """``text`` (the pipeline file) with every change written in; comments stay."""
        from detector.pipeline.edit import set_metric_params

        for metric, changes in self.changes().items():
            text = set_metric_params(text, metric, changes, source=source)
        return text


def _pair(a: float, b: float) -> str:
    def one(x: float) -> str:
        return "-" if math.isnan(x) else f"{x:.2f}"

    return f"{one(a)} -> {one(b)}"


# --------------------------------------------------------------------------------------------
# Inputs: history, time zones, feedback
# --------------------------------------------------------------------------------------------


def metric_of(series: str, names: Iterable[str]) -> str | None:
    """The metric a series belongs to: ``orders{market=DE}`` or plain ``orders``.

    >>> metric_of("orders{market=DE}", ["orders", "tv_orders"]), metric_of("x", ["orders"])
    ('orders', None)
    """
    base = series.partition("{")[0]
    return base if base in set(names) else None


def history_from_metrics_csv(path: str, pipeline: Pipeline) -> pd.DataFrame:
    """The points of a ``metrics.csv`` written by ``detector backtest``, with their metric."""
    from detector.io.series import Columns, read_series

    data = read_series(path, Columns())
    names = pipeline.metric_names()
    data["metric"] = data["series"].map(lambda s: metric_of(str(s), names))
    if data["metric"].isna().all():
        example = data["series"].iloc[0] if len(data) else "(none)"
        raise InputError(
            f"no series belongs to a metric of pipeline {pipeline.name!r} (series look like "
            f"{example!r}; metrics: {', '.join(names)})",
            source=path,
        )
    if "denominator" not in data.columns:
        data["denominator"] = np.nan
    return data.loc[data["metric"].notna()].reset_index(drop=True)


def stored_history(store: Any, pipeline: Pipeline) -> pd.DataFrame:
    """The points ``detector run`` stored for the pipeline's metrics (missing windows too)."""
    names = [m.name for m in pipeline.metrics]
    data = store.points(pipeline.name, metrics=names)
    if data.empty:
        raise InputError(
            f"no stored points of pipeline {pipeline.name!r} in {store.url} (for metrics "
            f"{', '.join(names)}): run `detector run` first, or tune on a backtest's output "
            "with --metrics metrics.csv"
        )
    return data


def series_timezones(pipeline: Pipeline, series: Iterable[str]) -> dict[str, str]:
    """Series whose segment value has a time zone in the pipeline (as the aggregator says).

    Read from the names (``orders{market=DE}`` -> Europe/Berlin), for metrics that no longer
    carry the aggregator's record: stored history here, a metrics table in
    :func:`detector.api.score`.

    >>> from detector.pipeline.config import parse_pipeline
    >>> p = parse_pipeline('''
    ... name: s
    ... segments: {market: {values: [DE], timezones: {DE: Europe/Berlin}}}
    ... metrics: [{name: orders, event: o, aggregation: count, group_by: [market]}]
    ... ''')
    >>> series_timezones(p, ["orders{market=DE}", "orders{market=FR}"])
    {'orders{market=DE}': 'Europe/Berlin'}
    """
    from detector.alerting.alerts import series_labels

    out: dict[str, str] = {}
    for name in map(str, series):
        for dim, value in series_labels(name).items():
            tz = pipeline.timezone_of(dim, value)
            if tz:
                out[name] = tz
                break
    return out


def feedback_labels(
    store: Any, pipeline: Pipeline, end: pd.Timestamp
) -> tuple[list[Incident], list[Incident], dict[str, int]]:
    """Alerts labelled with ``detector alerts label`` as (true incidents, false alerts, counts).

    An alert still firing counts until ``end`` (the end of the history). Windows are
    :class:`~detector.datasets.shop.Incident` objects over the alert's episode, at least one
    window long; the kind is the alert's when the evaluation knows it, else ``spike``.
    """
    from detector.alerting.state import AlertState
    from detector.datasets.shop import INCIDENT_KINDS

    windows = {m.name: m.window for m in pipeline.metrics}
    true, false = [], []
    counts: dict[str, int] = {}
    for row in AlertState(store, pipeline.name).alerts():
        if not row.feedback:
            continue
        counts[row.feedback] = counts.get(row.feedback, 0) + 1
        labels = row.alert.labels
        metric, series = labels.get("metric"), labels.get("series")
        if row.feedback not in ("true", "false-positive") or metric not in windows or not series:
            continue
        start = row.alert.starts_at
        stop = row.alert.ends_at if row.alert.ends_at is not None else end
        stop = max(stop, start + windows[metric])
        kind = labels.get("kind", "")
        inc = Incident(
            series, start, stop, kind if kind in INCIDENT_KINDS else "spike", f"alert {row.id}"
        )
        (true if row.feedback == "true" else false).append(inc)
    return true, false, counts


# --------------------------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------------------------


@dataclass
class _Context:
    """What scoring and evaluating one metric's candidates needs."""

    pipeline: Pipeline
    metric: Metric
    data: pd.DataFrame
    timezones: dict[str, str]
    labels: Labels
    known_false: list[Incident]
    start: pd.Timestamp
    split: pd.Timestamp
    grace: pd.Timedelta
    penalty: float
    feedback: Any  # what alerts labelled expected/new-normal teach the models, or None
    #: Tuning figures of every setting scored (the scored rows are not kept: they are the
    #: whole history of the metric, and only the best and the starting ones are needed).
    seen: dict[tuple[Any, ...], PartScores] = field(default_factory=dict)

    def score(self, settings: Settings) -> tuple[pd.DataFrame, PartScores, float]:
        """Scored rows (causal, whole history), tuning-part figures, seconds taken."""
        from detector.backtest import score_metrics

        began = time.perf_counter()
        one = self.pipeline.model_copy(
            update={"metrics": [settings.apply(self.metric)], "freshness": []}
        )
        scored = score_metrics(
            one, self.data, causal=True, timezones=self.timezones, feedback=self.feedback
        )
        seconds = time.perf_counter() - began
        tuning = scored.loc[scored["timestamp"] < self.split]
        report = evaluate(tuning, self.labels, grace=self.grace, start=self.start)
        scores = PartScores.of(report, self.penalty)
        self.seen[settings.key] = scores
        return scored, scores, seconds

    def held_out(self, scored: pd.DataFrame) -> PartScores:
        report = evaluate(scored, self.labels, grace=self.grace, start=self.split)
        return PartScores.of(report, self.penalty)

    def known_false_raised(self, scored: pd.DataFrame) -> int:
        """How many alerts labelled false-positive these scores raise again."""
        flagged = scored.loc[scored["is_anomaly"].astype(bool), ["series", "timestamp"]]
        n = 0
        for w in self.known_false:
            rows = flagged.loc[flagged["series"] == w.series, "timestamp"]
            n += bool(((rows >= w.start) & (rows < w.end)).any())
        return n


def _valid(settings: Settings, metric: Metric) -> str:
    """'' if scoring accepts the settings with the metric's other params, else why not."""
    from detector.scoring.engine import check_scoring

    try:
        check_scoring(settings.model, settings.apply(metric).params)
    except ConfigError as exc:
        return str(exc)
    return ""


def _grid_walk(grid: Sequence[float], current: float) -> list[list[float]]:
    """The grid's values below and above ``current``, each list walking outward.

    >>> _grid_walk((1, 2, 3, 4), 2.5)
    [[2, 1], [3, 4]]
    """
    down = [v for v in grid if v < current][::-1]
    up = [v for v in grid if v > current]
    return [down, up]


class _Search:
    """Coordinate descent from the current settings (see the module docstring)."""

    def __init__(self, ctx: _Context, progress: Callable[[str], None]) -> None:
        self.ctx = ctx
        self.progress = progress
        self.candidates: list[Candidate] = []
        base = Settings.of(ctx.metric)
        scored, scores, seconds = ctx.score(base)
        self.base, self.base_scores, self.base_scored = base, scores, scored
        self.best, self.best_scores, self.best_scored = base, scores, scored
        self._report(Candidate(base, scores, seconds, True, "current"))

    def _report(self, c: Candidate) -> None:
        self.candidates.append(c)
        s = c.tuning
        mark = "*" if c.accepted else " "
        note = f"  [{c.note}]" if c.note else ""
        self.progress(
            f"  {mark} {self.ctx.metric.name} #{len(self.candidates):<2} {c.settings}: recall "
            f"{s.recall:.2f} precision {s.precision:.2f} false/series-week "
            f"{s.false_per_week:.2f} objective {s.objective:.3f} ({c.seconds:.1f}s){note}"
        )

    @property
    def perfect(self) -> bool:
        """Every tuning incident found, no false alert: nothing left to improve."""
        s = self.best_scores
        return s.detected == s.incidents and s.false_alerts == 0

    def try_(self, settings: Settings) -> str:
        """Score ``settings``; move to it if it is better. Returns better/worse/same/invalid."""
        if settings.key == self.best.key or self.perfect:
            return "same"
        why = _valid(settings, self.ctx.metric)
        if why:
            self.progress(f"    {self.ctx.metric.name}: skipped {settings}: {why}")
            return "invalid"
        if settings.key in self.ctx.seen:
            return "worse"  # scored before, and it lost then
        scored, scores, seconds = self.ctx.score(settings)
        same = np.array_equal(
            scored["is_anomaly"].to_numpy(bool), self.best_scored["is_anomaly"].to_numpy(bool)
        )
        better = scores.objective > self.best_scores.objective + MARGIN
        keeps_recall = scores.detected >= self.base_scores.detected
        note = "same alerts" if same else ("loses recall" if better and not keeps_recall else "")
        accepted = better and keeps_recall and not same
        self._report(Candidate(settings, scores, seconds, accepted, note))
        if accepted:
            self.best, self.best_scores, self.best_scored = settings, scores, scored
            if self.perfect:
                self.progress(f"    {self.ctx.metric.name}: perfect on the tuning part; done")
            return "better"
        return "same" if same else "worse"

    def models(self, names: Sequence[str]) -> None:
        """Each model with the other settings found so far; the best one stays."""
        start = self.best
        for name in names:
            self.try_(start.replace(model=name))

    def line(self, name: str, grid: Sequence[float]) -> None:
        current = getattr(self.best, name)
        for direction in _grid_walk(grid, current):
            misses = 0
            for value in direction:
                outcome = self.try_(self.best.replace(**{name: value}))
                if outcome == "better":
                    misses = 0
                    continue
                if outcome == "same":
                    break  # the setting has no effect here
                misses += 1
                if misses >= PATIENCE:
                    break
            if getattr(self.best, name) != current:
                break  # improved going this way: the other way was its starting point


def _tune_metric(
    ctx: _Context,
    models: Sequence[str],
    dimensions: Sequence[str],
    progress: Callable[[str], None],
) -> MetricTuning:
    metric = ctx.metric
    base = Settings.of(metric)
    search = _Search(ctx, progress)
    if "sensitivity" in dimensions:
        search.line("sensitivity", SENSITIVITIES)
    if "model" in dimensions:
        search.models([m for m in models if base.replace(model=m).key != base.key])
    if "min_duration" in dimensions:
        search.line("min_duration", MIN_DURATIONS)
    if "min_change" in dimensions and metric.aggregation != "ratio":
        search.line("min_change", MIN_CHANGES)  # it applies to counts and sums only
    if "sensitivity" in dimensions and search.best.replace(sensitivity=base.sensitivity) != base:
        search.line("sensitivity", SENSITIVITIES)  # again, after the others moved
    result = MetricTuning(
        metric.name,
        int(ctx.data["series"].nunique()),
        base,
        search.best,
        tuning_before=search.base_scores,
        tuning_after=search.best_scores,
        held_out_before=ctx.held_out(search.base_scored),
        held_out_after=ctx.held_out(search.best_scored),
        known_false=len(ctx.known_false),
        known_false_before=ctx.known_false_raised(search.base_scored),
        known_false_after=ctx.known_false_raised(search.best_scored),
        candidates=search.candidates,
    )
    return result


def _split_times(
    data: pd.DataFrame, holdout: float, warmup: pd.Timedelta
) -> tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]:
    if not 0 <= holdout < 1:
        raise ConfigError(f"The 'holdout' option must be in [0, 1). Got {holdout!r} instead.")
    first, last = data["timestamp"].min(), data["timestamp"].max()
    start = first + warmup
    split = first + (last - first) * (1 - holdout)
    split = split.ceil("1min") if holdout else last + pd.Timedelta("1ns")
    if start >= split:
        days = (last - first) / pd.Timedelta("1D")
        raise ConfigError(
            f"the history spans {days:.1f} days: too short for a warm-up of {warmup} and a "
            f"held-out part of {holdout:.0%}; lower --warmup or --holdout"
        )
    return start, split, last


def _labels_for(labels: Labels, series: set[str]) -> Labels:
    return Labels(
        tuple(i for i in labels.incidents if i.series in series),
        tuple(g for g in labels.gaps if g.series == "*" or g.series in series),
    )


def tune(
    pipeline: Pipeline,
    history: pd.DataFrame,
    labels: Labels,
    *,
    metrics: Sequence[str] | None = None,
    false_alerts: Sequence[Incident] = (),
    holdout: float = 0.3,
    warmup: str | pd.Timedelta = "7D",
    grace: str | pd.Timedelta = "30min",
    penalty: float = 0.1,
    models: Sequence[str] | None = None,
    search: Sequence[str] = DIMENSIONS,
    feedback: Any = None,
    progress: Callable[[str], None] | None = None,
) -> TuneResult:
    """Search each metric's settings on ``history`` against ``labels`` (module docstring).

    ``history`` has the columns of :meth:`detector.store.base.Store.points` (``timestamp``,
    ``series``, ``value``, ``denominator``, ``metric``); ``false_alerts`` are alerts people
    labelled false-positive; ``models`` defaults to every registered model; ``search`` names
    the settings that may change (:data:`DIMENSIONS`); ``feedback`` is passed to the scoring
    (:func:`detector.calendars.load_feedback`: what alerts labelled ``expected`` and
    ``new-normal`` teach the models). Progress lines go to ``progress``. Raises
    :class:`~detector.errors.ConfigError` for an unknown metric, bad options or labels that
    name no series of the history.
    """
    from detector.models import available_models

    say = progress or (lambda _msg: None)
    if penalty < 0:
        raise ConfigError(f"The 'penalty' option must be >= 0. Got {penalty!r} instead.")
    names = [m.name for m in pipeline.metrics]
    chosen = list(metrics) if metrics else names
    fresh = {f.name for f in pipeline.freshness}
    for name in chosen:
        if name in fresh:
            raise ConfigError(
                f"{name!r} is a freshness check: it has no model to tune (its max_age decides)"
            )
        if name not in names:
            raise ConfigError(
                f"no metric named {name!r} in pipeline {pipeline.name!r}{_suggest(name, names)} "
                f"(metrics: {', '.join(names)})"
            )
    for dim in search:
        if dim not in DIMENSIONS:
            raise ConfigError(
                f"cannot search {dim!r}{_suggest(dim, DIMENSIONS)} "
                f"(one of: {', '.join(DIMENSIONS)})"
            )
    known_models = ["auto", *available_models()]
    for model in models or ():
        if model not in known_models:
            raise ConfigError(
                f"Unknown model {model!r}{_suggest(model, known_models)} "
                f"(models: {', '.join(known_models)})"
            )
    model_names = list(models) if models else available_models()
    if history.empty:
        raise InputError("the history has no points to tune on")
    history = history.loc[history["metric"].isin(chosen)]
    all_series = set(history["series"].astype(str))
    matched = [i for i in labels.incidents if i.series in all_series]
    unknown = sorted({i.series for i in labels.incidents} - all_series)
    if labels.incidents and not matched:
        raise ConfigError(
            f"no labelled incident is on a series of the history: the labels name "
            f"{', '.join(repr(s) for s in unknown[:3])}, the history has series like "
            f"{', '.join(repr(s) for s in sorted(all_series)[:3])}"
        )
    if not matched:
        raise ConfigError(
            "no labelled incident to tune on: give --labels FILE (the format of detector "
            "evaluate) or label alerts with `detector alerts label ID --as true`"
        )
    start, split, last = _split_times(history, holdout, pd.Timedelta(warmup))
    result = TuneResult([], start, split, last, penalty, holdout, labels_used=len(matched))
    if unknown:
        result.notes.append(
            f"{len(labels.incidents) - len(matched)} labelled incidents are on series not in "
            f"the history (or not of the tuned metrics), e.g. {unknown[0]!r}; they are ignored"
        )
    timezones = series_timezones(pipeline, all_series)
    for metric in pipeline.metrics:
        if metric.name not in chosen:
            continue
        data = history.loc[history["metric"] == metric.name]
        series = set(data["series"].astype(str))
        base = Settings.of(metric)
        item = MetricTuning(metric.name, len(series), base, base)
        mine = _labels_for(labels, series)
        in_tuning = [i for i in mine.incidents if start <= i.start < split]
        if data.empty:
            item.note = "no points in the history"
        elif not in_tuning:
            item.note = (
                "not tuned: no labelled incident in its tuning part (with nothing to find, the "
                "search could only make it deaf)"
            )
        if item.note:
            say(f"{metric.name}: {item.note}")
            result.metrics.append(item)
            continue
        say(
            f"{metric.name}: {len(series)} series, {len(in_tuning)} labelled incidents in the "
            f"tuning part; searching"
        )
        if metric.aggregation == "ratio" and data["denominator"].isna().all():
            result.notes.append(
                f"{metric.name}: the history has no denominators (a backtest's metrics.csv "
                "keeps none), so the rates are scored without their attempts, unlike "
                "detector run"
            )
        ctx = _Context(
            pipeline,
            metric,
            data,
            {s: tz for s, tz in timezones.items() if s in series},
            mine,
            [w for w in false_alerts if w.series in series],
            start,
            split,
            pd.Timedelta(grace),
            penalty,
            feedback,
        )
        result.metrics.append(_tune_metric(ctx, model_names, search, say))
    return result
