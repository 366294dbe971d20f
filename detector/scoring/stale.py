"""Stale values: a value that normally changes but repeats far longer than it ever did.

A currency-rate feed that silently stops updating keeps repeating its last value, which looks
perfectly "expected" to a forecast; only the run length gives it away.
"""

from __future__ import annotations

import numpy as np

from detector.scoring.calibration import refit_periods


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
    min_steps: int,
    factor: float,
    causal: bool = True,
) -> np.ndarray:
    """Per row, the run length that counts as stale (inf where the series normally repeats).

    Fitted per refit period on the past: a series whose value changes at most steps and whose
    longest past run was R is stale after ``max(min_steps, factor * R + 1)``.
    """
    out = np.full(x.shape, np.inf)
    for lo, start, a, stop in refit_periods(bounds, x.shape[0], window, causal):
        if start - lo < 2 * min_steps:
            continue
        past_run = run[lo:start]
        past_x = x[lo:start]
        fin = np.isfinite(past_x)
        steps = np.sum(fin, axis=0)
        repeats = np.sum((past_run > 0) & fin, axis=0)
        changes_often = (steps >= 24) & (repeats <= 0.5 * steps)
        longest = np.max(past_run, axis=0)
        need = np.maximum(min_steps, factor * longest + 1)
        out[a:stop] = np.where(changes_often, need, np.inf)[None, :]
    return out
