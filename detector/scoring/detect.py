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
from detector.kernels import ScaleWindows, decide_rows
from detector.models.base import FAMILIES
from detector.scoring.calibration import (
    NORMAL_MEDIAN_SQ,
    count_tail_z,
    past_quantiles,
    refit_periods,
    window_sums,
)
from detector.scoring.stale import stale_runs, stale_thresholds

SCALES = (1, 3, 6, 12, 24)
VARIANCE_WINDOW = 12
TAIL_Q = 0.99
KIND_CODES = ("", "spike", "dip", "level_shift", "stale", "missing", "variance")


@dataclass(frozen=True)
class DetectionParams:
    """Decision settings; ``sensitivity`` > 1 flags more, < 1 flags less.

    ``threshold`` is the z-score a point must reach at sensitivity 1; ``hold`` the fraction of
    it that keeps an open anomaly open; ``min_duration`` how many rows in a row must be beyond
    ``hold * threshold`` before an anomaly opens, unless one is beyond ``burst * threshold``;
    ``min_change`` the smallest relative change (for counts and sums) worth an alert;
    ``min_shift`` the smallest accepted level shift reported when no anomaly was open;
    ``zero_events`` how many expected events a run of exact zeros must miss to be a dip;
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
    zero_events: float = 20.0
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


def _calibrated(
    sc: ScaleWindows, quiet: np.ndarray, lo: int, start: int, a: int, stop: int, count: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated z of one scale for rows ``[a, stop)`` from past rows ``[lo, start)``.

    Only *quiet* past rows count (no anomaly flagged within the window), so an incident does
    not teach the calibration that incidents are normal. The variance factor is the median of
    past squared z over a normal's; the tail factor shrinks z where the past's 99th percentile
    is beyond a normal's (a series that spikes every day should not alert every day).
    """
    now_use, e_sum, x_sum, v_sum = sc.rows(a, stop)
    use = sc.valid[lo:start] & quiet
    raw2 = sc.raw[lo:start] ** 2
    med, q_tail = past_quantiles(raw2, use, (0.5, TAIL_Q))
    kappa = np.where(np.isfinite(med) & (med > 0), med / NORMAL_MEDIAN_SQ, 1.0)
    kappa = np.clip(kappa, 0.5, 1e6)
    tail_ref = stats.norm.ppf(0.5 + TAIL_Q / 2) ** 2
    tail = np.where(np.isfinite(q_tail), q_tail / kappa / tail_ref, 1.0)
    factor = kappa * np.clip(tail, 1.0, 1e6)
    z = sc.raw[a:stop] / np.sqrt(factor)
    # Counts: negative binomial tails where the normal one could mislead.
    sub = count[a:stop] & (np.abs(z) > 2.0) & sc.valid[a:stop]
    if sub.any():
        v = v_sum * factor
        z[sub] = count_tail_z(x_sum[sub], e_sum[sub], v[sub])
    z = np.where(now_use, z, 0.0)
    return z, factor


