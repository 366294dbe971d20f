"""Windowed aggregation: values against a pandas reference, and the stream rules."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.aggregation.windows import WindowAggregator
from detector.backtest import points_frame
from detector.pipeline.config import parse_pipeline

T0 = 1767600000  # 2026-01-05 08:00:00 UTC

PIPELINE = """
name: t
emitters:
  shop: {heartbeat: heartbeat, every: 1m}
events:
  heartbeat: {}
  order: {fields: {market: {type: string, required: true}, amount: {type: number, min: 0},
                   customer: {type: string}}}
  payment: {fields: {provider: {type: string}, status: {type: string}}}
segments:
  market: {values: [DE, FR, UK]}
defaults: {window: 5m, lateness: 2m}
metrics:
  - {name: orders, event: order, aggregation: count, group_by: [market]}
  - {name: revenue, event: order, aggregation: sum, field: amount, group_by: [market]}
  - {name: big, event: order, aggregation: count, where: {amount: {gt: 50}}, group_by: [market]}
  - {name: avg, event: order, aggregation: mean, field: amount, group_by: [market]}
  - {name: top, event: order, aggregation: max, field: amount}
  - {name: p90, event: order, aggregation: percentile, field: amount, q: 90}
  - {name: buyers, event: order, aggregation: distinct, field: customer}
  - {name: last_amount, event: order, aggregation: last, field: amount, window: 15m}
  - {name: ok_rate, event: payment, aggregation: ratio, numerator: {status: ok},
     group_by: [provider]}
freshness:
  - {name: pay_age, event: payment, group_by: [provider], max_age: 10m}
