"""Pipeline files (``pipelines/*.yaml``): the schema, and loading with errors that point at lines.

A pipeline says where events come from, what they must look like, which functional metrics to
aggregate from them, which feeds must stay fresh, how to score and where to keep state. It is
validated on load, and every problem is reported at once with file, line and key path, plus the
closest valid key or name when one is near: a typo in a YAML file should cost seconds, not a
deploy::

    pipelines/shop.yaml:71: metrics[1].aggregation: unknown aggregation 'summ'; did you mean 'sum'?

The schema is a tree of pydantic models (``extra="forbid"``), so the rules live next to the
fields, and the same objects can be dumped back to YAML (tuning writes parameters back through
them). Checks that span sections (a metric's event type is declared, a group-by field exists in
its schema, a model name is registered) run after the shape is right.

>>> p = parse_pipeline('''
... name: demo
... metrics:
...   - name: orders
...     event: order_placed
...     aggregation: count
...     group_by: [market]
... ''')
>>> p.metrics[0].window, p.metrics[0].lateness
(Timedelta('0 days 00:05:00'), Timedelta('0 days 00:02:00'))
>>> try:
...     parse_pipeline('name: x\\nmetrics: [{name: a, event: e, aggregation: summ}]')
... except PipelineError as exc:
...     print(exc)
<string>:2: metrics[0].aggregation: unknown aggregation 'summ'; did you mean 'sum'? (one of: ...)
"""

from __future__ import annotations

import difflib
import re
import types
import typing
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from detector.errors import ConfigError

__all__ = [
    "AGGREGATIONS",
    "CalendarEvent",
    "Calendars",
    "ConfigIssue",
    "Freshness",
    "Metric",
    "Pipeline",
    "PipelineError",
    "load_pipeline",
    "parse_pipeline",
]

#: Aggregations a metric may use. ``ratio`` divides the count of events that also match
#: ``numerator`` by the count of all events of the metric (e.g. successful / attempted payments).
AGGREGATIONS: tuple[str, ...] = (
    "count",
    "sum",
    "mean",
    "min",
    "max",
    "distinct",
    "last",
    "percentile",
    "ratio",
)
_NEEDS_FIELD = {"sum", "mean", "min", "max", "distinct", "last", "percentile"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d|w)\s*$")
_UNITS = {"ms": "ms", "s": "s", "sec": "s", "m": "min", "min": "min", "h": "h", "d": "D", "w": "W"}
_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def parse_duration(value: object) -> pd.Timedelta:
    """``"5m"``, ``"90s"``, ``"1h"``, ``"2d"`` (or a number of seconds) as a Timedelta.

    >>> parse_duration("5m"), parse_duration(30)
    (Timedelta('0 days 00:05:00'), Timedelta('0 days 00:00:30'))
    """
    if isinstance(value, pd.Timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 5m or 1h, got {value!r}")
    if isinstance(value, int | float):
        return pd.Timedelta(seconds=float(value))
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"expected a duration such as 30s, 5m, 1h or 1d, got {value!r}")
    return pd.Timedelta(float(match.group(1)), unit=_UNITS[match.group(2)])


def _positive(value: object) -> pd.Timedelta:
    delta = parse_duration(value)
    if delta <= pd.Timedelta(0):
        raise ValueError(f"must be longer than 0, got {value!r}")
    return delta


def _non_negative(value: object) -> pd.Timedelta:
    delta = parse_duration(value)
    if delta < pd.Timedelta(0):
        raise ValueError(f"must not be negative, got {value!r}")
    return delta


Duration = Annotated[pd.Timedelta, BeforeValidator(_positive)]
Lateness = Annotated[pd.Timedelta, BeforeValidator(_non_negative)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)


class KafkaSource(_Strict):
    """A Kafka topic of domain events (JSON values)."""

    topic: str
    bootstrap_servers: list[str] = Field(default_factory=lambda: ["127.0.0.1:9092"])
    group: str | None = None
    #: The consumer library: kafka-python (the default, pure Python) or confluent
    #: (librdkafka, several times the events per second; `pip install 'detector[confluent]'`).
    client: Literal["kafka-python", "confluent"] = "kafka-python"


class Source(_Strict):
    """Where events come from: a Kafka topic for ``detector run``, files for ``backtest``."""

    name: str
    kafka: KafkaSource | None = None
    files: list[str] = Field(default_factory=list)


