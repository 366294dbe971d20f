"""Christmas in DE does not page anyone; an outage on Christmas and a drop on a normal day do.

The shop's DE and FR orders dip on 25/26 December and 1 January as on a Sunday. Only DE has a
holiday calendar: its holidays are expected, FR's still alert (no calendar, no knowledge).
"""

from __future__ import annotations

import pandas as pd
import pytest

from detector.backtest import score_metrics
from tests.calendars.conftest import alert_days, scale, shop_orders, shop_pipeline, timezones

DE, FR = "orders{market=DE}", "orders{market=FR}"
HOLIDAYS = ["2025-12-25", "2025-12-26", "2026-01-01"]
WITH_DE = "calendars: {holidays: {market: {DE: DE}}}"


@pytest.fixture(scope="module")
def metrics() -> pd.DataFrame:
    m = shop_orders("2025-11-24", 49, holidays=HOLIDAYS)
    # An outage on the second day of Christmas (far below a Sunday) and a real drop on a
    # normal Tuesday, both local times.
    scale(m, DE, "2025-12-26 14:00", "2025-12-26 17:00", "Europe/Berlin", 0.0)
    scale(m, DE, "2025-12-30 12:00", "2025-12-30 16:00", "Europe/Berlin", 0.3)
    return m


@pytest.fixture(scope="module")
def plain(metrics: pd.DataFrame) -> pd.DataFrame:
    return score_metrics(shop_pipeline(), metrics, timezones=timezones())


@pytest.fixture(scope="module")
def with_calendar(metrics: pd.DataFrame) -> pd.DataFrame:
    return score_metrics(shop_pipeline(WITH_DE), metrics, timezones=timezones())


def _local(scores: pd.DataFrame, series: str, start: str, end: str) -> pd.DataFrame:
    rows = scores.loc[scores["series"] == series]
    local = rows["timestamp"].dt.tz_convert("Europe/Berlin").dt.tz_localize(None)
    return rows.loc[(local >= pd.Timestamp(start)) & (local < pd.Timestamp(end))]


def test_without_a_calendar_christmas_alerts(plain: pd.DataFrame) -> None:
    days = alert_days(plain, DE)
    assert "2025-12-25" in days
    # ... and the holidays distort the days after them, learned as if they were normal days.
    assert days & {"2025-12-27", "2026-01-02"}


def test_with_the_calendar_holidays_are_expected(with_calendar: pd.DataFrame) -> None:
    days = alert_days(with_calendar, DE)
    assert not days & {"2025-12-25", "2026-01-01"}
    assert not days & {"2025-12-27", "2026-01-02"}  # not learned as normal days either
    xmas = _local(with_calendar, DE, "2025-12-25", "2025-12-26")
    assert (xmas["reason"] == "expected: Christmas Day (DE holiday)").all()
    # FR has the same dips and no calendar: it still alerts.
    assert "2025-12-25" in alert_days(with_calendar, FR, "Europe/Paris")


def test_holidays_are_predicted_like_a_sunday(
    plain: pd.DataFrame, with_calendar: pd.DataFrame
) -> None:
    """At the Sunday afternoon peak the calendar expects about what a Sunday sells."""
    sunday = _local(plain, DE, "2025-12-21 15:00", "2025-12-21 17:00")["value"].mean()
    expected = _local(with_calendar, DE, "2025-12-25 15:00", "2025-12-25 17:00")["expected"]
    usual = _local(plain, DE, "2025-12-25 15:00", "2025-12-25 17:00")["expected"]
    assert abs(expected.mean() - sunday) < abs(usual.mean() - sunday)
    assert abs(expected.mean() - sunday) < 0.3 * sunday


def test_an_outage_on_christmas_and_a_normal_day_drop_still_alert(
    with_calendar: pd.DataFrame,
) -> None:
    outage = _local(with_calendar, DE, "2025-12-26 14:00", "2025-12-26 17:00")
    assert outage["is_anomaly"].any()
    flagged = outage.loc[outage["is_anomaly"], "reason"]
    assert flagged.str.contains(
        "more than Second Day of Christmas (DE holiday) explains", regex=False
    ).all()
    rest_of_day = pd.concat(
        [
            _local(with_calendar, DE, "2025-12-26", "2025-12-26 14:00"),
            _local(with_calendar, DE, "2025-12-26 18:00", "2025-12-27"),
        ]
    )
    assert not rest_of_day["is_anomaly"].any()
    assert _local(with_calendar, DE, "2025-12-30 12:00", "2025-12-30 16:30")["is_anomaly"].any()


def test_scores_are_causal_with_a_calendar(
    metrics: pd.DataFrame, with_calendar: pd.DataFrame
) -> None:
    """A calendar is known in advance, the data is not: later data changes no earlier score."""
    cut = pd.Timestamp("2025-12-27", tz="UTC")
    early = score_metrics(
        shop_pipeline(WITH_DE), metrics.loc[metrics["timestamp"] < cut], timezones=timezones()
    )
    full = with_calendar.loc[with_calendar["timestamp"] < cut]
    cols = ["timestamp", "series", "expected", "lower", "upper", "score", "is_anomaly", "reason"]
    a = early.sort_values(["series", "timestamp"]).reset_index(drop=True)[cols]
    b = full.sort_values(["series", "timestamp"]).reset_index(drop=True)[cols]
    pd.testing.assert_frame_equal(a, b)
