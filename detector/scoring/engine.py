"""The scoring engine: a panel in, every point scored and decided, causally by default.

Causal mode refits the model at each period boundary (daily by default) on the rows before it,
then lets it forecast the period point by point; the detection layer calibrates and decides with
statistics from earlier periods only. So appending future data never changes an earlier output.
Retrospective mode (``causal=False``) fits once on the whole series and may look both ways.

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

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone

from detector.errors import ConfigError, InputError
from detector.models.base import FAMILIES, Forecast, Model, create_model
from detector.panel import Panel, to_panel
from detector.scoring.detect import KIND_CODES, Detection, DetectionParams, decide
from detector.scoring.reasons import WARMING_UP, anomaly_reason, missing_reason
from detector.types import OUTPUT_COLUMNS

_DETECTION_FIELDS = set(DetectionParams.__dataclass_fields__)


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


def check_scoring(model: str, params: dict[str, Any]) -> None:
    """Raise ConfigError if ``model`` or one of ``params`` would be rejected by scoring.

    Pipelines call this on load, so a typo fails ``detector validate`` rather than a run.

    >>> check_scoring("auto", {"threshold": 6, "refit": "1D"})
    >>> check_scoring("auto", {"treshold": 6})
    Traceback (most recent call last):
    ...
    detector.errors.ConfigError: ...treshold...
    """
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
    chunk: int = 500,
    **params: Any,
) -> ScoredPanel:
    """Forecast and decide every point of ``panel``; see the module docstring.

    Series are independent, so a large panel is scored ``chunk`` series at a time: the same
    results, with a fraction of the peak memory (the model's lagged stacks are the big part).
    """
    det_params, model_params = _split_params(params)
    detection_params = DetectionParams(**det_params)
    if isinstance(model, str):
        _make_model(model, causal, model_params)  # bad names/parameters fail before any work
    n = panel.values.shape[1]

    def fresh() -> Model:
        # A model instance is cloned (scikit-learn style: same parameters, no learned state),
        # so the caller's object is left untouched and each chunk starts clean.
        if isinstance(model, str):
            return _make_model(model, causal, model_params)
        return clone(model) if isinstance(model, BaseEstimator) else model

    if n <= chunk or not isinstance(model, str | BaseEstimator):
        return _score_chunk(
            panel, fresh(), causal, refit, min_history, confidence_ramp, detection_params
        )
    parts = [
        _score_chunk(
            _columns(panel, slice(a, a + chunk)),
            fresh(),
            causal,
            refit,
            min_history,
            confidence_ramp,
            detection_params,
        )
        for a in range(0, n, chunk)
    ]
    return _stitch(panel, parts)


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
    return ScoredPanel(
        panel, forecast, detection, cat(lambda p: p.scorable),
        cat1(lambda p: p.family), cat1(lambda p: p.baseline),
    )  # fmt: skip


def _score_chunk(
    panel: Panel,
    mdl: Model,
    causal: bool,
    refit: str,
    min_history: str,
    confidence_ramp: str,
    detection_params: DetectionParams,
) -> ScoredPanel:
    t, n = panel.values.shape
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
            mdl.fit(panel, start)
            family[start:stop] = _family_codes(mdl.info().family)[None, :]
            fc = mdl.predict(panel, start, stop)
            expected[start:stop], variance[start:stop] = fc.expected, fc.variance
            if fc.level_shift is not None:
                shift[start:stop] = fc.level_shift
        forecast = Forecast(expected, variance, shift)
        warm = max(int(pd.Timedelta(min_history) / panel.freq), 24)
    else:
        mdl.fit(panel, t)
        family = np.repeat(_family_codes(mdl.info().family)[None, :], t, axis=0)
        forecast = mdl.predict(panel, 0, t)
        bounds = [t]
        warm = 12
    rows = np.arange(t)[:, None]
    scorable = (rows >= panel.first[None, :] + warm) & (rows <= panel.last[None, :])
    # Cold start: thresholds start higher and relax over the first days of history.
    ramp = max(1, int(pd.Timedelta(confidence_ramp) / panel.freq)) if causal else 1
    history = np.clip(rows - panel.first[None, :] - warm, 0, None)
    confidence = 1.0 / (1.0 + np.clip(1.0 - history / ramp, 0.0, 1.0) * 0.7)
    info = mdl.info()
    detection = decide(
        panel.values,
        forecast.expected,
        forecast.variance,
        family,
        scorable,
        forecast.level_shift,
        bounds,
        window,
        detection_params,
        causal=causal,
        confidence=confidence,
    )
    return ScoredPanel(panel, forecast, detection, scorable, info.family, info.baseline)


def score_frame(
    data: pd.DataFrame,
    *,
    model: str | Model = "auto",
    causal: bool = True,
    sensitivity: float = 1.0,
    freq: str | None = None,
    **params: Any,
) -> pd.DataFrame:
    """Score long data (``timestamp, series, value[, denominator]``); return the output table.

    The table has :data:`~detector.types.OUTPUT_COLUMNS`, one row per series and time bucket
    from the series' first to its last row, missing buckets included (kind ``missing``).
    """
    for col in ("timestamp", "value"):
        if col not in data.columns:
            raise InputError(f"missing column {col!r}; the data has {list(data.columns)}")
    if "series" not in data.columns:
        data = data.assign(series="value")
    if data.empty:
        return pd.DataFrame({c: [] for c in OUTPUT_COLUMNS})
    panel = to_panel(data, freq)
    scored = score_panel(panel, model=model, causal=causal, sensitivity=sensitivity, **params)
    frame = scored.to_frame()
    frame.attrs["merged_rows"] = panel.merged_rows
    return frame


def _to_frame(sp: ScoredPanel) -> pd.DataFrame:
    panel, det = sp.panel, sp.detection
    t, _n = panel.values.shape
    rows = np.arange(t)[:, None]
    inside = (rows >= panel.first[None, :]) & (rows <= panel.last[None, :])
    # Series-major order: all of series 0 in time order, then series 1, ...
    r_idx, c_idx = np.nonzero(inside.T)
    ti, sj = c_idx, r_idx
    kinds = np.asarray(KIND_CODES, dtype=object)[det.kind[ti, sj]]
    # A bucket with no value is missing data whether or not the series is still warming up.
    kinds[np.isnan(panel.values[ti, sj])] = "missing"
    ts = panel.index[ti]
    frame = pd.DataFrame(
        {
            "timestamp": ts,
            "series": np.asarray(panel.series, dtype=object)[sj],
            "value": panel.values[ti, sj],
            "expected": sp.forecast.expected[ti, sj],
            "lower": det.lower[ti, sj],
            "upper": det.upper[ti, sj],
            "score": det.score[ti, sj],
            "is_anomaly": det.is_anomaly[ti, sj],
            "kind": kinds,
            "reason": "",
        }
    )
    warm = ~sp.scorable[ti, sj]
    for col in ("expected", "lower", "upper", "score"):
        frame.loc[warm, col] = np.nan
    reasons = frame["reason"].to_numpy(dtype=object)
    reasons[warm] = WARMING_UP
    for k in np.flatnonzero(frame["is_anomaly"].to_numpy()):
        start = det.run_start[ti[k], sj[k]]
        began = panel.index[start] if start >= 0 else ts[k]
        reasons[k] = anomaly_reason(
            panel.series[sj[k]],
            kinds[k],
            ts[k],
            panel.values[ti[k], sj[k]],
            sp.forecast.expected[ti[k], sj[k]],
            det.lower[ti[k], sj[k]],
            det.upper[ti[k], sj[k]],
            ts[k] - began + panel.freq,
        )
    for k in np.flatnonzero(kinds == "missing"):
        reasons[k] = missing_reason(panel.series[sj[k]], ts[k])
    frame["reason"] = reasons
    frame["kind"] = frame["kind"].astype(object)
    return frame.loc[:, list(OUTPUT_COLUMNS)]