class Emitter(_Strict):
    """An app that emits events. With a heartbeat type, silence is detected per ``every``."""

    heartbeat: str | None = None
    every: Duration = pd.Timedelta("1min")


class FieldSpec(_Strict):
    """One attribute of an event type: its type and the values it may take."""

    type: Literal["string", "number", "integer", "boolean"] = "string"
    required: bool = False
    allowed: list[str | int | float | bool] | None = None
    min: float | None = None
    max: float | None = None


class EventSpec(_Strict):
    """The schema of an event type; fields not listed are allowed and ignored."""

    fields: dict[str, FieldSpec] = Field(default_factory=dict)


class Segment(_Strict):
    """Known values of a dimension (an empty window of a known value is an explicit 0)."""

    values: list[str]
    timezone: str | None = None
    timezones: dict[str, str] = Field(default_factory=dict)


class Defaults(_Strict):
    """What a metric uses when it does not say otherwise."""

    window: Duration = pd.Timedelta("5min")
    lateness: Lateness = pd.Timedelta("2min")
    model: str = "auto"
    sensitivity: float = Field(1.0, gt=0)
    params: dict[str, Any] = Field(default_factory=dict)


Condition = Any  # a scalar (equals), a list (one of), or {eq|ne|in|not_in|gt|ge|lt|le|exists: v}


class Metric(_Strict):
    """A functional metric aggregated from events in tumbling windows, then scored."""

    name: str = Field(pattern=_NAME)
    event: str | list[str]
    where: dict[str, Condition] = Field(default_factory=dict)
    aggregation: str
    field: str | None = None
    q: float | None = Field(None, ge=0, le=100)
    numerator: dict[str, Condition] | None = None
    group_by: list[str] = Field(default_factory=list)
    window: Duration | None = None
    lateness: Lateness | None = None
    model: str | None = None
    sensitivity: float | None = Field(None, gt=0)
    params: dict[str, Any] = Field(default_factory=dict)
    description: str = ""

    @property
    def event_types(self) -> tuple[str, ...]:
        return (self.event,) if isinstance(self.event, str) else tuple(self.event)


class Freshness(_Strict):
    """A feed that must stay fresh: age of the last event (or of the last change of ``field``).

    The age is sampled at the end of every ``window`` per segment; it is overdue (kind
    ``stale``) when it exceeds ``max_age`` at a time the ``schedule`` applies.
    """

    name: str = Field(pattern=_NAME)
    event: str
    where: dict[str, Condition] = Field(default_factory=dict)
    field: str | None = None
    group_by: list[str] = Field(default_factory=list)
    max_age: Duration
    schedule: Literal["always", "weekdays", "weekends"] = "always"
    timezone: str = "UTC"
    window: Duration | None = None
    description: str = ""

    @property
    def event_types(self) -> tuple[str, ...]:
        return (self.event,)


# --------------------------------------------------------------------------------------------
# Calendars: holidays per market and declared events (detector/calendars/ uses them)
# --------------------------------------------------------------------------------------------


def _holiday_entry(value: object) -> object:
    """``DE`` or ``GB-ENG`` as ``{country, subdivision}``; a mapping as it is."""
    if isinstance(value, str):
        from detector.calendars.holidays import parse_country

        country, subdivision = parse_country(value)
        return {"country": country, "subdivision": subdivision}
    return value


class HolidaySpec(_Strict):
    """A segment value's public holidays: a country and optionally a subdivision (the
    ``holidays`` package's codes), what the days look like, and names to leave out."""

    country: str
    subdivision: str | None = None
    expect: Literal["holiday", "lower", "ignore"] = "holiday"
    exclude: list[str] = Field(default_factory=list)


HolidayEntry = Annotated[HolidaySpec, BeforeValidator(_holiday_entry)]
_DATE_ONLY = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")


