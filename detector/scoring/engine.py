"""The scoring engine: a panel in, every point scored and decided, causally by default.

Causal mode refits the model at each period boundary (daily by default) on the rows before it,
then lets it forecast the period point by point; the detection layer calibrates and decides with
statistics from earlier periods only. So appending future data never changes an earlier output.
Retrospective mode (``causal=False``) fits once on the whole series and may look both ways.

A :class:`~detector.calendars.Calendar` (holidays, declared events, feedback) is a model input:
points under an effect are hidden from the model's training, judged against the calendar's
expectation (:mod:`detector.calendars.effects`), and named in their reasons; a declared level
change is handed to the model (``declare_level_changes``) or, for a model without that step,
the series' history before it is restated at the new level at each refit after it.

>>> idx = pd.date_range("2026-01-01", periods=288 * 4, freq="5min", tz="UTC")
>>> rng = np.random.default_rng(0)
>>> df = pd.DataFrame({"timestamp": idx, "series": "orders",
...                    "value": rng.poisson(40, len(idx)).astype(float)})
>>> df.loc[1000:1011, "value"] = 0.0
>>> out = score_frame(df)
>>> list(out.columns) == list(OUTPUT_COLUMNS)
True
>>> out.loc[out.is_anomaly, "kind"].unique().tolist()
['dip']
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone

from detector.calendars.calendar import Calendar
from detector.calendars.effects import Effects, Expectation
from detector.errors import ConfigError, InputError
from detector.models.base import FAMILIES, Forecast, Model, create_model
from detector.panel import Panel, to_panel
from detector.scoring.detect import KIND_CODES, Detection, DetectionParams, decide
from detector.scoring.engines import Engine, LocalEngine, check_engine, chunk_slices, open_engine
from detector.scoring.reasons import WARMING_UP, anomaly_reason, missing_reason
from detector.types import OUTPUT_COLUMNS

_DETECTION_FIELDS = set(DetectionParams.__dataclass_fields__)

#: Series scored at once by default. A chunk's working memory is about 300 bytes a point (the
#: model's baseline stacks while it forecasts, the detection layer's window statistics while
#: it decides), so 250 series x 4 weeks at 5 minutes need about 600 MiB; wider chunks save
#: little time (the refit loop's fixed cost per chunk is small next to the per-point work).
CHUNK = 250


@dataclass
class ScoredPanel:
    """A panel with its forecast and decisions; :meth:`to_frame` gives the output table."""

    panel: Panel
    forecast: Forecast
    detection: Detection
    scorable: np.ndarray
    family: np.ndarray
    baseline: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    calendar: Expectation | None = None  # the calendar's expectation, where one applies

    def to_frame(self) -> pd.DataFrame:
        return _to_frame(self)


def refit_bounds(index: pd.DatetimeIndex, every: str) -> list[int]:
    """Row positions where a new refit period starts (period starts aligned to UTC)."""
    step = pd.Timedelta(every)
    periods = (index - pd.Timestamp(0, tz="UTC")) // step
    change = np.flatnonzero(np.diff(np.asarray(periods)) != 0) + 1
    return [0, *change.tolist()]


def _family_codes(family: np.ndarray) -> np.ndarray:
    return np.array([FAMILIES.index(f) for f in family], dtype=np.int8)


def _split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    det = {k: v for k, v in params.items() if k in _DETECTION_FIELDS}
    mod = {k: v for k, v in params.items() if k not in _DETECTION_FIELDS}
    return det, mod


_ENGINE_PARAMS = ("refit", "min_history", "confidence_ramp", "chunk")


def _check_chunk(chunk: Any) -> None:
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ConfigError(f"The 'chunk' parameter must be an int >= 1. Got {chunk!r} instead.")


def check_scoring(model: str, params: dict[str, Any]) -> None:
    """Raise ConfigError if ``model`` or one of ``params`` would be rejected by scoring.

    Pipelines call this on load, so a typo fails ``detector validate`` rather than a run.

    >>> check_scoring("auto", {"threshold": 6, "refit": "1D", "chunk": 100})
    >>> check_scoring("auto", {"chunk": 0})
    Traceback (most recent call last):
    ...
    detector.errors.ConfigError: The 'chunk' parameter must be an int >= 1. Got 0 instead.
    >>> check_scoring("auto", {"treshold": 6})
    Traceback (most recent call last):
    ...
    detector.errors.ConfigError: ...treshold...
    """
    if "chunk" in params:
        _check_chunk(params["chunk"])
    rest = {k: v for k, v in params.items() if k not in _ENGINE_PARAMS}
    det, mod = _split_params(rest)
    try:
        DetectionParams(**det)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad detection parameter: {exc}") from None
    _make_model(model, True, mod)


def _make_model(model: str, causal: bool, model_params: dict[str, Any]) -> Model:
    params = dict(model_params)
    if not causal:
        params.setdefault("causal", False)
    try:
        return create_model(model, **params)
    except ConfigError:
        if "causal" in params and not causal and "causal" not in model_params:
            params.pop("causal")
            return create_model(model, **params)
        raise


def _columns(panel: Panel, cols: slice) -> Panel:
    den = panel.denominator[:, cols] if panel.denominator is not None else None
    return Panel(
        panel.values[:, cols], panel.index, panel.series[cols], panel.freq,
        panel.first[cols], panel.last[cols], den,
    )  # fmt: skip


def score_panel(
    panel: Panel,
    *,
    model: str | Model = "auto",
    causal: bool = True,
    refit: str = "1D",
    min_history: str = "1D",
    confidence_ramp: str = "14D",
    chunk: int = CHUNK,
    calendar: Calendar | None = None,
    clock: str = "UTC",
    engine: str | Engine | Any = "local",
    **params: Any,
) -> ScoredPanel:
    """Forecast and decide every point of ``panel``; see the module docstring.

    Series are independent, so a large panel is scored ``chunk`` series at a time: the same
    results, with a fraction of the peak memory (the model's lagged stacks are the big part).
    ``engine`` runs the chunks (:mod:`detector.scoring.engines`): ``"local"`` in this process,
    ``"dask"`` (a cluster started for this call), or an engine or ``distributed.Client`` the
    caller opened; every engine gives identical results. ``calendar`` applies holidays,
    events and level changes; ``clock`` is the time zone whose wall clock the panel's
    timestamps show (series scored on local time).
    """
    # (The first statement: locals() holds exactly the arguments.)
    parts = list(_scored_parts(panel, None, **_options(locals())))
    return parts[0] if len(parts) == 1 else _stitch(panel, parts)


def _options(arguments: dict[str, Any]) -> dict[str, Any]:
    """:func:`score_panel`'s keyword arguments from its ``locals()`` (``params`` flattened)."""
    options = {k: v for k, v in arguments.items() if k not in ("panel", "params")}
    return options | arguments["params"]


def _panel_options(**given: Any) -> dict[str, Any]:
    """``given`` completed with :func:`score_panel`'s defaults, as it would receive them."""
    bound = inspect.signature(score_panel).bind(None, **given)
    bound.apply_defaults()
    return _options(dict(bound.arguments))


def _scored_parts(
    panel: Panel,
    finish: Any,
    *,
    model: str | Model,
    causal: bool,
    refit: str,
    min_history: str,
    confidence_ramp: str,
    chunk: int,
    calendar: Calendar | None,
    clock: str,
    engine: str | Engine | Any,
    **params: Any,
) -> Iterator[Any]:
    """Each chunk of series scored, in column order: a :class:`ScoredPanel` per chunk, or
    ``finish(scored)`` of it (run where the chunk was scored).

    In this process the chunks are scored one at a time as the caller asks for them, and
    each chunk's model is made just before and dropped just after, so only one chunk's
    working memory is alive at once; another engine runs them all and hands them back.
    """
    det_params, model_params = _split_params(params)
    detection_params = DetectionParams(**det_params)
    _check_chunk(chunk)
    if isinstance(model, str):
        _make_model(model, causal, model_params)  # bad names/parameters fail before any work
    check_engine(engine)
    n = panel.values.shape[1]
    effects = (
        calendar.resolve(panel.series, panel.index, panel.freq, clock, panel.values)
        if calendar
        else None
    )

    def fresh() -> Model:
        # A model instance is cloned (scikit-learn style: same parameters, no learned state),
        # so the caller's object is left untouched and each chunk starts clean.
        if isinstance(model, str):
            return _make_model(model, causal, model_params)
        return clone(model) if isinstance(model, BaseEstimator) else model

    run = partial(
        _score_chunk,
        causal=causal,
        refit=refit,
        min_history=min_history,
        confidence_ramp=confidence_ramp,
        detection_params=detection_params,
        finish=finish,
    )
    if not isinstance(model, str | BaseEstimator):
        # A model object that cannot be cloned is fitted as it is: one pass, in this process.
        yield run(panel=panel, mdl=fresh(), effects=effects)
        return
    with open_engine(engine) as eng:
        slices = chunk_slices(n, chunk, eng.slots)

        def call(cols: slice) -> dict[str, Any]:
            if len(slices) == 1:
                return {"panel": panel, "mdl": fresh(), "effects": effects}
            part = None if effects is None else effects.columns(cols)
            return {"panel": _columns(panel, cols), "mdl": fresh(), "effects": part}

        if isinstance(eng, LocalEngine):
            for cols in slices:
                yield run(**call(cols))
            return
        yield from eng.map(run, [call(cols) for cols in slices])


def _stitch(panel: Panel, parts: list[ScoredPanel]) -> ScoredPanel:
    def cat(get: Any) -> np.ndarray:
        return np.concatenate([get(p) for p in parts], axis=1)

    def cat1(get: Any) -> np.ndarray:
        return np.concatenate([get(p) for p in parts])

    shifts = [p.forecast.level_shift for p in parts]
    forecast = Forecast(
        cat(lambda p: p.forecast.expected),
        cat(lambda p: p.forecast.variance),
        None if any(s is None for s in shifts) else np.concatenate(shifts, axis=1),
    )
    fields = Detection.__dataclass_fields__
    detection = Detection(**{f: cat(lambda p, f=f: getattr(p.detection, f)) for f in fields})
    calendar = None
    if any(p.calendar is not None for p in parts):
        shapes = [p.scorable.shape for p in parts]
        calendar = Expectation.concat([p.calendar for p in parts], shapes)
    return ScoredPanel(
        panel, forecast, detection, cat(lambda p: p.scorable),
        cat1(lambda p: p.family), cat1(lambda p: p.baseline), calendar=calendar,
    )  # fmt: skip


def _score_chunk(finish: Any = None, **chunk: Any) -> Any:
    """A task: one chunk scored (:func:`_score_one`), then ``finish`` applied to it there."""
    scored = _score_one(**chunk)
    return scored if finish is None else finish(scored)


def _score_one(
    panel: Panel,
    mdl: Model,
    causal: bool,
    refit: str,
    min_history: str,
    confidence_ramp: str,
    detection_params: DetectionParams,
    effects: Effects | None = None,
) -> ScoredPanel:
    t, n = panel.values.shape
    # The model learns from the panel without the calendar's special points.
    training = panel if effects is None else effects.training(panel)
    restate = _declare_changes(mdl, effects)
    steps_day = max(1, round(panel.steps_per_day))
    every = refit if pd.Timedelta(refit) >= panel.freq else str(panel.freq)
    window = max(7 * steps_day, 24 * 7)
    if causal:
        bounds = refit_bounds(panel.index, every)
        expected, variance = np.empty((t, n)), np.empty((t, n))
        shift = np.zeros((t, n))
        family = np.zeros((t, n), dtype=np.int8)
        for i, start in enumerate(bounds):
            stop = bounds[i + 1] if i + 1 < len(bounds) else t
            seen = restate(training, start, expected)
            mdl.fit(seen, start)
            family[start:stop] = _family_codes(mdl.info().family)[None, :]
            fc = mdl.predict(seen, start, stop)
            expected[start:stop], variance[start:stop] = fc.expected, fc.variance
            if fc.level_shift is not None:
                shift[start:stop] = fc.level_shift
        forecast = Forecast(expected, variance, shift)
        warm = max(int(pd.Timedelta(min_history) / panel.freq), 24)
    else:
        seen = training  # one fit on the whole series: nothing to restate from
        mdl.fit(seen, t)
        family = np.repeat(_family_codes(mdl.info().family)[None, :], t, axis=0)
        forecast = mdl.predict(seen, 0, t)
        bounds = [t]
        warm = 12
    rows = np.arange(t)[:, None]
    scorable = (rows >= panel.first[None, :] + warm) & (rows <= panel.last[None, :])
    # Cold start: thresholds start higher and relax over the first days of history.
    ramp = max(1, int(pd.Timedelta(confidence_ramp) / panel.freq)) if causal else 1
    history = np.clip(rows - panel.first[None, :] - warm, 0, None)
    confidence = 1.0 / (1.0 + np.clip(1.0 - history / ramp, 0.0, 1.0) * 0.7)
    info = mdl.info()
    end_pass = getattr(mdl, "end_pass", None)
    if callable(end_pass):
        end_pass()  # the model's panel-sized caches are not needed to decide
    view = None
    judged = scorable
    if effects is not None:
        view = effects.expectation(panel, forecast.expected, forecast.variance)
        forecast = Forecast(view.expected, view.variance, forecast.level_shift)
        judged = scorable & ~view.muted
    detection = decide(
        panel.values,
        forecast.expected,
        forecast.variance,
        family,
        judged,
        forecast.level_shift,
        bounds,
        window,
        detection_params,
        causal=causal,
        confidence=confidence,
        span=None if view is None else (view.lo, view.hi),
        special=None if view is None else view.special,
    )
    return ScoredPanel(
        panel, forecast, detection, scorable, info.family, info.baseline, calendar=view
    )


def _declare_changes(mdl: Model, effects: Effects | None) -> Any:
    """Hand declared level changes to the model; return ``restate(panel, start, expected)``,
    the panel a refit at ``start`` learns from.

    A model with a level-shift step of its own takes the changes (``declare_level_changes``)
    and sees the panel as it is. For any other model, a series' history before its latest
    change is restated at the new level at every refit after it: scaled by the ratio of what
    the series did since the change to what the model expected of it then (shifted by the
    mean gap for series that go negative). Causal: only rows before ``start`` are used.
    """
    changes = [] if effects is None else effects.changes
    if changes and hasattr(mdl, "declare_level_changes"):
        mdl.declare_level_changes(changes)
        changes = []

    def restate(panel: Panel, start: int, expected: np.ndarray | None) -> Panel:
        latest: dict[int, int] = {}
        for row, col in changes:
            if row < start:
                latest[col] = max(latest.get(col, 0), row)
        if not latest or expected is None:
            return panel
        values = panel.values.copy()
        for col, row in latest.items():
            x, e = panel.values[row:start, col], expected[row:start, col]
            both = np.isfinite(x) & np.isfinite(e)
            if not both.any():
                continue
            past = values[:row, col]
            if np.nanmin(np.append(panel.values[:start, col], 0.0)) >= 0 and e[both].sum() > 0:
                values[:row, col] = past * (x[both].sum() / e[both].sum())
            else:
                values[:row, col] = past + (x[both] - e[both]).mean()
        return Panel(
            values, panel.index, panel.series, panel.freq, panel.first, panel.last,
            panel.denominator,
        )  # fmt: skip

    return restate


def warm_up() -> float:
    """Score a tiny panel once so the compiled loops (:mod:`detector.kernels`) are loaded, or
    compiled on a machine that has not cached them yet; returns the seconds it took.

    ``detector run`` calls this before it joins its consumer group: otherwise the first
    scoring round of a fresh install would stall the consumer for the few seconds numba
    takes to compile, in the middle of the stream (about 3.5 s here; 0.3-0.6 s to load
    what is cached).
    """
    import time

    started = time.perf_counter()
    idx = pd.date_range("2026-01-05", periods=2 * 288, freq="5min", tz="UTC")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "timestamp": np.tile(idx, 2),
            "series": np.repeat(["a", "b"], len(idx)),
            "value": rng.poisson(20, 2 * len(idx)).astype(float),
        }
    )
    score_frame(frame)
    return time.perf_counter() - started


