"""What a domain event must look like, and the reason when it does not.

A domain event is a flat JSON object::

    {"event_id": "9b2f...", "type": "order_placed", "ts": "2026-01-05T10:03:27.123Z",
     "source": "shop-api", "market": "DE", "category": "tv", "amount": 129.9, "currency": "EUR"}

``event_id`` (unique string), ``type``, ``ts`` (ISO 8601 with a time zone, or naive = UTC) and
``source`` (the emitting app) are required of every event; the pipeline's ``events:`` section
may add a schema per type (required fields, types, allowed values, ranges). A check returns the
reason as a short sentence naming the field, because that sentence is what lands in the
dead-letter file or topic next to the event, for a person to read.

Checks are compiled once per type into a list of small closures for the per-event path, and
into a :class:`~detector.events.columns.ColumnCheck` for the batch path that most events take.

>>> from detector.pipeline.config import parse_pipeline
>>> p = parse_pipeline('''
... name: x
... events:
...   order_placed:
...     fields: {amount: {type: number, required: true, min: 0}}
... metrics: [{name: n, event: order_placed, aggregation: count}]
... ''')
>>> v = EventValidator(p)
>>> ev = {"event_id": "1", "type": "order_placed", "ts": "2026-01-05T10:00:00Z", "source": "a"}
>>> v.check({**ev, "amount": 5.0}) is None
True
>>> v.check({**ev, "amount": "12,5"})
"field 'amount': expected a number, got '12,5'"
>>> v.check({**ev, "type": "order_cancelled"})
"unknown event type 'order_cancelled' (known: order_placed)"
>>> parse_ts("2026-01-05T10:00:00.5Z")
1767607200.5
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from detector.events.columns import ColumnCheck
from detector.pipeline.config import FieldSpec, Pipeline

__all__ = ["REQUIRED", "EventValidator", "Undecodable", "parse_ts"]

#: Keys every event carries.
REQUIRED: tuple[str, ...] = ("event_id", "type", "ts", "source")


class Undecodable(NamedTuple):
    """A record that could not be decoded at all (kept, with the reason, for the dead letters)."""

    raw: str
    reason: str


Check = Callable[[dict[str, Any]], str | None]

_fromiso = datetime.fromisoformat
_minute_cache: dict[str, float] = {}


def parse_ts(value: Any) -> float:
    """Seconds since the epoch of an ISO 8601 time (naive = UTC); ValueError if unparsable.

    Most timestamps of a stream share their minute, so the minute's epoch is cached and only
    the seconds are parsed: about twice as fast as ``fromisoformat`` on every event.
    """
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 string, got {value!r}")
    n = len(value)
    if (
        (n == 20 or (n == 24 and value[19] == "." and value[20:23].isdigit()))
        and value[-1] == "Z"
        and value[16] == ":"
        and value[10] == "T"
        and value[17] < "6"
        and value[17:19].isdigit()
    ):
        head = value[:16]
        base = _minute_cache.get(head)
        if base is None:
            if len(_minute_cache) > 100_000:
                _minute_cache.clear()
            base = _minute_cache[head] = _fromiso(head + ":00+00:00").timestamp()
        return base + float(value[17:-1])
    dt = _fromiso(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _scalar_check(name: str) -> Check:
    def check(ev: dict[str, Any]) -> str | None:
        v = ev.get(name)
        if v is None or isinstance(v, str | int | float):
            return None
        return f"field {name!r}: expected a single value (string, number or boolean), got {v!r}"

    return check


def _field_check(name: str, spec: FieldSpec) -> Check:
    kind, required, allowed = spec.type, spec.required, spec.allowed
    lo, hi = spec.min, spec.max
    allowed_set = frozenset(allowed) if allowed is not None else None

    def check(ev: dict[str, Any]) -> str | None:
        v = ev.get(name)
        if v is None:
            return f"missing required field {name!r}" if required else None
        if kind == "number" or kind == "integer":
            if isinstance(v, bool) or not isinstance(v, int | float):
                return f"field {name!r}: expected a number, got {v!r}"
            if kind == "integer" and not float(v).is_integer():
                return f"field {name!r}: expected an integer, got {v!r}"
            if v != v:
                return f"field {name!r}: NaN is not a number"
            if lo is not None and v < lo:
                return f"field {name!r}: {v!r} is below the minimum {lo:g}"
            if hi is not None and v > hi:
                return f"field {name!r}: {v!r} is above the maximum {hi:g}"
        elif kind == "string":
            if not isinstance(v, str):
                return f"field {name!r}: expected a string, got {v!r}"
        elif not isinstance(v, bool):
            return f"field {name!r}: expected true or false, got {v!r}"
        if allowed_set is not None and v not in allowed_set:
            return f"field {name!r}: {v!r} is not one of {sorted(map(str, allowed_set))}"
        return None

    return check


class EventValidator:
    """Checks events against the standard keys and the pipeline's per-type schemas.

    Types the pipeline neither declares nor aggregates are rejected as unknown (a typo in an
    app's event name must not vanish). Without an ``events:`` section any type that a metric
    or heartbeat uses is accepted.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.known: set[str] = set(pipeline.events)
        for m in [*pipeline.metrics, *pipeline.freshness]:
            self.known.update(m.event_types)
        self.known.update(e.heartbeat for e in pipeline.emitters.values() if e.heartbeat)
        self.checks: dict[str, list[Check]] = {
            t: [_field_check(n, s) for n, s in spec.fields.items()]
            for t, spec in pipeline.events.items()
        }
        # Fields that metrics group by, filter on or aggregate but no schema declares: they
        # must at least be single values (a list as a market cannot name a series).
        self.scalars: dict[str, list[str]] = {}
        for m in [*pipeline.metrics, *pipeline.freshness]:
            used = {*m.group_by, *m.where, *(getattr(m, "numerator", None) or {})}
            if m.field:
                used.add(m.field)
            for t in m.event_types:
                declared = set(pipeline.events[t].fields) if t in pipeline.events else set()
                extra = self.scalars.setdefault(t, [])
                extra += sorted(used - declared - set(extra) - set(REQUIRED))
        for t, names in self.scalars.items():
            self.checks.setdefault(t, []).extend(_scalar_check(n) for n in names)
        self._known_text = ", ".join(sorted(self.known))
        #: Per type, the same checks a column at a time (see :mod:`detector.events.columns`):
        #: the hot path runs these, and only the events they flag pay for ``check``.
        self.columns: dict[str, ColumnCheck] = {
            t: ColumnCheck(pipeline.events.get(t, None), self.scalars.get(t, ()))
            for t in self.known
        }

    def check(self, ev: Any) -> str | None:
        """None if ``ev`` is a valid event, else the reason (``ts`` is checked by the caller)."""
        if not isinstance(ev, dict):
            if isinstance(ev, Undecodable):
                return ev.reason
            return f"expected a JSON object, got {type(ev).__name__}"
        t = ev.get("type")
        if t not in self.known:
            if t is None:
                return "missing required field 'type'"
            return f"unknown event type {t!r} (known: {self._known_text})"
        for key in REQUIRED:
            v = ev.get(key)
            if v is None or v == "":
                return f"missing required field {key!r}"
        eid = ev["event_id"]
        if not isinstance(eid, str | int) or isinstance(eid, bool):
            return f"field 'event_id': expected a string, got {eid!r}"
        if not isinstance(ev["source"], str):
            return f"field 'source': expected a string, got {ev['source']!r}"
        for check in self.checks.get(t, ()):
            reason = check(ev)
            if reason is not None:
                return reason
        return None