class CalendarEvent(_Strict):
    """A declared event: a promotion, a maintenance, a strike; see ``detector.calendars``.

    ``start``/``end`` with a UTC offset (``2026-01-15T08:00:00Z``) are instants; without one
    they are read on each series' own wall clock (its segment's time zone), or in
    ``timezone``. A date alone as ``end`` means through that day.
    """

    name: str
    start: pd.Timestamp
    end: pd.Timestamp
    expect: Literal["holiday", "higher", "lower", "ignore"]
    factor: float | None = Field(None, gt=0)
    timezone: str | None = None
    where: dict[str, str | list[str]] = Field(default_factory=dict)
    metrics: list[str] = Field(default_factory=list)
    series: list[str] = Field(default_factory=list)
    description: str = ""

    @field_validator("start", "end", mode="before")
    @classmethod
    def _time(cls, value: object, info: ValidationInfo) -> pd.Timestamp:
        import datetime as dt

        whole_day = (isinstance(value, dt.date) and not isinstance(value, dt.datetime)) or (
            isinstance(value, str) and bool(_DATE_ONLY.match(value))
        )
        try:
            ts = pd.Timestamp(value)  # type: ignore[arg-type]
        except (ValueError, TypeError):
            ts = pd.NaT
        if ts is pd.NaT or not isinstance(ts, pd.Timestamp):
            raise ValueError(
                f"expected a date or time such as 2026-01-15, '2026-01-15 08:00' or "
                f"2026-01-15T08:00:00Z, got {value!r}"
            )
        return ts + pd.Timedelta("1D") if whole_day and info.field_name == "end" else ts

    @model_validator(mode="after")
    def _consistent(self) -> CalendarEvent:
        if (self.start.tzinfo is None) != (self.end.tzinfo is None):
            raise ValueError("start and end must both have a UTC offset, or neither")
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        if self.factor is not None:
            if self.expect in ("holiday", "ignore"):
                raise ValueError(f"'factor' applies to expect: higher or lower, not {self.expect}")
            if (self.expect == "higher") != (self.factor > 1) or self.factor == 1:
                side = "above" if self.expect == "higher" else "below"
                raise ValueError(
                    f"expect: {self.expect} needs a factor {side} 1, got {self.factor}"
                )
        return self


class Calendars(_Strict):
    """The ``calendars:`` section: holidays per segment value, and declared events."""

    #: segment dimension -> value -> holidays (``{market: {DE: DE, UK: GB-ENG}}``)
    holidays: dict[str, dict[str, HolidayEntry]] = Field(default_factory=dict)
    events: list[CalendarEvent] = Field(default_factory=list)

    def holiday_rules(self) -> list[Any]:
        from detector.calendars.holidays import HolidayRule

        return [
            HolidayRule(dim, str(value), h.country, h.subdivision, h.expect, tuple(h.exclude))
            for dim, values in self.holidays.items()
            for value, h in values.items()
        ]

    def event_list(self) -> list[Any]:
        from detector.calendars.events import Event

        return [
            Event(
                e.name,
                e.start,
                e.end,
                e.expect,
                e.factor,
                {
                    k: tuple(map(str, v)) if isinstance(v, list) else (str(v),)
                    for k, v in e.where.items()
                },
                tuple(e.metrics),
                tuple(e.series),
                e.timezone,
                f"{e.name} (declared event)",
            )
            for e in self.events
        ]


class Store(_Strict):
    """Where streaming state lives: ``sqlite:///file.db`` or ``postgresql://...``."""

    url: str = "sqlite:///detector.db"


