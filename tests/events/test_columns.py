"""The column checks accept exactly what the per-event checks accept (on random events)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.events.columns import ColumnCheck, EventColumns, parse_times
from detector.events.schema import EventValidator, parse_ts
from detector.pipeline.config import parse_pipeline

CANONICAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z")


def _parse_or_none(value: object) -> float | None:
    try:
        return parse_ts(value)
    except (ValueError, TypeError, OverflowError):
        return None


def _iso(moment: datetime, millis: bool) -> str:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{moment.microsecond // 1000:03d}Z" if millis else "Z")


# Times near the edges that matter (month ends, leap days, far past and future), then spoilt
# in the ways real feeds spoil them.
moments = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)
).map(lambda d: d.replace(tzinfo=UTC))


@st.composite
def time_strings(draw: st.DrawFn) -> str:
    text = _iso(draw(moments), draw(st.booleans()))
    spoil = draw(st.sampled_from(["none", "none", "char", "cut", "offset", "nul", "space"]))
    if spoil == "char":
        i = draw(st.integers(0, len(text) - 1))
        text = text[:i] + draw(st.sampled_from(list("09:-.TZ /aé"))) + text[i + 1 :]
    elif spoil == "cut":
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif spoil == "offset":
        text = text[:-1] + "+02:00"
    elif spoil == "nul":
        text += "\x00"
    elif spoil == "space":
        text = text.replace("T", " ")
    return text


@settings(max_examples=300, deadline=None)
@given(values=st.lists(time_strings(), min_size=1, max_size=40))
def test_parse_times_equals_parse_ts_to_the_bit_or_leaves_the_value_to_it(
    values: list[str],
) -> None:
    got = parse_times(values)
    for value, t in zip(values, got, strict=True):
        expected = _parse_or_none(value)
        if not math.isnan(t):
            assert expected == t, value  # never accepts what parse_ts rejects, never differs
        elif CANONICAL.fullmatch(value) and expected is not None:
            raise AssertionError(f"a plain UTC time was left to the slow path: {value!r}")


def test_parse_times_reads_month_ends_and_leap_days() -> None:
    start = datetime(2023, 12, 25, tzinfo=UTC)
    values = [_iso(start + timedelta(hours=7 * k, milliseconds=k), True) for k in range(400)]
    values += ["2024-02-29T12:00:00Z", "2023-02-29T12:00:00Z", "2100-02-29T00:00:00Z"]
    got = parse_times(values)
    assert got[:-2].tolist() == [parse_ts(v) for v in values[:-2]]
    assert np.isnan(got[-2:]).all()


PIPELINE = parse_pipeline("""
name: t
events:
  order:
    fields:
      market: {type: string, required: true, allowed: [DE, FR]}
      amount: {type: number, min: 0, max: 1000}
      items: {type: integer}
      gift: {type: boolean}
metrics:
  - {name: n, event: order, aggregation: count, group_by: [market]}
""")
# Without a schema, the fields metrics use must still hold single values.
BARE = parse_pipeline("""
name: t
metrics:
  - {name: v, event: visit, aggregation: sum, field: amount, group_by: [market, channel]}
""")

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 2000),
    st.integers(2**60, 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["DE", "FR", "UK", "", "web", "12"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    """Usually a good value, so that whole batches of valid events are common too."""
    return st.one_of(good, good, good, good, good, bad)


@st.composite
def events(draw: st.DrawFn) -> dict:
    moment = _iso(draw(moments), draw(st.booleans()))
    ev = {
        "event_id": draw(
            mostly(st.sampled_from(["a1", "b2", 7]), st.sampled_from([0, "", None, ["x"], True]))
        ),
        "ts": draw(mostly(st.just(moment), st.one_of(time_strings(), st.integers(), st.none()))),
        "source": draw(mostly(st.just("shop"), st.sampled_from(["", None, 5]))),
        "market": draw(mostly(st.sampled_from(["DE", "FR"]), values)),
        "amount": draw(mostly(st.floats(0, 1000) | st.integers(0, 1000), values)),
        "items": draw(mostly(st.integers(0, 9) | st.floats(0, 9), values)),
        "gift": draw(mostly(st.booleans(), values)),
        "channel": draw(mostly(st.sampled_from(["web", "app", 3, 2.5, True]), values)),
    }
    for key in draw(st.lists(st.sampled_from(sorted(ev)), max_size=2)):
        ev.pop(key, None)
    return ev


@settings(max_examples=200, deadline=None)
@given(batch=st.lists(events(), min_size=1, max_size=30), kind=st.sampled_from(["order", "visit"]))
def test_column_check_agrees_with_the_per_event_check(batch: list[dict], kind: str) -> None:
    validator = EventValidator(PIPELINE if kind == "order" else BARE)
    check: ColumnCheck = validator.columns[kind]
    batch = [{**e, "type": kind} for e in batch]
    times, cols = check(batch)
    assert len(times) == len(batch) and list(cols["market"]) == [e.get("market") for e in batch]
    for ev, t in zip(batch, times, strict=True):
        valid = validator.check(ev) is None and _parse_or_none(ev.get("ts")) is not None
        if not math.isnan(t):
            assert valid and t == parse_ts(ev["ts"]), ev
        elif valid and ev["event_id"] and CANONICAL.fullmatch(ev["ts"]):
            raise AssertionError(f"a valid event was left to the slow path: {ev!r}")


def test_event_columns_fetch_each_field_once_and_derive_subsets() -> None:
    class Counting(dict):
        reads = 0

        def get(self, key, default=None):  # type: ignore[no-untyped-def]
            Counting.reads += 1
            return super().get(key, default)

    evs = [Counting(m="DE", x=1), Counting(m="FR"), Counting(m="DE", x=3)]
    cols = EventColumns(evs)
    sub = cols.take([True, False, True]).slice(1, 2)
    assert list(sub["x"]) == [3] and list(cols.spans([(0, 1), (2, 3)])["x"]) == [1, 3]
    assert Counting.reads == 3  # one pass over the events for field x, shared by all subsets