def score_frame(
    data: pd.DataFrame,
    *,
    model: str | Model = "auto",
    causal: bool = True,
    sensitivity: float = 1.0,
    freq: str | None = None,
    calendar: Calendar | None = None,
    clock: str = "UTC",
    **params: Any,
) -> pd.DataFrame:
    """Score long data (``timestamp, series, value[, denominator]``); return the output table.

    The table has :data:`~detector.types.OUTPUT_COLUMNS`, one row per series and time bucket
    from the series' first to its last row, missing buckets included (kind ``missing``).
    ``calendar`` and ``clock``: see :func:`score_panel`.
    """
    for col in ("timestamp", "value"):
        if col not in data.columns:
            raise InputError(f"missing column {col!r}; the data has {list(data.columns)}")
    if "series" not in data.columns:
        data = data.assign(series="value")
    if data.empty:
        return pd.DataFrame({c: [] for c in OUTPUT_COLUMNS})
    panel = to_panel(data, freq)
    options = _panel_options(
        model=model, causal=causal, sensitivity=sensitivity, calendar=calendar, clock=clock,
        **params,
    )  # fmt: skip
    parts = _scored_parts(panel, _value_columns, **options)
    frame = _gather_frame(panel, parts)
    frame.attrs["merged_rows"] = panel.merged_rows
    return frame


