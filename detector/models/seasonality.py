"""Finding the daily and weekly periods of a panel from its autocorrelation.

Business metrics repeat by day and by week; which of the two matters differs by series (sales
have a weekly shape, a currency rate has none). :func:`candidate_periods` turns the grid step into
the lags that could be seasonal, and :func:`autocorrelation` measures, for every series at once,
how strongly each lag repeats (via the FFT, so a whole panel costs one transform).

>>> candidate_periods(pd.Timedelta("5min"))
{'daily': 288, 'weekly': 2016}
>>> candidate_periods(pd.Timedelta("1D"))
{'weekly': 7}
>>> t = np.arange(2000)
>>> x = np.sin(2 * np.pi * t / 100)[:, None]
>>> [float(round(v, 2)) for v in autocorrelation(x, [50, 100])[:, 0]]
[-1.0, 1.0]
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def candidate_periods(freq: pd.Timedelta) -> dict[str, int]:
    """Lags (in grid steps) of one day and one week, where the grid divides them evenly."""
    out: dict[str, int] = {}
    for name, span in (("daily", pd.Timedelta("1D")), ("weekly", pd.Timedelta("7D"))):
        steps = span / freq
        if steps >= 2 and abs(steps - round(steps)) < 1e-9:
            out[name] = round(steps)
    return out


def autocorrelation(values: np.ndarray, lags: list[int]) -> np.ndarray:
    """Autocorrelation of each column at ``lags``; NaN (missing) contributes nothing.

    Missing points are set to the column mean and each lag's autocovariance is normalised by
    its number of valid pairs, so gaps do not bias it to zero. Computed directly at the few
    lags asked for (a sum of products each), not through an FFT of every lag.
    """
    x = np.asarray(values, dtype=float)
    t = x.shape[0]
    valid = ~np.isnan(x)
    mean = np.nanmean(np.where(valid.any(axis=0), x, 0.0), axis=0) if t else 0.0
    centred = np.where(valid, x - mean, 0.0)
    as_float = valid.astype(float)
    var = np.einsum("tn,tn->n", centred, centred) / np.maximum(as_float.sum(axis=0), 1.0)
    out = np.full((len(lags), x.shape[1]), np.nan)
    for i, lag in enumerate(lags):
        if 0 < lag < t:
            acov = np.einsum("tn,tn->n", centred[lag:], centred[:-lag])
            pairs = np.maximum(np.einsum("tn,tn->n", as_float[lag:], as_float[:-lag]), 1.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[i] = (acov / pairs) / var
    out[:, var <= 0] = 0.0
    return out
