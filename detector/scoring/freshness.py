"""Scoring freshness checks: an age above ``max_age`` while the schedule applies is ``stale``.

A freshness check is a rule the user states ("a rate for each pair at least every 15 minutes on
weekdays"), not a pattern to learn: a feed that stops on a Tuesday is broken even if it also
stopped last Tuesday. So the age is compared with ``max_age`` directly, outside the schedule
nothing is flagged, and the score is the age as a multiple of ``max_age`` (>= 1 is overdue).

>>> import pandas as pd
>>> from detector.pipeline.config import Freshness
>>> check = Freshness(name="fx_age", event="rate", max_age="15m", schedule="weekdays")
>>> frame = pd.DataFrame({"timestamp": pd.to_datetime(["2026-01-05 10:00", "2026-01-10 10:00"],
...                       utc=True), "series": "fx_age", "value": [1800.0, 1800.0]})
>>> out = score_freshness(frame, check, window=pd.Timedelta("5min"))
>>> out[["is_anomaly", "kind"]].values.tolist()
[[True, 'stale'], [False, '']]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from detector.pipeline.config import Freshness
from detector.types import OUTPUT_COLUMNS

__all__ = ["score_freshness"]


def _fmt(seconds: float) -> str:
    minutes = seconds / 60
    if minutes < 120:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h"


def _applies(times: pd.Series, check: Freshness) -> np.ndarray:
    weekday = (times.dt.tz_convert(check.timezone).dt.day_of_week < 5).to_numpy()
    if check.schedule == "weekdays":
        return weekday
    if check.schedule == "weekends":
        return ~weekday
    return np.ones(len(times), bool)


def score_freshness(data: pd.DataFrame, check: Freshness, window: pd.Timedelta) -> pd.DataFrame:
    """Score a freshness check's ages (``timestamp, series, value``; NaN = missing data)."""
    limit = check.max_age.total_seconds()
    sampled = data["timestamp"] + window  # the age is measured at the window's end
    # The check must have applied for the whole of the last max_age: a weekday feed that is
    # quiet over the weekend is not overdue at 00:05 on Monday, but is at 00:20 if still quiet.
    applies = _applies(sampled, check) & _applies(sampled - check.max_age, check)
    value = data["value"].to_numpy(float)
    missing = np.isnan(value)
    overdue = (value > limit) & applies & ~missing
    what = f"the last change of {check.field}" if check.field else f"the last {check.event}"
    reasons = np.full(len(data), "", dtype=object)
    for k in np.flatnonzero(overdue):
        reasons[k] = (
            f"{data['series'].iat[k]}: {what} was {_fmt(value[k])} ago at "
            f"{sampled.iat[k]:%Y-%m-%d %H:%M} UTC (allowed: {_fmt(limit)}, {check.schedule})"
        )
    for k in np.flatnonzero(missing):
        reasons[k] = f"{data['series'].iat[k]}: no data (the feeding app was silent)"
    kind = np.where(overdue, "stale", np.where(missing, "missing", "")).astype(object)
    out = pd.DataFrame(
        {
            "timestamp": data["timestamp"].to_numpy(),
            "series": data["series"].to_numpy(),
            "value": value,
            "expected": np.nan,
            "lower": 0.0,
            "upper": limit,
            "score": np.where(missing, np.nan, value / limit),
            "is_anomaly": overdue,
            "kind": kind,
            "reason": reasons,
        }
    )
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True)
    return out.loc[:, list(OUTPUT_COLUMNS)]