"""


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def make_events(n: int = 3000, seed: int = 0, span: float = 4 * 3600) -> list[dict]:
    rng = random.Random(seed)
    times = sorted(T0 + rng.random() * span for _ in range(n))
    out = []
    for i, t in enumerate(times):
        if rng.random() < 0.7:
            out.append(
                {
                    "event_id": f"o{i}",
                    "type": "order",
                    "ts": iso(t),
                    "source": "shop",
                    "market": rng.choice(["DE", "FR", "UK"]),
                    "amount": round(rng.random() * 100, 2),
                    "customer": f"c{rng.randrange(50)}",
                }
            )
        else:
            out.append(
                {
                    "event_id": f"p{i}",
                    "type": "payment",
                    "ts": iso(t),
                    "source": "shop",
                    "provider": rng.choice(["a", "b"]),
                    "status": "ok" if rng.random() < 0.9 else "failed",
                }
            )
    beats = [
        {"event_id": f"h{k}", "type": "heartbeat", "ts": iso(T0 + 30 * k), "source": "shop"}
        for k in range(int(span // 30) + 1)
    ]
    merged = sorted(out + beats, key=lambda e: e["ts"])
    return merged


def run(events: list, batch: int | None = None, pipeline: str = PIPELINE) -> pd.DataFrame:
    agg = WindowAggregator(parse_pipeline(pipeline))
    points = []
    size = batch or len(events) or 1
    for a in range(0, len(events), size):
        agg.add(events[a : a + size])
        points += agg.close()
    points += agg.flush()
    return points_frame(points)


def reference(events: list[dict]) -> pd.DataFrame:
    """The same metrics by pandas group-by, for the complete windows."""
    df = pd.DataFrame(events)
    df["t"] = pd.to_datetime(df["ts"], utc=True)
    df["w5"] = df["t"].dt.floor("5min")
    last_end = df["t"].max().floor("5min")
    orders = df[(df["type"] == "order") & (df["w5"] < last_end)]
    return orders


def test_values_match_a_pandas_group_by() -> None:
    events = make_events()
    got = run(events, batch=500).set_index(["series", "timestamp"])["value"]
    orders = reference(events)
    grid = pd.date_range(orders["w5"].min(), orders["w5"].max(), freq="5min")
    for market in ["DE", "FR", "UK"]:
        sub = orders[orders["market"] == market].groupby("w5")
        exp_count = sub.size().reindex(grid, fill_value=0)
        exp_sum = sub["amount"].sum().reindex(grid, fill_value=0.0)
        exp_mean = sub["amount"].mean().reindex(grid)
        big = orders[(orders["market"] == market) & (orders["amount"] > 50)].groupby("w5").size()
        for name, exp in [
            ("orders", exp_count),
            ("revenue", exp_sum),
            ("avg", exp_mean),
            ("big", big.reindex(grid, fill_value=0)),
        ]:
            series = got.xs(f"{name}{{market={market}}}", level="series").reindex(grid)
            np.testing.assert_allclose(series.to_numpy(float), exp.to_numpy(float), rtol=1e-9)
    g = orders.groupby("w5")["amount"]
    np.testing.assert_allclose(got.xs("top", level="series").reindex(grid), g.max().reindex(grid))
    np.testing.assert_allclose(
        got.xs("p90", level="series").reindex(grid), g.quantile(0.9).reindex(grid)
    )
    np.testing.assert_allclose(
        got.xs("buyers", level="series").reindex(grid),
        orders.groupby("w5")["customer"].nunique().reindex(grid, fill_value=0),
    )


def test_ratio_reports_its_denominator_and_last_takes_the_newest_event() -> None:
    events = make_events()
    frame = run(events, batch=700)
    df = pd.DataFrame([e for e in events if e["type"] == "payment"])
    df["w5"] = pd.to_datetime(df["ts"], utc=True).dt.floor("5min")
    sub = df[df["provider"] == "a"].groupby("w5")
    rate = frame[frame["series"] == "ok_rate{provider=a}"].set_index("timestamp")
    exp = (sub["status"].apply(lambda s: (s == "ok").mean())).reindex(rate.index)
    np.testing.assert_allclose(rate["value"], exp)
    np.testing.assert_allclose(rate["denominator"], sub.size().reindex(rate.index))
    orders = pd.DataFrame([e for e in events if e["type"] == "order"])
    orders["w15"] = pd.to_datetime(orders["ts"], utc=True).dt.floor("15min")
    last = frame[frame["series"] == "last_amount"].set_index("timestamp")["value"]
    exp_last = orders.sort_values("ts").groupby("w15")["amount"].last().reindex(last.index)
    np.testing.assert_allclose(last, exp_last)


def test_known_segments_get_explicit_zeros_and_other_aggregations_no_value() -> None:
    events = [e for e in make_events() if e.get("market") != "UK"]
    frame = run(events)
    uk = frame[frame["series"] == "orders{market=UK}"]
    assert len(uk) > 40 and (uk["value"] == 0).all() and not uk["missing"].any()
    assert frame.loc[frame["series"] == "revenue{market=UK}", "value"].eq(0).all()
    assert frame.loc[frame["series"] == "avg{market=UK}", "value"].isna().all()


def test_late_events_are_rejected_with_the_reason_and_duplicates_counted_once() -> None:
    events = make_events(n=500)
    late = dict(events[10], event_id="late-1")  # 4 h older than the stream's end
    dup = dict(events[-2])
    agg = WindowAggregator(parse_pipeline(PIPELINE))
    assert agg.add(events) == []
    rejected = agg.add([late, dup], origins=lambda i: f"f.jsonl:{i + 1}")
    assert [r.origin for r in rejected] == ["f.jsonl:1"]
    assert rejected[0].reason.startswith("late:") and "allowed lateness 120 s" in rejected[0].reason
    assert agg.counters["late"] == 1 and agg.counters["duplicate"] == 1
    assert agg.counters["accepted"] == len(events)


def test_invalid_events_are_rejected_with_a_reason_naming_the_field() -> None:
    good = make_events(n=20)[0:1][0]
    agg = WindowAggregator(parse_pipeline(PIPELINE))
    bad = [
        {**good, "type": "order", "market": "DE", "amount": "12,5"},
        {**good, "type": "order", "market": "DE", "amount": -1},
        {**good, "type": "refund"},
        {k: v for k, v in good.items() if k != "event_id"},
        {**good, "ts": "yesterday"},
        {**good, "type": "order", "amount": 3},
        ["not", "an", "object"],
    ]
    reasons = [r.reason for r in agg.add(bad)]
    assert reasons[0] == "field 'amount': expected a number, got '12,5'"
    assert reasons[1] == "field 'amount': -1 is below the minimum 0"
    assert reasons[2].startswith("unknown event type 'refund'")
    assert reasons[3] == "missing required field 'event_id'"
    assert reasons[4].startswith("field 'ts': not an ISO 8601 time")
    assert reasons[5] == "missing required field 'market'"
    assert reasons[6] == "expected a JSON object, got list"
    assert agg.counters["rejected"] == 7 and agg.counters["accepted"] == 0
    assert sum(agg.rejected_by_reason.values()) == 7


def test_a_silent_app_makes_its_windows_missing_not_zero() -> None:
    events = make_events(n=3000)
    lo, hi = iso(T0 + 3600), iso(T0 + 3600 + 1500)  # 25 minutes of nothing from "shop"
    kept = [e for e in events if not (lo <= e["ts"] < hi)]
    frame = run(kept, batch=300)
    de = frame[frame["series"] == "orders{market=DE}"].set_index("timestamp")
    missing = de.index[de["missing"]]
    assert len(missing) == 5  # [T0+1h, T0+1h25): five 5-minute windows
    assert missing.min() == pd.Timestamp(T0 + 3600, unit="s", tz="UTC")
    assert de.loc[missing, "value"].isna().all()
    assert (de.loc[~de["missing"], "value"] >= 0).all()
    # Without the gap, no window is missing.
    assert not run(events, batch=300)["missing"].any()


def test_freshness_age_grows_while_a_feed_is_quiet() -> None:
    events = [
        e
        for e in make_events(n=3000)
        if not (e.get("provider") == "b" and iso(T0 + 7200) <= e["ts"] < iso(T0 + 9000))
    ]
    frame = run(events)
    age = frame[frame["series"] == "pay_age{provider=b}"].set_index("timestamp")["value"]
    quiet = age[
        (age.index >= pd.Timestamp(T0 + 7200, unit="s", tz="UTC"))
        & (age.index < pd.Timestamp(T0 + 9000 - 300, unit="s", tz="UTC"))
    ]
    assert (np.diff(quiet.to_numpy()) == 300).all()  # +5 min per window
    assert age.max() > 1500 and age.iloc[:20].max() < 600


def test_freshness_of_a_field_counts_from_its_last_change() -> None:
    pipeline = """
