"""The ``calendars:`` section: what it accepts, and every mistake named with file, line, key."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from detector.calendars import Calendar, Event, HolidayRule
from detector.pipeline.config import PipelineError, load_pipeline, parse_pipeline

ROOT = Path(__file__).resolve().parents[2]

BASE = """name: t
segments:
  market: {values: [DE, UK, US], timezones: {DE: Europe/Berlin}}
  provider: {values: [adyen, stripe]}
metrics:
  - {name: orders, event: order_placed, aggregation: count, group_by: [market]}
  - {name: payments, event: payment_attempted, aggregation: count, group_by: [provider]}
"""
GOOD = (
    BASE
    + """calendars:
  holidays:
    market:
      DE: DE-BY
      UK: GB-ENG
      US: {country: US, exclude: [Columbus Day]}
  events:
    - name: Sale
      start: 2026-11-27
      end: 2026-11-30
      where: {market: [DE, UK]}
      metrics: [orders]
      expect: higher
      factor: 2
    - name: Maintenance
      start: 2026-02-15T02:00:00Z
      end: 2026-02-15T04:00:00Z
      where: {provider: adyen}
      expect: ignore
"""
)


def issues_of(text: str) -> list[str]:
    with pytest.raises(PipelineError) as info:
        parse_pipeline(text, source="p.yaml")
    return [str(i) for i in info.value.issues]


def test_a_good_section_becomes_rules_and_events() -> None:
    p = parse_pipeline(GOOD)
    rules = p.calendars.holiday_rules()
    assert rules[0] == HolidayRule("market", "DE", "DE", "BY")
    assert rules[2].exclude == ("Columbus Day",)
    sale, maintenance = p.calendars.event_list()
    # A date alone as the end means through that day; no offset: each series' local time.
    assert (sale.start, sale.end) == (pd.Timestamp("2026-11-27"), pd.Timestamp("2026-12-01"))
    assert sale.where == {"market": ("DE", "UK")} and sale.factor == 2
    assert maintenance.start == pd.Timestamp("2026-02-15T02:00:00Z")
    cal = Calendar.from_pipeline(p)
    assert len(cal.holidays) == 3 and len(cal.events) == 2


def test_the_shop_pipeline_has_holidays_for_every_market() -> None:
    p = load_pipeline(ROOT / "pipelines" / "shop.yaml")
    markets = {r.value for r in p.calendars.holiday_rules()}
    assert markets == set(p.segments["market"].values)
    assert all(isinstance(e, Event) for e in p.calendars.event_list())


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("DE: DE-BY", "DE: DX"),
            "p.yaml:11: calendars.holidays.market.DE: unknown country 'DX' for holidays (use an "
            "ISO 3166 country code such as DE, FR, GB or US)",
        ),
        (
            ("DE: DE-BY", "DE: Germany"),
            "p.yaml:11: calendars.holidays.market.DE: unknown country 'GERMANY' for holidays; "
            "did you mean 'DE'?",
        ),
        (
            ("UK: GB-ENG", "UK: GB-EN"),
            "p.yaml:12: calendars.holidays.market.UK: unknown subdivision 'EN' of GB; valid: "
            "ENG, NIR, SCT, WLS",
        ),
        (
            ("US: {country: US,", "US: {country: XY,"),
            "p.yaml:13: calendars.holidays.market.US.country: unknown country 'XY' for holidays",
        ),
        (
            ("    market:\n      DE: DE-BY", "    markt:\n      DE: DE-BY"),
            "p.yaml:10: calendars.holidays.markt: 'markt' is not a segment; did you mean 'market'?",
        ),
        (
            ("      UK: GB-ENG", "      GB: GB-ENG"),
            "p.yaml:12: calendars.holidays.market.GB: 'GB' is not one of the values of segment "
            "'market'",
        ),
        (
            ("exclude: [Columbus Day]", "expect: sunday"),
            "p.yaml:13: calendars.holidays.market.US.expect: 'sunday' is not allowed",
        ),
        (
            ("      end: 2026-11-30", "      end: 2026-11-20"),
            "p.yaml:15: calendars.events[0]: end (2026-11-21 00:00:00) must be after start",
        ),
        (
            ("      metrics: [orders]", "      metrics: [order]"),
            "p.yaml:19: calendars.events[0].metrics[0]: unknown metric 'order'; did you mean "
            "'orders'?",
        ),
        (
            ("where: {market: [DE, UK]}", "where: {markt: DE}"),
            "p.yaml:18: calendars.events[0].where.markt: 'markt' is not a dimension of any "
            "metric; did you mean 'market'?",
        ),
        (
            ("where: {market: [DE, UK]}", "where: {market: [DE, UX]}"),
            "p.yaml:18: calendars.events[0].where.market: 'UX' is not one of the values of "
            "segment 'market'",
        ),
        (
            ("      factor: 2", "      factor: 0.5"),
            "p.yaml:15: calendars.events[0]: expect: higher needs a factor above 1, got 0.5",
        ),
        (
            ("      expect: ignore", "      expect: ignore\n      factor: 2"),
            "p.yaml:22: calendars.events[1]: 'factor' applies to expect: higher or lower",
        ),
        (
            ("      expect: higher", "      expect: hihger"),
            "p.yaml:20: calendars.events[0].expect: 'hihger' is not allowed; did you mean "
            "'higher'?",
        ),
        (
            ("      start: 2026-11-27", "      start: next friday"),
            "p.yaml:16: calendars.events[0].start: expected a date or time",
        ),
        (
            ("      end: 2026-02-15T04:00:00Z", "      end: 2026-02-15 04:00:00"),
            "p.yaml:22: calendars.events[1]: start and end must both have a UTC offset, or neither",
        ),
        (
            ("      expect: ignore", "      expect: ignore\n      timezone: Europe/Berln"),
            "p.yaml:27: calendars.events[1].timezone: unknown time zone 'Europe/Berln'",
        ),
        (
            ("      expect: ignore", "      expect: ignore\n      repeat: yearly"),
            "p.yaml:27: calendars.events[1].repeat: unknown key 'repeat'",
        ),
    ],
)
def test_mistakes_are_named_with_line_and_key(edit: tuple[str, str], expected: str) -> None:
    old, new = edit
    assert old in GOOD
    found = issues_of(GOOD.replace(old, new, 1))
    assert any(i.startswith(expected) for i in found), found


def test_every_mistake_is_reported_at_once() -> None:
    bad = GOOD.replace("DE: DE-BY", "DE: DX").replace("metrics: [orders]", "metrics: [order]")
    assert len(issues_of(bad)) == 2
