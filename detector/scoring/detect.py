"""From forecasts to decisions: multi-scale scores, thresholds, stale runs, kinds.

A model says what it expected and how much a single point varies. Deciding is kept here, the
same for every model:

- **Several time scales.** A 30% drop in a market with 50 orders per 5 minutes hides in the noise
  of one point but not in the sum of six. So the residual is summed over windows of 1, 3, 6 and
  12 points, and each window's z-score is calibrated on the past (the median of its squared value
  is set to a normal one's), because baseline errors are correlated in time and a textbook
  variance would be overconfident.
- **The right tails.** Counts are judged by a negative-binomial tail with the forecast's mean and
  variance, not a normal one, so 4 tickets where 0.5 were expected is not an alarm, while 0 orders
  where 10 were expected is.
- **Causal decisions.** A point is flagged by the scores up to it; once flagged, an anomaly stays
  open while the deviation persists at a lower level (hysteresis), so one incident is one alert.
- **Stale values.** A value that normally changes but repeats for much longer than it ever did
  is a stale feed (kind ``stale``), even though it looks perfectly "expected".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from detector.errors import ConfigError
from detector.models.base import FAMILIES

SCALES = (1, 3, 6, 12, 24)
VARIANCE_WINDOW = 12
KIND_CODES = ("", "spike", "dip", "level_shift", "stale", "missing", "variance")
_NORMAL_MEDIAN_SQ = 0.4549364


@dataclass(frozen=True)
class DetectionParams:
    """Decision settings; ``sensitivity`` > 1 flags more, < 1 flags less.

    ``threshold`` is the z-score a point must reach at sensitivity 1; ``hold`` the fraction of
    it that keeps an open anomaly open; ``min_duration`` how many rows in a row must be beyond
    ``hold * threshold`` before an anomaly opens, unless one is beyond ``burst * threshold``;
    ``min_change`` the smallest relative change (for counts and sums) worth an alert;
    ``min_shift`` the smallest accepted level shift reported when no anomaly was open;
    ``variance_factor`` and ``point_factor`` raise the bar for the variance test and for single
    points of sums and rates; ``direction`` one of ``both``, ``up``, ``down``.
    """

    sensitivity: float = 1.0
    threshold: float = 5.0
    scale_thresholds: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)
    hold: float = 0.6
    min_change: float = 0.1
    min_abs_change: float = 0.0
    direction: str = "both"
    min_duration: int = 2
    burst: float = 2.0
    min_shift: float = 0.3
    variance_factor: float = 1.5
    point_factor: float = 1.3
    stale_min_steps: int = 6
    stale_factor: float = 1.5

    def __post_init__(self) -> None:
        if not (isinstance(self.sensitivity, int | float) and self.sensitivity > 0):
            raise ConfigError(
                f"The 'sensitivity' option must be a number > 0. Got {self.sensitivity!r} instead."
            )
        if self.direction not in ("both", "up", "down"):
            raise ConfigError(
                "The 'direction' parameter must be 'both', 'up' or 'down'. "
                f"Got {self.direction!r} instead."
            )

    @property
    def z(self) -> float:
        return self.threshold / self.sensitivity


@dataclass
class Detection:
    """Per-point decision arrays, all ``(time, series)``."""

    z: np.ndarray  # signed effective z-score (NaN where not scored)
    score: np.ndarray
    is_anomaly: np.ndarray
    kind: np.ndarray  # int codes into KIND_CODES
    lower: np.ndarray
    upper: np.ndarray
    run_start: np.ndarray  # row where the current anomaly began (-1 if none)
    stale_run: np.ndarray  # length of the current run of unchanged values


def window_sums(a: np.ndarray, m: int) -> np.ndarray:
    """Trailing sums over ``m`` rows (NaN counted as 0); rows < m-1 sum what exists."""
    c = np.cumsum(np.nan_to_num(a, nan=0.0), axis=0)
    out = c.copy()
    out[m:] = c[m:] - c[:-m]
    return out


def _periods(bounds: list[int], total: int, window: int, causal: bool):
    """(fit_lo, fit_hi, apply_start, apply_stop) per refit period; retrospective uses all rows."""
    if not causal:
        yield 0, total, 0, total
        return
    for i, start in enumerate(bounds):
        stop = bounds[i + 1] if i + 1 < len(bounds) else total
        yield max(0, start - window), start, start, stop


def calibration(
    stat2: np.ndarray,
    bounds: list[int],
    window: int,
    ok: np.ndarray,
    causal: bool = True,
    quantile: float = 0.5,
    reference: float = _NORMAL_MEDIAN_SQ,
    low: float = 0.5,
) -> np.ndarray:
    """Per refit period, a past quantile of ``stat2`` over ``window`` rows, over a normal's.

    With the defaults: the median of past squared z over that of a normal variable (a variance
    correction). With ``quantile=0.99`` on squared z and ``reference=2.576**2``: how much
    heavier the tail is than a normal one. Returns an array of the same shape holding, for
    each row, the factor fitted on rows before its period began (1 where there is too little
    past), clipped to ``[low, 1e6]``.
    """
    out = np.ones_like(stat2)
    n = stat2.shape[1]
    for lo, start, a, stop in _periods(bounds, stat2.shape[0], window, causal):
        past = np.where(ok[lo:start], stat2[lo:start], np.nan)
        enough = np.sum(ok[lo:start], axis=0) >= 24
        if start - lo == 0 or not enough.any():
            continue
        q = np.full(n, np.nan)
        q[enough] = np.nanquantile(past[:, enough], quantile, axis=0)
        k = np.where(np.isfinite(q) & (q > 0), q / reference, 1.0)
        out[a:stop] = np.clip(k, low, 1e6)[None, :]
    return out


def count_tail_z(total: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Signed z of an observed count total under a negative binomial of this mean/variance.

    >>> round(float(count_tail_z(np.array([4.0]), np.array([0.5]), np.array([0.5]))[0]), 2)
    2.92
    >>> round(float(count_tail_z(np.array([0.0]), np.array([10.0]), np.array([10.0]))[0]), 2)
    -3.91
    """
    mu = np.maximum(mean, 1e-6)
    v = np.maximum(var, mu * (1 + 1e-6))
    size = mu * mu / (v - mu)
    p = mu / v
    x = np.round(np.maximum(total, 0.0))
    up = x > mu
    with np.errstate(all="ignore"):
        # P(X >= x) for spikes, P(X <= x) for dips; floor keeps isf finite.
        tail = np.where(up, stats.nbinom.sf(x - 1, size, p), stats.nbinom.cdf(x, size, p))
        tail = np.clip(tail, 1e-300, 0.5)
        z = stats.norm.isf(tail)
    return np.where(up, z, -z)


