"""Public holidays per market, from the ``holidays`` package (countries and subdivisions).

A :class:`HolidayRule` ties a segment value (``market=DE``) to a country, optionally a
subdivision (``GB-ENG``, ``DE-BY``): on its holidays the series of that market are expected to
look like a holiday (by default: like its Sundays), and those days are not learned as normal.

>>> rule = HolidayRule("market", "DE", "DE")
>>> days = rule.days(2025, 2025)
>>> days[pd.Timestamp("2025-12-25").date()]
'Christmas Day (DE holiday)'
>>> check_country("GERMANY")
"unknown country 'GERMANY' for holidays; did you mean 'DE'?"
>>> check_country("DE", "ZZ")  # doctest: +ELLIPSIS
"unknown subdivision 'ZZ' of DE; valid: BB, BE, BW, BY, ..."
"""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass, field
from functools import lru_cache

import pandas as pd

__all__ = ["HolidayRule", "check_country", "parse_country"]


def parse_country(value: str) -> tuple[str, str | None]:
    """``"DE"`` -> ``("DE", None)``; ``"GB-ENG"`` -> ``("GB", "ENG")`` (ISO 3166-2 style).

    >>> parse_country("GB-ENG"), parse_country(" de ")
    (('GB', 'ENG'), ('DE', None))
    """
    country, _, subdiv = value.strip().partition("-")
    return country.upper(), (subdiv.upper() or None)


def _supported() -> dict[str, list[str]]:
    import holidays

    return holidays.list_supported_countries()


def _country_names() -> dict[str, str]:
    """Country names and other codes (lower case) -> the alpha-2 code, for suggestions."""
    try:
        from holidays.registry import COUNTRIES
    except ImportError:  # a private module: suggestions are a courtesy
        return {}
    out: dict[str, str] = {}
    for key, (cls, alpha2, *aliases) in COUNTRIES.items():
        for name in (key.replace("_", " "), cls, *aliases):
            if not str(name).startswith("Holidays"):
                out[str(name).lower()] = alpha2
    return out


def check_country(country: str, subdivision: str | None = None) -> str | None:
    """The problem with a country (and subdivision) code, or None if ``holidays`` knows it.

    A name (``Germany``, ``germny``) or another code of a country gets its alpha-2 code as a
    suggestion; two-letter guesses from spelling alone would mislead (``DX`` is not ``DE``).
    """
    supported = _supported()
    if country not in supported:
        names = _country_names()
        key = country.lower()
        guess = names.get(key)
        if guess is None:
            close = difflib.get_close_matches(key, [k for k in names if len(k) > 3], 1, 0.8)
            guess = names[close[0]] if close else None
        hint = (
            f"; did you mean {guess!r}?"
            if guess
            else " (use an ISO 3166 country code such as DE, FR, GB or US)"
        )
        return f"unknown country {country!r} for holidays{hint}"
    if subdivision is not None:
        subs = [s for s in supported[country] if s.upper() == s]  # codes, not aliases
        if subdivision not in {s.upper() for s in supported[country]}:
            valid = ", ".join(subs[:12]) + (", ..." if len(subs) > 12 else "")
            return (
                f"unknown subdivision {subdivision!r} of {country}; valid: {valid}"
                if subs
                else f"{country} has no subdivisions in holidays"
            )
    return None


@lru_cache(maxsize=256)
def _year(country: str, subdivision: str | None, year: int) -> tuple[tuple[dt.date, str], ...]:
    import holidays

    try:
        days = holidays.country_holidays(country, subdiv=subdivision, years=year, language="en_US")
    except NotImplementedError:
        # A few countries have no English names: their own language, still a name.
        days = holidays.country_holidays(country, subdiv=subdivision, years=year)
    return tuple(sorted(days.items()))


@dataclass(frozen=True)
class HolidayRule:
    """Holidays of ``country`` (``subdivision``) for the series where ``dimension=value``.

    ``expect`` is what the days look like (``holiday``, ``lower`` or ``ignore``); ``exclude``
    lists holiday names that are ordinary days for this business (a shop is open on
    Columbus Day).
    """

    dimension: str
    value: str
    country: str
    subdivision: str | None = None
    expect: str = "holiday"
    exclude: tuple[str, ...] = field(default_factory=tuple)

    @property
    def place(self) -> str:
        return self.value

    def days(self, first_year: int, last_year: int) -> dict[dt.date, str]:
        """Holiday dates of the years, each with the label reasons use."""
        skip = {e.casefold() for e in self.exclude}
        out: dict[dt.date, str] = {}
        for year in range(first_year, last_year + 1):
            for day, name in _year(self.country, self.subdivision, year):
                # Two holidays on one day come as "A; B".
                kept = [n for n in str(name).split("; ") if n.casefold() not in skip]
                if kept:
                    out[day] = f"{'; '.join(kept)} ({self.place} holiday)"
        return out


def holiday_days(rule: HolidayRule, start: pd.Timestamp, end: pd.Timestamp) -> dict[dt.date, str]:
    """:meth:`HolidayRule.days` for the years a span touches."""
    return rule.days(start.year, end.year)
