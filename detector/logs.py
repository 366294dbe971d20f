"""Structured logs with a correlation id: follow one alert back to the events behind it.

:func:`setup_logging` gives the ``detector`` logger tree one handler, writing either a line a
person reads (``time level logger: message key=value ...``) or one JSON object per line for a
log shipper. Every record carries the fields of the :func:`correlation` contexts it was logged
in (an event id, a Kafka trace id, a window, an anomaly or alert id), held in a
:mod:`contextvars` variable, so they follow a thread or an asyncio task and nothing else; any
``extra=`` fields of the call are kept too. A :class:`RedactFilter` on the handler masks values
of secret-looking fields and the ``user:password@`` part of URLs before anything is written.

>>> with correlation(event_id="e1", trace_id="4bf92f3577b34da6a3ce929d0e0e4736"):
...     with correlation(window="orders{market=DE}@2026-01-05T12:00Z"):
...         current_correlation()
{'event_id': 'e1', 'trace_id': '4bf92f3577b34da6a3ce929d0e0e4736', 'window': 'orders{market=DE}@2026-01-05T12:00Z'}
>>> current_correlation()
{}
>>> trace_id_from_headers([("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")])
'4bf92f3577b34da6a3ce929d0e0e4736'
>>> redact_url("connecting to postgresql://app:hunter2@db:5432/detector")
'connecting to postgresql://app:***@db:5432/detector'
"""  # noqa: E501 (doctest output lines)

from __future__ import annotations

import contextlib
import datetime as dt
import json as _json
import logging
import math
import re
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import IO, Any

__all__ = [
    "CorrelationFilter",
    "HumanFormatter",
    "JsonFormatter",
    "RedactFilter",
    "correlation",
    "current_correlation",
    "redact_url",
    "setup_logging",
    "trace_id_from_headers",
]

#: The logger tree that :func:`setup_logging` configures.
ROOT_LOGGER = "detector"

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_CONTEXT: ContextVar[Mapping[str, Any]] = ContextVar("detector_correlation", default=_EMPTY)

# The record attribute the correlation fields are stamped on (by CorrelationFilter).
_ATTR = "detector_correlation"
# Attributes every LogRecord has: whatever else is on a record came from ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",  # Python 3.12+
    _ATTR,
}
# A marker on the handlers this module installs, so that a second setup replaces them.
_OURS = "_detector_logs"


# ----------------------------------------------------------------------------------------------
# Correlation
# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def correlation(**fields: Any) -> Iterator[Mapping[str, Any]]:
    """Add ``fields`` to every record logged inside the block (in this thread or task).

    Nested blocks merge (an inner field of the same name wins); leaving a block restores the
    outer fields. ``None`` values are skipped, so ``correlation(trace_id=maybe_none)`` is safe.
    Yields the merged fields (read-only).

    >>> with correlation(event_id="e1", trace_id=None) as ctx:
    ...     dict(ctx)
    {'event_id': 'e1'}
    """
    merged = MappingProxyType(
        {**_CONTEXT.get(), **{k: v for k, v in fields.items() if v is not None}}
    )
    token = _CONTEXT.set(merged)
    try:
        yield merged
    finally:
        _CONTEXT.reset(token)


def current_correlation() -> dict[str, Any]:
    """The correlation fields in effect here (a copy)."""
    return dict(_CONTEXT.get())


_TRACEPARENT = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<parent>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?"
)
_PLAIN_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
_PLAIN_HEADERS = ("trace_id", "x-trace-id")


def trace_id_from_headers(headers: list[tuple[str, bytes]] | None) -> str | None:
    """The trace id in Kafka record headers, or None.

    A valid W3C ``traceparent`` wins (its 32-hex trace id; lower case only, not all zeros,
    parent id not all zeros, version not ``ff``, version ``00`` with exactly four parts);
    then a plain ``trace_id`` or ``x-trace-id`` header (up to 128 characters of
    ``[A-Za-z0-9._:/+=-]``). Header names are matched case-insensitively; values that are not
    UTF-8 or not valid are ignored.

    >>> trace_id_from_headers([("x-trace-id", b"req-42"), ("traceparent", b"garbage")])
    'req-42'
    >>> trace_id_from_headers([("trace_id", b"\\xff\\xfe")]) is None
    True
    """
    if not headers:
        return None
    found: dict[str, str] = {}
    for key, raw in headers:
        name = key.lower() if isinstance(key, str) else None
        if name is None or name in found:
            continue  # the first header of a name counts, as Kafka clients read them
        value = _header_text(raw)
        if value is None:
            continue
        if name == "traceparent":
            trace = _parse_traceparent(value)
            if trace is not None:
                return trace
        elif name in _PLAIN_HEADERS and _PLAIN_ID.fullmatch(value):
            found[name] = value
    for name in _PLAIN_HEADERS:
        if name in found:
            return found[name]
    return None


