"""Calendar effects on a panel's grid, and what they do to a forecast.

:class:`Effects` holds, per point of a ``(time x series)`` panel, which effect applies (none,
holiday, higher, lower, ignore), its factor and its label, plus the declared level changes.
The scoring engine uses it in three places:

1. **Training.** Points under an effect are hidden from the model (:meth:`Effects.training`):
   a holiday or a sale is not learned as a normal day, so it does not distort next week's
   baseline, nor the level the model tracks, nor its noise.
2. **Expectation.** The model forecasts the usual day; :meth:`Effects.expectation` turns that
   into what the calendar expects: on a holiday, the usual value scaled slot by slot by how the
   series' Sundays (and past holidays) compare with the same weekday
   (:func:`holiday_ratio`); during a promotion with ``factor: 1.5``, half again as much. The
   point is then judged against a *range*, from the usual expectation to the calendar's, since
   nobody knows beforehand how strongly a holiday or a sale will show: a holiday that looks like
   a normal day does not alert, nor does one that looks like a Sunday, but an outage on
   Christmas (far below a Sunday) still does.
3. **Decisions.** ``ignore`` points are not scored at all; points under any effect are left
   out of the calibration of the thresholds.

Everything is causal: the holiday profile of a day comes from earlier days only, and the range
of a point from its own forecast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from detector.panel import Panel

__all__ = ["CODES", "Effects", "Expectation", "deviation_span", "holiday_ratio"]

#: Effect codes; the order is the precedence where effects overlap (ignore wins).
CODES: tuple[str, ...] = ("", "holiday", "higher", "lower", "ignore")
NONE, HOLIDAY, HIGHER, LOWER, IGNORE = range(5)

#: Reference days for a holiday's profile: this many Sundays or past holidays (and as many of
#: the holiday's own weekday), from at most REF_WEEKS weeks back.
REF_DAYS = 4
REF_WEEKS = 8
SMOOTH = 2  # slots either side averaged into a holiday's ratio (a noisy slot is not a shape)
#: A deviation labelled expected lasts while the last hour stays this far from the usual level,
#: for at most MAX_DAYS days (longer is a new normal, not an event).
AWAY = 0.1
MAX_DAYS = 7


@dataclass
class Expectation:
    """The calendar's view of a forecast, all ``(time, series)``.

    ``expected`` is what reasons show; ``lo``/``hi`` the range a point is judged against
    (NaN where the point has one expectation; ``hi`` may be +inf: "higher, no limit");
    ``variance`` the forecast's, widened where an effect scales it up; ``muted`` the
    ``ignore`` points; ``special`` every point under an effect; ``label`` an index into
    ``labels`` (-1: none).
    """

    expected: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    variance: np.ndarray
    muted: np.ndarray
    special: np.ndarray
    label: np.ndarray
    labels: list[str]
    code: np.ndarray

    def columns(self, cols: slice) -> Expectation:
        return Expectation(
            self.expected[:, cols], self.lo[:, cols], self.hi[:, cols], self.variance[:, cols],
            self.muted[:, cols], self.special[:, cols], self.label[:, cols], self.labels,
            self.code[:, cols],
        )  # fmt: skip

    @staticmethod
    def concat(parts: list[Expectation | None], shapes: list[tuple[int, int]]) -> Expectation:
        """Chunks side by side; a chunk without effects contributes plain columns."""
        labels: list[str] = []
        out = []
        for p, (t, n) in zip(parts, shapes, strict=True):
            if p is None:
                nan = np.full((t, n), np.nan)
                no = np.zeros((t, n), dtype=bool)
                out.append((nan, nan, nan, nan, no, no, np.full((t, n), -1), np.zeros((t, n))))
                continue
            shift = len(labels)
            labels += p.labels
            lab = np.where(p.label >= 0, p.label + shift, -1)
            out.append((p.expected, p.lo, p.hi, p.variance, p.muted, p.special, lab, p.code))
        cols = [np.concatenate([o[k] for o in out], axis=1) for k in range(8)]
        return Expectation(*cols[:7], labels, cols[7].astype(np.int8))


@dataclass
class Effects:
    """Which calendar effect applies to each point of a panel (see the module docstring)."""

    code: np.ndarray  # (t, n) int8, CODES
    factor: np.ndarray  # (t, n) float, NaN: none
    label: np.ndarray  # (t, n) int32 into labels, -1: none
    labels: list[str]
    holiday_day: np.ndarray  # (t, n) bool: the point lies on one of the series' holidays
    changes: list[tuple[int, int]]  # (row, column) where a series settled on a new level

    @property
    def special(self) -> np.ndarray:
        return self.code != NONE

    def columns(self, cols: slice) -> Effects:
        lo = cols.start or 0
        n = self.code[:, cols].shape[1]
        changes = [(r, c - lo) for r, c in self.changes if lo <= c < lo + n]
        return Effects(
            self.code[:, cols], self.factor[:, cols], self.label[:, cols], self.labels,
            self.holiday_day[:, cols], changes,
        )  # fmt: skip

    def training(self, panel: Panel) -> Panel:
        """The panel the model learns from: points under an effect are missing there."""
        mask = self.special
        if not mask.any():
            return panel
        values = np.where(mask, np.nan, panel.values)
        den = None if panel.denominator is None else np.where(mask, np.nan, panel.denominator)
        return Panel(values, panel.index, panel.series, panel.freq, panel.first, panel.last, den)

    def expectation(self, panel: Panel, expected: np.ndarray, variance: np.ndarray) -> Expectation:
        """The calendar's expectation and range for every point (see the module docstring)."""
        t, n = expected.shape
        code = self.code
        factor = self.factor
        shown = expected.copy()
        lo = np.full((t, n), np.nan)
        hi = np.full((t, n), np.nan)
        var = variance.copy()
        nonneg = np.nanmin(np.where(np.isfinite(panel.values), panel.values, np.inf), axis=0) >= 0
        floor = np.where(nonneg, 0.0, -np.inf)[None, :]
        hol = code == HOLIDAY
        if hol.any():
            target = holiday_target(panel, expected, self, nonneg)
            known = hol & np.isfinite(target)
            shown = np.where(known, target, shown)
            lo = np.where(known, np.fmin(target, expected), lo)
            hi = np.where(known, np.fmax(target, expected), hi)
            # No Sunday or past holiday to learn from yet: a holiday may be anything lower.
            blind = hol & ~known
            lo = np.where(blind, np.broadcast_to(floor, (t, n)), lo)
            hi = np.where(blind, expected, hi)
        scaled = np.isfinite(factor) & ((code == HIGHER) | (code == LOWER))
        with np.errstate(invalid="ignore"):
            moved = np.where(
                nonneg[None, :], expected * factor, expected + (factor - 1) * np.abs(expected)
            )
        shown = np.where(scaled, moved, shown)
        lo = np.where(scaled, np.fmin(moved, expected), lo)
        hi = np.where(scaled, np.fmax(moved, expected), hi)
        # A bigger expectation is a noisier one (counts and sums grow their spread with it).
        var = np.where(scaled & (factor > 1), var * factor, var)
        up = (code == HIGHER) & ~scaled
        lo = np.where(up, expected, lo)
        hi = np.where(up, np.inf, hi)
        down = (code == LOWER) & ~scaled
        lo = np.where(down, np.broadcast_to(floor, (t, n)), lo)
        hi = np.where(down, expected, hi)
        muted = code == IGNORE
        return Expectation(
            shown, lo, hi, var, muted, self.special, self.label, self.labels, code.astype(np.int8)
        )


