"""Calendars: public holidays per market, declared events, and feedback that teaches.

What people know about a series' time (Christmas in DE, a planned sale, a maintenance, "this
alert was expected", "this is the new normal") as model inputs: see
:mod:`detector.calendars.calendar` (resolving onto a panel), :mod:`detector.calendars.effects`
(what an effect does to training, expectation and decisions),
:mod:`detector.calendars.holidays` and :mod:`detector.calendars.feedback`.
"""

from __future__ import annotations

from detector.calendars.calendar import Calendar
from detector.calendars.effects import Effects, Expectation
from detector.calendars.events import EXPECTS, Event, LevelChange
from detector.calendars.feedback import feedback_calendar, load_feedback
from detector.calendars.holidays import HolidayRule

__all__ = [
    "EXPECTS",
    "Calendar",
    "Effects",
    "Event",
    "Expectation",
    "HolidayRule",
    "LevelChange",
    "feedback_calendar",
    "load_feedback",
]
