"""The stream scores its history one slice of series at a time, with the same verdicts.

Three days of 5-minute points for a few series (counts with a daily shape, one with a drop,
and a ratio), stored but for the last hour, which is "fresh". Scoring slice by slice with a
budget that fits one series per slice must give exactly what scoring everything at once gives
(``detector backtest``'s :func:`score_metrics` on the whole history), for the new rows and for
a window closed again.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detector.aggregation.windows import Point
from detector.backtest import points_frame, score_metrics
from detector.pipeline.config import parse_pipeline
from detector.store import open_store
from detector.stream.scoring import SeriesCatalogue, score_closed

PIPELINE = parse_pipeline("""
name: slices
events:
  order_placed: {fields: {market: {type: string}}}
  payment_attempted: {fields: {provider: {type: string}, status: {type: string}}}
metrics:
  - {name: orders, event: order_placed, aggregation: count, group_by: [market]}
  - {name: success, event: payment_attempted, aggregation: ratio, numerator: {status: ok},
     group_by: [provider]}
""")
START = 1767571200  # 2026-01-05
DAYS = 3
STEPS = DAYS * 288


def points() -> list[Point]:
    rng = np.random.default_rng(5)
    out = []
    shape = 0.3 + np.exp(-(((np.arange(STEPS) % 288) / 12 - 14) ** 2) / 18)
    for market, scale in (("DE", 40), ("FR", 25), ("UK", 30), ("US", 60), ("IT", 10)):
        values = rng.poisson(scale * shape).astype(float)
        if market == "US":
            values[-30:-20] = 0.0  # the incident, in the fresh hour's neighbourhood
        out += [Point("orders", f"orders{{market={market}}}", START + 300 * k, v, None, False)
                for k, v in enumerate(values)]  # fmt: skip
    for provider, rate in (("adyen", 0.95), ("stripe", 0.9)):
        den = rng.poisson(50 * shape) + 1
        num = rng.binomial(den, rate)
        if provider == "stripe":
            num[-15:] = rng.binomial(den[-15:], 0.4)  # success rate sinks
        out += [
            Point("success", f"success{{provider={provider}}}", START + 300 * k, n / d, float(d),
                  False)
            for k, (n, d) in enumerate(zip(num, den, strict=True))
        ]  # fmt: skip
    return out


@pytest.mark.parametrize("budget", [1, 600, 10**9])
def test_slices_give_the_verdicts_of_one_pass(tmp_path, budget):
    pts = points()
    cut = START + 300 * (STEPS - 12)  # the last hour is fresh
    stored, fresh = [p for p in pts if p.start < cut], [p for p in pts if p.start >= cut]
    again = next(p for p in stored if p.series == "orders{market=US}" and p.start == cut - 300)
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    store.commit("slices", "g", offsets={}, state=None, points=stored)
    since = pd.Timestamp(cut - 300, unit="s", tz="UTC")  # scored up to the stored end
    catalogue = SeriesCatalogue.load(store, "slices")
    catalogue.add((p.metric, p.series) for p in fresh)
    closed = {(p.series, p.start) for p in fresh} | {(again.series, again.start)}

    got, newest = score_closed(
        store, PIPELINE, points_frame(fresh), catalogue, since=since, closed=closed,
        timezones={}, budget_rows=budget,
    )  # fmt: skip

    whole = score_metrics(PIPELINE, points_frame(pts), causal=True)
    key = pd.MultiIndex.from_frame(whole[["series", "timestamp"]])
    wanted = whole.loc[
        (whole["timestamp"] > since)
        | key.isin([(again.series, pd.Timestamp(again.start, unit="s", tz="UTC"))])
    ]
    assert newest == pd.Timestamp(pts[-1].start, unit="s", tz="UTC")
    cols = list(wanted.columns)
    order = ["series", "timestamp"]
    pd.testing.assert_frame_equal(
        got[cols].sort_values(order, ignore_index=True),
        wanted.sort_values(order, ignore_index=True),
    )
    assert len(got) == 7 * 12 + 1
    assert got["is_anomaly"].any()  # the verdicts compared are not all "normal"
    assert set(got.loc[got["series"].str.startswith("success"), "denominator"].notna()) == {True}
    assert set(got["metric"]) == {"orders", "success"}
    store.close()


def test_only_the_series_closed_are_scored(tmp_path):
    pts = points()
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    store.commit("slices", "g", offsets={}, state=None, points=pts)
    catalogue = SeriesCatalogue.load(store, "slices")
    assert sum(len(s) for s in catalogue.sizes.values()) == 7
    last = pts[-1]
    since = pd.Timestamp(last.start - 300, unit="s", tz="UTC")
    got, _ = score_closed(
        store, PIPELINE, points_frame([]), catalogue, since=since,
        closed={(last.series, last.start)}, timezones={}, budget_rows=1,
    )  # fmt: skip
    assert got["series"].tolist() == [last.series]
    # unknown (an older state): every series with new rows
    every, _ = score_closed(
        store, PIPELINE, points_frame([]), catalogue, since=since, closed=None, timezones={},
    )  # fmt: skip
    assert len(every) == 7
    store.close()


def test_a_lookback_reads_only_that_much_history_before_the_windows_scored(tmp_path):
    pts = points()
    cut = START + 300 * (STEPS - 12)
    stored, fresh = [p for p in pts if p.start < cut], [p for p in pts if p.start >= cut]
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    store.commit("slices", "g", offsets={}, state=None, points=stored)
    since = pd.Timestamp(cut - 300, unit="s", tz="UTC")
    catalogue = SeriesCatalogue.load(store, "slices")
    closed = {(p.series, p.start) for p in fresh}
    lookback = pd.Timedelta("1D")

    got, _ = score_closed(
        store, PIPELINE, points_frame(fresh), catalogue, since=since, closed=closed,
        timezones={}, budget_rows=500, lookback=lookback,
    )  # fmt: skip

    # exactly what scoring the history from `since - lookback` on gives
    first = (since - lookback).timestamp()
    wanted = score_metrics(PIPELINE, points_frame([p for p in pts if p.start >= first]))
    wanted = wanted.loc[wanted["timestamp"] > since]
    order = ["series", "timestamp"]
    pd.testing.assert_frame_equal(
        got[list(wanted.columns)].sort_values(order, ignore_index=True),
        wanted.sort_values(order, ignore_index=True),
    )
    # and a lookback longer than the history changes nothing
    whole, _ = score_closed(
        store, PIPELINE, points_frame(fresh), catalogue, since=since, closed=closed,
        timezones={}, lookback=pd.Timedelta("35D"),
    )  # fmt: skip
    full, _ = score_closed(
        store, PIPELINE, points_frame(fresh), catalogue, since=since, closed=closed,
        timezones={}, lookback=None,
    )  # fmt: skip
    pd.testing.assert_frame_equal(whole, full)
    store.close()


def test_a_stream_round_learns_from_labelled_alerts(tmp_path):
    """``detector run`` passes what labelled alerts teach to its rounds: after a person labels
    a fall ``new-normal``, the next windows at the new level are no longer anomalous."""
    from detector.alerting.alerts import AlertTracker
    from detector.alerting.state import AlertState
    from detector.calendars import load_feedback
    from tests.calendars.conftest import scale, shop_orders, shop_pipeline, timezones

    de = "orders{market=DE}"
    metrics = shop_orders("2025-11-24", 28, markets=("DE",))
    scale(metrics, de, "2025-12-16 10:00", "2026-01-01", "Europe/Berlin", 0.04)
    pipeline = shop_pipeline()
    metrics = metrics.assign(denominator=float("nan"), missing=False)
    cut = metrics["timestamp"].max() - pd.Timedelta("2h")  # the last two hours are fresh
    pts = [
        Point("orders", r.series, int(r.timestamp.timestamp()), r.value, None, False)
        for r in metrics.itertuples(index=False)
    ]
    stored = [p for p in pts if p.start <= cut.timestamp()]
    fresh = [p for p in pts if p.start > cut.timestamp()]
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    store.commit("calshop", "g", offsets={}, state=None, points=stored)
    catalogue = SeriesCatalogue.load(store, "calshop")
    closed = {(p.series, p.start) for p in fresh}

    def round_(feedback):
        got, _ = score_closed(
            store, pipeline, points_frame(fresh), catalogue, since=cut, closed=closed,
            timezones=timezones(), feedback=feedback,
        )  # fmt: skip
        return got

    before = round_(None)
    assert before["is_anomaly"].sum() >= 4  # the fall keeps paging
    state = AlertState(store, "calshop")
    history = score_metrics(pipeline, metrics, timezones=timezones())
    with store.transaction(write=True) as cur:
        state.write_alerts(cur, AlertTracker("calshop").update(history.assign(metric="orders")), 0)
    change = pd.Timestamp("2025-12-16 10:00", tz="Europe/Berlin")
    first = min((r for r in state.alerts() if r.alert.labels["series"] == de
                 and r.alert.starts_at >= change), key=lambda r: r.alert.starts_at)  # fmt: skip
    state.label(first.id, "new-normal", "the TV range was discontinued")
    after = round_(load_feedback(store, "calshop"))
    assert len(after) == len(before) and not after["is_anomaly"].any()
    store.close()