#: The output columns a chunk hands back; the timestamp and series columns are built once.
_VALUE_COLUMNS = tuple(c for c in OUTPUT_COLUMNS if c not in ("timestamp", "series"))


def _value_columns(sp: ScoredPanel) -> dict[str, np.ndarray]:
    """A chunk's output table as plain arrays, without its timestamp and series columns."""
    return _output_arrays(sp, keys=False)


def _gather_frame(panel: Panel, parts: Iterable[dict[str, np.ndarray]]) -> pd.DataFrame:
    """The output table of ``panel`` from its chunks' columns, in series-major order.

    Each chunk's rows are copied into columns allocated once for the whole table, so the
    table is never held twice (as chunks and as their concatenation) and no chunk's scoring
    arrays outlive it.
    """
    t = len(panel.index)
    rows = np.arange(t)[:, None]
    inside = (rows >= panel.first[None, :]) & (rows <= panel.last[None, :])
    r_idx, c_idx = np.nonzero(inside.T)
    del inside
    total = len(c_idx)
    columns: dict[str, np.ndarray] = {}
    at = 0
    for part in parts:
        size = len(part["value"])
        for c in _VALUE_COLUMNS:
            if c not in columns:
                columns[c] = np.empty(total, dtype=part[c].dtype)
            columns[c][at : at + size] = part[c]
        at += size
        del part
    if at != total:  # pragma: no cover - a chunk that lost rows is a bug, never output
        raise AssertionError(f"the chunks gave {at} rows for a table of {total}")
    # ``kind`` stays an object column, as the chunks' tables have it; the others are inferred
    # the same way a chunk's table infers them.
    columns["kind"] = pd.Series(columns["kind"], dtype=object, copy=False)
    frame = pd.DataFrame(
        {
            "timestamp": panel.index[c_idx],
            "series": np.asarray(panel.series, dtype=object)[r_idx],
            **columns,
        },
        copy=False,
    )
    return frame.loc[:, list(OUTPUT_COLUMNS)]


