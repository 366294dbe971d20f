"""A small shop for calendar tests: orders per market on local time, Sundays unlike weekdays.

Weekdays peak at lunch and in the evening; Sundays sell half as much with one afternoon peak.
Days listed as ``holidays`` of a market look exactly like its Sundays, which is what a holiday
calendar should make the detector expect. 15-minute windows keep the tests quick.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from detector.pipeline.config import Pipeline, parse_pipeline

TZ = {"DE": "Europe/Berlin", "FR": "Europe/Paris"}
FREQ = "15min"


def shop_pipeline(calendars: str = "") -> Pipeline:
    return parse_pipeline(
        f"""
name: calshop
segments:
  market: {{values: [DE, FR], timezones: {{DE: Europe/Berlin, FR: Europe/Paris}}}}
metrics:
  - {{name: orders, event: order_placed, aggregation: count, group_by: [market], window: 15m}}
{calendars}
"""
    )


def shop_orders(
    start: str,
    days: int,
    *,
    holidays: Iterable[str] = (),
    markets: Sequence[str] = ("DE", "FR"),
    level: float = 60.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Long metrics (``timestamp, series, value, metric``) for ``orders{market=..}``."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, periods=days * 96, freq=FREQ, tz="UTC")
    rest_days = pd.DatetimeIndex(list(holidays))
    parts = []
    for market in markets:
        local = idx.tz_convert(TZ[market])
        h = local.hour.to_numpy() + local.minute.to_numpy() / 60
        weekday = 0.25 + np.exp(-((h - 13) ** 2) / 18) + 0.6 * np.exp(-((h - 20) ** 2) / 6)
        sunday = 0.5 * (0.25 + np.exp(-((h - 16) ** 2) / 12))
        day = local.normalize().tz_localize(None)
        rest = (local.day_of_week.to_numpy() == 6) | day.isin(rest_days)
        saturday = local.day_of_week.to_numpy() == 5
        mean = level * np.where(rest, sunday, np.where(saturday, 0.8 * weekday, weekday))
        value = rng.negative_binomial(200, 200 / (200 + mean)).astype(float)
        parts.append(
            pd.DataFrame(
                {
                    "timestamp": idx,
                    "series": f"orders{{market={market}}}",
                    "value": value,
                    "metric": "orders",
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def timezones() -> dict[str, str]:
    return {f"orders{{market={m}}}": tz for m, tz in TZ.items()}


def alert_days(scores: pd.DataFrame, series: str, tz: str = "Europe/Berlin") -> set[str]:
    """Local dates on which ``series`` has anomalous points."""
    flagged = scores.loc[scores["is_anomaly"].astype(bool) & (scores["series"] == series)]
    return set(flagged["timestamp"].dt.tz_convert(tz).dt.strftime("%Y-%m-%d"))


def scale(metrics: pd.DataFrame, series: str, start: str, end: str, tz: str, by: float) -> None:
    """Multiply ``series`` in local ``[start, end)`` by ``by`` (in place): an incident."""
    local = metrics["timestamp"].dt.tz_convert(tz).dt.tz_localize(None)
    rows = (
        (metrics["series"] == series) & (local >= pd.Timestamp(start)) & (local < pd.Timestamp(end))
    )
    metrics.loc[rows, "value"] = np.round(metrics.loc[rows, "value"] * by)
