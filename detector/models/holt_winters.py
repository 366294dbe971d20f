"""HoltWintersModel: exponential smoothing (level, optional trend, daily season), per series.

Why: Holt-Winters is the classic forecaster of operations teams and a useful yardstick for the
profile model: it follows a level that moves during the week where a median of past days lags.
Like :mod:`detector.models.stl` it fits one statsmodels model per series per refit, so it is
for explicit use (``--model holt_winters``) on a handful of series, never chosen by ``auto``.

At ``fit(panel, end)`` each series' trailing ``history`` before ``end`` (gaps interpolated) is
fitted with ``ExponentialSmoothing``: heuristic initial states (so only the smoothing weights
are optimised, which keeps a fit on a week of 5-minute data around 50 ms) and the daily season
when the window holds two full days. ``predict(panel, start, stop)`` returns the multi-step
forecast from the end of the window for the whole range: causal, since it uses rows before
``end`` only, and an incident during the day does not drag the forecast along.

The variance of a point is the in-sample one-step residual variance (sse / n over the observed
points) grown with the horizon as for a local level, ``sigma^2 * (1 + (h - 1) * alpha^2)``,
and at least the variance of the model's own in-sample day-ahead forecasts (1.4826 * MAD of
their errors, computed from the fitted states without refitting): one-step residuals say
nothing of the day-to-day jumps of the level that a forecast made at midnight suffers.

Multiplicative seasonality needs positive values: a series with a zero or a negative value in
its window is fitted with an additive season instead. Windows that are too short, flat or
mostly gaps get a robust level (the median of the last observations). While the window holds
less than two days, a season is wanted but cannot be fitted yet: the forecast is non-seasonal
and without trend (which would extrapolate the morning's rise all day), and its variance at
least the window's spread around it, so the daily swing it does not know yet is no anomaly.

>>> import pandas as pd
>>> from detector.panel import to_panel
>>> idx = pd.date_range("2026-01-01", periods=288 * 3, freq="5min", tz="UTC")
>>> shape = 50 + 40 * np.sin(2 * np.pi * np.arange(len(idx)) / 288)
>>> panel = to_panel(pd.DataFrame({"timestamp": idx, "series": "orders", "value": shape}))
>>> model = HoltWintersModel().fit(panel, 288 * 2)
>>> model.info().extra["seasonal_periods"].tolist()
[288]
>>> fc = model.predict(panel, 288 * 2, 288 * 3)
>>> bool(np.allclose(fc.expected[:, 0], shape[288 * 2 :], atol=0.5))
True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from detector.errors import ConfigError, ModelError
from detector.models.base import Forecast, SeriesInfo, register
from detector.models.seasonality import candidate_periods
from detector.models.stl import (
    MIN_HOLDOUT,
    MIN_OBSERVED,
    Window,
    check_bool,
    check_duration,
    check_int,
    history_rows,
    robust_level,
    robust_scale,
    scale_floor,
    series_family,
    series_window,
)
from detector.panel import Panel

_NAME = "HoltWintersModel"
#: The heuristic initialisation needs at least this many observations.
_MIN_OBS = 10


@dataclass
class _Fitted:
    """What one series learned at the last fit."""

    lo: int  # first row of the window
    results: Any  # statsmodels HoltWintersResults, or None for the robust-level fallback
    level: float  # the fallback's level (unused when results is set)
    insample: np.ndarray  # one-step-ahead fitted values over rows [lo, end)
    sigma2: float  # residual variance of one point
    least: float  # variance floor: day-ahead error variance (or the spread while warming up)
    alpha: float  # level smoothing weight (how fast the forecast error grows)
    period: int  # seasonal period used, 0 for none
    seasonal: str  # "add", "mul" or "" (none)
    end: int = 0  # the row after the window's last observation: the forecast origin


@register("holt_winters")
class HoltWintersModel(BaseEstimator):
    """Holt-Winters exponential smoothing per series; see the module docstring.

    ``seasonal_periods=None`` uses the daily period of the grid when the ``history`` window
    holds two full days of it, else no season.
    """

    def __init__(
        self,
        trend: str | None = None,
        damped_trend: bool = False,
        seasonal: str | None = "add",
        seasonal_periods: int | None = None,
        history: str = "7D",
        causal: bool = True,
    ) -> None:
        self.trend = trend
        self.damped_trend = damped_trend
        self.seasonal = seasonal
        self.seasonal_periods = seasonal_periods
        self.history = history
        self.causal = causal

    def _validate(self) -> None:
        if self.trend not in (None, "add"):
            raise ConfigError(
                f"The 'trend' parameter of {_NAME} must be None or 'add'. "
                f"Got {self.trend!r} instead."
            )
        if self.seasonal not in (None, "add", "mul"):
            raise ConfigError(
                f"The 'seasonal' parameter of {_NAME} must be None, 'add' or 'mul'. "
                f"Got {self.seasonal!r} instead."
            )
        check_bool(self.damped_trend, "damped_trend", _NAME)
        if self.damped_trend and self.trend is None:
            raise ConfigError(
                f"The 'damped_trend' parameter of {_NAME} needs trend='add'. "
                "Got damped_trend=True with trend=None instead."
            )
        if self.seasonal_periods is not None:
            check_int(self.seasonal_periods, "seasonal_periods", _NAME, 2)
        check_duration(self.history, "history", _NAME, "'7D'")
        check_bool(self.causal, "causal", _NAME)

    # -- fitting ------------------------------------------------------------------------------

    def fit(self, panel: Panel, end: int) -> HoltWintersModel:
        """Fit each series on its trailing history before row ``end``."""
        self._validate()
        n_series = panel.values.shape[1]
        rows = history_rows(self.history, panel.freq)
        horizon = max(round(panel.steps_per_day), MIN_HOLDOUT)
        period = self.seasonal_periods
        if period is None:
            period = candidate_periods(panel.freq).get("daily", 0)
        self.end_ = int(end)
        self.family_ = np.full(n_series, "continuous", dtype=object)
        self.fitted_: list[_Fitted | None] = []
        for j in range(n_series):
            window = series_window(panel, j, end, rows if self.causal else None)
            if window is None:
                self.fitted_.append(None)
                continue
            self.family_[j] = series_family(window.observed_values)
            fitted = None
            y = window.y
            if len(y) >= _MIN_OBS and window.observed.mean() >= MIN_OBSERVED and np.ptp(y) > 0:
                fitted = self._fit_one(window, int(period), horizon)
            fitted = fitted if fitted is not None else _fit_level(window)
            fitted.end = window.stop
            self.fitted_.append(fitted)
        return self

    def _fit_one(self, window: Window, period: int, horizon: int) -> _Fitted | None:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        y = window.y
        n = len(y)
        kind = self.seasonal
        # Warming up: a season is wanted but the window holds less than two cycles of it.
        warming = kind is not None and period >= 2
        if kind is None or period < 2 or n < max(2 * period, _MIN_OBS + 2 * (period // 2)):
            kind, period = None, 0
        warming = warming and kind is None
        if kind == "mul" and np.min(y) <= 0:
            kind = "add"
        # Without its season, a trend would extrapolate the morning's rise all day long.
        trend = None if warming else self.trend
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                res = ExponentialSmoothing(
                    y,
                    trend=trend,
                    damped_trend=bool(self.damped_trend) and trend is not None,
                    seasonal=kind,
                    seasonal_periods=period or None,
                    initialization_method="heuristic",
                ).fit(optimized=True, use_brute=False)
            except (ValueError, ArithmeticError, np.linalg.LinAlgError):
                return None
        fitted = np.asarray(res.fittedvalues, dtype=float)
        if not np.all(np.isfinite(fitted)):
            return None
        resid = (y - fitted)[window.observed]
        floor = scale_floor(window.observed_values)
        sigma2 = max(float(np.mean(resid**2)), floor**2)
        alpha = float(res.params.get("smoothing_level", 0.0))
        alpha = alpha if np.isfinite(alpha) else 0.0
        # The one-step residuals say nothing of a day-ahead forecast's error when the level
        # jumps from day to day (weekends): the variance is at least that of the model's own
        # in-sample forecasts a day ahead. A flat forecast of a series whose season is not
        # modelled yet errs by the season's swing: at least the window's spread around it.
        day = _day_ahead_errors(res, y, kind or "", period, horizon)[window.observed]
        day = day[np.isfinite(day)]
        least = robust_scale(day, window.observed_values) ** 2 if day.size >= MIN_HOLDOUT else 0.0
        if warming:
            least = max(least, robust_level(window)[1] ** 2)
        return _Fitted(window.lo, res, np.nan, fitted, sigma2, least, alpha, period, kind or "")

    # -- forecasting --------------------------------------------------------------------------

    def predict(self, panel: Panel, start: int, stop: int) -> Forecast:
        """Forecast rows ``[start, stop)`` from the last fit: a multi-step forecast ahead of it."""
        if not hasattr(self, "fitted_"):
            raise ModelError(f"{_NAME}.predict() was called before fit().")
        rows = np.arange(start, stop)
        expected = np.full((len(rows), len(self.fitted_)), np.nan)
        variance = np.ones((len(rows), len(self.fitted_)))
        for j, f in enumerate(self.fitted_):
            if f is None:
                continue
            h = rows - f.end + 1  # horizon: 1 for the first row after the window
            ahead = h >= 1
            steps = int(h[ahead].max()) if ahead.any() else 0
            e = np.full(len(rows), np.nan)
            if steps:
                if f.results is None:
                    e[ahead] = f.level
                else:
                    with warnings.catch_warnings(), np.errstate(all="ignore"):
                        warnings.simplefilter("ignore")
                        path = np.asarray(f.results.forecast(steps), dtype=float)
                    e[ahead] = path[h[ahead] - 1]
            inside = ~ahead & (rows >= f.lo)
            e[inside] = f.insample[rows[inside] - f.lo]
            if self.family_[j] == "count":
                e = np.maximum(e, 0.0)
            expected[:, j] = e
            grow = 1 + np.maximum(h - 1, 0) * f.alpha**2
            variance[:, j] = np.maximum(f.sigma2 * grow, f.least)
        return Forecast(expected, variance)

    def info(self) -> SeriesInfo:
        """Family, baseline and, per series, the seasonal period and kind actually fitted."""
        fitted = getattr(self, "fitted_", [])
        n = len(fitted)
        return SeriesInfo(
            family=np.asarray(getattr(self, "family_", np.full(n, "continuous")), dtype=object),
            baseline=np.full(n, "holt_winters", dtype=object),
            extra={
                "seasonal_periods": np.asarray([0 if f is None else f.period for f in fitted]),
                "seasonal": np.asarray(["" if f is None else f.seasonal for f in fitted], object),
                "alpha": np.asarray([np.nan if f is None else f.alpha for f in fitted]),
            },
        )


def _fit_level(window: Window) -> _Fitted:
    level, scale = robust_level(window)
    n = len(window.y)
    return _Fitted(window.lo, None, level, np.full(n, level), scale**2, 0.0, 0.0, 0, "")


def _day_ahead_errors(
    res: Any, y: np.ndarray, seasonal: str, period: int, horizon: int
) -> np.ndarray:
    """In-sample errors of forecasts made every ``horizon`` rows for the ``horizon`` rows after.

    The forecast from origin ``o`` uses the fitted states at ``o`` (level, trend, season), with
    the formulas of ``forecast()`` (which, at exactly one period ahead, also applies the last
    seasonal update: a difference of the order of ``smoothing_seasonal`` times one residual).
    Rows not forecast (before the first origin) are NaN. Cheap: no refit.

    >>> import warnings
    >>> from statsmodels.tsa.holtwinters import ExponentialSmoothing
    >>> y = 10 + np.sin(np.arange(60) * np.pi / 3) + np.random.default_rng(0).normal(0, 0.1, 60)
    >>> def hw(values, **fixed):
    ...     with warnings.catch_warnings():
    ...         warnings.simplefilter("ignore")
    ...         model = ExponentialSmoothing(values, seasonal="add", seasonal_periods=6,
    ...                                      initialization_method="heuristic")
    ...         return model.fit(**fixed, optimized=not fixed)
    >>> head = hw(y[:-10])
    >>> full = hw(y, smoothing_level=head.params["smoothing_level"],
    ...           smoothing_seasonal=head.params["smoothing_seasonal"])
    >>> err = _day_ahead_errors(full, y, "add", 6, 10)
    >>> bool(np.allclose(err[-10:], y[-10:] - head.forecast(10), atol=0.01))
    True
    """
    n = len(y)
    out = np.full(n, np.nan)
    level = np.asarray(res.level, dtype=float)
    trend = np.asarray(res.trend, dtype=float) if res.model.trend else None
    season = np.asarray(res.season, dtype=float) if seasonal else None
    phi = float(res.params.get("damping_trend", 1.0)) if res.model.damped_trend else 1.0
    first = period - 1 if seasonal else 0
    for o in range(n - 1 - horizon, first - 1, -horizon):
        h = np.arange(1, min(horizon, n - 1 - o) + 1)
        pred = np.full(len(h), level[o])
        if trend is not None:
            steps = h.astype(float) if phi == 1.0 else np.cumsum(phi**h)
            pred = pred + steps * trend[o]
        if season is not None:
            s = season[o + h - period * ((h - 1) // period + 1)]
            pred = pred * s if seasonal == "mul" else pred + s
        out[o + h] = y[o + h] - pred
    return out