def _to_frame(sp: ScoredPanel) -> pd.DataFrame:
    columns = _output_arrays(sp)
    columns["kind"] = pd.Series(columns["kind"], dtype=object, copy=False)
    return pd.DataFrame(columns, copy=False).loc[:, list(OUTPUT_COLUMNS)]


def _output_arrays(sp: ScoredPanel, keys: bool = True) -> dict[str, np.ndarray]:
    """The output table's columns as arrays, series-major (all of series 0 in time order,
    then series 1, ...); without ``timestamp`` and ``series`` when ``keys`` is false."""
    panel, det = sp.panel, sp.detection
    t, _n = panel.values.shape
    rows = np.arange(t)[:, None]
    inside = (rows >= panel.first[None, :]) & (rows <= panel.last[None, :])
    r_idx, c_idx = np.nonzero(inside.T)
    ti, sj = c_idx, r_idx
    kinds = np.asarray(KIND_CODES, dtype=object)[det.kind[ti, sj]]
    # A bucket with no value is missing data whether or not the series is still warming up.
    kinds[np.isnan(panel.values[ti, sj])] = "missing"
    warm = ~sp.scorable[ti, sj]
    cols: dict[str, np.ndarray] = {
        "value": panel.values[ti, sj],
        "expected": sp.forecast.expected[ti, sj],
        "lower": det.lower[ti, sj],
        "upper": det.upper[ti, sj],
        "score": det.score[ti, sj],
        "is_anomaly": det.is_anomaly[ti, sj],
        "kind": kinds,
    }
    for col in ("expected", "lower", "upper", "score"):
        cols[col][warm] = np.nan
    reasons = np.full(len(ti), "", dtype=object)
    reasons[warm] = WARMING_UP
    index = panel.index
    for k in np.flatnonzero(cols["is_anomaly"]):
        start = det.run_start[ti[k], sj[k]]
        at = index[ti[k]]
        began = index[start] if start >= 0 else at
        reasons[k] = anomaly_reason(
            panel.series[sj[k]],
            kinds[k],
            at,
            panel.values[ti[k], sj[k]],
            sp.forecast.expected[ti[k], sj[k]],
            det.lower[ti[k], sj[k]],
            det.upper[ti[k], sj[k]],
            at - began + panel.freq,
        )
    for k in np.flatnonzero(kinds == "missing"):
        reasons[k] = missing_reason(panel.series[sj[k]], index[ti[k]])
    if sp.calendar is not None:
        _calendar_rows(cols, reasons, sp.calendar, ti, sj, warm | (kinds == "missing"))
    cols["reason"] = reasons
    if keys:
        cols = {
            "timestamp": index[ti],
            "series": np.asarray(panel.series, dtype=object)[sj],
            **cols,
        }
    return cols


def _calendar_rows(
    cols: dict[str, np.ndarray],
    reasons: np.ndarray,
    cal: Expectation,
    ti: np.ndarray,
    sj: np.ndarray,
    skip: np.ndarray,
) -> None:
    """Name the holiday or event in the reasons of its points; blank what was not scored."""
    label = cal.label[ti, sj]
    names = np.asarray(cal.labels, dtype=object)
    under = (label >= 0) & ~skip
    muted = cal.muted[ti, sj] & under
    for col in ("score", "lower", "upper"):
        cols[col][muted] = np.nan
    # "Higher, no limit": no upper bound.
    cols["upper"][np.isinf(cols["upper"])] = np.nan
    flagged = cols["is_anomaly"]
    for k in np.flatnonzero(under):
        name = names[label[k]]
        if muted[k]:
            reasons[k] = f"not scored: {name}"
        elif flagged[k]:
            reasons[k] = f"{reasons[k]}; more than {name} explains"
        else:
            reasons[k] = f"expected: {name}"