class Pipeline(_Strict):
    """A whole pipeline file."""

    name: str
    description: str = ""
    sources: list[Source] = Field(default_factory=list)
    emitters: dict[str, Emitter] = Field(default_factory=dict)
    events: dict[str, EventSpec] = Field(default_factory=dict)
    segments: dict[str, Segment] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    metrics: list[Metric] = Field(default_factory=list)
    freshness: list[Freshness] = Field(default_factory=list)
    calendars: Calendars = Field(default_factory=Calendars)
    alerting: dict[str, Any] = Field(default_factory=dict)  # read by the alert router
    store: Store = Field(default_factory=Store)
    source_file: str = Field("<string>", exclude=True)
    _alerting: Any = PrivateAttr(default=None)  # the parsed `alerting:` section

    @property
    def alerting_config(self) -> Any:
        """The ``alerting:`` section as a :class:`detector.alerting.config.AlertingConfig`."""
        if self._alerting is None:
            from detector.alerting.config import parse_alerting

            cfg, errors, problems = parse_alerting(self.alerting)
            if cfg is None or problems:
                issues = [
                    _issue({**e, "loc": ("alerting", *e["loc"])}, {}, self.source_file)
                    for e in errors
                ]
                issues += [
                    ConfigIssue(self.source_file, None, _path(("alerting", *loc)), m)
                    for loc, m in problems
                ]
                raise PipelineError(issues)
            self._alerting = cfg
        return self._alerting

    def model_post_init(self, _context: Any) -> None:
        # Fill each metric's window, lateness, model and sensitivity from the defaults, once, so
        # every later reader sees the effective values.
        d = self.defaults
        filled = []
        for m in self.metrics:
            filled.append(
                m.model_copy(
                    update={
                        "window": m.window or d.window,
                        "lateness": d.lateness if m.lateness is None else m.lateness,
                        "model": m.model or d.model,
                        "sensitivity": m.sensitivity or d.sensitivity,
                        "params": {**d.params, **m.params},
                    }
                )
            )
        fresh = [f.model_copy(update={"window": f.window or d.window}) for f in self.freshness]
        object.__setattr__(self, "metrics", filled)
        object.__setattr__(self, "freshness", fresh)

    @property
    def lateness(self) -> pd.Timedelta:
        """The pipeline's allowed lateness (the largest of its metrics')."""
        values = [m.lateness for m in self.metrics if m.lateness is not None]
        return max(values, default=self.defaults.lateness)

    def metric_names(self) -> list[str]:
        return [m.name for m in self.metrics] + [f.name for f in self.freshness]

    def timezone_of(self, dim: str, value: str) -> str | None:
        """The time zone of a segment value (for its seasonality), if the pipeline names one."""
        seg = self.segments.get(dim)
        if seg is None:
            return None
        return seg.timezones.get(value, seg.timezone)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a pipeline file."""

    source: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PipelineError(ConfigError):
    """A pipeline file with one or more problems; ``issues`` lists them all."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _path(loc: Iterable[object]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# --------------------------------------------------------------------------------------------
# YAML with line numbers
# --------------------------------------------------------------------------------------------


def _line_map(node: yaml.Node, source: str) -> tuple[dict[tuple, int], list[ConfigIssue]]:
    """Line (1-based) of every key path in the document, and duplicate keys found on the way."""
    lines: dict[tuple, int] = {}
    issues: list[ConfigIssue] = []

    def walk(n: yaml.Node, path: tuple) -> None:
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in n.value:
                key = k.value
                if key in seen:
                    issues.append(
                        ConfigIssue(
                            source,
                            k.start_mark.line + 1,
                            _path((*path, key)),
                            "duplicate key (the later one would silently win)",
                        )
                    )
                seen.add(key)
                lines[(*path, key)] = k.start_mark.line + 1
                walk(v, (*path, key))
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, (*path, i))

    walk(node, ())
    return lines, issues


def _line_for(lines: dict[tuple, int], loc: tuple) -> int | None:
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and validate a pipeline file; raise :class:`PipelineError` listing every problem."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError([ConfigIssue(source, None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineError([ConfigIssue(source, None, "", f"cannot read: {exc}")]) from None
    return parse_pipeline(text, source=source)