def stale_runs(x: np.ndarray) -> np.ndarray:
    """Length of the run of unchanged values ending at each row (missing rows keep the run)."""
    t, n = x.shape
    run = np.zeros((t, n))
    last = np.full(n, np.nan)
    cur = np.zeros(n)
    for i in range(t):
        v = x[i]
        fin = np.isfinite(v)
        same = fin & (v == last)
        cur = np.where(same, cur + 1, np.where(fin, 0, cur))
        last = np.where(fin, v, last)
        run[i] = cur
    return run


def stale_thresholds(
    run: np.ndarray,
    x: np.ndarray,
    bounds: list[int],
    window: int,
    params: DetectionParams,
    causal: bool = True,
) -> np.ndarray:
    """Per row, the run length that counts as stale (inf where the series normally repeats).

    Fitted per refit period on the past: a series whose value changes at most steps and whose
    longest past run was R is stale after ``max(stale_min_steps, stale_factor * R + 1)``.
    """
    out = np.full(x.shape, np.inf)
    for lo, start, a, stop in _periods(bounds, x.shape[0], window, causal):
        if start - lo < 2 * params.stale_min_steps:
            continue
        past_run = run[lo:start]
        past_x = x[lo:start]
        fin = np.isfinite(past_x)
        steps = np.sum(fin, axis=0)
        repeats = np.sum((past_run > 0) & fin, axis=0)
        changes_often = (steps >= 24) & (repeats <= 0.5 * steps)
        longest = np.max(past_run, axis=0)
        need = np.maximum(params.stale_min_steps, params.stale_factor * longest + 1)
        out[a:stop] = np.where(changes_often, need, np.inf)[None, :]
    return out


