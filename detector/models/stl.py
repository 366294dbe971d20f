"""STLModel and MSTLModel: seasonal-trend decomposition (LOESS) forecasters, one series at a time.

Why offer them next to the vectorised profile model: STL is the textbook decomposition that
analysts know and trust, robust to outliers (``robust=True`` down-weights past incidents), and
MSTL separates a daily from a weekly shape. They are a reference to compare against and a
second opinion on a handful of series, chosen explicitly (``--model stl`` / ``--model mstl``),
never by ``auto``: a decomposition cannot be vectorised across series, so a panel costs one or
two statsmodels fits per series per refit (about 30 ms for STL on a week of 5-minute data,
0.4 s for MSTL on 15 days with a weekly period).

At ``fit(panel, end)`` each series' trailing ``history`` before ``end`` is interpolated over
its gaps and decomposed with the periods the window holds at least two full cycles of (from
:func:`~detector.models.seasonality.candidate_periods` unless given). The model keeps the last
seasonal cycle(s), the trend level at the end (plus, if ``slope_damping > 0``, a damped slope)
and the scale of its errors. The forecast for a later row is that level plus the seasonal value
of the row's phase; its variance is the scale squared. Nothing at or after ``end`` is used.
When no period fits, or the window is mostly gaps or flat, the forecast is a robust level (the
median of the last observations) with the window's spread around it as the scale.

Choices made for forecasting rather than describing the past:

- The last seasonal cycle is a boundary estimate of the seasonal LOESS, its noisiest part, and
  it is what every forecast repeats. So the seasonal smoother is local-constant
  (``seasonal_deg=0``: a weighted mean of the same phase over the recent cycles, which cannot
  extrapolate a weekday's swing into the weekend) and averages over more cycles by default
  (13 instead of statsmodels' 7), and the cycle is then smoothed over ``seasonal_smooth``
  (30 minutes): neighbouring 5-minute phases carry the same shape and independent noise.
- A weekly component is seen two or three times in the window, so it also holds last week's
  incidents; only its broad shape is kept (a running median over a quarter of a day).
- The scale is that of the model's own day-ahead errors: the window minus its last day is
  decomposed the same way and its forecast compared with that day (1.4826 * MAD at observed
  points). In-sample STL residuals are no use here: with a few cycles the seasonal LOESS all
  but interpolates them and their MAD is close to 0.
- LOESS is evaluated every ~10% of each smoother's window (the ``*_jump`` options, as
  Cleveland et al. advise) and 5 robustness passes are made, not 15; statsmodels' defaults
  take 30 to 60 times longer for a change well below the noise.

The helpers at the bottom (history windows, families, robust scales) are shared with
:mod:`detector.models.holt_winters`, the other per-series model.

>>> import pandas as pd
>>> from detector.panel import to_panel
>>> idx = pd.date_range("2026-01-01", periods=288 * 3, freq="5min", tz="UTC")
>>> shape = 50 + 40 * np.sin(2 * np.pi * np.arange(len(idx)) / 288)
>>> panel = to_panel(pd.DataFrame({"timestamp": idx, "series": "orders", "value": shape}))
>>> model = STLModel().fit(panel, 288 * 2)
>>> model.info().extra["periods"].tolist()
['288']
>>> fc = model.predict(panel, 288 * 2, 288 * 3)
>>> bool(np.allclose(fc.expected[:, 0], shape[288 * 2 :], atol=0.5))
True
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.ndimage import median_filter
from sklearn.base import BaseEstimator

from detector.errors import ConfigError, ModelError
from detector.models.base import Forecast, SeriesInfo, register
from detector.models.seasonality import candidate_periods
from detector.panel import Panel

#: Fewest observed rows a holdout needs to measure the forecast error.
MIN_HOLDOUT = 24
#: Observations the robust-level fallback takes the median of.
LEVEL_POINTS = 12
#: The decomposition needs at least this fraction of the window observed (not interpolated).
MIN_OBSERVED = 0.5
#: Robustness iterations of STL: one inner loop as in R's ``stl(robust=TRUE)``, and 5 outer
#: loops instead of 15 (the bisquare weights have settled by then; MSTL gets 3x faster).
_ITERATIONS = {"inner_iter": 1, "outer_iter": 5}


@dataclass
class _Fitted:
    """What one series learned at the last fit."""

    lo: int  # first row of the window (rows before it are unknown)
    level: float  # trend level at the end of the window
    slope: float  # trend slope per row at the end (used only if slope_damping > 0)
    cycles: list[tuple[int, np.ndarray]]  # (period, last cycle of that seasonal component)
    insample: np.ndarray  # trend + seasonal over rows [lo, end), for retrospective predict
    scale: float  # error scale of one point (of day-ahead forecasts where measurable)
    end: int = 0  # the row after the window's last observation: the forecast origin


class _DecompositionModel(BaseEstimator):
    """Shared fit/predict of STL and MSTL; subclasses choose periods and decompose."""

    _name: ClassVar[str] = ""
    _baseline: ClassVar[str] = ""

    history: str
    seasonal_smooth: str
    slope_damping: float
    causal: bool

    # -- set-up ------------------------------------------------------------------------------

    def _validate(self) -> None:
        check_duration(self.history, "history", self._name, "'7D'")
        d = self.slope_damping
        if isinstance(d, bool) or not isinstance(d, numbers.Real) or not 0 <= d < 1:
            raise ConfigError(
                f"The 'slope_damping' parameter of {self._name} must be a number in [0, 1). "
                f"Got {d!r} instead."
            )
        check_bool(self.causal, "causal", self._name)
        check_duration(self.seasonal_smooth, "seasonal_smooth", self._name, "'30min'", zero=True)

    def _requested_periods(self) -> list[int] | None:
        raise NotImplementedError

    def _usable(self, periods: list[int], n: int) -> list[int]:
        raise NotImplementedError

    def _decompose(self, y: np.ndarray, periods: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Return the trend ``(n,)`` and the seasonal components ``(n, len(periods))``."""
        raise NotImplementedError

    def _candidates(self, panel: Panel) -> list[int]:
        requested = self._requested_periods()
        if requested is not None:
            return sorted(set(requested))
        return sorted(set(candidate_periods(panel.freq).values()))

    # -- fitting ------------------------------------------------------------------------------

    def fit(self, panel: Panel, end: int) -> _DecompositionModel:
        """Decompose each series' trailing history before row ``end``; see the module docstring."""
        self._validate()
        n_series = panel.values.shape[1]
        rows = history_rows(self.history, panel.freq)
        candidates = self._candidates(panel)
        horizon = max(round(panel.steps_per_day), MIN_HOLDOUT)
        self.smooth_rows_ = 2 * int(pd.Timedelta(self.seasonal_smooth) / panel.freq / 2) + 1
        self.end_ = int(end)
        self.family_ = np.full(n_series, "continuous", dtype=object)
        self.periods_ = np.full(n_series, "", dtype=object)
        self.fitted_: list[_Fitted | None] = []
        for j in range(n_series):
            window = series_window(panel, j, end, rows if self.causal else None)
            if window is None:
                self.fitted_.append(None)
                continue
            self.family_[j] = series_family(window.observed_values)
            periods = self._usable(candidates, len(window.y))
            fitted = self._fit_decomposition(window.y, window.observed, periods)
            if fitted is None:
                fitted = _fit_level(window.y, window.observed)
                periods = []
            else:
                scale = self._holdout_scale(window, candidates, horizon)
                fitted.scale = scale if scale is not None else _cycle_scale(window, periods[0])
            fitted.lo, fitted.end = window.lo, window.stop
            self.periods_[j] = ",".join(str(p) for p in periods)
            self.fitted_.append(fitted)
        return self

    def _fit_decomposition(
        self, y: np.ndarray, observed: np.ndarray, periods: list[int]
    ) -> _Fitted | None:
        """Decompose ``y``; None when it cannot be (no period, mostly gaps, flat, failed)."""
        if not periods or observed.mean() < MIN_OBSERVED or np.ptp(y) == 0:
            return None
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                trend, seasonal = self._decompose(y, periods)
            except (ValueError, ArithmeticError, np.linalg.LinAlgError):
                return None
        seasonal = np.asarray(seasonal, dtype=float).reshape(len(y), len(periods))
        trend = np.asarray(trend, dtype=float)
        if not np.all(np.isfinite(trend)) or not np.all(np.isfinite(seasonal)):
            return None
        w = self.smooth_rows_
        cycles = []
        for i, p in enumerate(periods):
            cycle = seasonal[len(y) - p :, i]
            if i > 0:
                # A longer period (the week) is seen only a few times in the window, so its
                # component also holds last week's incidents: keep its broad shape only, the
                # day-of-week level, with a running median over a quarter of the shortest one.
                cycle = median_filter(cycle, size=max(1, periods[0] // 4), mode="wrap")
            cycles.append((p, smooth_cycle(cycle, w)))
        fitted = trend + smooth_series(seasonal.sum(axis=1), w)
        k = min(len(y) - 1, max(periods))
        slope = (trend[-1] - trend[-1 - k]) / k if k > 0 else 0.0
        # No scale from in-sample residuals: with a few cycles the seasonal LOESS all but
        # interpolates them. fit() sets it from a holdout (see _holdout_scale).
        return _Fitted(0, float(trend[-1]), float(slope), cycles, fitted, np.nan)

    def _holdout_scale(self, window: Window, candidates: list[int], horizon: int) -> float | None:
        """The scale of this model's own forecast errors on the last ``horizon`` rows.

        Refit without those rows and compare the forecast with them: this measures the error
        the detection layer will see (a day-ahead forecast), where in-sample residuals of a
        decomposition are far too small. With too little history for a decomposition the
        holdout forecast repeats the last cycle, and with less than a cycle it is a level.
        """
        y, observed = window.y, window.observed
        hold = min(horizon, len(y) // 3)
        if hold < 1 or observed[len(y) - hold :].sum() < MIN_HOLDOUT:
            return None
        cut = len(y) - hold
        train, train_obs = y[:cut], observed[:cut]
        offsets = np.arange(hold)
        fitted = self._fit_decomposition(train, train_obs, self._usable(candidates, cut))
        if fitted is not None:
            path = self._extrapolate(fitted, offsets)
        else:
            period = max((p for p in candidates if p <= cut), default=0)
            if period and train_obs[cut - period :].mean() >= MIN_OBSERVED:
                path = np.resize(train[cut - period :], hold)  # the last cycle, repeated
            else:
                path = _fit_level(train, train_obs).level + 0 * offsets
        err = (y[cut:] - path)[observed[cut:]]
        return robust_scale(err, window.observed_values)

    # -- forecasting --------------------------------------------------------------------------

    def _extrapolate(self, f: _Fitted, offsets: np.ndarray) -> np.ndarray:
        """Level (+ damped slope) + last seasonal cycles at ``offsets`` rows after the window."""
        out = np.full(len(offsets), f.level)
        phi = float(self.slope_damping)
        if phi > 0:
            out += f.slope * phi * (1 - phi ** (offsets + 1)) / (1 - phi)
        for p, cycle in f.cycles:
            out += cycle[offsets % p]
        return out

    def predict(self, panel: Panel, start: int, stop: int) -> Forecast:
        """Forecast rows ``[start, stop)`` from the last fit only (rows ``< end`` of that fit).

        Rows inside the fitted window (only asked for in retrospective mode) get the in-sample
        trend + seasonal; rows before it are unknown (NaN).
        """
        if not hasattr(self, "fitted_"):
            raise ModelError(f"{self._name}.predict() was called before fit().")
        rows = np.arange(start, stop)
        expected = np.full((len(rows), len(self.fitted_)), np.nan)
        variance = np.ones((len(rows), len(self.fitted_)))
        for j, f in enumerate(self.fitted_):
            if f is None:
                continue
            ahead = rows >= f.end
            e = np.full(len(rows), np.nan)
            e[ahead] = self._extrapolate(f, rows[ahead] - f.end)
            inside = ~ahead & (rows >= f.lo)
            e[inside] = f.insample[rows[inside] - f.lo]
            if self.family_[j] == "count":
                e = np.maximum(e, 0.0)
            expected[:, j] = e
            variance[:, j] = f.scale**2
        return Forecast(expected, variance)

    def info(self) -> SeriesInfo:
        """Family, baseline and the periods each series was decomposed with ('' = level)."""
        n = len(getattr(self, "fitted_", []))
        scale = [np.nan if f is None else f.scale for f in getattr(self, "fitted_", [])]
        return SeriesInfo(
            family=np.asarray(getattr(self, "family_", np.full(n, "continuous")), dtype=object),
            baseline=np.full(n, self._baseline, dtype=object),
            extra={
                "periods": np.asarray(getattr(self, "periods_", np.full(n, "")), dtype=object),
                "scale": np.asarray(scale, dtype=float),
            },
        )


@register("stl")
class STLModel(_DecompositionModel):
    """Robust STL with one period per series; see the module docstring.

    ``period=None`` takes the longest of the daily/weekly periods the ``history`` window holds
    two full cycles of (the daily one with the default ``"7D"``), because a weekly cycle also
    contains the daily shape. ``seasonal`` is STL's seasonal smoother length in cycles (odd,
    >= 3); ``seasonal_smooth`` the width of the moving average over the forecast cycle
    (``"0min"`` for none).
    """

    _name = "STLModel"
    _baseline = "stl"

    def __init__(
        self,
        period: int | None = None,
        history: str = "7D",
        seasonal: int = 13,
        seasonal_smooth: str = "30min",
        slope_damping: float = 0.0,
        causal: bool = True,
    ) -> None:
        self.period = period
        self.history = history
        self.seasonal = seasonal
        self.seasonal_smooth = seasonal_smooth
        self.slope_damping = slope_damping
        self.causal = causal

    def _validate(self) -> None:
        super()._validate()
        if self.period is not None:
            check_int(self.period, "period", self._name, 2)
        s = self.seasonal
        if not is_int(s) or s < 3 or s % 2 == 0:
            raise ConfigError(
                f"The 'seasonal' parameter of {self._name} must be an odd int >= 3. "
                f"Got {s!r} instead."
            )

    def _requested_periods(self) -> list[int] | None:
        return None if self.period is None else [int(self.period)]

    def _usable(self, periods: list[int], n: int) -> list[int]:
        fits = [p for p in periods if n >= 2 * p]
        return fits[-1:]

    def _decompose(self, y: np.ndarray, periods: list[int]) -> tuple[np.ndarray, np.ndarray]:
        from statsmodels.tsa.seasonal import STL

        (p,) = periods
        s = int(self.seasonal)
        stl = STL(y, period=p, seasonal=s, seasonal_deg=0, robust=True, **_jumps(p, s))
        res = stl.fit(**_ITERATIONS)
        return res.trend, res.seasonal


@register("mstl")
class MSTLModel(_DecompositionModel):
    """Robust MSTL with every supported period at once (daily and weekly); see the module doc.

    statsmodels' MSTL only keeps periods shorter than half the window, so the default
    ``history="15D"`` is the shortest that lets a weekly period in (with ``"14D"`` the weekly
    component would never be fitted). Until the window holds that much, the model is an STL on
    the daily period.
    """

    _name = "MSTLModel"
    _baseline = "mstl"

    def __init__(
        self,
        periods: list[int] | tuple[int, ...] | None = None,
        history: str = "15D",
        seasonal_smooth: str = "30min",
        slope_damping: float = 0.0,
        causal: bool = True,
    ) -> None:
        self.periods = periods
        self.history = history
        self.seasonal_smooth = seasonal_smooth
        self.slope_damping = slope_damping
        self.causal = causal

    def _validate(self) -> None:
        super()._validate()
        ps = self.periods
        if ps is not None and (
            isinstance(ps, str | bytes)
            or not isinstance(ps, list | tuple)
            or not ps
            or not all(is_int(p) and p >= 2 for p in ps)
        ):
            raise ConfigError(
                f"The 'periods' parameter of {self._name} must be a non-empty list of ints >= 2. "
                f"Got {ps!r} instead."
            )

    def _requested_periods(self) -> list[int] | None:
        return None if self.periods is None else [int(p) for p in self.periods]

    def _usable(self, periods: list[int], n: int) -> list[int]:
        return [p for p in periods if 2 * p < n]  # MSTL drops period >= n / 2 (with a warning)

    def _decompose(self, y: np.ndarray, periods: list[int]) -> tuple[np.ndarray, np.ndarray]:
        from statsmodels.tsa.seasonal import MSTL

        # MSTL's seasonal windows are 11, 15, ... for the periods in increasing order.
        kwargs = {"robust": True, "seasonal_deg": 0, **_jumps(min(periods), 11), **_ITERATIONS}
        res = MSTL(y, periods=periods, stl_kwargs=kwargs).fit()
        return res.trend, res.seasonal


def _jumps(period: int, seasonal: int = 7) -> dict[str, int]:
    """LOESS jumps of about 10% of each smoother's window, as Cleveland et al. (1990) advise.

    statsmodels evaluates every LOESS at every point by default (jump 1), which makes a week of
    5-minute data take seconds; evaluating every 10% of the window and interpolating changes
    the components by a small fraction of the noise and is 30-40 times faster.
    """
    trend = math.ceil(1.5 * period / (1 - 1.5 / seasonal))
    trend += (trend + 1) % 2
    low_pass = period + 1 + period % 2
    return {
        "trend_jump": max(1, math.ceil(0.1 * trend)),
        "low_pass_jump": max(1, math.ceil(0.1 * low_pass)),
    }


def _cycle_scale(window: Window, period: int) -> float:
    """The noise of one point from changes over one cycle, when no holdout is possible.

    ``(y[t] - y[t - period]) / sqrt(2)`` at pairs of observed points: the error of repeating
    the last cycle, a little pessimistic for a decomposition that averages several.
    """
    y, obs = window.y, window.observed
    pairs = obs[period:] & obs[:-period]
    diffs = (y[period:] - y[:-period])[pairs] / math.sqrt(2.0)
    return robust_scale(diffs, window.observed_values)


def _fit_level(y: np.ndarray, observed: np.ndarray) -> _Fitted:
    level, scale = robust_level(Window(0, y, observed))
    return _Fitted(0, level, 0.0, [], np.full(len(y), level), scale)


# -- helpers shared with the Holt-Winters model ------------------------------------------------


@dataclass
class Window:
    """One series' history window: gaps filled by linear interpolation for the fit."""

    lo: int  # panel row of y[0]
    y: np.ndarray  # values, gaps interpolated (constant beyond the first/last observation)
    observed: np.ndarray  # bool: the value was observed, not interpolated

    @property
    def observed_values(self) -> np.ndarray:
        return self.y[self.observed]

    @property
    def stop(self) -> int:
        """The panel row after the last observation."""
        return self.lo + len(self.y)


def series_window(panel: Panel, j: int, end: int, rows: int | None) -> Window | None:
    """Series ``j`` over ``[end - rows, end)`` (all rows before ``end`` if ``rows`` is None).

    From the series' first to its last observation in that range (``None`` if it has none):
    a gap at the end is not interpolated, the forecast starts after the last observation.

    >>> import pandas as pd
    >>> idx = pd.date_range("2026-01-01", periods=5, freq="1h", tz="UTC")
    >>> p = Panel(np.array([[np.nan], [1.0], [np.nan], [3.0], [9.0]]), idx,
    ...     ["a"], pd.Timedelta("1h"), np.array([0]), np.array([4]))
    >>> w = series_window(p, 0, 4, 10)
    >>> w.lo, w.y.tolist(), w.observed.tolist()
    (1, [1.0, 2.0, 3.0], [True, False, True])
    >>> w = series_window(p, 0, 3, 10)
    >>> w.lo, w.y.tolist(), w.stop
    (1, [1.0], 2)
    """
    lo = 0 if rows is None else max(0, end - rows)
    lo = max(lo, int(panel.first[j]))
    if lo >= end:
        return None
    x = panel.values[lo:end, j]
    valid = np.isfinite(x)
    if not valid.any():
        return None
    skip = int(np.argmax(valid))
    stop = len(x) - int(np.argmax(valid[::-1]))
    x, valid, lo = x[skip:stop], valid[skip:stop], lo + skip
    pos = np.arange(len(x))
    y = np.interp(pos, pos[valid], x[valid]) if not valid.all() else x.astype(float)
    return Window(lo, y, valid)


def robust_level(window: Window) -> tuple[float, float]:
    """The fallback forecast: the median of the last observations and its error scale.

    The scale is that of the whole window around this level (1.4826 * MAD), which is the error
    a flat forecast really makes on a series whose seasonality is not known yet: wide, honest
    bands rather than alerts on every evening dip.

    >>> w = Window(0, np.array([1.0, 2.0, 1.0, 2.0, 100.0]), np.ones(5, dtype=bool))
    >>> level, scale = robust_level(w)
    >>> level, round(scale, 2)
    (2.0, 1.48)
    """
    obs = window.observed_values
    level = float(np.median(obs[-LEVEL_POINTS:]))
    return level, robust_scale(obs - level, obs)


def series_family(observed: np.ndarray) -> str:
    """``count`` for non-negative integers (orders, tickets), else ``continuous``.

    >>> series_family(np.array([0.0, 3.0, 12.0])), series_family(np.array([0.5, 2.0]))
    ('count', 'continuous')
    """
    if observed.size and np.all(observed >= 0) and np.all(observed == np.round(observed)):
        return "count"
    return "continuous"


def robust_scale(resid: np.ndarray, values: np.ndarray) -> float:
    """1.4826 * MAD of ``resid`` (the mean absolute deviation if that is 0), floored > 0.

    The floor keeps a perfectly flat history from making every later wobble infinitely
    surprising: 0.1% of the series' typical size (0.3 for counts, about a Poisson(0.1)).

    >>> round(robust_scale(np.array([-1.0, 0.0, 1.0, 50.0]), np.array([10.0])), 3)
    1.483
    >>> round(robust_scale(np.zeros(3), np.array([200.5, 200.5])), 4)
    0.2005
    """
    r = resid[np.isfinite(resid)]
    scale = 0.0
    if r.size:
        dev = np.abs(r - np.median(r))
        scale = 1.4826 * float(np.median(dev))
        if scale == 0:
            scale = 1.2533 * float(np.mean(dev))
    return max(scale, scale_floor(values))


def scale_floor(values: np.ndarray) -> float:
    """The smallest noise scale of one point for a series with these observed values."""
    typical = float(np.median(np.abs(values))) if values.size else 0.0
    floor = max(1e-3 * typical, 1e-4)
    if values.size and series_family(values) == "count":
        floor = max(floor, math.sqrt(0.1))
    return floor


def history_rows(history: str, freq: pd.Timedelta) -> int:
    """Rows of ``freq`` in the ``history`` duration (at least 1)."""
    return max(1, int(pd.Timedelta(history) / freq))


def is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(value: object, name: str, owner: str, minimum: int) -> None:
    if not is_int(value) or value < minimum:  # type: ignore[operator]
        raise ConfigError(
            f"The {name!r} parameter of {owner} must be an int >= {minimum}. Got {value!r} instead."
        )


def check_bool(value: object, name: str, owner: str) -> None:
    if not isinstance(value, bool | np.bool_):
        raise ConfigError(
            f"The {name!r} parameter of {owner} must be True or False. Got {value!r} instead."
        )


def check_duration(value: object, name: str, owner: str, example: str, zero: bool = False) -> None:
    """Raise ConfigError unless ``value`` is a positive (or, with ``zero``, >= 0) duration."""
    try:
        delta = pd.Timedelta(value) if isinstance(value, str | pd.Timedelta) else None
    except (ValueError, TypeError):
        delta = None
    if delta is None or delta < pd.Timedelta(0) or (delta == pd.Timedelta(0) and not zero):
        what = "duration >= 0" if zero else "positive duration"
        raise ConfigError(
            f"The {name!r} parameter of {owner} must be a {what} like {example}. "
            f"Got {value!r} instead."
        )


def smooth_cycle(cycle: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of ``width`` (odd) points over one seasonal cycle, wrapping round.

    >>> smooth_cycle(np.array([0.0, 0.0, 3.0, 0.0]), 3).tolist()
    [0.0, 1.0, 1.0, 1.0]
    """
    half = min(width // 2, (len(cycle) - 1) // 2)
    if half < 1:
        return cycle.copy()
    ext = np.concatenate([cycle[-half:], cycle, cycle[:half]])
    return np.convolve(ext, np.ones(2 * half + 1) / (2 * half + 1), mode="valid")


def smooth_series(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of ``width`` (odd) points; the ends average what exists.

    >>> smooth_series(np.array([0.0, 0.0, 3.0, 0.0]), 3).tolist()
    [0.0, 1.0, 1.0, 1.5]
    """
    half = min(width // 2, (len(x) - 1) // 2)
    if half < 1:
        return x.copy()
    k = np.ones(2 * half + 1)
    return np.convolve(x, k, mode="same") / np.convolve(np.ones(len(x)), k, mode="same")