def parse_pipeline(text: str, *, source: str = "<string>") -> Pipeline:
    """Validate pipeline YAML text (see the module docstring)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise PipelineError([ConfigIssue(source, line, "", f"not valid YAML: {problem}")]) from None
    if node is None or not isinstance(doc, dict):
        raise PipelineError(
            [ConfigIssue(source, 1, "", "expected a mapping with at least 'name' and 'metrics'")]
        )
    lines, issues = _line_map(node, source)
    pipeline = None
    try:
        pipeline = Pipeline.model_validate({**doc, "source_file": source})
    except ValidationError as exc:
        issues += [_issue(err, lines, source) for err in exc.errors()]
    issues += _cross_checks(doc, lines, source)
    alerting = None
    if isinstance(doc.get("alerting"), dict):
        from detector.alerting.config import parse_alerting

        alerting, errors, problems = parse_alerting(doc["alerting"])
        issues += [_issue({**e, "loc": ("alerting", *e["loc"])}, lines, source) for e in errors]
        issues += [
            ConfigIssue(source, _line_for(lines, ("alerting", *loc)), _path(("alerting", *loc)), m)
            for loc, m in problems
        ]
    if issues or pipeline is None:
        issues.sort(key=lambda i: (i.line or 0, i.path))
        raise PipelineError(issues)
    if alerting is not None:
        pipeline._alerting = alerting
    return pipeline


def _fields_at(loc: tuple) -> list[str]:
    """Valid keys of the model that sits at ``loc`` (for 'did you mean').

    Walks the annotations: a list or dict consumes one part of ``loc`` (an index or a key,
    as in ``emitters.shop-api``), a model consumes a field name.
    """
    tp: Any = Pipeline
    if loc[:1] == ("alerting",):  # a raw mapping here, validated by the alert router's models
        from detector.alerting.config import AlertingConfig

        tp, loc = AlertingConfig, loc[1:]
    for part in loc:
        tp = _strip(tp)
        if typing.get_origin(tp) in (list, dict):
            tp = typing.get_args(tp)[-1]
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            tp = tp.model_fields[part].annotation
        else:
            return []
    tp = _strip(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [k for k in tp.model_fields if k != "source_file"]
    return []


def _strip(tp: Any) -> Any:
    """``X | None`` and ``Annotated[X, ...]`` as ``X`` (a union of several types stays)."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _issue(err: dict[str, Any], lines: dict[tuple, int], source: str) -> ConfigIssue:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
    kind = err["type"]
    msg = err["msg"]
    if kind == "extra_forbidden":
        valid = _fields_at(loc[:-1])
        msg = f"unknown key {loc[-1]!r}{_suggest(str(loc[-1]), valid)}"
        if valid:
            msg += f" (valid keys: {', '.join(valid)})"
    elif kind == "literal_error":
        options = [
            str(o)
            for o in (err.get("ctx") or {})
            .get("expected", "")
            .replace("'", "")
            .replace(" or ", ", ")
            .split(", ")
            if o
        ]
        got = err.get("input")
        msg = f"{got!r} is not allowed{_suggest(str(got), options)} (one of: {', '.join(options)})"
    elif kind == "missing":
        msg = "required key is missing"
    elif kind == "string_pattern_mismatch":
        msg = f"{err.get('input')!r} is not a valid name (letters, digits and _, not first digit)"
    elif msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
    line = _line_for(lines, loc)
    return ConfigIssue(source, line, _path(loc), msg)


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _cross_checks(doc: dict[str, Any], lines: dict[tuple, int], source: str) -> list[ConfigIssue]:
    """Checks that span sections, on the raw document so that they run (and report) even
    when some field has the wrong shape; every one reports its own line."""
    from detector.scoring.engine import check_scoring

    issues: list[ConfigIssue] = []

    def add(loc: tuple, message: str) -> None:
        issues.append(ConfigIssue(source, _line_for(lines, loc), _path(loc), message))

    events = {
        t: set(_dict(_dict(spec).get("fields"))) for t, spec in _dict(doc.get("events")).items()
    }
    emitters = _dict(doc.get("emitters"))
    heartbeats = {
        str(_dict(e).get("heartbeat")) for e in emitters.values() if _dict(e).get("heartbeat")
    }
    known_types = set(events) | heartbeats
    defaults = _dict(doc.get("defaults"))

    def check_event(loc: tuple, event: Any) -> None:
        if events and isinstance(event, str) and event not in known_types:
            add(
                loc,
                f"unknown event type {event!r}{_suggest(event, known_types)}; declare it "
                "under 'events:'",
            )

    def check_field(loc: tuple, event_types: list[str], name: Any, what: str) -> None:
        if not isinstance(name, str):
            return
        declared: set[str] = set()
        for t in event_types:
            if not events.get(t):
                return  # no schema: any field may appear
            declared |= events[t]
        if declared and name not in declared and name not in ("source", "type"):
            add(
                loc,
                f"{what} {name!r} is not a field of {', '.join(event_types)}"
                f"{_suggest(name, declared)}",
            )

    def check_where(loc: tuple, where: Any, event_types: list[str]) -> None:
        for key, cond in _dict(where).items():
            check_field((*loc, key), event_types, key, "condition field")
            try:
                compile_condition(cond)
            except ValueError as exc:
                add((*loc, key), str(exc))

    names: dict[str, tuple] = {}
    for section in ("metrics", "freshness"):
        for i, m in enumerate(_list(doc.get(section))):
            m = _dict(m)
            here = (section, i)
            name = m.get("name")
            if isinstance(name, str):
                if name in names:
                    add(
                        (*here, "name"),
                        f"metric name {name!r} is used twice (first at {_path(names[name])})",
                    )
                names.setdefault(name, here)
            ev = m.get("event")
            types_ = [ev] if isinstance(ev, str) else [t for t in _list(ev) if isinstance(t, str)]
            for t_i, t in enumerate(types_):
                check_event((*here, "event", t_i) if isinstance(ev, list) else (*here, "event"), t)
            check_where((*here, "where"), m.get("where"), types_)
            for g_i, dim in enumerate(_list(m.get("group_by"))):
                check_field((*here, "group_by", g_i), types_, dim, "group_by field")
            if m.get("field") is not None:
                check_field((*here, "field"), types_, m.get("field"), "field")
            if section == "freshness":
                _check_tz((*here, "timezone"), m.get("timezone", "UTC"), add)
                continue
            agg = m.get("aggregation")
            if not isinstance(agg, str):
                continue
            if agg not in AGGREGATIONS:
                add(
                    (*here, "aggregation"),
                    f"unknown aggregation {agg!r}"
                    f"{_suggest(agg, AGGREGATIONS)} (one of: {', '.join(AGGREGATIONS)})",
                )
                continue
            if agg in _NEEDS_FIELD and not m.get("field"):
                add(here, f"aggregation {agg!r} needs 'field' (the value to aggregate)")
            if agg == "percentile" and m.get("q") is None:
                add(here, "aggregation 'percentile' needs 'q' (0-100, e.g. 95)")
            if agg == "ratio":
                if not m.get("numerator"):
                    add(
                        here,
                        "aggregation 'ratio' needs 'numerator' (the conditions of the "
                        "counted subset, e.g. {status: success})",
                    )
                else:
                    check_where((*here, "numerator"), m.get("numerator"), types_)
            elif m.get("numerator") is not None:
                add((*here, "numerator"), "only aggregation 'ratio' takes a numerator")
            window = m.get("window", defaults.get("window", "5m"))
            try:
                width = parse_duration(window)
                if width > pd.Timedelta(0) and pd.Timedelta("1D") % width != pd.Timedelta(0):
                    add(
                        (*here, "window"),
                        f"window {window} must divide a day (e.g. 1m, 5m, 15m, 1h)",
                    )
            except ValueError:
                pass  # reported by the schema
            model = m.get("model", defaults.get("model", "auto"))
            params = {**_dict(defaults.get("params")), **_dict(m.get("params"))}
            if isinstance(model, str):
                try:
                    check_scoring(model, params)
                except ConfigError as exc:
                    add((*here, "params") if m.get("params") else (*here, "model"), str(exc))
    for dim, seg in _dict(doc.get("segments")).items():
        seg = _dict(seg)
        values = [str(v) for v in _list(seg.get("values"))]
        if isinstance(seg.get("timezone"), str):
            _check_tz(("segments", dim, "timezone"), seg["timezone"], add)
        for value, tz in _dict(seg.get("timezones")).items():
            if str(value) not in values:
                add(
                    ("segments", dim, "timezones", value),
                    f"{value!r} is not one of the segment's values{_suggest(str(value), values)}",
                )
            if isinstance(tz, str):
                _check_tz(("segments", dim, "timezones", value), tz, add)
    for name, em in emitters.items():
        hb = _dict(em).get("heartbeat")
        if hb and events and hb not in events:
            add(
                ("emitters", name, "heartbeat"),
                f"heartbeat type {hb!r} is not declared under 'events:'{_suggest(str(hb), events)}",
            )
    if not _list(doc.get("metrics")) and not _list(doc.get("freshness")):
        add(("metrics",), "the pipeline defines no metrics and no freshness checks")
    _check_calendars(doc, add)
    return issues


