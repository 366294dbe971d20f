"""Silences (active windows, matcher combinations) and Alertmanager time intervals."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from detector.alerting.model import ts
from detector.alerting.silences import Silence, Silencer, TimeInterval, time_muted
from detector.errors import ConfigError

START, END = ts("2026-01-05T10:00Z"), ts("2026-01-05T12:00Z")

ACTIVE = [
    ("before", "2026-01-05T09:59:59Z", False),
    ("at-start", "2026-01-05T10:00Z", True),
    ("inside", "2026-01-05T11:00Z", True),
    ("at-end-exclusive", "2026-01-05T12:00Z", False),
    ("after", "2026-01-06T00:00Z", False),
    ("other-zone-inside", "2026-01-05T12:30+01:00", True),
]


@pytest.mark.parametrize(("at", "expected"), [c[1:] for c in ACTIVE], ids=[c[0] for c in ACTIVE])
def test_silence_active_window(at: str, expected: bool) -> None:
    assert Silence("s", ["market=DE"], START, END).active(ts(at)) is expected


LABELS = {"alertname": "orders", "market": "DE", "kind": "dip"}
SILENCE_MATCH = [
    ("one-eq", ["market=DE"], True),
    ("all-must-match", ["market=DE", "kind=spike"], False),
    ("regex-and-neq", ['kind=~"dip|spike"', "alertname!=payments"], True),
    ("missing-label-empty", ['team=""', "market=DE"], True),
    ("missing-label-value", ["team=pay"], False),
    ("nre", ["market!~D.*"], False),
    ("no-matchers-match-nothing", [], False),
]


@pytest.mark.parametrize(
    ("matchers", "expected"), [c[1:] for c in SILENCE_MATCH], ids=[c[0] for c in SILENCE_MATCH]
)
def test_silence_matchers(matchers: list[str], expected: bool) -> None:
    assert Silence("s", matchers, START, END).matches(LABELS) is expected


def test_silencer_lists_active_matching_ids() -> None:
    silencer = Silencer(
        [
            Silence("b", ["market=DE"], START, END, created_by="ana", comment="promo"),
            Silence("a", ['kind=~"dip|spike"'], START, END),
            Silence("expired", ["market=DE"], "2026-01-01", "2026-01-02"),
            Silence("other", ["market=FR"], START, END),
        ]
    )
    assert silencer.silenced_by(LABELS, ts("2026-01-05T11:00Z")) == ["a", "b"]
    assert silencer.silenced_by(LABELS, ts("2026-01-05T13:00Z")) == []


def test_silence_rejects_bad_matchers() -> None:
    with pytest.raises(ConfigError, match="bad matcher 'market'"):
        Silence("s", ["market"], START, END)


def interval(**spec: Any) -> TimeInterval:
    return TimeInterval.model_validate({"name": "x", "time_intervals": [spec]})


HOURS = {"times": [{"start_time": "09:00", "end_time": "17:00"}]}
NIGHT = {"times": [{"start_time": "22:00", "end_time": "06:00"}]}
BERLIN = {**HOURS, "location": "Europe/Berlin"}

# 2026-01-05 is a Monday; 2026-03-29 is the spring-forward day in Europe (02:00 -> 03:00 CEST)
# and 2026-10-25 the fall-back day (03:00 CEST -> 02:00 CET).
CONTAINS = [
    ("hours-inside", HOURS, "2026-01-05T09:00Z", True),
    ("hours-end-exclusive", HOURS, "2026-01-05T17:00Z", False),
    ("hours-before", HOURS, "2026-01-05T08:59Z", False),
    ("whole-day-24", {"times": [{"start_time": "00:00", "end_time": "24:00"}]},
     "2026-01-05T23:59Z", True),
    ("midnight-wrap-late", NIGHT, "2026-01-05T23:30Z", True),
    ("midnight-wrap-early", NIGHT, "2026-01-06T05:59Z", True),
    ("midnight-wrap-end-exclusive", NIGHT, "2026-01-06T06:00Z", False),
    ("midnight-wrap-day", NIGHT, "2026-01-06T12:00Z", False),
    ("wrap-day-fields-use-calendar-day", {**NIGHT, "weekdays": ["friday"]},
     "2026-01-10T03:00Z", False),  # Saturday 03:00: not Friday
    ("wrap-friday-early", {**NIGHT, "weekdays": ["friday"]}, "2026-01-09T03:00Z", True),
    ("weekday-range", {"weekdays": ["monday:friday"]}, "2026-01-09T12:00Z", True),
    ("weekday-range-out", {"weekdays": ["monday:friday"]}, "2026-01-10T12:00Z", False),
    ("weekday-sunday", {"weekdays": ["saturday", "sunday"]}, "2026-01-11T12:00Z", True),
    ("weekday-case", {"weekdays": ["Monday"]}, "2026-01-05T12:00Z", True),
    ("tz-shifts-weekday", {"weekdays": ["tuesday"], "location": "Asia/Tokyo"},
     "2026-01-05T20:00Z", True),  # Tuesday 05:00 in Tokyo
    ("tz-berlin-winter", BERLIN, "2026-01-05T08:00Z", True),  # 09:00 CET
    ("tz-berlin-winter-out", BERLIN, "2026-01-05T16:00Z", False),  # 17:00 CET
    ("tz-berlin-summer", BERLIN, "2026-07-06T07:00Z", True),  # 09:00 CEST
    ("tz-berlin-summer-out", BERLIN, "2026-07-06T15:00Z", False),  # 17:00 CEST
    ("dst-spring-day-start", BERLIN, "2026-03-29T07:00Z", True),  # 09:00 CEST
    ("dst-spring-day-before", BERLIN, "2026-03-29T06:59Z", False),  # 08:59 CEST
    ("dst-spring-gap-hour",
     {"times": [{"start_time": "02:00", "end_time": "03:00"}], "location": "Europe/Berlin"},
     "2026-03-29T01:00Z", False),  # 01:00Z is 03:00 CEST: 02:xx never happens that day
    ("dst-fall-repeated-hour-first",
     {"times": [{"start_time": "02:00", "end_time": "03:00"}], "location": "Europe/Berlin"},
     "2026-10-25T00:30Z", True),  # 02:30 CEST
    ("dst-fall-repeated-hour-second",
     {"times": [{"start_time": "02:00", "end_time": "03:00"}], "location": "Europe/Berlin"},
     "2026-10-25T01:30Z", True),  # 02:30 CET
    ("dom-first-days", {"days_of_month": ["1:5"]}, "2026-01-05T12:00Z", True),
    ("dom-first-days-out", {"days_of_month": ["1:5"]}, "2026-01-06T12:00Z", False),
    ("dom-last-day-feb", {"days_of_month": ["-1"]}, "2026-02-28T12:00Z", True),
    ("dom-last-day-jan", {"days_of_month": ["-1"]}, "2026-01-31T12:00Z", True),
    ("dom-not-last", {"days_of_month": ["-1"]}, "2026-01-30T12:00Z", False),
    ("dom-last-three", {"days_of_month": ["-3:-1"]}, "2026-02-26T12:00Z", True),
    ("dom-last-three-out", {"days_of_month": ["-3:-1"]}, "2026-02-25T12:00Z", False),
    ("dom-to-end", {"days_of_month": ["25:-1"]}, "2026-02-28T12:00Z", True),
    ("dom-clamped", {"days_of_month": ["28:31"]}, "2026-02-28T12:00Z", True),
    ("dom-beyond-month", {"days_of_month": ["30:31"]}, "2026-02-28T12:00Z", False),
    ("dom-tz", {"days_of_month": ["1"], "location": "America/New_York"},
     "2026-02-01T03:00Z", False),  # still 31 January in New York
    ("months-names", {"months": ["january:march"]}, "2026-03-31T12:00Z", True),
    ("months-number", {"months": ["12"]}, "2026-12-01T00:00Z", True),
    ("months-out", {"months": ["january:march", "12"]}, "2026-04-01T00:00Z", False),
    ("years", {"years": ["2026:2027"]}, "2027-12-31T23:59Z", True),
    ("years-out", {"years": ["2026:2027"]}, "2028-01-01T00:00Z", False),
    ("all-fields", {**HOURS, "weekdays": ["monday"], "days_of_month": ["1:7"],
                    "months": ["january"], "years": ["2026"]}, "2026-01-05T10:00Z", True),
    ("all-fields-one-fails", {**HOURS, "weekdays": ["tuesday"], "days_of_month": ["1:7"]},
     "2026-01-05T10:00Z", False),
    ("empty-spec-always", {}, "2026-01-05T10:00Z", True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "at", "expected"), [c[1:] for c in CONTAINS], ids=[c[0] for c in CONTAINS]
)
def test_time_interval_contains(spec: dict, at: str, expected: bool) -> None:
    assert interval(**spec).contains(ts(at)) is expected


def test_named_interval_without_entries_contains_nothing() -> None:
    assert not TimeInterval(name="never").contains(ts("2026-01-05T10:00Z"))


def test_named_interval_is_any_of_its_entries() -> None:
    weekend_or_nights = TimeInterval.model_validate(
        {"name": "off", "time_intervals": [NIGHT, {"weekdays": ["saturday", "sunday"]}]}
    )
    assert weekend_or_nights.contains(ts("2026-01-10T12:00Z"))  # Saturday noon
    assert weekend_or_nights.contains(ts("2026-01-06T23:00Z"))  # Tuesday night
    assert not weekend_or_nights.contains(ts("2026-01-06T12:00Z"))


INVALID = [
    ("bad-time", {"times": [{"start_time": "9:00", "end_time": "17:00"}]}, "HH:MM"),
    ("after-24", {"times": [{"start_time": "09:00", "end_time": "24:01"}]}, "between 00:00"),
    ("minutes", {"times": [{"start_time": "09:60", "end_time": "10:00"}]}, "between 00:00"),
    ("empty-range", {"times": [{"start_time": "09:00", "end_time": "09:00"}]}, "empty range"),
    ("weekday-name", {"weekdays": ["mon"]}, "'mon' is not a name"),
    ("weekday-number", {"weekdays": ["1"]}, "'1' is not a name"),
    ("weekday-order", {"weekdays": ["saturday:sunday"]}, "start comes after the end"),
    ("dom-zero", {"days_of_month": ["0"]}, "out of range -31..31"),
    ("dom-32", {"days_of_month": ["1:32"]}, "out of range"),
    ("dom-neg-pos", {"days_of_month": ["-3:5"]}, "end must be negative"),
    ("dom-order", {"days_of_month": ["10:5"]}, "start comes after the end"),
    ("month-name", {"months": ["janury"]}, "'janury' is not a name"),
    ("month-13", {"months": ["13"]}, "out of range 1..12"),
    ("month-order", {"months": ["march:january"]}, "start comes after the end"),
    ("year-order", {"years": ["2027:2026"]}, "start comes after the end"),
    ("location", {"location": "Europe/Berlinn"}, "unknown time zone"),
    ("unknown-key", {"weekday": ["monday"]}, "Extra inputs"),
]


@pytest.mark.parametrize(("spec", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_time_interval_validation(spec: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace(".", r"\.")):
        interval(**spec)


MUTED = [
    ("in-mute", ["nights"], [], "2026-01-05T23:00Z", "in mute_time_interval 'nights'"),
    ("out-of-mute", ["nights"], [], "2026-01-05T12:00Z", None),
    ("in-active", [], ["office"], "2026-01-05T12:00Z", None),
    ("out-of-active", [], ["office"], "2026-01-05T20:00Z", "outside every active"),
    ("mute-wins", ["nights"], ["always"], "2026-01-05T23:00Z", "in mute_time_interval"),
    ("none", [], [], "2026-01-05T23:00Z", None),
]


@pytest.mark.parametrize(
    ("mute", "active", "at", "reason"), [c[1:] for c in MUTED], ids=[c[0] for c in MUTED]
)
def test_time_muted(mute: list[str], active: list[str], at: str, reason: str | None) -> None:
    intervals = {
        "nights": TimeInterval.model_validate({"name": "nights", "time_intervals": [NIGHT]}),
        "office": TimeInterval.model_validate({"name": "office", "time_intervals": [HOURS]}),
        "always": TimeInterval.model_validate({"name": "always", "time_intervals": [{}]}),
    }
    got = time_muted(mute, active, intervals, ts(at))
    assert got is None if reason is None else got is not None and got.startswith(reason)