def _variance_z(
    z1: np.ndarray, ok: np.ndarray, quiet: np.ndarray, lo: int, start: int, a: int, stop: int
) -> np.ndarray:
    """How unusually large the recent squared residuals are, as a one-sided z (kind variance).

    The sum of the last ``VARIANCE_WINDOW`` squared single-point z-scores against a chi-square,
    calibrated on the quiet past's 99th percentile because residuals are not independent.
    """
    m = VARIANCE_WINDOW
    b = max(0, lo - m)
    s2 = window_sums(np.where(ok[b:stop], z1[b:stop] ** 2, 0.0), m)
    k = window_sums(ok[b:stop].astype(float), m)
    valid = ok[b:stop] & (k >= m // 2 + 1)
    with np.errstate(all="ignore"):
        p = np.where(valid, stats.chi2.sf(s2, np.maximum(k, 1)), 0.5)
        zv = np.clip(stats.norm.isf(np.clip(p, 1e-300, 0.5)), 0.0, None)
    zv = np.where(valid, zv, 0.0)
    past = zv[lo - b : start - b]
    (q,) = past_quantiles(past**2, valid[lo - b : start - b] & quiet, (0.99,))
    tail = np.clip(np.where(np.isfinite(q), q / 2.326**2, 1.0), 1.0, 1e6)
    return zv[a - b : stop - b] / np.sqrt(tail)


@dataclass
class _Open:
    """The anomaly state carried from row to row (and period to period) per series."""

    sign: np.ndarray
    start: np.ndarray
    streak: np.ndarray
    zero: np.ndarray  # expected events missed by the current run of exact zeros
    zero_start: np.ndarray

    @classmethod
    def empty(cls, n: int) -> _Open:
        return cls(
            np.zeros(n), np.full(n, -1, dtype=np.int64), np.zeros(n),
            np.zeros(n), np.full(n, -1, dtype=np.int64),
        )  # fmt: skip


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
    span: tuple[np.ndarray, np.ndarray] | None = None,
    special: np.ndarray | None = None,
) -> Detection:
    """Score every point and decide, causally, which ones are anomalous and of what kind.

    Period by period (the model's refit periods): each scale's z is calibrated on the quiet
    rows of the past window, then rows are decided in order. ``family`` holds FAMILIES codes
    per row (the family in force at that row's refit). ``confidence`` (in (0, 1]) scales z
    down while a series' history is short: the cold-start ladder raises thresholds instead of
    alarming on a half-learned shape.

    ``span`` (from a calendar: a holiday, a promotion) gives points a range ``(lo, hi)`` to be
    judged against instead of one expected value (NaN ``lo``: no range); a point inside it has
    no deviation, one outside deviates by its distance to the nearer end. ``special`` marks the
    points under a calendar effect, which the thresholds are not calibrated on.
    """
    t, n = x.shape
    shown = expected
    ranged = None
    if span is not None:
        span_lo, span_hi = span
        ranged = ~np.isnan(span_lo)
        with np.errstate(invalid="ignore"):
            inside = np.clip(np.where(np.isfinite(x), x, span_lo), span_lo, span_hi)
        expected = np.where(ranged, inside, expected)
    ok = np.isfinite(x) & np.isfinite(expected) & np.isfinite(variance) & scorable
    count = family == FAMILIES.index("count")
    ratio = family == FAMILIES.index("ratio")
    relative = count | (family == FAMILIES.index("continuous"))
    # Variance changes are judged on levels and rates (quotes that flap); for counts and sums
    # a burst of big squared residuals is lumpy demand, and the mean tests cover real changes.
    wobbly = ratio | (family == FAMILIES.index("level"))
    # One bucket of a sum (revenue) can be a single huge order: never an alert on its own.
    sums = family == FAMILIES.index("continuous")
    # Each scale's window statistics, computed period by period as the rows are decided.
    scales = [
        ScaleWindows(x, expected, variance, ok, relative, m, params.min_change,
                     params.min_abs_change)
        for m in SCALES
    ]  # fmt: skip
    conf = confidence if confidence is not None else np.ones((t, n))
    seen = np.where(scorable, x, np.nan)
    run = stale_runs(seen)
    stale_need = stale_thresholds(
        run, seen, bounds, window, params.stale_min_steps, params.stale_factor, causal
    )
    # A value stuck at 0 (no orders, no revenue) is a drop, judged above, not a stale feed.
    # Counts and rates are computed by the detector from events it counted itself: an equal
    # value twice (3 orders, 100% of 2 payments at night) is chance, never a stuck feed.
    stale_need = np.where((x == 0) | count | ratio, np.inf, stale_need)
    shifts = level_shift if level_shift is not None else np.zeros((t, n))
    # How many events (orders, sales) a bucket is expected to hold: e^2 / var is the Poisson
    # mean for counts (var = e) and for compound sums such as revenue (var = e * mean amount);
    # extra overdispersion only makes it smaller, i.e. more cautious.
    never_negative = np.fmin.accumulate(np.where(np.isfinite(x), x, np.inf), axis=0) >= 0
    with np.errstate(all="ignore"):
        events = np.where(
            ok & (count | sums) & never_negative & (expected > 0),
            expected**2 / np.where(variance > 0, variance, np.inf),
            0.0,
        )
    if params.direction == "up":
        events[:] = 0.0
    out = Detection(
        z=np.zeros((t, n)),
        score=np.zeros((t, n)),
        is_anomaly=np.zeros((t, n), dtype=bool),
        kind=np.zeros((t, n), dtype=np.int8),
        lower=np.zeros((t, n)),
        upper=np.zeros((t, n)),
        run_start=np.full((t, n), -1, dtype=np.int64),
        stale_run=run,
    )
    z1 = np.zeros((t, n))
    zvar = np.zeros((t, n))
    state = _Open.empty(n)
    # The row-by-row decision (compiled: detector.kernels.decide_rows) reads these.
    rows_in = {
        "zvar": zvar, "ok": ok, "scorable": scorable, "x": x, "shifts": shifts, "run": run,
        "stale_need": stale_need, "wobbly": wobbly,
        "burst_ok": ~sums,  # one bucket of a sum (revenue) is never a burst on its own
        "settled": conf >= 0.95,  # a big accepted shift is news once the history is long
        "events": events,
    }  # fmt: skip
    rows_in = {k: np.ascontiguousarray(v) for k, v in rows_in.items()}
    thr = params.z
    limits = (
        thr, params.hold * thr, params.min_duration, params.burst * thr, params.min_shift,
        params.zero_events, thr * params.variance_factor, VARIANCE_WINDOW,
    )  # fmt: skip
    for lo, start, a, stop in refit_periods(bounds, t, window, causal):
        zeff = np.zeros((stop - a, n))
        for sc, factor in zip(scales, params.scale_thresholds, strict=True):
            # Past rows whose window holds no flagged row: the calibration's "normal".
            b = max(0, lo - sc.m + 1)
            recent = window_sums(out.is_anomaly[b:start].astype(float), sc.m)
            quiet = recent[lo - b :] == 0
            if special is not None:
                quiet &= ~special[lo:start]
            z, kappa = _calibrated(sc, quiet, lo, start, a, stop, count)
            if sc.m == 1:
                z1[a:stop] = z
                out.upper[a:stop] = kappa[None, :]  # reused below for the bounds
                cols = np.flatnonzero(wobbly[a:stop].any(axis=0))
                if cols.size:
                    zvar[a:stop, cols] = _variance_z(
                        z1[:, cols], ok[:, cols], quiet[:, cols], lo, start, a, stop
                    )
                # One point of a sum or a rate is noisier than the model says (a big order, a
                # handful of attempts at night); incidents there last, and windows see them.
                z = np.where(count[a:stop], z, z / params.point_factor)
            z = z / factor
            zeff = np.where(np.abs(z) > np.abs(zeff), z, zeff)
        zeff *= conf[a:stop]
        zvar[a:stop] *= conf[a:stop]
        if params.direction == "up":
            zeff = np.maximum(zeff, 0.0)
        elif params.direction == "down":
            zeff = np.minimum(zeff, 0.0)
        out.z[a:stop] = zeff
        decide_rows(a, stop, zeff, rows_in, state, out, limits)
    thr, z0 = params.z, params.threshold
    zeff = out.z
    score = zeff * zeff / (zeff * zeff + z0 * z0)
    with np.errstate(invalid="ignore", divide="ignore"):
        stale_score = np.where(np.isfinite(stale_need), run / (run + stale_need), 0.0)
    score = np.maximum(score, stale_score)
    score = np.maximum(score, zvar * zvar / (zvar * zvar + z0 * z0))
    out.score = np.where(ok, score, np.nan)
    half = thr * np.sqrt(np.maximum(variance * out.upper, 0.0))
    lower, upper = shown - half, shown + half
    if span is not None and ranged is not None:
        lower = np.where(ranged, span[0] - half, lower)
        upper = np.where(ranged, span[1] + half, upper)
    # A series that has never been negative gets no negative lower bound.
    out.lower = np.where(count | ratio | never_negative, np.maximum(lower, 0.0), lower)
    out.upper = np.where(ratio, np.minimum(upper, 1.0), upper)
    return out