def _scale_z(
    x: np.ndarray,
    e: np.ndarray,
    var: np.ndarray,
    ok: np.ndarray,
    count: np.ndarray,
    m: int,
    bounds: list[int],
    window: int,
    causal: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calibrated z of the residual summed over ``m`` rows; also the sums used for min-change."""
    r = np.where(ok, x - e, 0.0)
    s = window_sums(r, m)
    v = window_sums(np.where(ok, var, 0.0), m)
    n = window_sums(ok.astype(float), m)
    valid = ok & (n >= (m // 2 + 1)) & (v > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(valid, s / np.sqrt(np.where(v > 0, v, 1.0)), 0.0)
    kappa = calibration(z * z, bounds, window, valid, causal)
    z = z / np.sqrt(kappa)
    # Heavy tails: where the past's 99th percentile of |z| exceeds a normal's, shrink z so a
    # series that spikes every day does not alert every day.
    tail = calibration(z * z, bounds, window, valid, causal, 0.99, 2.576**2, 1.0)
    kappa = kappa * tail
    z = z / np.sqrt(tail)
    # Counts: exact-ish negative binomial tails where the normal one could mislead.
    sub = count & (np.abs(z) > 2.0) & valid
    if sub.any():
        es = window_sums(np.where(ok, e, 0.0), m)[sub]
        xs = window_sums(np.where(ok, x, 0.0), m)[sub]
        z[sub] = count_tail_z(xs, es, (v * kappa)[sub])
    if m > 1:
        # A window only speaks for the newest point if that point itself carries the deviation:
        # same sign and at least half the window's mean size (so an incident's end is not
        # flagged for a whole window length after it).
        carries = (np.sign(r) == np.sign(s)) & (np.abs(r) >= 0.5 * np.abs(s) / np.maximum(n, 1))
        z = np.where(carries, z, 0.0)
    mean_e = window_sums(np.where(ok, np.abs(e), 0.0), m)
    return z, np.abs(s) / np.maximum(n, 1), mean_e / np.maximum(n, 1)


def _variance_z(
    z1: np.ndarray, ok: np.ndarray, bounds: list[int], window: int, causal: bool
) -> np.ndarray:
    """How unusually large the recent squared residuals are, as a one-sided z (kind variance).

    The sum of the last ``VARIANCE_WINDOW`` squared single-point z-scores against a chi-square,
    calibrated on the past's 99th percentile because residuals are not independent.
    """
    m = VARIANCE_WINDOW
    s2 = window_sums(np.where(ok, z1 * z1, 0.0), m)
    k = window_sums(ok.astype(float), m)
    valid = ok & (k >= m // 2 + 1)
    with np.errstate(all="ignore"):
        p = np.where(valid, stats.chi2.sf(s2, np.maximum(k, 1)), 0.5)
        zv = np.clip(stats.norm.isf(np.clip(p, 1e-300, 0.5)), 0.0, None)
    tail = calibration(zv * zv, bounds, window, valid, causal, 0.99, 2.326**2, 1.0)
    return np.where(valid, zv / np.sqrt(tail), 0.0)


def decide(
    x: np.ndarray,
    expected: np.ndarray,
    variance: np.ndarray,
    family: np.ndarray,
    scorable: np.ndarray,
    level_shift: np.ndarray | None,
    bounds: list[int],
    window: int,
    params: DetectionParams,
    causal: bool = True,
    confidence: np.ndarray | None = None,
) -> Detection:
    """Score every point and decide, causally, which ones are anomalous and of what kind.

    ``confidence`` (same shape, in (0, 1]) scales z down while a series' history is short:
    the cold-start ladder raises thresholds instead of alarming on a half-learned shape.
    """
    t, n = x.shape
    ok = np.isfinite(x) & np.isfinite(expected) & np.isfinite(variance) & scorable
    # family: per row and series (the family in force at that row's refit), as FAMILIES codes.
    count = family == FAMILIES.index("count")
    ratio = family == FAMILIES.index("ratio")
    relative = count | (family == FAMILIES.index("continuous"))
    zeff = np.zeros((t, n))
    for m, factor in zip(SCALES, params.scale_thresholds, strict=True):
        z, dev, level = _scale_z(x, expected, variance, ok, count, m, bounds, window, causal)
        big = dev >= np.maximum(
            params.min_abs_change, np.where(relative, params.min_change * level, 0.0)
        )
        if m == 1:
            zvar = _variance_z(z, ok, bounds, window, causal)
        z = np.where(big, z, 0.0) / factor
        if m == 1:
            # One point of a sum or a rate is noisier than the model says (a big order, a
            # handful of attempts at night); incidents there last, and longer windows see them.
            z = np.where(count, z, z / params.point_factor)
        zeff = np.where(np.abs(z) > np.abs(zeff), z, zeff)
    if confidence is not None:
        zeff = zeff * confidence
        zvar = zvar * confidence
    if params.direction == "up":
        zeff = np.maximum(zeff, 0.0)
    elif params.direction == "down":
        zeff = np.minimum(zeff, 0.0)
    thr = params.z
    seen = np.where(scorable, x, np.nan)
    run = stale_runs(seen)
    stale_need = stale_thresholds(run, seen, bounds, window, params, causal)
    # A value stuck at 0 (no orders, no revenue) is a drop, judged above, not a stale feed.
    stale_need = np.where(x == 0, np.inf, stale_need)
    kind = np.zeros((t, n), dtype=np.int8)
    flag = np.zeros((t, n), dtype=bool)
    start = np.full((t, n), -1, dtype=np.int64)
    open_sign = np.zeros(n)
    open_start = np.full(n, -1, dtype=np.int64)
    shifts = level_shift if level_shift is not None else np.zeros((t, n))
    streak = np.zeros(n)  # rows in a row beyond hold * thr on one side (signed)
    for i in range(t):
        zi = zeff[i]
        side = np.where(np.abs(zi) >= params.hold * thr, np.sign(zi), 0.0)
        streak = np.where(side == 0, 0.0, np.where(np.sign(streak) == side, streak + side, side))
        # Minimum duration: a lone point opens an anomaly only if it is far out (burst).
        lasting = np.abs(streak) >= params.min_duration
        strong = (np.abs(zi) >= thr) & (lasting | (np.abs(zi) >= params.burst * thr))
        cont = (open_sign != 0) & (zi * open_sign >= params.hold * thr)
        new = strong & ((open_sign == 0) | (np.sign(zi) != open_sign))
        open_start = np.where(new, i, open_start)
        open_sign = np.where(new, np.sign(zi), np.where(strong | cont, open_sign, 0.0))
        miss = ~np.isfinite(x[i])  # a gap neither opens nor closes an anomaly
        f = (strong | cont) & ok[i]
        # An accepted shift is news when it ends an open anomaly or is big; a small re-levelling
        # of a series nobody was alerted about is the model's business, not an alert.
        moved = shifts[i] != 0
        accepted = (
            moved & scorable[i] & ((open_sign != 0) | (np.abs(shifts[i]) >= params.min_shift))
        )
        stale = (run[i] >= stale_need[i]) & ok[i] & ~f
        noisy = (zvar[i] >= thr * params.variance_factor) & ok[i] & ~f & ~stale
        kind[i] = np.where(f, np.where(open_sign > 0, 1, 2), 0)
        kind[i] = np.where(accepted, 3, kind[i])
        kind[i] = np.where(stale, 4, kind[i])
        kind[i] = np.where(noisy, 6, kind[i])
        kind[i] = np.where(miss & scorable[i], 5, kind[i])
        flag[i] = f | accepted | stale | noisy
        start[i] = np.where(f | accepted, open_start, np.where(stale, i - run[i], -1))
        start[i] = np.where(noisy, i - VARIANCE_WINDOW + 1, start[i])
        # After an accepted shift the model's level is the new normal: close the anomaly.
        open_sign = np.where(moved, 0.0, open_sign)
        open_sign = np.where(ok[i] | miss, open_sign, 0.0)
    z0 = params.threshold
    score = zeff * zeff / (zeff * zeff + z0 * z0)
    with np.errstate(invalid="ignore", divide="ignore"):
        stale_score = np.where(np.isfinite(stale_need), run / (run + stale_need), 0.0)
    score = np.maximum(score, stale_score)
    score = np.maximum(score, zvar * zvar / (zvar * zvar + z0 * z0))
    score = np.where(ok, score, np.nan)
    kappa1 = calibration(
        np.where(ok, (x - expected) ** 2 / np.where(variance > 0, variance, 1.0), np.nan),
        bounds,
        window,
        ok,
        causal,
    )
    half = thr * np.sqrt(np.maximum(variance * kappa1, 0.0))
    lower, upper = expected - half, expected + half
    # A series that has never been negative gets no negative lower bound.
    never_negative = np.fmin.accumulate(np.where(np.isfinite(x), x, np.inf), axis=0) >= 0
    lower = np.where(count | ratio | never_negative, np.maximum(lower, 0.0), lower)
    upper = np.where(ratio, np.minimum(upper, 1.0), upper)
    return Detection(zeff, score, flag, kind, lower, upper, start, run)