def _check_calendars(doc: dict[str, Any], add: Any) -> None:
    """Holiday countries and segment values, event metrics, dimensions and time zones."""
    from detector.calendars.holidays import check_country, parse_country

    cal = _dict(doc.get("calendars"))
    segments = {
        str(d): [str(v) for v in _list(_dict(s).get("values"))]
        for d, s in _dict(doc.get("segments")).items()
    }
    for dim, values in _dict(cal.get("holidays")).items():
        here = ("calendars", "holidays", dim)
        if dim not in segments:
            add(
                here,
                f"{dim!r} is not a segment{_suggest(str(dim), segments)}; holidays are "
                "given per value of a dimension declared under 'segments:'",
            )
            continue
        for value, spec in _dict(values).items():
            loc = (*here, value)
            if str(value) not in segments[dim]:
                add(
                    loc,
                    f"{value!r} is not one of the values of segment {dim!r}"
                    f"{_suggest(str(value), segments[dim])}",
                )
            if isinstance(spec, str):
                country, sub = parse_country(spec)
            elif isinstance(spec, dict) and isinstance(spec.get("country"), str):
                country, sub = str(spec["country"]).upper(), spec.get("subdivision")
                loc = (*loc, "country")
            else:
                continue  # the schema reports the shape
            problem = check_country(country, str(sub).upper() if sub is not None else None)
            if problem:
                add(loc, problem)
    metric_names = [
        str(_dict(m).get("name")) for s in ("metrics", "freshness") for m in _list(doc.get(s))
    ]
    dims = set(segments)
    for s in ("metrics", "freshness"):
        for m in _list(doc.get(s)):
            dims |= {str(g) for g in _list(_dict(m).get("group_by"))}
    for i, ev in enumerate(_list(cal.get("events"))):
        ev = _dict(ev)
        here = ("calendars", "events", i)
        for k, name in enumerate(_list(ev.get("metrics"))):
            if str(name) not in metric_names:
                add(
                    (*here, "metrics", k),
                    f"unknown metric {name!r}{_suggest(str(name), metric_names)}",
                )
        for dim, want in _dict(ev.get("where")).items():
            if dim not in dims:
                add(
                    (*here, "where", dim),
                    f"{dim!r} is not a dimension of any metric{_suggest(str(dim), dims)}",
                )
            elif segments.get(dim):
                for v in want if isinstance(want, list) else [want]:
                    if str(v) not in segments[dim]:
                        add(
                            (*here, "where", dim),
                            f"{v!r} is not one of the values of segment "
                            f"{dim!r}{_suggest(str(v), segments[dim])}",
                        )
        if isinstance(ev.get("timezone"), str):
            _check_tz((*here, "timezone"), ev["timezone"], add)