def _header_text(raw: Any) -> str | None:
    if isinstance(raw, bytes | bytearray | memoryview):
        try:
            return bytes(raw).decode("utf-8").strip(" \t")
        except UnicodeDecodeError:
            return None
    if isinstance(raw, str):
        return raw.strip(" \t")
    return None


def _parse_traceparent(value: str) -> str | None:
    m = _TRACEPARENT.fullmatch(value)
    if m is None:
        return None
    version, trace, parent, rest = m["version"], m["trace"], m["parent"], m["rest"]
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace == "0" * 32 or parent == "0" * 16:
        return None
    return trace


# ----------------------------------------------------------------------------------------------
# Filters
# ----------------------------------------------------------------------------------------------


class CorrelationFilter(logging.Filter):
    """Stamps the correlation fields in effect onto each record (on a handler, so that it sees
    records of every logger below ``detector``; handlers run in the logging thread)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, _ATTR):
            setattr(record, _ATTR, _CONTEXT.get())
        return True


_SECRET_NAME = re.compile(
    r"pass(word|wd)|token|secret|authori[sz]ation|api[_-]?key|routing[_-]?key", re.IGNORECASE
)
# scheme://user:password@ ; the password ends at the first "@" not followed by another "@".
_URL_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*):[^\s/@]*@")
_MASK = "***"


def redact_url(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` masked.

    >>> redact_url("amqp://guest:guest@mq/ and https://example.com/a@b")
    'amqp://guest:***@mq/ and https://example.com/a@b'
    """
    if "://" not in text:
        return text
    return _URL_USERINFO.sub(r"\g<head>:***@", text)


def _is_secret_name(name: Any) -> bool:
    return isinstance(name, str) and _SECRET_NAME.search(name) is not None


