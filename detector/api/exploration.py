"""Exploring a metric: what the data looks like and what the model made of it, refit by refit.

:func:`describe` scores once through a :class:`~detector.api.recording.Recording`, so the
family and baseline the model chose at every refit can be read back next to the grid,
gaps, seasonality and noise of each series: the first thing to look at before tuning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from detector.api.inputs import as_series
from detector.api.recording import record
from detector.errors import InputError

__all__ = ["Description", "describe"]


@dataclass(frozen=True)
class Description:
    """What the data looks like and what the model made of it (see :func:`describe`)."""

    summary: pd.DataFrame  # one row per series
    choices: pd.DataFrame  # one row per refit and series: time, series, family, baseline
    scores: pd.DataFrame  # the scored table of the same run
    freq: pd.Timedelta
    periods: dict[str, int]  # the seasonal lags tried, in buckets (daily, weekly)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.summary.to_string())


def describe(
    series: pd.DataFrame | str | Path,
    *,
    model: str = "auto",
    causal: bool = True,
    freq: str | None = None,
    **params: Any,
) -> Description:
    """Per series: its grid, missing data, seasonality and noise, and what the model chose.

    ``summary`` columns: ``points`` (buckets from first to last row), ``missing`` and
    ``missing_share`` (empty buckets), ``longest_gap``, ``mean``, ``zeros_share``,
    ``acf_daily`` and ``acf_weekly`` (autocorrelation at one day and one week; the default
    model considers a seasonal baseline only from ``min_acf`` = 0.1 on), ``family`` (the noise
    model: ``count`` varies like a negative binomial, ``ratio`` like a binomial with its
    denominator, ``continuous`` with its level, ``level`` is judged by its changes),
    ``baseline`` (``naive`` last value, ``level`` recent median, ``daily``/``weekly`` median of
    the same slot on past days/weeks, or the statsmodels model's name), ``dispersion``
    (counts: squared error over expected value on quiet rows; 1 is Poisson) and
    ``residual_sd``. ``choices`` has the family and baseline of every refit, so the cold-start
    ladder (level, then daily, then weekly as history grows) is visible.

    >>> idx = pd.date_range("2026-01-05", periods=288 * 9, freq="5min", tz="UTC")
    >>> shape = 50 + 40 * np.sin(2 * np.pi * np.arange(len(idx)) / 288)
    >>> rng = np.random.default_rng(1)
    >>> data = pd.DataFrame({"timestamp": idx, "series": "orders",
    ...                      "value": rng.poisson(shape).astype(float)})
    >>> d = describe(data)
    >>> d.summary.loc["orders", ["family", "baseline"]].tolist(), d.periods
    (['count', 'daily'], {'daily': 288, 'weekly': 2016})
    >>> d.choices["baseline"].iloc[0], d.choices["baseline"].iloc[-1]
    ('level', 'daily')
    """
    from detector.models.seasonality import autocorrelation, candidate_periods
    from detector.panel import to_panel

    data = as_series(series)
    if data.empty:
        raise InputError("no rows to describe")
    recording, scores = record(data, model, causal, freq, params)
    panel = to_panel(data, freq)
    periods = candidate_periods(panel.freq)
    acf = autocorrelation(panel.values, list(periods.values()))
    rows = []
    last = recording.infos[max(recording.infos)]
    quiet = scores[~scores["is_anomaly"] & scores["expected"].notna() & scores["value"].notna()]
    err = (quiet["value"] - quiet["expected"]).groupby(quiet["series"])
    sq = ((quiet["value"] - quiet["expected"]) ** 2).groupby(quiet["series"]).mean()
    level = quiet["expected"].clip(lower=0).groupby(quiet["series"]).mean()
    sd = err.std()
    for j, name in enumerate(panel.series):
        x = panel.values[panel.first[j] : panel.last[j] + 1, j]
        nan = np.isnan(x)
        runs = np.diff(np.flatnonzero(np.diff(np.r_[0, nan.astype(np.int8), 0])))[::2]
        fam = str(last.family[j])
        row = {
            "series": name,
            "first": panel.index[panel.first[j]],
            "last": panel.index[panel.last[j]],
            "points": int(x.size),
            "missing": int(nan.sum()),
            "missing_share": float(nan.mean()),
            "longest_gap": panel.freq * int(runs.max() if runs.size else 0),
            "mean": float(np.nanmean(x)) if (~nan).any() else float("nan"),
            "zeros_share": float(np.mean(x[~nan] == 0)) if (~nan).any() else float("nan"),
        }
        for i, period in enumerate(periods):
            row[f"acf_{period}"] = float(acf[i, j])
        row["family"] = fam
        row["baseline"] = str(last.baseline[j])
        if "multiplicative" in last.extra:
            row["multiplicative"] = bool(last.extra["multiplicative"][j])
        row["dispersion"] = (
            float(sq.get(name, np.nan) / level.get(name, np.nan))
            if fam == "count" and level.get(name, 0) > 0
            else float("nan")
        )
        row["residual_sd"] = float(sd.get(name, np.nan))
        rows.append(row)
    summary = pd.DataFrame(rows).set_index("series")
    assert recording.index is not None
    choices = pd.DataFrame(
        [
            {
                "timestamp": recording.index[min(end, len(recording.index) - 1)],
                "series": name,
                "family": str(info.family[j]),
                "baseline": str(info.baseline[j]),
            }
            for end, info in sorted(recording.infos.items())
            for j, name in enumerate(panel.series)
            if panel.first[j] < end or not causal
        ]
    )
    return Description(summary, choices, scores, panel.freq, periods)
