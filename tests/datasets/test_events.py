"""The event generator: deterministic, schema-true, dirty as promised, incidents in the events."""

from __future__ import annotations

import gzip
import re

import orjson
import pandas as pd
import pytest

from detector.datasets.events import (
    N_DUPLICATES,
    N_LATE,
    N_MALFORMED,
    ShopEvents,
    make_shop_events,
    write_events,
)
from detector.datasets.shop import Incident
from detector.errors import ConfigError

# What pipelines/shop.yaml declares, restated here so that the test fails if the two drift.
SOURCES = {
    "order_placed": "shop-api",
    "payment_attempted": "payments",
    "currency_rate_updated": "fx-feed",
    "ticket_sold": "box-office",
}
ATTRIBUTES = {
    "order_placed": {"market", "category", "amount", "currency"},
    "payment_attempted": {"provider", "status", "amount"},
    "currency_rate_updated": {"pair", "rate"},
    "ticket_sold": {"show", "price"},
    "heartbeat": set(),
}
ALLOWED = {
    "market": {"DE", "FR", "UK", "US"},
    "category": {"tv", "phone", "laptop", "other"},
    "currency": {"EUR", "GBP", "USD"},
    "provider": {"adyen", "stripe", "paypal"},
    "status": {"success", "failed"},
    "pair": {"EURUSD", "EURGBP", "GBPUSD"},
    "show": {"hamlet", "cats", "lion-king"},
}
NUMBERS = {"amount", "rate", "price"}
CURRENCY = {"DE": "EUR", "FR": "EUR", "UK": "GBP", "US": "USD"}
_TZ = {"DE": "Europe/Berlin", "FR": "Europe/Paris", "UK": "Europe/London", "US": "America/New_York"}
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
STANDARD = ("event_id", "type", "ts", "source")
MIN = pd.Timedelta("1min")


def problem(event: dict | str) -> str | None:
    """Why a validator following pipelines/shop.yaml would reject the event (None: it's fine)."""
    if not isinstance(event, dict):
        return "not JSON"
    if not isinstance(event.get("event_id"), str):
        return "no event_id"
    kind = event.get("type")
    if kind not in ATTRIBUTES:
        return "unknown type"
    if set(event) != set(STANDARD) | ATTRIBUTES[kind]:
        return "fields"
    if event["source"] != SOURCES.get(kind, event["source"]):
        return "source"
    if not isinstance(event["ts"], str) or not TS.match(event["ts"]):
        return "ts"
    for key in ATTRIBUTES[kind]:
        value = event[key]
        if key in NUMBERS:
            if not isinstance(value, float) or value < 0:
                return f"bad {key}"
        elif value not in ALLOWED[key]:
            return f"bad {key}"
    return None


@pytest.fixture(scope="module")
def shop() -> ShopEvents:
    return make_shop_events(seed=3, weeks=2)


@pytest.fixture(scope="module")
def reasons(shop: ShopEvents) -> list[str | None]:
    return [problem(e) for e in shop.events]


@pytest.fixture(scope="module")
def good(shop: ShopEvents, reasons: list[str | None]) -> pd.DataFrame:
    """The valid events in stream order, one row each (duplicates included), ts parsed."""
    rows = [e for e, r in zip(shop.events, reasons, strict=True) if r is None]
    keys = [*STANDARD, *sorted(set().union(*ATTRIBUTES.values()))]
    frame = pd.DataFrame({k: [e.get(k) for e in rows] for k in keys})  # type: ignore[union-attr]
    frame["t"] = pd.to_datetime(frame["ts"], format="ISO8601", utc=True)
    return frame


def incident(shop: ShopEvents, prefix: str) -> Incident:
    found = [i for i in shop.labels.incidents if i.series.startswith(prefix)]
    assert len(found) == 1, [i.series for i in shop.labels.incidents]
    return found[0]


def segment(series: str) -> str:
    return series.split("=", 1)[1].rstrip("}")


