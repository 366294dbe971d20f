"""Calibrating z-scores on the past: window sums, refit periods, past quantiles, count tails.

A model's variance is a start, not the truth: baseline errors are correlated in time and real
noise has heavier tails than a normal one. These helpers measure, on past rows only, how far off
the textbook statistics are, so the detection layer can correct them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import stats

from detector.kernels import window_sums
from detector.models.base import sorted0

__all__ = ["NORMAL_MEDIAN_SQ", "count_tail_z", "past_quantiles", "refit_periods", "window_sums"]

#: Median of a chi-square with one degree of freedom: what the median squared z of a well
#: calibrated model is.
NORMAL_MEDIAN_SQ = 0.4549364


def refit_periods(
    bounds: list[int], total: int, window: int, causal: bool
) -> Iterator[tuple[int, int, int, int]]:
    """(fit_lo, fit_hi, apply_start, apply_stop) per refit period; retrospective uses all rows."""
    if not causal:
        yield 0, total, 0, total
        return
    for i, start in enumerate(bounds):
        stop = bounds[i + 1] if i + 1 < len(bounds) else total
        yield max(0, start - window), start, start, stop


def past_quantiles(
    stat2: np.ndarray, use: np.ndarray, quantiles: tuple[float, ...]
) -> tuple[np.ndarray, ...]:
    """Per series, quantiles of the used past rows from one sort (NaN with under 24 rows)."""
    n = stat2.shape[1]
    enough = use.sum(axis=0) >= 24
    outs = tuple(np.full(n, np.nan) for _ in quantiles)
    if stat2.shape[0] == 0 or not enough.any():
        return outs
    past = np.where(use[:, enough], stat2[:, enough], np.nan)
    srt = sorted0(past)
    cnt = np.sum(~np.isnan(past), axis=0)
    for out, q in zip(outs, quantiles, strict=True):
        pos = q * np.maximum(cnt - 1, 0)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, np.maximum(cnt - 1, 0))
        a = np.take_along_axis(srt, lo[None], axis=0)[0]
        b = np.take_along_axis(srt, hi[None], axis=0)[0]
        out[enough] = a + (b - a) * (pos - lo)
    return outs


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
