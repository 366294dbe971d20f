"""Label matchers, written and evaluated as in Prometheus' Alertmanager.

Routes, silences and inhibition rules select alerts by their labels with matchers such as
``market="DE"`` or ``kind=~"dip|missing"``. The syntax and meaning are Alertmanager's, so a
config written for one reads the same in the other:

- four operators: ``=`` (equal), ``!=`` (not equal), ``=~`` (regex), ``!~`` (not regex);
- a regex is anchored at both ends (``=~"D"`` does not match ``"DE"``);
- a label the alert lacks is the empty string, so ``team=""`` matches alerts without ``team``
  and ``team!="x"`` matches them too;
- values may be quoted (``"..."`` with ``\\"``, ``\\\\`` and ``\\n`` escapes) or bare;
- a list is ``{a="1", b=~"2|3"}`` (braces optional), and an alert must match every matcher.

>>> m = parse_matcher('kind=~"dip|missing"')
>>> m.matches({"kind": "dip"}), m.matches({"kind": "dips"}), str(m)
(True, False, 'kind=~"dip|missing"')
>>> parse_matcher("team!=shop").matches({})  # a missing label is ""
True
>>> [str(m) for m in parse_matchers('{market="DE", kind=~"dip|missing"}')]
['market="DE"', 'kind=~"dip|missing"']
>>> parse_matcher("market")
Traceback (most recent call last):
...
detector.errors.ConfigError: bad matcher 'market': no operator (expected one of =, !=, =~, !~)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from detector.errors import ConfigError

__all__ = ["Matcher", "Op", "check_matchers", "matches_all", "parse_matcher", "parse_matchers"]

Op = Literal["=", "!=", "=~", "!~"]
_OPS: tuple[str, ...] = ("=~", "!~", "!=", "=")  # two-character operators are tried first
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEAD = re.compile(r"\s*([^=!~\s]*)\s*(=~|!~|!=|=)?\s*")
_UNESCAPE = {'"': '"', "\\": "\\", "n": "\n"}


@dataclass(frozen=True)
class Matcher:
    """One condition on one label: ``name op value``.

    Equality compares with the empty string when the label is missing, as Alertmanager does;
    a regex must match the whole value (it is anchored like ``^(?:value)$``).
    """

    name: str
    op: Op
    value: str
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "_regex", _compile(self.name, self.op, self.value))
        except ValueError as exc:
            raise ConfigError(f"bad matcher {self._text()!r}: {exc}") from None

    def _text(self) -> str:
        return f"{self.name}{self.op}{_quote(self.value)}"

    def __str__(self) -> str:
        return self._text()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this matcher (a missing label counts as ``""``)."""
        value = labels.get(self.name, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(value) is not None
        return found if self.op == "=~" else not found


def _compile(name: str, op: str, value: str) -> re.Pattern[str] | None:
    """The anchored regex of a regex matcher (None for equality); ValueError says what is wrong."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"label name {name!r} must match [A-Za-z_][A-Za-z0-9_]*")
    if op not in _OPS:
        raise ValueError(f"unknown operator {op!r} (expected one of =, !=, =~, !~)")
    if op in ("=", "!="):
        return None
    try:
        return re.compile(f"(?:{value})")
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether every matcher matches (an empty list matches everything)."""
    return all(m.matches(labels) for m in matchers)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _parse_value(raw: str, text: str) -> str:
    raw = raw.strip()
    if not raw.startswith('"'):
        if '"' in raw:
            raise ConfigError(f"bad matcher {text!r}: stray quote in value {raw!r}")
        return raw
    out: list[str] = []
    i = 1
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            if nxt not in _UNESCAPE:
                raise ConfigError(f"bad matcher {text!r}: unknown escape '\\{nxt}' in value")
            out.append(_UNESCAPE[nxt])
            i += 2
            continue
        if ch == '"':
            if raw[i + 1 :].strip():
                raise ConfigError(
                    f"bad matcher {text!r}: unexpected {raw[i + 1 :].strip()!r} after the "
                    "closing quote"
                )
            return "".join(out)
        out.append(ch)
        i += 1
    raise ConfigError(f"bad matcher {text!r}: unterminated quoted value")


def parse_matcher(text: str) -> Matcher:
    """One matcher from ``name op value`` text, such as ``market=DE`` or ``kind=~"dip|x"``.

    >>> parse_matcher('market = "DE"')
    Matcher(name='market', op='=', value='DE')
    >>> parse_matcher("kind=~(dip")
    Traceback (most recent call last):
    ...
    detector.errors.ConfigError: bad matcher 'kind=~(dip': invalid regular expression: ...
    """
    if not isinstance(text, str):
        raise ConfigError(f"bad matcher {text!r}: expected text such as 'market=\"DE\"'")
    head = _HEAD.match(text)
    assert head is not None  # the pattern matches any text, perhaps emptily
    name, op = head.group(1), head.group(2)
    if not name and not op:
        raise ConfigError(f"bad matcher {text!r}: empty (expected name=value)")
    if op is None:
        raise ConfigError(f"bad matcher {text!r}: no operator (expected one of =, !=, =~, !~)")
    if not name:
        raise ConfigError(f"bad matcher {text!r}: no label name before {op!r}")
    value = _parse_value(text[head.end() :], text)
    try:  # checked here too, so that the error names the text the user wrote
        _compile(name, op, value)
    except ValueError as exc:
        raise ConfigError(f"bad matcher {text!r}: {exc}") from None
    return Matcher(name, op, value)  # type: ignore[arg-type]


def _split(text: str) -> list[str]:
    """Split ``a="1", b="x,y"`` at the commas outside quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def parse_matchers(spec: str | Iterable[str | Matcher]) -> list[Matcher]:
    """Matchers from ``'{a="1", b=~"2|3"}'``, or from a list of such texts (as in YAML).

    Each list entry may itself hold several matchers, as Alertmanager's ``matchers:`` allows.

    >>> [str(m) for m in parse_matchers(["market=DE", 'severity=~"critical|page", team!=x'])]
    ['market="DE"', 'severity=~"critical|page"', 'team!="x"']
    >>> parse_matchers("{}")
    []
    """
    if isinstance(spec, str):
        text = spec.strip()
        if text.startswith("{"):
            if not text.endswith("}"):
                raise ConfigError(f"bad matchers {spec!r}: missing closing '}}'")
            text = text[1:-1]
        parts = _split(text)
        if len(parts) == 1 and not parts[0].strip():
            return []
        if parts and not parts[-1].strip():  # a trailing comma is fine, as in Alertmanager
            parts.pop()
        return [parse_matcher(p.strip()) for p in parts]
    out: list[Matcher] = []
    for item in spec:
        out.extend([item] if isinstance(item, Matcher) else parse_matchers(item))
    return out


def check_matchers(value: list[str]) -> list[str]:
    """A pydantic validator for a ``matchers:`` list: it parses, or says what is wrong.

    The :class:`ConfigError` becomes a ``ValueError`` so that pydantic reports it at the key
    path of the field, with the other errors of the file.
    """
    try:
        parse_matchers(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return value