name: fx
metrics: []
freshness: [{name: unchanged, event: rate, field: rate, max_age: 1h, group_by: [pair]}]
"""
    events = []
    for k in range(240):  # one update a minute for 4 hours; the rate freezes after 2 hours
        rate = 1.1 + 0.001 * min(k, 120)
        events.append(
            {
                "event_id": str(k),
                "type": "rate",
                "ts": iso(T0 + 60 * k),
                "source": "fx",
                "pair": "EURUSD",
                "rate": rate,
            }
        )
    frame = run(events, batch=37, pipeline=pipeline).set_index("timestamp")["value"]
    at = frame.index.get_loc(pd.Timestamp(T0 + 3 * 3600, unit="s", tz="UTC"))
    assert frame.iloc[at] == pytest.approx(3 * 3600 + 300 - 120 * 60)
    assert frame.iloc[5] <= 60


def test_an_early_closed_window_is_updated_and_emitted_again() -> None:
    events = make_events(n=400, span=1800)
    agg = WindowAggregator(parse_pipeline(PIPELINE))
    first = [e for e in events if e["ts"] < iso(T0 + 600)]
    agg.add(first)
    early = agg.close(force_until=T0 + 600)  # a wall-clock idle close
    before = {p.series: p.value for p in early if p.start == T0 + 300}
    straggler = {
        "event_id": "x",
        "type": "order",
        "ts": iso(T0 + 599),
        "source": "shop",
        "market": "DE",
        "amount": 1.0,
    }
    assert agg.add([straggler]) == []  # within the lateness: accepted
    again = {p.series: p.value for p in agg.close(force_until=T0 + 600) if p.start == T0 + 300}
    assert again["orders{market=DE}"] == before["orders{market=DE}"] + 1


def _shuffle_within(events: list[dict], lateness: float, rng: random.Random) -> list[dict]:
    """A stream order in which no event is more than ``lateness`` behind the newest one."""
    keyed = sorted(events, key=lambda e: e["ts"])
    times = [datetime.fromisoformat(e["ts"]).timestamp() for e in keyed]
    noisy = [t + rng.uniform(0, lateness * 0.9) for t in times]
    return [e for _, e in sorted(zip(noisy, keyed, strict=True), key=lambda p: p[0])]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    cuts=st.lists(st.integers(1, 1200), max_size=30),
    dup_every=st.integers(5, 200),
)
def test_batch_and_stream_give_identical_windows(
    seed: int, cuts: list[int], dup_every: int
) -> None:
    """Split a shuffled (within the lateness), partly duplicated stream into batches any
    which way: the windows equal those of one pass over the ordered events."""
    rng = random.Random(seed)
    events = make_events(n=800, seed=seed, span=2 * 3600)
    one_pass = run(events)
    stream = _shuffle_within(events, 60, rng)
    positions = list(range(0, len(stream), dup_every))
    for i in reversed(positions):  # re-sent a moment later, as a producer retry would be
        stream.insert(min(len(stream), i + rng.randint(1, 3)), dict(stream[i]))
    agg = WindowAggregator(parse_pipeline(PIPELINE))
    points = []
    bounds = [0, *sorted(set(c for c in cuts if c < len(stream))), len(stream)]
    for a, b in itertools.pairwise(bounds):
        assert agg.add(stream[a:b]) == []
        points += agg.close()
    points += agg.flush()
    streamed = points_frame(points)
    assert agg.counters["duplicate"] == len(positions)
    pd.testing.assert_frame_equal(streamed, one_pass)


def test_empty_input_gives_no_points() -> None:
    agg = WindowAggregator(parse_pipeline(PIPELINE))
    assert agg.add([]) == [] and agg.flush() == []
    assert math.isinf(agg.watermark)


def test_values_that_cannot_name_a_series_are_rejected_not_a_crash() -> None:
    """Without a schema for a group-by field, a list or object there is still bad input."""
    pipeline = "name: x\nmetrics: [{name: n, event: o, aggregation: count, group_by: [market]}]\n"
    agg = WindowAggregator(parse_pipeline(pipeline))
    ev = {"event_id": "1", "type": "o", "ts": iso(T0), "source": "a"}
    rejected = agg.add([{**ev, "market": ["DE"]}, {**ev, "event_id": "2", "market": "DE"}])
    assert [r.reason for r in rejected] == [
        "field 'market': expected a single value (string, number or boolean), got ['DE']"
    ]
    assert agg.counters["accepted"] == 1 and agg.counters["rejected"] == 1
    raw = WindowAggregator(parse_pipeline(pipeline), validate=False)
    bad_id = raw.add([{**ev, "event_id": ["x"], "market": "DE"}])
    assert bad_id[0].reason == "field 'event_id': expected a string, got ['x']"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), cuts=st.lists(st.integers(1, 1500), min_size=1, max_size=8))
def test_a_restored_snapshot_goes_on_exactly_as_the_original(seed: int, cuts: list[int]) -> None:
    """A crash between batches: a new aggregator restored from the snapshot, fed the rest of
    the stream, ends with the same windows as one that never stopped."""
    rng = random.Random(seed)
    events = make_events(n=900, seed=seed, span=2 * 3600)
    stream = _shuffle_within(events, 60, rng)
    stream[50:50] = [dict(stream[k]) for k in range(0, 40, 7)]  # a few re-sent events
    bounds = [0, *sorted(set(c for c in cuts if c < len(stream))), len(stream)]
    pipeline = parse_pipeline(PIPELINE)
    agg = WindowAggregator(pipeline)
    points = []
    for a, b in itertools.pairwise(bounds):
        agg.add(stream[a:b])
        points += agg.close()
        blob = agg.snapshot()
        agg = WindowAggregator(pipeline)  # the old one is gone, as after kill -9
        agg.restore(blob)
    points += agg.flush()
    pd.testing.assert_frame_equal(points_frame(points), run(stream))
    assert agg.counters["events"] == len(stream)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), sizes=st.lists(st.integers(1, 400), min_size=3, max_size=40))
def test_partitions_read_in_any_interleaving_give_identical_windows(
    seed: int, sizes: list[int]
) -> None:
    """A consumer reads Kafka partitions in no fixed interleaving (one may run hours ahead of
    another within a poll); with per-partition watermarks the windows do not depend on it."""
    rng = random.Random(seed)
    events = make_events(n=1200, seed=seed, span=3 * 3600)
    by_part: dict[int, list[dict]] = {0: [], 1: [], 2: []}
    for ev in events:
        key = ev.get("market") or ev.get("provider") or "beat"
        by_part[sum(map(ord, key)) % 3].append(ev)

    def feed(chunks: list[int]) -> pd.DataFrame:
        agg = WindowAggregator(parse_pipeline(PIPELINE))
        agg.expect_partitions(by_part)  # as the runner does on assignment
        agg.idle_partitions(p for p, evs in by_part.items() if not evs)  # read to the end
        queues = {p: list(evs) for p, evs in by_part.items()}
        points, k = [], 0
        while any(queues.values()):
            p = rng.choice([q for q, evs in queues.items() if evs])
            n = chunks[k % len(chunks)]
            k += 1
            batch, queues[p] = queues[p][:n], queues[p][n:]
            assert agg.add(batch, partitions=[p] * len(batch)) == []
            points += agg.close()
        points += agg.flush()
        return points_frame(points)

    pd.testing.assert_frame_equal(feed(sizes), feed([10_000]))


def test_a_partition_idle_on_another_instances_word_holds_the_watermark_to_the_wall_clock():
    """A burst flushed into every partition after a quiet spell: the merger reads one
    partition's part first while another's is still on its way (forwarded by the instance
    that reads it). Marked idle on that instance's word, the other partition lets the
    watermark run ahead only as fast as the wall clock, so its events are not late; marked
    idle by the consumer itself (it read the partition to its end), it does not hold it."""
    events = [e for e in make_events(n=1200, seed=3, span=3 * 3600) if "market" in e]
    first, burst = events[:100], events[100:]
    quiet_at = 1_000.0  # wall clock

    def late_after_burst(since: float | None) -> int:
        agg = WindowAggregator(parse_pipeline(PIPELINE))
        agg.expect_partitions([0, 1])
        agg.add(first[::2], partitions=[0] * len(first[::2]))
        agg.add(first[1::2], partitions=[1] * len(first[1::2]))
        agg.idle_partitions([0, 1], since=since)
        agg.tick(quiet_at + 5)
        ahead = burst[::2]
        agg.add(ahead, partitions=[0] * len(ahead))  # partition 0 read at once
        if since is not None:
            newest = max(datetime.fromisoformat(e["ts"]).timestamp() for e in first[1::2])
            assert agg.watermark <= newest + 5 - agg.lateness
        behind = burst[1::2]
        return len(agg.add(behind, partitions=[1] * len(behind)))  # ... partition 1 later

    assert late_after_burst(since=quiet_at) == 0
    assert late_after_burst(since=None) > 100  # read to its end by this consumer: trusted


def test_a_merger_that_restores_every_partition_idle_still_waits_for_the_doubted_one():
    """A merger dies while it reads partition 1, which it had found at its end; its state
    says every partition is idle. The merger that takes over doubts those marks (the dead
    one's partition may hold records it never committed) while the other partitions' records
    come in at full speed: the watermark must not jump to their newest event, or partition
    1's records would all be judged late once its new reader forwards them. (This failed
    `tests/stream/test_scale_out.py` whenever the new merger folded the others first.)"""
    events = [e for e in make_events(n=1200, seed=3, span=3 * 3600) if "market" in e]
    first, rest = events[:100], events[100:]
    agg = WindowAggregator(parse_pipeline(PIPELINE))
    agg.expect_partitions([0, 1])
    agg.add(first[::2], partitions=[0] * len(first[::2]))
    agg.add(first[1::2], partitions=[1] * len(first[1::2]))
    agg.idle_partitions([0, 1])  # the dead merger read both to their end
    heir = WindowAggregator(parse_pipeline(PIPELINE))
    heir.restore(agg.snapshot())
    heir.doubt_idle(1_000.0)  # what the runner does after loading a state
    heir.add(rest[::2], partitions=[0] * len(rest[::2]))  # partition 0 forwarded at once
    heir.idle_partitions([0], since=1_001.0)  # ... and found at its end by its reader
    heir.tick(1_002.0)
    newest_1 = max(datetime.fromisoformat(e["ts"]).timestamp() for e in first[1::2])
    assert heir.watermark <= newest_1 + 2 - heir.lateness
    assert heir.add(rest[1::2], partitions=[1] * len(rest[1::2])) == []  # none late


# -- exemplars: each window's last event, so an alert can be followed back to its events --------


def test_exemplars_name_each_windows_last_event_and_its_trace():
    events = make_events(n=2000, seed=4)
    asked: list[int] = []

    def traces(i: int) -> str:
        asked.append(i)
        return f"trace-{i}"

    agg = WindowAggregator(parse_pipeline(PIPELINE))
    agg.keep_exemplars = True
    points, exemplars = [], {}
    for a in range(0, len(events), 500):
        agg.add(events[a : a + 500], traces=lambda i, a=a: traces(a + i))
        points += agg.close()
        exemplars.update(agg.drain_exemplars())
    assert len(asked) < len(events) / 2  # asked only for the exemplars, not every event
    position = {e["event_id"]: i for i, e in enumerate(events)}
    frame = pd.DataFrame(events)
    frame["w"] = [int(pd.Timestamp(t).timestamp()) // 300 * 300 for t in frame["ts"]]
    checked = 0
    for (series, start), (event_id, trace) in exemplars.items():
        ev = events[position[event_id]]
        assert trace == f"trace-{position[event_id]}"
        if series.startswith(("orders{", "big{")):
            market = series.split("market=")[1].rstrip("}")
            same = frame[(frame["type"] == "order") & (frame["market"] == market)
                         & (frame["w"] == start)]  # fmt: skip
            if series.startswith("big{"):
                same = same[same["amount"] > 50]
                assert ev["amount"] > 50  # the where-filtered metric's own event
            # the last event of that window and market, in arrival order
            assert event_id == same["event_id"].iloc[-1]
            checked += 1
    assert checked > 50
    # every closed window with events has its exemplar; zero windows have none
    counted = {(p.series, p.start) for p in points if p.metric == "orders" and p.value > 0}
    assert counted <= set(exemplars)
    empty = {(p.series, p.start) for p in points if p.metric == "orders" and p.value == 0}
    assert not empty & set(exemplars)


def test_exemplars_are_off_by_default_and_change_no_point():
    events = make_events(n=1000, seed=5)
    agg = WindowAggregator(parse_pipeline(PIPELINE))
    agg.add(events)
    agg.flush()
    assert agg.drain_exemplars() == {}
    on = WindowAggregator(parse_pipeline(PIPELINE))
    on.keep_exemplars = True
    on.add(events)
    pd.testing.assert_frame_equal(points_frame(on.flush()), run(events))
    assert on.drain_exemplars()
    assert b"exemplars" not in on.snapshot()  # not part of the committed state
