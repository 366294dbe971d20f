"""One short sentence per anomaly that a person can act on.

>>> import pandas as pd
>>> ts = pd.Timestamp("2026-01-20 14:05", tz="UTC")
>>> anomaly_reason("orders.DE", "spike", ts, 1240.0, 410.0, 320.0, 500.0, pd.Timedelta("25min"))
'orders.DE = 1240 at 14:05, expected 410 (320-500): +202%, spike for 25 min'
>>> anomaly_reason("fx.EURUSD", "stale", ts, 1.0842, 1.0842, 1.08, 1.09, pd.Timedelta("2h"))
'fx.EURUSD = 1.0842 unchanged for 2 h at 14:05: stale value, the feed may have stopped'
"""

from __future__ import annotations

import math

import pandas as pd

WARMING_UP = "warming up: not enough history to score yet"


def _num(v: float) -> str:
    if not math.isfinite(v):
        return "n/a"
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
        return f"{v:.3g}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.5g}"


def duration(delta: pd.Timedelta) -> str:
    """``25 min``, ``2 h``, ``3 h 10 min``, ``2 d 4 h``."""
    minutes = round(delta.total_seconds() / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


def _clock(ts: pd.Timestamp) -> str:
    return ts.strftime("%H:%M")


def anomaly_reason(
    series: str,
    kind: str,
    ts: pd.Timestamp,
    value: float,
    expected: float,
    lower: float,
    upper: float,
    lasted: pd.Timedelta,
) -> str:
    """The sentence for one flagged point; ``lasted`` is the time since the anomaly began."""
    if kind == "stale":
        return (
            f"{series} = {_num(value)} unchanged for {duration(lasted)} at {_clock(ts)}: "
            "stale value, the feed may have stopped"
        )
    if expected != 0 and math.isfinite(expected):
        change = f"{(value - expected) / abs(expected) * 100:+.0f}%"
    else:
        change = f"{value - expected:+.3g}"
    head = (
        f"{series} = {_num(value)} at {_clock(ts)}, expected {_num(expected)} "
        f"({_num(lower)}-{_num(upper)}): {change}"
    )
    if kind == "level_shift":
        return f"{head}, level shift for {duration(lasted)}: now learned as the new normal"
    return f"{head}, {kind} for {duration(lasted)}"


def missing_reason(series: str, ts: pd.Timestamp) -> str:
    """Missing data is a data-quality fact, worded so nobody mistakes it for a drop."""
    return f"no data for {series} at {_clock(ts)} (missing, not zero)"
