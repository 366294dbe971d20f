"""Feedback that teaches, through a real SQLite store: alerts are tracked and written by the
alert router's code, labelled as a person would, read back, and the metrics scored again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from detector.alerting.alerts import AlertTracker
from detector.alerting.state import AlertState
from detector.backtest import score_metrics
from detector.calendars import Event, LevelChange, load_feedback
from detector.store import open_store
from tests.calendars.conftest import scale, shop_orders, shop_pipeline, timezones

DE = "orders{market=DE}"
CHANGE = "2025-12-16 10:00"  # local time in Berlin


def _store_alerts(url: str, scores: pd.DataFrame) -> AlertState:
    store = open_store(url)
    state = AlertState(store, "calshop")
    alerts = AlertTracker("calshop").update(scores.assign(metric="orders"))
    with store.transaction(write=True) as cur:
        state.write_alerts(cur, alerts, 0)
    return state


def _first_alert_from(state: AlertState, series: str, since: pd.Timestamp) -> str:
    rows = [
        r
        for r in state.alerts()
        if r.alert.labels["series"] == series and r.alert.starts_at >= since
    ]
    return min(rows, key=lambda r: r.alert.starts_at).id


def _flagged(scores: pd.DataFrame, series: str, start: pd.Timestamp) -> pd.DataFrame:
    rows = scores.loc[(scores["series"] == series) & (scores["timestamp"] >= start)]
    return rows.loc[rows["is_anomaly"].astype(bool)]


def test_new_normal_is_learned_from_the_episode_start(tmp_path: Path) -> None:
    """The TV range was discontinued: orders fall to 4% for good. The detector never takes
    a fall to (almost) nothing as a new normal by itself; a person says it is."""
    m = shop_orders("2025-11-24", 28, markets=("DE",))
    scale(m, DE, CHANGE, "2026-01-01", "Europe/Berlin", 0.04)
    pipeline = shop_pipeline()
    change = pd.Timestamp(CHANGE, tz="Europe/Berlin").tz_convert("UTC")
    later = change + pd.Timedelta("3h")
    before = score_metrics(pipeline, m, timezones=timezones())
    assert len(_flagged(before, DE, later)) > 20  # it keeps alerting

    url = f"sqlite:///{tmp_path}/detector.db"
    state = _store_alerts(url, before)
    alert_id = _first_alert_from(state, DE, change)
    state.label(alert_id, "new-normal", "the TV range was discontinued")

    feedback = load_feedback(url, "calshop")
    assert [c.series for c in feedback.changes] == [DE]
    after = score_metrics(pipeline, m, timezones=timezones(), feedback=feedback)
    assert _flagged(after, DE, later).empty
    # The new level is what is expected now (4% of the usual), not the old one.
    tail = after.loc[(after["series"] == DE) & (after["timestamp"] >= later)]
    assert tail["expected"].sum() < 2 * tail["value"].sum()
    # Before the change nothing moved.
    head_before = before.loc[before["timestamp"] < change].reset_index(drop=True)
    head_after = after.loc[after["timestamp"] < change].reset_index(drop=True)
    pd.testing.assert_frame_equal(head_before, head_after)


def test_expected_spans_no_longer_alert(tmp_path: Path) -> None:
    """An unannounced promotion (orders x1.8 for 8 hours) pages; labelled `expected`, the
    whole promotion is expected when scored again, and is not learned as normal."""
    m = shop_orders("2025-11-24", 28, markets=("DE",))
    scale(m, DE, CHANGE, "2025-12-16 18:00", "Europe/Berlin", 1.8)
    pipeline = shop_pipeline()
    start = pd.Timestamp(CHANGE, tz="Europe/Berlin").tz_convert("UTC")
    before = score_metrics(pipeline, m, timezones=timezones())
    assert not _flagged(before, DE, start).empty

    url = f"sqlite:///{tmp_path}/detector.db"
    state = _store_alerts(url, before)
    state.label(_first_alert_from(state, DE, start), "expected", "marketing ran a promotion")

    feedback = load_feedback(url, "calshop")
    (event,) = feedback.events
    assert event.expect == "higher" and event.series == (DE,)
    after = score_metrics(pipeline, m, timezones=timezones(), feedback=feedback)
    assert _flagged(after, DE, start).empty
    promo = after.loc[
        (after["series"] == DE)
        & (after["timestamp"] >= start)
        & (after["timestamp"] < start + pd.Timedelta("8h"))
    ]
    assert promo["reason"].str.endswith("labelled expected").all()


def test_labels_that_teach_nothing_are_ignored(tmp_path: Path) -> None:
    m = shop_orders("2025-11-24", 28, markets=("DE",))
    scale(m, DE, CHANGE, "2025-12-16 18:00", "Europe/Berlin", 1.8)
    url = f"sqlite:///{tmp_path}/detector.db"
    state = _store_alerts(url, score_metrics(shop_pipeline(), m, timezones=timezones()))
    for row in state.alerts():
        state.label(row.id, "false-positive", "")
    assert not load_feedback(url, "calshop")


def test_feedback_is_given_as_events_and_level_changes_too() -> None:
    """``feedback=`` also takes Event and LevelChange objects (a notebook's own)."""
    m = shop_orders("2025-11-24", 21, markets=("DE",))
    scale(m, DE, "2025-12-10 10:00", "2025-12-10 14:00", "Europe/Berlin", 0.0)
    start = pd.Timestamp("2025-12-10 09:00", tz="UTC")
    event = Event(
        "outage we caused", start, start + pd.Timedelta("4h"), expect="ignore", series=(DE,)
    )
    scored = score_metrics(shop_pipeline(), m, timezones=timezones(), feedback=[event])
    assert _flagged(scored, DE, start).empty
    ignored = scored.loc[(scored["timestamp"] >= start) & (scored["timestamp"] < event.end)]
    assert np.isnan(ignored["score"]).all()
    assert LevelChange(DE, "2025-12-10").at.tzinfo is not None