def _grid(index: pd.DatetimeIndex, freq: pd.Timedelta) -> tuple[np.ndarray, np.ndarray, int]:
    """Day number, slot within the day and slots per day of each row (wall clock)."""
    naive = index.tz_localize(None) if index.tz is not None else index
    midnight = naive.normalize()
    day = np.asarray((midnight - midnight[0]) // pd.Timedelta("1D"), dtype=np.int64)
    slot = np.asarray((naive - midnight) // freq, dtype=np.int64)
    per_day = max(1, int(pd.Timedelta("1D") // freq))
    return day, np.clip(slot, 0, per_day - 1), per_day


def holiday_target(
    panel: Panel, expected: np.ndarray, effects: Effects, nonneg: np.ndarray
) -> np.ndarray:
    """What the points of each holiday are expected to be (NaN where it cannot be told)."""
    t, n = expected.shape
    out = np.full((t, n), np.nan)
    if pd.Timedelta("1D") % panel.freq != pd.Timedelta(0):
        return out
    day, slot, per_day = _grid(panel.index, panel.freq)
    naive = panel.index.tz_localize(None) if panel.index.tz is not None else panel.index
    weekday_of_row = np.asarray(naive.day_of_week)
    n_days = int(day[-1]) + 1
    weekday = np.full(n_days, -1)
    weekday[day] = weekday_of_row
    for j in np.flatnonzero((effects.code == HOLIDAY).any(axis=0)):
        grid = np.full((n_days, per_day), np.nan)
        grid[day, slot] = panel.values[:, j]
        on_holiday = np.zeros(n_days, dtype=bool)
        on_holiday[day[effects.holiday_day[:, j]]] = True
        other = np.zeros(n_days, dtype=bool)  # days touched by another effect: no reference
        other[day[effects.special[:, j] & ~effects.holiday_day[:, j]]] = True
        rows = np.flatnonzero(effects.code[:, j] == HOLIDAY)
        for d in np.unique(day[rows]):
            ratio = holiday_ratio(grid, weekday, on_holiday, other, int(d), bool(nonneg[j]))
            if ratio is None:
                continue
            r = rows[day[rows] == d]
            e = expected[r, j]
            out[r, j] = e * ratio[slot[r]] if nonneg[j] else e + ratio[slot[r]]
    return out


def holiday_ratio(
    grid: np.ndarray,
    weekday: np.ndarray,
    on_holiday: np.ndarray,
    other: np.ndarray,
    d: int,
    multiplicative: bool,
) -> np.ndarray | None:
    """Per slot, how day ``d`` (a holiday) compares with its usual weekday.

    ``grid`` is ``(days, slots)``; the reference days are the last :data:`REF_DAYS` Sundays or
    earlier holidays before ``d`` and as many ordinary days of ``d``'s weekday, within
    :data:`REF_WEEKS` weeks. The ratio (or, for series that go negative, the difference) of
    their per-slot medians, smoothed over neighbouring slots. None when either set is empty.

    >>> grid = np.array([[10.0, 20.0]] * 6 + [[5.0, 10.0]] + [[10.0, 20.0]] * 7)
    >>> weekday = np.arange(14) % 7
    >>> no = np.zeros(14, dtype=bool)
    >>> holiday_ratio(grid, weekday, no, no, 7, True).round(2).tolist()  # a Monday
    [0.5, 0.5]
    """
    first = max(0, d - 7 * REF_WEEKS)
    past = np.arange(first, d)
    rest = past[((weekday[past] == 6) | on_holiday[past]) & ~other[past]][-REF_DAYS:]
    usual = past[(weekday[past] == weekday[d]) & ~on_holiday[past] & ~other[past]][-REF_DAYS:]
    if len(rest) == 0 or len(usual) == 0:
        return None
    with np.errstate(all="ignore"):
        a = _smooth(_nanmedian(grid[rest]))
        b = _smooth(_nanmedian(grid[usual]))
        if multiplicative:
            ratio = np.where((b > 0) & np.isfinite(a), a / b, np.nan)
            ratio = np.clip(ratio, 0.0, 10.0)
        else:
            ratio = a - b
    if not np.isfinite(ratio).any():
        return None
    # A slot with no reference (a night with no sales at all): the day's overall ratio.
    fill = np.nansum(a) / np.nansum(b) if multiplicative else np.nanmean(ratio)
    return np.where(np.isfinite(ratio), ratio, fill if np.isfinite(fill) else np.nan)


def _nanmedian(x: np.ndarray) -> np.ndarray:
    out = np.full(x.shape[1], np.nan)
    some = np.isfinite(x).any(axis=0)
    if some.any():
        out[some] = np.nanmedian(x[:, some], axis=0)
    return out


def _smooth(profile: np.ndarray) -> np.ndarray:
    """A NaN-aware moving mean over +-SMOOTH slots."""
    ok = np.isfinite(profile)
    k = np.ones(2 * SMOOTH + 1)
    n = len(profile)
    total = np.convolve(np.where(ok, profile, 0.0), k)[SMOOTH : SMOOTH + n]
    count = np.convolve(ok.astype(float), k)[SMOOTH : SMOOTH + n]
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def deviation_span(
    x: np.ndarray, start: int, end: int, per_day: int, direction: int = 0
) -> tuple[int, int]:
    """Rows ``[first, stop)`` of a deviation an alert saw over ``[start, end)``.

    "Usual" is the median of the same time in the last four weeks (or, with less history, the
    last three days) of ``x`` itself. Forward, the deviation goes on while the mean of the last
    hour is more than :data:`AWAY` from the usual level's, on the side ``direction`` (+1
    above, -1 below; 0: the side it started on), for at most :data:`MAX_DAYS` days. Backward,
    it began where the points stopped being away (at most a day before ``start``): an alert
    opens after a deviation has shown for a while. Each forward verdict uses rows up to it.

    >>> x = np.tile(np.r_[np.full(12, 10.0), np.full(12, 20.0)], 30)  # 30 days of 24 slots
    >>> x[24 * 28 + 2 : 24 * 28 + 30] *= 2.0  # 28 slots twice the usual
    >>> deviation_span(x, 24 * 28 + 5, 24 * 28 + 10, 24)
    (674, 702)
    """
    t = len(x)
    first = max(0, start - per_day)
    cap = min(t, start + MAX_DAYS * per_day)
    week = 7 * per_day
    lags = [k * week for k in range(1, 5) if first - k * week >= 0]
    if not lags:
        lags = [k * per_day for k in range(1, 4) if first - k * per_day >= 0]
    if not lags or end >= cap:
        return start, min(end, t)
    rows = np.arange(first, cap)
    ref = np.full((len(lags), len(rows)), np.nan)
    for i, lag in enumerate(lags):
        ref[i] = x[rows - lag]
    with np.errstate(all="ignore"):
        usual = np.where(np.isfinite(ref).any(axis=0), np.nanmedian(ref, axis=0), np.nan)
        point = (x[first:cap] - usual) / np.abs(usual)
    h = max(1, per_day // 24)
    xs, us = _trailing_mean(x[first:cap], h), _trailing_mean(usual, h)
    with np.errstate(all="ignore"):
        dev = (xs - us) / np.abs(us)
    at = start - first
    if direction == 0:
        seen = point[at : max(at + 1, end - first)]
        direction = int(np.sign(np.nanmean(seen))) if np.isfinite(seen).any() else 0
    if direction == 0:
        return start, end

    def away(d: np.ndarray) -> np.ndarray:
        return (d * direction > AWAY) | ~np.isfinite(d)  # no data, no verdict: still away

    before = np.flatnonzero(~away(point[:at]))
    begin = first + (int(before[-1]) + 1 if before.size else 0)
    back = np.flatnonzero(~away(dev[end - first :]))
    return begin, (end + int(back[0]) if back.size else cap)


def _trailing_mean(v: np.ndarray, h: int) -> np.ndarray:
    ok = np.isfinite(v)
    total = np.cumsum(np.where(ok, v, 0.0))
    count = np.cumsum(ok)
    total[h:] = total[h:] - total[:-h]
    count[h:] = count[h:] - count[:-h]
    with np.errstate(all="ignore"):
        return np.where(count > 0, total / count, np.nan)