def _redact_value(value: Any, depth: int = 0) -> Any:
    """``value`` with secret-named keys of nested mappings masked and URLs in strings
    redacted; containers are copied, never changed in place (they belong to the caller)."""
    if isinstance(value, str):
        return redact_url(value)
    if depth > 8:
        return value
    if isinstance(value, Mapping):
        return {
            k: _MASK if _is_secret_name(k) else _redact_value(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_value(v, depth + 1) for v in value]
    return value


class RedactFilter(logging.Filter):
    """Masks secrets before a record is written: values of ``extra=`` and correlation fields
    (and nested mapping keys) named like a secret (``password``, ``token``, ``secret``,
    ``authorization``, ``api_key``, ``routing_key``, and names containing them such as
    ``bearer_token``), and ``user:password@`` in URLs in the message, the field values and the
    traceback.

    It never drops a record and never raises (a broken ``%`` format is left to the handler,
    which reports it as logging does).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for key in _extra_keys(record):
            value = record.__dict__[key]
            record.__dict__[key] = _MASK if _is_secret_name(key) else _redact_value(value)
        ctx = getattr(record, _ATTR, None)
        if ctx:
            setattr(record, _ATTR, _redact_value(ctx))
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format: the handler reports it, as logging does
            return True
        clean = redact_url(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_url(record.exc_text)
        return True


# ----------------------------------------------------------------------------------------------
# Formatters
# ----------------------------------------------------------------------------------------------


def _extra_keys(record: logging.LogRecord) -> list[str]:
    return [k for k in record.__dict__ if k not in _STANDARD]


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """Correlation fields, then ``extra=`` fields (an extra of the same name wins)."""
    out = dict(getattr(record, _ATTR, None) or _CONTEXT.get())
    for key in _extra_keys(record):
        out[key] = record.__dict__[key]
    return out


def _utc_iso(created: float) -> str:
    """``2026-01-05T12:00:00.123Z``"""
    t = dt.datetime.fromtimestamp(created, dt.UTC)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON types: NaN and infinities as strings (not the invalid JSON ``NaN``),
    mappings with string keys, sequences as lists, times in ISO 8601, anything else by ``str``.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth > 8:
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (UTC, milliseconds), ``level``, ``logger``, ``msg``,
    ``exc`` (the traceback) when there is one, ``stack`` for ``stack_info=True``, then the
    correlation and ``extra=`` fields. A field named like one of those keys is written with a
    trailing ``_`` (``level_``) rather than replacing it.

    >>> rec = logging.LogRecord("detector.stream", logging.INFO, "", 0, "batch of %d", (3,),
    ...                         None)
    >>> rec.created, rec.partition = 1767614400.5, 2
    >>> JsonFormatter().format(rec)
    '{"ts": "2026-01-05T12:00:00.500Z", "level": "INFO", "logger": "detector.stream", "msg": "batch of 3", "partition": 2}'
    """  # noqa: E501

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        for key, value in _fields(record).items():
            name = str(key)
            while name in out:
                name += "_"
            out[name] = _jsonable(value)
        return _json.dumps(out, ensure_ascii=False)


_BARE = re.compile(r"[^\s\"'=]+")


def _kv(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if _BARE.fullmatch(text) else _json.dumps(text, ensure_ascii=False)


class HumanFormatter(logging.Formatter):
    """``2026-01-05T12:00:00.500Z INFO detector.stream: message key=value ...``: the
    correlation and ``extra=`` fields appended (quoted when they hold spaces), then the
    traceback on the following lines.

    >>> rec = logging.LogRecord("detector.stream", logging.WARNING, "", 0, "slow poll", (),
    ...                         None)
    >>> rec.created, rec.window = 1767614400.5, "orders{market=DE} @ 12:00"
    >>> HumanFormatter().format(rec)
    '2026-01-05T12:00:00.500Z WARNING detector.stream: slow poll window="orders{market=DE} @ 12:00"'
    """

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_utc_iso(record.created)} {record.levelname} {record.name}: "
        line += record.getMessage()
        fields = _fields(record)
        if fields:
            line += " " + " ".join(f"{k}={_kv(v)}" for k, v in fields.items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


# ----------------------------------------------------------------------------------------------
# Setup
# ----------------------------------------------------------------------------------------------


def setup_logging(
    *, json: bool = False, level: str | int = "INFO", stream: IO[str] | None = None
) -> None:
    """Send the ``detector`` loggers' records at ``level`` and above to ``stream`` (default:
    ``sys.stderr`` *at call time*, so a test's captured stream is honoured), as JSON lines when
    ``json`` is true.

    The ``detector`` logger gets one handler (correlation, then redaction, then the format) and
    stops propagating, so its records are not written twice by a root handler. Other
    libraries' records (kafka, urllib3, psycopg) go to the same stream in the same format at
    WARNING and above, through a root handler, unless the root logger already has a handler
    of someone else's (an application embedding the detector keeps its own). Calling again
    replaces this module's handlers: idempotent, and the way to switch format or level.
    """
    if isinstance(level, str):
        resolved = logging.getLevelName(level.upper())
        if not isinstance(resolved, int):
            raise ValueError(f"unknown log level {level!r}")
        level = resolved
    out = sys.stderr if stream is None else stream
    formatter: logging.Formatter = JsonFormatter() if json else HumanFormatter()

    def handler() -> logging.Handler:
        h = logging.StreamHandler(out)
        h.addFilter(CorrelationFilter())
        h.addFilter(RedactFilter())
        h.setFormatter(formatter)
        setattr(h, _OURS, True)
        return h

    logger = logging.getLogger(ROOT_LOGGER)
    _remove_ours(logger)
    logger.addHandler(handler())
    logger.setLevel(level)
    logger.propagate = False

    root = logging.getLogger()
    _remove_ours(root)
    if not root.handlers:
        root.addHandler(handler())
        root.setLevel(max(logging.WARNING, level))


def _remove_ours(logger: logging.Logger) -> None:
    for h in [h for h in logger.handlers if getattr(h, _OURS, False)]:
        logger.removeHandler(h)
        h.close()  # a StreamHandler leaves its stream open
