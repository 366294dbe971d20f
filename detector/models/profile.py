"""SeasonalProfileModel: a robust time-of-day x day-of-week baseline for many series at once.

Why this shape: on 5-minute shop metrics the best predictor of "now" is the same slot in the
previous weeks (or days), taken as a *median* so one past incident does not become tomorrow's
normal, scaled by how the series runs today. Heavy per-series fits (Prophet, MSTL) cost seconds
per series; this costs microseconds, because everything is an array operation over the panel.

Per series and per refit (daily, from the past only) the model chooses a baseline by its
out-of-sample error over the last week, following the cold-start ladder as history grows:

- ``naive``: the last value (random-walk levels such as currency rates, judged by changes);
- ``level``: the median of the last ``level_window`` points (no seasonality, or too little history);
- ``daily``: the median of the same slot (+-``smooth`` neighbours) on the last ``days`` days;
- ``weekly``: the same over the last ``weeks`` weeks, for a weekday/weekend shape.

Seasonal baselines are scaled by a level factor (multiplicative for non-negative series,
additive otherwise): an exponentially weighted ratio of actual to baseline, fed with values
clipped to the band so anomalies barely move it. When the last ``level_shift_after`` of points
sit on one side of the band (mean standardised residual beyond ``level_shift_z``), the change is
accepted as the new normal (the level factor jumps to the new ratio) and the row is marked,
except for a drop to zero of a count series, which is an outage and stays an anomaly.

The variance of a point follows the noise family: counts ``a + b*e + c*e^2`` (Poisson with
overdispersion), ratios with a denominator ``a + b*e(1-e)/n + c*e^2`` (binomial), and
``a + c*e^2`` otherwise, fitted on the past residuals and calibrated so the median squared
standardised residual is that of a normal variable.

>>> import pandas as pd
>>> from detector.panel import to_panel
>>> idx = pd.date_range("2026-01-01", periods=288 * 9, freq="5min", tz="UTC")
>>> shape = 50 + 40 * np.sin(2 * np.pi * np.arange(len(idx)) / 288)
>>> df = pd.DataFrame({"timestamp": idx, "series": "orders", "value": np.round(shape)})
>>> panel = to_panel(df)
>>> model = SeasonalProfileModel().fit(panel, 288 * 8)
>>> model.info().baseline.tolist()
['daily']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from detector.errors import ConfigError
from detector.kernels import choice_error, choice_sums, lag_summary
from detector.models.base import Forecast, SeriesInfo, nanmedian0, register
from detector.models.noise import NoiseModel
from detector.models.seasonality import autocorrelation, candidate_periods
from detector.panel import Panel

BASELINES = ("naive", "level", "daily", "weekly")


@dataclass
class _State:
    """Loop state per series, carried between predict() calls."""

    sx: np.ndarray
    sb: np.ndarray
    add: np.ndarray
    ewz: np.ndarray  # short exponentially weighted mean of z: is a deviation going on?
    recent: np.ndarray  # (5, M, N): z, x, baseline, expected, valid over the last M rows
    ring: np.ndarray  # (level_window, N): recent values clipped to the band ("level" baseline)
    undo: np.ndarray  # (6, N): level factor, offset, ring level before the last accepted shift,
    #                   the rows left during which it may be undone, and the factor and offset
    #                   the history was restated by
    votes: np.ndarray  # rows in a row that the old level explained better
    recent_pos: int = 0
    ring_pos: int = 0

    @classmethod
    def empty(cls, n: int, window: int, shift_steps: int) -> _State:
        z = np.zeros(n)
        return cls(
            z.copy(), z.copy(), z.copy(), z.copy(),
            np.zeros((5, shift_steps, n)), np.full((window, n), np.nan),
            np.zeros((6, n)), z.copy(),
        )  # fmt: skip


@register("profile")
class SeasonalProfileModel(NoiseModel, BaseEstimator):
    """Robust seasonal-profile forecaster over a panel; see the module docstring."""

    def __init__(
        self,
        weeks: int = 4,
        days: int = 3,
        smooth: int = 2,
        level_window: int = 12,
        level_halflife: str = "6h",
        level_shift_after: str = "2h",
        level_shift_z: float = 1.0,
        shift_side_z: float = 0.5,
        freeze_z: float = 1.5,
        selection_window: str = "7D",
        seasonal_gain: float = 1.2,
        sparse_below: float = 20.0,
        min_acf: float = 0.1,
        causal: bool = True,
    ) -> None:
        self.weeks = weeks
        self.days = days
        self.smooth = smooth
        self.level_window = level_window
        self.level_halflife = level_halflife
        self.level_shift_after = level_shift_after
        self.level_shift_z = level_shift_z
        self.shift_side_z = shift_side_z
        self.freeze_z = freeze_z
        self.selection_window = selection_window
        self.seasonal_gain = seasonal_gain
        self.sparse_below = sparse_below
        self.min_acf = min_acf
        self.causal = causal

    # -- set-up ------------------------------------------------------------------------------

    def _validate(self) -> None:
        for name in ("weeks", "days", "level_window"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"The {name!r} parameter of SeasonalProfileModel must be an int >= 1. "
                    f"Got {value!r} instead."
                )
        if not isinstance(self.smooth, int) or self.smooth < 0:
            raise ConfigError(
                "The 'smooth' parameter of SeasonalProfileModel must be an int >= 0. "
                f"Got {self.smooth!r} instead."
            )

    def _prepare(self, panel: Panel) -> None:
        """Compute every candidate baseline for the whole panel once (each is causal)."""
        self._validate()
        x = panel.values
        n = x.shape[1]
        periods = candidate_periods(panel.freq)
        lags = list(range(1, self.level_window + 1))
        if not self.causal:
            lags += [-lag for lag in lags]
        lagged: dict[str, list[int]] = {"level": lags}
        self.lags_: dict[str, list[int]] = {}
        for name, count in (("daily", self.days), ("weekly", self.weeks)):
            if name not in periods:
                continue
            p = periods[name]
            ks = [k for k in range(1, count + 1)]
            if not self.causal:
                ks += [-k for k in ks]
            lag_list = [k * p + j for k in ks for j in self._offsets(p)]
            lag_list = [lag for lag in lag_list if (lag > 0) or not self.causal]
            self.lags_[name] = lagged[name] = lag_list
        self.periods_ = periods
        self.baselines_ = [b for b in BASELINES if b == "naive" or b in lagged]
        # Median, sum and count of each baseline's samples (sums serve sparse counts), written
        # in place: (baselines, time, series) each.
        shape = (len(self.baselines_), *x.shape)
        self.stack_, self.sum_stack_, self.cnt_stack_ = (np.empty(shape) for _ in range(3))
        last = pd.DataFrame(x).ffill().to_numpy()
        naive = self.stack_[0]
        naive[:1] = np.nan
        naive[1:] = last[:-1]
        self.sum_stack_[0] = np.nan_to_num(naive)
        self.cnt_stack_[0] = np.isfinite(naive)
        for b, name in enumerate(self.baselines_[1:], start=1):
            out = (self.stack_[b], self.sum_stack_[b], self.cnt_stack_[b])
            lag_summary(x, lagged[name], out=out)
        self.alpha_ = 1 - 0.5 ** (1 / max(1.0, pd.Timedelta(self.level_halflife) / panel.freq))
        self.shift_steps_ = max(1, int(pd.Timedelta(self.level_shift_after) / panel.freq))
        self.undo_steps_ = max(1, int(pd.Timedelta("1D") / panel.freq))
        self.undo_evidence = 8.0
        self.window_steps_ = max(
            self.level_window * 4, int(pd.Timedelta(self.selection_window) / panel.freq)
        )
        self.expected_hist_ = np.full_like(x, np.nan)
        # The history seasonal baselines are computed from, restated at the current level
        # after each accepted level shift (see _rebase).
        self.adjusted_ = x.copy()
        self.state_ = _State.empty(n, self.level_window, self.shift_steps_)
        self.panel_id_ = id(panel)
        self.choice_ = np.full(n, self.baselines_.index("level"))
        self.family_ = np.full(n, "continuous", dtype=object)
        self.coef_ = np.zeros((3, n))
        self.rate_ = np.zeros(n)
        self.sparse_ = np.zeros(n, dtype=bool)
        self.coef_[0] = np.nan  # unfitted: predict() falls back to the candidate error
        self.mult_ = np.zeros(n, dtype=bool)

    def _offsets(self, period: int) -> list[int]:
        s = min(self.smooth, max(0, period // 4))
        return list(range(-s, s + 1))

    # -- fitting ------------------------------------------------------------------------------

    def fit(self, panel: Panel, end: int) -> SeasonalProfileModel:
        """Choose baseline, family and variance per series from rows ``[0, end)``."""
        if getattr(self, "panel_id_", None) != id(panel):
            self._prepare(panel)
        lo = max(0, end - self.window_steps_)
        x = panel.values[lo:end]
        if x.shape[0] == 0:
            return self
        self.family_ = self._families(panel, end)
        self.mult_ = (np.nanmin(np.where(np.isnan(x), np.inf, x), axis=0) >= 0) & (
            self.family_ != "ratio"
        )
        self.choice_ = self._choose(panel, lo, end)
        # A series best predicted by its last value is a level (a price, a rate): judged by
        # its changes, so relative minimum changes and [0, 1] bounds do not apply.
        naive = np.asarray(self.baselines_)[self.choice_] == "naive"
        self.family_ = np.where(naive & (self.family_ != "count"), "level", self.family_)
        # Sparse counts (a few tickets per bucket): the median of samples is mostly 0, so use
        # their mean shrunk towards the series' recent rate, or one sale at night would alarm.
        # A series declared to have a new level has its recent rate from after the change.
        for row, col in getattr(self, "level_changes_", ()):
            if lo < row < end and 0 <= col < x.shape[1]:
                x = x.copy() if x.base is not None else x
                x[: row - lo, col] = np.nan
        fin = np.isfinite(x)
        self.rate_ = np.where(fin.any(axis=0), np.nansum(x, axis=0) / np.maximum(fin.sum(0), 1), 0)
        self.sparse_ = (self.family_ == "count") & (self.rate_ < self.sparse_below)
        self.coef_ = self._fit_variance(panel, lo, end)
        return self

    def _choose(self, panel: Panel, lo: int, end: int) -> np.ndarray:
        """Pick each series' baseline by its error over the last window (the ladder).

        Seasonal candidates are judged after the best constant level correction over the
        window, as the level factor will apply one; otherwise a recent level shift would make
        a good seasonal shape look worse than a flat line. A seasonal baseline needs real
        autocorrelation at its period and may be up to ``seasonal_gain`` times the error of
        a flat one (flat baselines absorb incidents; seasonal ones do not). The previous
        choice is kept unless another of its kind (seasonal or flat) is clearly (3%) better,
        so the level state is not thrown away day after day.
        """
        x = panel.values[lo:end]
        names = self.baselines_
        day = max(self.level_window, min(int(panel.steps_per_day), x.shape[0]))
        sx, sb, sd, cover, sxd, sbd, sdd, cover_d = choice_sums(
            self.stack_, panel.values, lo, end, day
        )
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            ratio = sx / sb
            offset = sd / cover
        ratio = np.where(np.isfinite(ratio) & (ratio > 0), ratio, 1.0)
        offset = np.nan_to_num(offset)
        seasonal = np.array([n in ("daily", "weekly") for n in names])
        err = choice_error(self.stack_, panel.values, lo, end, ratio, offset, self.mult_, seasonal)
        mae = err / np.maximum(cover, 1)
        need = max(self.level_window * 2, min(int(panel.steps_per_day), self.window_steps_ // 2))
        mae = np.where(cover >= need, mae, np.inf)
        level, naive = names.index("level"), names.index("naive")
        best = np.where(mae[naive] < mae[level], naive, level)
        flat_err = np.minimum(mae[naive], mae[level])
        acf = self._seasonal_strength(panel, end)
        season_best = np.full(x.shape[1], -1)
        season_err = np.full(x.shape[1], np.inf)
        for i, name in enumerate(n for n in ("daily", "weekly") if n in names):
            idx = names.index(name)
            strong = np.nan_to_num(acf[i], nan=0.0) >= self.min_acf
            # Weekly (listed last) also models the weekday/weekend change that a daily profile
            # gets wrong twice a week; near-equal errors over a window hide that, so it wins
            # ties within 5%.
            margin = 1.05 if name == "weekly" else 1.0
            pick = strong & np.isfinite(mae[idx]) & (mae[idx] < margin * season_err)
            season_best = np.where(pick, idx, season_best)
            season_err = np.where(pick, mae[idx], season_err)
        use = (season_best >= 0) & (season_err < self.seasonal_gain * flat_err)
        best = np.where(use, season_best, best)
        best_err = np.take_along_axis(mae, best[None], axis=0)[0]
        prev = self.choice_
        prev_err = np.take_along_axis(mae, prev[None], axis=0)[0]
        same_kind = seasonal[prev] == seasonal[best]
        keep = same_kind & np.isfinite(prev_err) & (prev_err <= 1.03 * best_err)
        best = np.where(keep, prev, best)
        # A series switching to a seasonal baseline starts from the level ratio of the last
        # day (not the whole window, which may straddle a level shift).
        switched = (best != prev) & seasonal[best]
        if switched.any():
            with np.errstate(invalid="ignore", divide="ignore"):
                recent = sxd / sbd
                recent_off = sdd / cover_d
            recent = np.where(np.isfinite(recent) & (recent > 0), recent, ratio)
            recent_off = np.where(np.isfinite(recent_off), recent_off, offset)
            r = np.take_along_axis(recent, best[None], axis=0)[0]
            off = np.take_along_axis(recent_off, best[None], axis=0)[0]
            st = self.state_
            st.sb = np.where(switched & (st.sb <= 0), 1.0, st.sb)
            st.sx = np.where(switched, r * st.sb, st.sx)
            st.add = np.where(switched, off, st.add)
        return best

    def _seasonal_strength(self, panel: Panel, end: int) -> np.ndarray:
        """Autocorrelation at the daily/weekly lags, recomputed weekly (it changes slowly)."""
        names = [n for n in ("daily", "weekly") if n in self.baselines_]
        last = getattr(self, "acf_end_", None)
        fresh = last is not None and end - last < self.window_steps_
        if fresh and np.isfinite(self.acf_).all():
            return self.acf_
        lags = [self.periods_[n] for n in names]
        self.acf_ = autocorrelation(panel.values[max(0, end - 2 * self.window_steps_) : end], lags)
        self.acf_end_ = end
        return self.acf_

    def predict(self, panel: Panel, start: int, stop: int) -> Forecast:
        """Forecast rows ``[start, stop)``, updating the level state point by point."""
        if getattr(self, "panel_id_", None) != id(panel):
            self._prepare(panel)
        # Extreme inputs (1e-308, 1e300) overflow intermediate ratios; every result is masked
        # by finiteness checks below, so the warnings carry no information.
        with np.errstate(all="ignore"):
            return self._predict(panel, start, stop)

    def _base_rows(self, start: int, stop: int, cols: slice | np.ndarray) -> np.ndarray:
        """The chosen baseline for rows ``[start, stop)`` and series ``cols``."""
        pick = self.choice_[cols][None, None, :]
        base = np.take_along_axis(self.stack_[:, start:stop, cols], pick, axis=0)[0]
        sums = np.take_along_axis(self.sum_stack_[:, start:stop, cols], pick, axis=0)[0]
        cnts = np.take_along_axis(self.cnt_stack_[:, start:stop, cols], pick, axis=0)[0]
        shrunk = (sums + self.rate_[cols]) / (cnts + 1.0)
        base = np.where(self.sparse_[cols][None], shrunk, base)
        fallback = self.stack_[self.baselines_.index("level")][start:stop][:, cols]
        naive = self.stack_[0][start:stop][:, cols]
        fallback = np.where(np.isnan(fallback), naive, fallback)
        return np.where(np.isnan(base), fallback, base)

    def _rebase(self, row: int, cols: np.ndarray, factor: np.ndarray, gap: np.ndarray) -> None:
        """Restate the history of ``cols`` before ``row`` at the level accepted at ``row``.

        Seasonal baselines are medians of past weeks (days). Scaling them by a level factor
        works until post-shift samples become the majority and the median flips: the factor
        then applies twice. So on an accepted shift the past is rescaled once (multiplied by
        ``factor``, or shifted by ``gap`` for additive series), the seasonal baselines of the
        rows ahead are recomputed from it, and the level factor starts again from 1. Only
        rows up to ``row`` are used: causal. ``factor``/``gap`` are per series in ``cols``.
        """
        if not self.causal or cols.size == 0:
            return
        mult = self.mult_[cols]
        # Rows of the last window already sit at the new level; rescale what lies before it.
        upto = max(0, row - self.shift_steps_)
        hist = self.adjusted_[:upto, cols]
        self.adjusted_[:upto, cols] = np.where(mult[None], hist * factor[None], hist + gap[None])
        t = self.adjusted_.shape[0]
        if row + 1 >= t:
            return
        for name, lags in self.lags_.items():
            idx = self.baselines_.index(name)
            med, tot, cnt = lag_summary(self.adjusted_[:, cols], lags, row + 1)
            # (Two-step indexing: an int, a slice and an index array together would put the
            # array's axis first.)
            self.stack_[idx][row + 1 :, cols] = med
            self.sum_stack_[idx][row + 1 :, cols] = tot
            self.cnt_stack_[idx][row + 1 :, cols] = cnt

    def _predict(self, panel: Panel, start: int, stop: int) -> Forecast:
        x_all = panel.values[start:stop]
        rows, n = x_all.shape
        base = self._base_rows(start, stop, slice(None))
        chosen = np.asarray(self.baselines_)[self.choice_]
        seasonal = np.isin(chosen, ("daily", "weekly"))
        # "level" is tracked here, from values clipped to the band, so that an anomaly does
        # not become the level after level_window / 2 points as a plain rolling median would.
        lev = chosen == "level"
        tracked = seasonal | lev
        den = panel.denominator[start:stop] if panel.denominator is not None else None
        unfitted = np.isnan(self.coef_[0])
        expected = np.empty((rows, n))
        variance = np.empty((rows, n))
        shifted = np.zeros((rows, n))
        st = self.state_
        a = self.alpha_
        count = self.family_ == "count"
        due = self._due_changes(start, stop, n)
        for i in range(rows):
            b = base[i]
            x = x_all[i]
            lvl = np.where(st.sb > 1e-12, st.sx / np.where(st.sb > 1e-12, st.sb, 1.0), 1.0)
            e = np.where(seasonal, np.where(self.mult_, b * lvl, b + st.add), b)
            if lev.any():
                ring_med = nanmedian0(st.ring)
                ring_n = np.sum(np.isfinite(st.ring), axis=0)
                ring_mean = (np.nansum(st.ring, axis=0) + self.rate_) / (ring_n + 1.0)
                ring_med = np.where(self.sparse_, ring_mean, ring_med)
                e = np.where(lev & np.isfinite(ring_med), ring_med, e)
            var = self._point_var(e, None if den is None else den[i], unfitted)
            expected[i] = e
            variance[i] = var
            ok = np.isfinite(x) & np.isfinite(e)
            if not ok.any():
                continue
            sd = np.sqrt(var)
            z = np.where(ok, (x - e) / sd, 0.0)
            xs, bs = np.where(ok, x, 0.0), np.where(ok, b, 0.0)
            # The last M rows, to test whether the series has settled on a new level.
            rec = st.recent
            rec[:, st.recent_pos] = (z, xs, bs, np.where(ok, e, 0.0), ok)
            st.recent_pos = (st.recent_pos + 1) % rec.shape[1]
            valid = rec[4].sum(axis=0)
            mean_z = rec[0].sum(axis=0) / np.maximum(valid, 1)
            k = self.shift_side_z
            same_side = np.maximum((rec[0] > k).sum(axis=0), (rec[0] < -k).sum(axis=0))
            # ... and still now: the newest quarter must sit on that side too, so that the
            # end of a long outage (zeros, then normal values) is never taken for a new level.
            m_rows = rec.shape[1]
            newest = (st.recent_pos - 1 - np.arange(max(1, m_rows // 4))) % m_rows
            sign_now = np.sign(mean_z)[None]
            on_side_now = (np.sign(rec[0, newest]) == sign_now) & (np.abs(rec[0, newest]) > k)
            settled = (
                tracked
                & (valid >= 0.8 * m_rows)
                & (np.abs(mean_z) >= self.level_shift_z)
                & (same_side >= 0.8 * valid)
                & (on_side_now.sum(axis=0) >= 0.8 * len(newest))
            )
            # While a deviation persists (short mean of z beyond freeze_z) the level is frozen:
            # an outage must not become the level; a real shift is accepted below instead.
            st.ewz = np.where(ok, 0.7 * st.ewz + 0.3 * np.clip(z, -10, 10), st.ewz)
            calm = np.abs(st.ewz) < self.freeze_z
            # Robust level update: values clipped to the band (a Huber-like step).
            upd = ok & seasonal & calm
            xc = np.clip(xs, e - 2.5 * sd, e + 2.5 * sd)
            st.sx = np.where(upd, (1 - a) * st.sx + a * xc, st.sx)
            st.sb = np.where(upd, (1 - a) * st.sb + a * bs, st.sb)
            st.add = np.where(upd, (1 - a) * st.add + a * (xc - bs), st.add)
            # The recent-level ring is kept for every series, so that a switch to the "level"
            # baseline starts from today's values. Points outside the band are left out, not
            # clipped: a clipped outage would still walk the median down step by step. Counts
            # get Poisson-like room, or one sale where 0.03 are expected would never enter.
            zc = np.where(count, (xs - e) / np.sqrt(np.maximum(var, e) + 1.0), z)
            into = ok & (np.abs(zc) <= 3.0)
            st.ring[st.ring_pos] = np.where(into, xs, st.ring[st.ring_pos])
            st.ring_pos = (st.ring_pos + 1) % st.ring.shape[0]
            # A non-negative series (orders, revenue) that fell to ~0 is an outage, never a new
            # normal; and a shift is
            # only accepted while the newest point still shows it (not as an outage recovers).
            side_now = (np.sign(z) == np.sign(mean_z)) & (np.abs(z) > k) & ok
            shifted_rows = (np.sign(rec[0]) == np.sign(mean_z)[None]) & (np.abs(rec[0]) > k)
            low = (rec[1] * shifted_rows).sum(0) <= 0.05 * np.abs(rec[3] * shifted_rows).sum(0)
            # Any bucket near zero in the window: an outage (and its recovery), not a new level.
            near_zero = ((rec[1] <= 0.05 * np.abs(rec[3])) & (rec[4] > 0) & (rec[3] > 0)).any(0)
            outage = (count | self.mult_) & ((xs <= 0.05 * np.abs(e)) | low | near_zero)
            accept = settled & side_now & ~outage
            # A declared new normal (feedback): accepted once its first window has been seen,
            # from every point since the change, whatever the gates above say.
            forced = due.get(start + i)
            if forced is not None:
                forced = forced & (rec[4].sum(axis=0) > 0)
                accept = accept | forced
            else:
                forced = np.zeros(n, dtype=bool)
            self._maybe_undo(st, x, b, e, sd, ok, seasonal, lev, base, i, start + i)
            if accept.any():
                # The new level from the rows on the shifted side only.
                side = (np.sign(rec[0]) == np.sign(mean_z)[None]) & (np.abs(rec[0]) > k)
                side = np.where(forced[None], rec[4] > 0, side)
                sx_, sb_, n_ = (rec[1] * side).sum(0), (rec[2] * side).sum(0), side.sum(0)
                ratio = sx_ / np.where(sb_ > 0, sb_, 1.0)
                gap = (sx_ - sb_) / np.maximum(n_, 1)
                new_level = sx_ / np.maximum(n_, 1)
                new_e = np.where(self.mult_, b * ratio, b + gap)
                new_e = np.where(seasonal, new_e, new_level)
                # Size of the accepted change, relative to the old expectation.
                e_side = (rec[3] * side).sum(0)
                size = (sx_ - e_side) / np.maximum(np.abs(e_side), 1e-12)
                # Back to about the level before the last shift: a revert, not news.
                old_e = np.where(self.mult_, b * st.undo[0], b + st.undo[1])
                old_e = np.where(seasonal, old_e, st.undo[2])
                revert = (st.undo[3] > 0) & (np.abs(new_e - old_e) <= 0.15 * np.abs(old_e))
                revert &= ~forced
                # A declared change was news when it happened; it is not reported again.
                shifted[i] = np.where(accept & ~revert & ~forced, size, 0.0)
                # Remember the old level for a day: if the series comes back to it (the
                # "shift" was a long incident after all), the shift is undone quietly.
                st.undo[0] = np.where(accept, lvl, st.undo[0])
                st.undo[1] = np.where(accept, st.add, st.undo[1])
                st.undo[2] = np.where(accept, e, st.undo[2])
                st.undo[3] = np.where(accept & ~revert, self.undo_steps_, st.undo[3])
                st.undo[3] = np.where(forced, 0, st.undo[3])  # declared: never undone
                st.undo[3] = np.where(accept & revert, 0, st.undo[3])
                st.votes[accept] = 0
                # Restating history is kept for clear shifts seen against a weekly profile;
                # earlier (daily profile) a weekend looks like a shift and must not be baked
                # into the past.
                weekly = np.asarray(self.baselines_)[self.choice_] == "weekly"
                rebase = accept & weekly & (np.abs(ratio - 1.0) >= 0.2) & self.causal
                rebase |= forced & seasonal & (np.abs(ratio - 1.0) >= 0.05) & self.causal
                st.sx = np.where(accept & seasonal & self.mult_, ratio * st.sb, st.sx)
                st.add = np.where(accept & seasonal & ~self.mult_, gap, st.add)
                if rebase.any():
                    cols = np.flatnonzero(rebase)
                    # Restate the past at the new level; the level factor starts from 1 again.
                    lvl_now = np.where(st.sb > 1e-12, st.sx / np.where(st.sb > 1e-12, st.sb, 1), 1)
                    self._rebase(start + i, cols, lvl_now[cols], st.add[cols])
                    st.undo[4] = np.where(rebase, lvl_now, st.undo[4])
                    st.undo[5] = np.where(rebase, st.add, st.undo[5])
                    st.sx = np.where(rebase & self.mult_, st.sb, st.sx)
                    st.add = np.where(rebase & ~self.mult_, 0.0, st.add)
                    base[i + 1 :, cols] = self._base_rows(start + i + 1, stop, cols)
                st.ring[:, accept & lev] = new_level[accept & lev]
                rec[:, :, accept] = 0.0
                st.ewz[accept] = 0.0

        self.expected_hist_[start:stop] = expected
        return Forecast(expected, variance, shifted)

    def _maybe_undo(
        self,
        st: _State,
        x: np.ndarray,
        b: np.ndarray,
        e: np.ndarray,
        sd: np.ndarray,
        ok: np.ndarray,
        seasonal: np.ndarray,
        lev: np.ndarray,
        base: np.ndarray,
        i: int,
        row: int,
    ) -> None:
        """Undo a recently accepted level shift when the old level explains the data again.

        ``base`` is the period's baseline array, updated in place from row ``i + 1`` on when
        the history is restated back; ``row`` is the absolute row of ``i``.
        """
        live = (st.undo[3] > 0) & ok
        if not live.any():
            return
        # Where the history was restated by (factor, gap), the old level is that undone.
        factor = np.where(st.undo[4] > 0, st.undo[4], 1.0)
        e_old = np.where(self.mult_, b / factor * st.undo[0], b - st.undo[5] + st.undo[1])
        e_old = np.where(seasonal, e_old, st.undo[2])
        # Evidence for the old level over the new one, as a one-sided cumulative log
        # likelihood ratio (a CUSUM): noisy points go either way, a return to the old level
        # piles it up steadily.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            llr = ((x - e) ** 2 - (x - e_old) ** 2) / (2 * sd * sd)
        llr = np.nan_to_num(llr, nan=0.0, posinf=5.0, neginf=-5.0)
        st.votes = np.where(live, np.maximum(0.0, st.votes + np.clip(llr, -5, 5)), st.votes)
        undo = live & (st.votes > self.undo_evidence)
        if undo.any():
            restated = undo & seasonal & (st.undo[4] > 0)
            if restated.any():
                cols = np.flatnonzero(restated)
                self._rebase(row, cols, 1.0 / st.undo[4][cols], -st.undo[5][cols])
                base[i + 1 :, cols] = self._base_rows(row + 1, row + len(base) - i, cols)
            st.sx = np.where(undo & seasonal & self.mult_, st.undo[0] * st.sb, st.sx)
            st.add = np.where(undo & seasonal & ~self.mult_, st.undo[1], st.add)
            st.ring[:, undo & lev] = st.undo[2][undo & lev]
            st.undo[3] = np.where(undo, 0, st.undo[3])
            st.undo[4:6, undo] = 0.0
        st.undo[3] = np.where(st.undo[3] > 0, st.undo[3] - 1, 0)

    def end_pass(self) -> SeasonalProfileModel:
        """Drop the panel-sized caches (baseline stacks, restated history); keep the choices.

        They are about 110 bytes per point and only serve the refits and forecasts of one
        pass over a panel; the next ``fit`` builds them again.
        """
        for name in ("stack_", "sum_stack_", "cnt_stack_", "adjusted_", "expected_hist_"):
            self.__dict__.pop(name, None)
        self.panel_id_ = None
        return self

    def declare_level_changes(self, changes: list[tuple[int, int]]) -> SeasonalProfileModel:
        """Series that settled on a new normal level: ``(row, column)`` pairs (feedback).

        The model accepts the new level as soon as it has seen a window of it
        (``level_shift_after`` from ``row``), as its own level-shift step would, but without
        that step's gates (a drop to zero can be the new normal when a person says so), and
        restates the history before ``row`` at the new level, so the seasonal medians do not
        drag the old level back. Causal: the level comes from points since ``row`` only.
        """
        self.level_changes_ = list(changes)
        return self

    def _due_changes(self, start: int, stop: int, n: int) -> dict[int, np.ndarray]:
        """Rows in ``[start, stop)`` at which a declared change is accepted -> columns."""
        due: dict[int, np.ndarray] = {}
        for row, col in getattr(self, "level_changes_", ()):
            at = row + self.shift_steps_ - 1
            if start <= at < stop and 0 <= col < n:
                due.setdefault(at, np.zeros(n, dtype=bool))[col] = True
        return due

    def info(self) -> SeriesInfo:
        names = np.asarray(self.baselines_, dtype=object)
        return SeriesInfo(
            family=np.asarray(self.family_, dtype=object),
            baseline=names[self.choice_],
            extra={"multiplicative": self.mult_.copy()},
        )