def _check_tz(loc: tuple, tz: str, add: Any) -> None:
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        add(loc, f"unknown time zone {tz!r} (use an IANA name such as Europe/Berlin)")


# --------------------------------------------------------------------------------------------
# Conditions
# --------------------------------------------------------------------------------------------

_OPS = ("eq", "ne", "in", "not_in", "gt", "ge", "lt", "le", "exists")


def compile_condition(cond: Any) -> typing.Callable[[Any], bool]:
    """A predicate on one attribute value from a ``where`` entry.

    >>> compile_condition("DE")("DE"), compile_condition(["DE", "FR"])("UK")
    (True, False)
    >>> compile_condition({"gt": 100})(120.0), compile_condition({"exists": False})(None)
    (True, True)
    """
    if isinstance(cond, list):
        allowed = frozenset(cond)
        return lambda v: v in allowed
    if not isinstance(cond, dict):
        return lambda v: v == cond
    preds = []
    for op, arg in cond.items():
        if op not in _OPS:
            raise ValueError(
                f"unknown condition {op!r}{_suggest(str(op), _OPS)} (one of: {', '.join(_OPS)})"
            )
        preds.append(_op(op, arg))
    return lambda v: all(p(v) for p in preds)


def _op(op: str, arg: Any) -> typing.Callable[[Any], bool]:
    if op == "eq":
        return lambda v: v == arg
    if op == "ne":
        return lambda v: v != arg
    if op in ("in", "not_in"):
        if not isinstance(arg, list):
            raise ValueError(f"{op!r} takes a list, got {arg!r}")
        s = frozenset(arg)
        return (lambda v: v in s) if op == "in" else (lambda v: v not in s)
    if op == "exists":
        return (lambda v: v is not None) if arg else (lambda v: v is None)
    if isinstance(arg, bool) or not isinstance(arg, int | float):
        raise ValueError(f"{op!r} takes a number, got {arg!r}")
    cmp = {
        "gt": lambda v: v > arg,
        "ge": lambda v: v >= arg,
        "lt": lambda v: v < arg,
        "le": lambda v: v <= arg,
    }[op]

    def numeric(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool) and cmp(v)

    return numeric
