"""Feedback that teaches: labelled alerts as calendar entries.

``detector alerts label ID --as expected|new-normal`` stores a verdict on an alert episode
(:meth:`detector.alerting.state.AlertState.label`). Two verdicts change what the models learn:

- ``expected`` (a promotion nobody announced, a holiday the calendar lacks): that episode of that
  series becomes a declared :class:`~detector.calendars.events.Event`: a dip is expected
  ``lower``, a spike ``higher``, anything else (a stale feed, a level shift, flapping) is not
  scored. For a dip or spike the span runs from where the deviation began (an alert opens a
  while after it shows; at most a day earlier) for as long as the series stays away from its
  usual level (at least the episode, at most a week: the model accepts a long promotion as a
  level shift after two hours, which ends the alert, not the promotion); for a stale feed or
  flapping, the episode (while it is still firing, up to a week). The span is left out of
  training and does not alert again when it is scored again.
- ``new-normal`` (a real level change): a :class:`~detector.calendars.events.LevelChange` at the
  episode's start. The default model restates the series' history at the new level as soon as
  it has seen it (its own level-shift step, forced); other models forget the series' history
  before the change at their next refit.

``true`` and ``false-positive`` teach nothing here (tuning reads them).

>>> import pandas as pd
>>> from detector.alerting.model import Alert
>>> from detector.alerting.state import AlertRow
>>> a = Alert({"alertname": "orders", "series": "orders{market=DE}", "kind": "dip"},
...           pd.Timestamp("2026-01-20 10:00Z"), ends_at=pd.Timestamp("2026-01-20 12:00Z"))
>>> row = AlertRow("shop", "3f2a9c1b7d4e", a, None, None, None, "expected")
>>> [(e.series, e.expect, str(e.start), str(e.end)) for e in feedback_calendar([row]).events]
[(('orders{market=DE}',), 'lower', '2026-01-20 10:00:00+00:00', '2026-01-20 12:00:00+00:00')]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from detector.calendars.calendar import Calendar
from detector.calendars.events import Event, LevelChange

__all__ = ["FEEDBACK_THAT_TEACHES", "feedback_calendar", "load_feedback"]

FEEDBACK_THAT_TEACHES = ("expected", "new-normal")
_DIRECTION = {"dip": "lower", "spike": "higher"}
_WEEK = pd.Timedelta("7D")


def feedback_calendar(rows: Iterable[Any]) -> Calendar:
    """Events and level changes from labelled alert rows (:class:`AlertRow`-like objects:
    ``id``, ``feedback`` and ``alert`` with ``labels['series']``, ``starts_at``, ``ends_at``).

    Rows without a ``series`` label (an alert about the pipeline itself) teach nothing.
    """
    events: list[Event] = []
    changes: list[LevelChange] = []
    for row in rows:
        verdict = getattr(row, "feedback", None)
        alert = row.alert
        series = alert.labels.get("series")
        if verdict not in FEEDBACK_THAT_TEACHES or not series:
            continue
        short = str(row.id)[:8]
        if verdict == "new-normal":
            changes.append(LevelChange(series, alert.starts_at, f"new normal since alert {short}"))
            continue
        kind = alert.labels.get("kind", "")
        level = kind in ("dip", "spike", "level_shift")
        start = alert.starts_at
        # A deviation of the level runs on while the series stays away (deviation_span); a
        # stale feed or flapping, for the episode, or a week while it is still firing.
        end = alert.ends_at if alert.ends_at is not None else None
        end = (start + pd.Timedelta("1s") if level else start + _WEEK) if end is None else end
        events.append(
            Event(
                f"alert {short}",
                start,
                max(end, start + pd.Timedelta("1s")),
                expect=_DIRECTION.get(kind, "ignore"),
                series=(series,),
                label=f"alert {short} labelled expected",
                until_normal=level,
            )
        )
    return Calendar(events=events, changes=changes)


def load_feedback(store: Any, pipeline: str) -> Calendar:
    """:func:`feedback_calendar` of every labelled alert of ``pipeline`` in ``store`` (a store
    URL or an open store)."""
    from detector.alerting.state import AlertState
    from detector.store import open_store

    if isinstance(store, str):
        opened = open_store(store)
        try:
            rows = AlertState(opened, pipeline).alerts(labelled=True)
        finally:
            opened.close()
    else:
        rows = AlertState(store, pipeline).alerts(labelled=True)
    return feedback_calendar(r for r in rows if r.feedback in FEEDBACK_THAT_TEACHES)
