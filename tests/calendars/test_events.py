"""Declared events: a planned sale raises the expectation, a maintenance is not scored."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detector.backtest import score_metrics
from detector.pipeline.config import parse_pipeline
from tests.calendars.conftest import alert_days, scale, shop_orders, shop_pipeline, timezones

DE, FR = "orders{market=DE}", "orders{market=FR}"
EVENTS = """
calendars:
  events:
    - name: Christmas sale
      start: 2025-12-17 10:00
      end: 2025-12-17 20:00
      where: {market: DE}
      metrics: [orders]
      expect: higher
      factor: 1.5
    - name: Shop maintenance
      start: 2025-12-18T09:00:00Z
      end: 2025-12-18T11:00:00Z
      where: {market: FR}
      expect: ignore
"""


@pytest.fixture(scope="module")
def metrics() -> pd.DataFrame:
    m = shop_orders("2025-11-24", 35)
    scale(m, DE, "2025-12-17 10:00", "2025-12-17 20:00", "Europe/Berlin", 1.6)  # the sale
    scale(m, DE, "2025-12-19 12:00", "2025-12-19 16:00", "Europe/Berlin", 0.3)  # a real drop
    scale(m, FR, "2025-12-18 10:00", "2025-12-18 12:00", "Europe/Paris", 0.0)  # maintenance
    return m


@pytest.fixture(scope="module")
def plain(metrics: pd.DataFrame) -> pd.DataFrame:
    return score_metrics(shop_pipeline(), metrics, timezones=timezones())


@pytest.fixture(scope="module")
def declared(metrics: pd.DataFrame) -> pd.DataFrame:
    return score_metrics(shop_pipeline(EVENTS), metrics, timezones=timezones())


def _rows(scores: pd.DataFrame, series: str, start: str, end: str) -> pd.DataFrame:
    rows = scores.loc[scores["series"] == series]
    return rows.loc[(rows["timestamp"] >= start) & (rows["timestamp"] < end)]


def test_undeclared_the_sale_and_the_maintenance_alert(plain: pd.DataFrame) -> None:
    assert "2025-12-17" in alert_days(plain, DE)
    assert "2025-12-18" in alert_days(plain, FR, "Europe/Paris")


def test_a_declared_sale_is_expected_higher(declared: pd.DataFrame) -> None:
    assert "2025-12-17" not in alert_days(declared, DE)
    sale = _rows(declared, DE, "2025-12-17T09:00Z", "2025-12-17T19:00Z")
    assert (sale["reason"] == "expected: Christmas sale (declared event)").all()
    # It sold 1.6 times the usual; 1.5 times the usual was expected.
    ratio = sale["expected"].sum() / sale["value"].sum()
    assert 0.8 < ratio < 1.1
    # The real drop two days later still alerts.
    assert _rows(declared, DE, "2025-12-19T11:00Z", "2025-12-19T15:30Z")["is_anomaly"].any()


def test_a_declared_maintenance_is_not_scored(declared: pd.DataFrame) -> None:
    window = _rows(declared, FR, "2025-12-18T09:00Z", "2025-12-18T11:00Z")
    assert len(window) == 8
    assert not window["is_anomaly"].any()
    assert window["score"].isna().all()
    assert (window["reason"] == "not scored: Shop maintenance (declared event)").all()
    assert "2025-12-18" not in alert_days(declared, FR, "Europe/Paris")


def test_an_ignore_event_mutes_a_freshness_check() -> None:
    """A planned stop of the rate feed: its overdue ages are not alerts during the event."""
    pipeline = parse_pipeline(
        """
name: fx
segments:
  pair: {values: [EURUSD]}
freshness:
  - {name: fx_update_age, event: rate, group_by: [pair], max_age: 15m}
calendars:
  events:
    - {name: Feed upgrade, start: 2026-01-06T10:00:00Z, end: 2026-01-06T11:00:00Z,
       metrics: [fx_update_age], expect: ignore}
"""
    )
    idx = pd.date_range("2026-01-06 09:00", "2026-01-06 11:55", freq="5min", tz="UTC")
    since_stop = (idx - pd.Timestamp("2026-01-06 09:55", tz="UTC")).total_seconds().to_numpy()
    age = np.where(since_stop >= 0, since_stop, 30.0)  # seconds, at the window's end below
    metrics = pd.DataFrame(
        {"timestamp": idx, "series": "fx_update_age{pair=EURUSD}", "value": age + 300.0,
         "metric": "fx_update_age"}
    )  # fmt: skip
    scored = score_metrics(pipeline, metrics)
    during = scored["timestamp"] < pd.Timestamp("2026-01-06 11:00", tz="UTC")
    assert not scored.loc[during, "is_anomaly"].any()
    muted = scored.loc[during & (scored["reason"] != "")]
    assert len(muted) > 0
    assert (muted["reason"] == "not scored: Feed upgrade (declared event)").all()
    assert scored.loc[~during, "is_anomaly"].all()  # still stopped after it: alerts