def between(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    return frame[(frame["t"] >= start) & (frame["t"] < end)]


# --------------------------------------------------------------------------------------------
# Determinism and arguments
# --------------------------------------------------------------------------------------------


def test_same_seed_same_stream(shop: ShopEvents) -> None:
    again = make_shop_events(seed=3, weeks=2)
    assert again.events == shop.events
    assert again.labels == shop.labels
    assert (again.n_malformed, again.n_duplicates, again.n_late) == (
        shop.n_malformed, shop.n_duplicates, shop.n_late,
    )  # fmt: skip


def test_other_seed_other_stream(shop: ShopEvents) -> None:
    other = make_shop_events(seed=4, weeks=2)
    assert other.labels.incidents != shop.labels.incidents
    assert other.events[:100] != shop.events[:100]


def test_time_range(shop: ShopEvents) -> None:
    assert shop.start == pd.Timestamp("2026-01-05", tz="UTC")
    assert shop.end == shop.start + pd.Timedelta(days=14)
    assert shop.warmup_end == shop.start + pd.Timedelta(days=7)


@pytest.mark.parametrize("weeks", [1, 0, 2.5, "3", True])
def test_weeks_must_leave_room_for_incidents(weeks: object) -> None:
    with pytest.raises(ConfigError, match="'weeks' parameter"):
        make_shop_events(weeks=weeks)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Schema, volume and shape
# --------------------------------------------------------------------------------------------


def test_valid_events_follow_the_schema(shop: ShopEvents, good: pd.DataFrame) -> None:
    assert good["t"].between(shop.start, shop.end, inclusive="left").all()
    assert good["event_id"].str.fullmatch(r"evt_[0-9a-f]{16}").all()
    assert set(good["type"]) == set(ATTRIBUTES)
    orders = good[good["type"] == "order_placed"]
    assert (orders["currency"] == orders["market"].map(CURRENCY)).all()
    first = next(e for e in shop.events if isinstance(e, dict) and e["type"] == "order_placed")
    assert list(first)[:4] == list(STANDARD)


def test_volumes_are_a_realistic_shop(shop: ShopEvents, good: pd.DataFrame) -> None:
    events = good.drop_duplicates("event_id")
    counts = events["type"].value_counts()
    per_day = len(events) / 14
    assert 60_000 < per_day < 75_000  # 1-1.5 million events in three weeks
    assert counts["payment_attempted"] / counts["order_placed"] == pytest.approx(1.1, abs=0.03)
    orders = events[events["type"] == "order_placed"]
    buckets = orders.groupby([orders["t"].dt.floor("5min"), "market"]).size().unstack()
    assert buckets.quantile(0.99).between(30, 70).all()  # the evening peak
    assert buckets.quantile(0.02).between(1, 10).all()  # the night
    tv = orders[orders["category"] == "tv"]
    assert (tv.groupby("market").size() / orders.groupby("market").size()).between(0.07, 0.11).all()
    assert tv["amount"].median() == pytest.approx(620, rel=0.15)
    assert orders.loc[orders["category"] != "tv", "amount"].median() < 100
    pay = events[events["type"] == "payment_attempted"]
    rate = (pay["status"] == "success").groupby(pay["provider"]).mean()
    assert rate.between(0.92, 0.97).all()
    tickets = events[events["type"] == "ticket_sold"]
    assert tickets.loc[tickets["price"] >= 5, "price"].between(39, 121).all()


def test_heartbeats_every_30_seconds(good: pd.DataFrame) -> None:
    beats = good[good["type"] == "heartbeat"]
    per_source = beats.groupby("source").size()
    assert set(per_source.index) == set(SOURCES.values())
    full = 14 * 2880
    assert (per_source.drop("shop-api") == full).all()
    assert full - 2 * 90 <= per_source["shop-api"] <= full - 2 * 40  # the ingestion gap
    steps = beats[beats["source"] == "payments"]["t"].sort_values().diff().dropna()
    assert steps.between(pd.Timedelta("29.7s"), pd.Timedelta("30.3s")).all()


def test_fx_updates_every_minute_on_weekdays(shop: ShopEvents, good: pd.DataFrame) -> None:
    fx = good[good["type"] == "currency_rate_updated"].drop_duplicates("event_id")
    stale = segment(incident(shop, "fx_update_age").series)
    for pair, rows in fx.groupby("pair"):
        t = rows["t"].sort_values()
        steps = t.diff().dropna()
        weekday = (t.dt.day_of_week < 5).to_numpy()[1:] & (t.dt.day_of_week < 5).to_numpy()[:-1]
        assert steps[weekday].median() == pytest.approx(pd.Timedelta("60s"), abs=pd.Timedelta("5s"))
        # Weekend updates are sparse but under an hour apart (fx_change_age has max_age 1h).
        assert steps[~weekday].max() < pd.Timedelta("1h")
        assert steps[~weekday].median() > pd.Timedelta("20min")
        if pair != stale:
            assert steps[weekday].max() < pd.Timedelta("3min")
        changed = rows.sort_values("t")["rate"].diff().dropna() != 0
        assert changed.mean() > 0.93


# --------------------------------------------------------------------------------------------
# Dirt: malformed, duplicate and late events
# --------------------------------------------------------------------------------------------


def test_malformed_events_are_counted(shop: ShopEvents, reasons: list[str | None]) -> None:
    bad = [r for r in reasons if r is not None]
    assert len(bad) == shop.n_malformed == N_MALFORMED
    assert {"not JSON", "no event_id", "unknown type", "fields", "ts"} <= set(bad)
    assert {"bad amount", "bad status", "bad price", "bad rate"} <= set(bad)
    events = [e for e in shop.events if isinstance(e, dict)]
    assert any(e.get("amount") == "12,5" for e in events)
    assert any(e.get("status") == "maybe" for e in events)
    assert any(e.get("type") == "order_cancelled_v0" for e in events)
    assert sum(isinstance(e, str) for e in shop.events) == 2


def test_duplicates_are_exact_and_soon(shop: ShopEvents, good: pd.DataFrame) -> None:
    assert shop.n_duplicates == N_DUPLICATES
    again = good["event_id"].duplicated(keep="first")
    assert again.sum() == shop.n_duplicates
    by_id: dict[str, dict] = {}
    position: dict[str, int] = {}
    for k, event in enumerate(shop.events):
        if isinstance(event, dict) and "event_id" in event:
            if event["event_id"] in by_id:
                assert event == by_id[event["event_id"]]
                assert event is not by_id[event["event_id"]]
                assert k - position[event["event_id"]] < 5_000  # re-sent shortly after
            by_id[event["event_id"]] = event
            position.setdefault(event["event_id"], k)


def test_late_events_are_counted_and_the_rest_nearly_ordered(
    shop: ShopEvents, good: pd.DataFrame
) -> None:
    behind = good["t"].cummax() - good["t"]
    assert shop.n_late == N_LATE
    assert (behind >= 30 * MIN).sum() == shop.n_late
    assert (behind > 2 * MIN).sum() == shop.n_late  # nothing between 2 and 30 minutes
    first = ~good["event_id"].duplicated(keep="first")
    assert ((behind <= pd.Timedelta("20s")) | ~first).sum() == len(good) - shop.n_late


# --------------------------------------------------------------------------------------------
# Incidents and the gap, as visible in the raw events
# --------------------------------------------------------------------------------------------


def test_labels(shop: ShopEvents) -> None:
    names = sorted(i.series.split("{")[0] for i in shop.labels.incidents)
    assert names == [
        "fx_change_age", "fx_update_age", "payment_success_rate", "revenue",
        "ticket_sales", "tv_orders",
    ]  # fmt: skip
    for inc in shop.labels.incidents:
        assert inc.start >= shop.start + pd.Timedelta(days=10)
        assert inc.end <= shop.end
        assert inc.start.minute % 5 == 0 and inc.end.minute % 5 == 0
        assert inc.start.second == 0 and inc.end.second == 0
        assert re.fullmatch(r"[a-z_]+\{[a-z]+=[A-Za-z-]+\}", inc.series)
    kinds = {i.series.split("{")[0]: i.kind for i in shop.labels.incidents}
    assert kinds["ticket_sales"] == "spike"
    assert kinds["tv_orders"] == kinds["revenue"] == kinds["payment_success_rate"] == "dip"
    assert kinds["fx_update_age"] == kinds["fx_change_age"] == "stale"


def test_ticket_explosion_at_one_percent(shop: ShopEvents, good: pd.DataFrame) -> None:
    inc = incident(shop, "ticket_sales")
    tickets = good[(good["type"] == "ticket_sold") & (good["show"] == segment(inc.series))]
    tickets = tickets.drop_duplicates("event_id")
    during = between(tickets, inc.start, inc.end)
    day_before = between(tickets, inc.start - pd.Timedelta("1D"), inc.end - pd.Timedelta("1D"))
    assert len(during) >= 12 * max(len(day_before), 5)
    assert (during["price"] < 1.25).mean() > 0.95
    assert (tickets.drop(during.index)["price"] >= 39).all()
    assert 17 <= inc.start.tz_convert("Europe/London").hour <= 21


def test_tvs_stop_selling(shop: ShopEvents, good: pd.DataFrame) -> None:
    tv_inc, revenue = incident(shop, "tv_orders"), incident(shop, "revenue")
    market = segment(tv_inc.series)
    assert (revenue.start, revenue.end, segment(revenue.series)) == (
        tv_inc.start, tv_inc.end, market,
    )  # fmt: skip
    assert pd.Timedelta("3h") <= tv_inc.end - tv_inc.start <= pd.Timedelta("6h10min")
    orders = good[(good["type"] == "order_placed") & (good["market"] == market)]
    inner = between(orders, tv_inc.start + 5 * MIN, tv_inc.end - 5 * MIN)
    assert len(inner) > 100
    assert not (inner["category"] == "tv").any()
    week_before = between(
        orders, tv_inc.start - pd.Timedelta("7D"), tv_inc.end - pd.Timedelta("7D")
    )
    assert (week_before["category"] == "tv").any()
    # Orders barely move, revenue loses a large share (stated in the label's description).
    drop = int(re.search(r"-(\d+)%", revenue.description).group(1))  # type: ignore[union-attr]
    assert drop >= 30
    assert 12 <= tv_inc.start.tz_convert(_TZ[market]).hour <= 20


def test_stale_pair_has_no_updates(shop: ShopEvents, good: pd.DataFrame) -> None:
    age, change = incident(shop, "fx_update_age"), incident(shop, "fx_change_age")
    assert segment(age.series) == segment(change.series)
    assert age.end == change.end
    assert change.start - age.start == pd.Timedelta("45min")
    assert age.start.day_of_week < 5 and age.end.day_of_week < 5
    fx = good[(good["type"] == "currency_rate_updated") & (good["pair"] == segment(age.series))]
    # The stop is on a whole minute in [age.start - 15 min, age.start - 11 min], updates
    # resume in (age.end - 5 min, age.end].
    assert between(fx, age.start - 10 * MIN, age.end - 5 * MIN).empty
    t = fx["t"].sort_values()
    longest = t.diff().max()
    assert pd.Timedelta("4h") <= longest <= pd.Timedelta("8h2min")
    assert t[t.diff() == longest].iloc[0] <= age.end + 3 * MIN  # updates resume
    heartbeats = good[(good["type"] == "heartbeat") & (good["source"] == "fx-feed")]
    assert len(between(heartbeats, age.start, age.end)) > 0  # the feed itself is alive


def test_payment_provider_success_sinks(shop: ShopEvents, good: pd.DataFrame) -> None:
    inc = incident(shop, "payment_success_rate")
    pay = good[(good["type"] == "payment_attempted") & (good["provider"] == segment(inc.series))]
    pay = pay.drop_duplicates("event_id")
    during = between(pay, inc.start + 5 * MIN, inc.end - 5 * MIN)
    around = between(pay, inc.start - pd.Timedelta("6h"), inc.start)
    drop = (around["status"] == "success").mean() - (during["status"] == "success").mean()
    assert 0.08 <= drop <= 0.25
    assert len(during) / ((inc.end - inc.start) / (5 * MIN)) >= 15  # a busy time


def test_ingestion_gap_has_no_shop_api_events(shop: ShopEvents, good: pd.DataFrame) -> None:
    gaps = shop.labels.gaps
    assert sorted(g.series for g in gaps) == sorted(
        f"{m}{{market={c}}}" for m in ("orders", "revenue", "tv_orders") for c in CURRENCY
    )
    start, end = gaps[0].start, gaps[0].end
    assert all((g.start, g.end) == (start, end) for g in gaps)
    assert start >= shop.warmup_end
    api = good[good["source"] == "shop-api"]
    beats = api[api["type"] == "heartbeat"]["t"].sort_values()
    hole = beats.diff().idxmax()
    hole_end, hole_start = beats[hole], beats[beats < beats[hole]].iloc[-1]
    assert pd.Timedelta("40min") <= hole_end - hole_start <= pd.Timedelta("91min")
    second = pd.Timedelta("1s")
    assert start - 31 * second <= hole_start and hole_end <= end + 31 * second
    assert between(api, hole_start + 31 * second, hole_end - 31 * second).empty
    others = good[(good["type"] == "heartbeat") & (good["source"] != "shop-api")]
    assert len(between(others, hole_start, hole_end)) > 3 * 60  # the other apps carry on
    tv = incident(shop, "tv_orders")
    apart = pd.Timedelta("11h50min")  # 12 h between the raw windows, labels rounded out
    assert start >= tv.end + apart or end <= tv.start - apart


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["events.jsonl", "events.jsonl.gz"])
def test_write_events_round_trip(shop: ShopEvents, tmp_path, name: str) -> None:
    raw = [e for e in shop.events if isinstance(e, str)]
    sample = shop.events[:3000] + raw
    path = tmp_path / name
    assert write_events(sample, path) == len(sample)
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        lines = fh.read().splitlines()
    assert len(lines) == len(sample)
    for line, event in zip(lines, sample, strict=True):
        if isinstance(event, str):
            assert line.decode() == event
        else:
            assert orjson.loads(line) == event
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"


def test_write_events_accepts_an_iterator_and_empty(tmp_path) -> None:
    assert write_events(iter([]), tmp_path / "empty.jsonl") == 0
    assert (tmp_path / "empty.jsonl").read_bytes() == b""
    events = ({"event_id": str(k), "type": "heartbeat"} for k in range(120_001))
    assert write_events(events, str(tmp_path / "many.jsonl")) == 120_001
    with open(tmp_path / "many.jsonl", "rb") as fh:
        assert sum(1 for _ in fh) == 120_001
