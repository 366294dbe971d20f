"""Secrets in receiver configuration: where a token lives, not the token itself.

A pipeline file is reviewed, committed and printed; a webhook URL, a routing key or an SMTP
password must not be. So a :class:`Secret` names its source, and the value is read only when a
receiver sends (:meth:`Secret.reveal`)::

    url: {env: SLACK_URL}            # an environment variable (preferred)
    url: {file: /run/secrets/slack}  # a file, e.g. a mounted Kubernetes secret (re-read each use)
    url: https://hooks.slack.com/... # a plain string: works, but the secret is in the file

Reading at use time means a rotated file is picked up without a restart, and a missing variable
is reported by name when the receiver is used (and by ``detector validate``, which calls
:meth:`Secret.check`). ``repr`` and ``str`` never show the value, and :func:`redact` scrubs
revealed values out of error messages, since third-party errors (``requests``, ``smtplib``)
happily quote URLs and server replies.

>>> s = Secret.parse({"env": "SLACK_URL"})
>>> s
Secret(env=SLACK_URL)
>>> Secret.parse("hunter2")
Secret(value=***)
>>> redact("login failed for hunter2", [Secret.parse("hunter2")])
'login failed for ***'
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from detector.errors import ConfigError

__all__ = ["Secret", "redact"]

_MASK = "***"
_MIN_PIECE = 8  # shorter path segments ("hooks", "v2") are not credentials


class Secret:
    """A secret value read from an environment variable, a file, or (discouraged) given inline.

    Equality compares the *source* (same variable, same file), never the value, so comparing
    two configurations does not read secrets.

    >>> import os
    >>> os.environ["DOCTEST_TOKEN"] = "abc123"
    >>> Secret(env="DOCTEST_TOKEN").reveal()
    'abc123'
    >>> str(Secret(env="DOCTEST_TOKEN"))
    'Secret(env=DOCTEST_TOKEN)'
    >>> Secret(env="DOCTEST_MISSING").reveal()
    Traceback (most recent call last):
    ...
    detector.errors.ConfigError: secret: environment variable DOCTEST_MISSING is not set
    """

    __slots__ = ("_env", "_file", "_value")

    def __init__(
        self,
        *,
        env: str | None = None,
        file: str | os.PathLike[str] | None = None,
        value: str | None = None,
    ) -> None:
        given = [x for x in (env, file, value) if x is not None]
        if len(given) != 1:
            raise ValueError("a secret needs exactly one of env, file or value")
        self._env = env
        self._file = None if file is None else str(file)
        self._value = value

    @classmethod
    def parse(cls, raw: Any) -> Secret:
        """A secret from its configuration: ``{env: NAME}``, ``{file: PATH}`` or a string.

        Raises ``ValueError`` (so pydantic reports it with the key path) for anything else.
        """
        if isinstance(raw, Secret):
            return raw
        if isinstance(raw, str):
            if not raw:
                raise ValueError("a secret must not be empty")
            return cls(value=raw)
        if isinstance(raw, Mapping):
            keys = set(raw)
            if keys == {"env"} and isinstance(raw["env"], str) and raw["env"]:
                return cls(env=raw["env"])
            if keys == {"file"} and isinstance(raw["file"], str) and raw["file"]:
                return cls(file=raw["file"])
            # Never echo the mapping: it might hold the secret under a misspelt key.
            raise ValueError(
                f"a secret is {{env: NAME}} or {{file: PATH}}, got keys {sorted(map(str, keys))}"
            )
        raise ValueError(
            f"a secret is {{env: NAME}}, {{file: PATH}} or a string, got {type(raw).__name__}"
        )

    @property
    def source(self) -> str:
        """Where the value comes from, safe to show: ``env=NAME``, ``file=PATH``, ``value=***``."""
        if self._env is not None:
            return f"env={self._env}"
        if self._file is not None:
            return f"file={self._file}"
        return f"value={_MASK}"

    def reveal(self) -> str:
        """The value, read now. Raises :class:`ConfigError` naming the variable or file."""
        if self._env is not None:
            value = os.environ.get(self._env)
            if not value:
                raise ConfigError(f"secret: environment variable {self._env} is not set")
            return value
        if self._file is not None:
            try:
                # Files written with `echo token > file` end in a newline the service would reject.
                value = Path(self._file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"secret: cannot read file {self._file}: {exc.strerror or exc}"
                ) from None
            if not value:
                raise ConfigError(f"secret: file {self._file} is empty")
            return value
        assert self._value is not None
        return self._value

    def check(self) -> None:
        """Raise :class:`ConfigError` if the secret cannot be read (for ``detector validate``)."""
        self.reveal()

    def to_config(self) -> dict[str, str] | str:
        """The configuration form; an inline value is masked, so dumps never carry it."""
        if self._env is not None:
            return {"env": self._env}
        if self._file is not None:
            return {"file": self._file}
        return _MASK

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return (self._env, self._file, self._value) == (other._env, other._file, other._value)

    def __hash__(self) -> int:
        return hash((self._env, self._file, self._value))

    # pydantic v2: a `Secret` field accepts the three YAML forms and dumps the masked form.
    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(
            cls.parse,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda s: s.to_config()),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return {
            "anyOf": [
                {"type": "string"},
                {"type": "object", "properties": {"env": {"type": "string"}}, "required": ["env"]},
                {
                    "type": "object",
                    "properties": {"file": {"type": "string"}},
                    "required": ["file"],
                },
            ]
        }


def _variants(value: str) -> list[str]:
    """The forms a secret can take in a message: itself, URL-quoted, and a URL's path/query.

    ``requests`` reports a failed connection as ``... Max retries exceeded with url:
    /services/T0/B0/XXXX``: the secret part of a webhook URL without its host.
    """
    out = {value, quote(value, safe="")}
    if "://" in value:
        parts = urlsplit(value)
        tail = parts.path + (f"?{parts.query}" if parts.query else "")
        out.update(t for t in (tail, parts.path) if len(t) > 1)
        # Any long path segment or query value may be the credential on its own, and a
        # service may quote it back ("unknown token XXXX").
        pieces = parts.path.split("/") + [kv.partition("=")[2] for kv in parts.query.split("&")]
        out.update(p for p in pieces if len(p) >= _MIN_PIECE)
        if parts.password:
            out.add(parts.password)
    return [v for v in out if v]


def redact(text: str, secrets: Iterable[Secret | str | None]) -> str:
    """``text`` with every value of ``secrets`` (and its URL path/query) replaced by ``***``.

    Secrets that cannot be read are skipped: they cannot be in the text either.

    >>> url = Secret.parse("https://hooks.example/services/T0/B0/abc")
    >>> redact("POST https://hooks.example/services/T0/B0/abc failed", [url])
    'POST *** failed'
    >>> redact("Max retries exceeded with url: /services/T0/B0/abc", [url])
    'Max retries exceeded with url: ***'
    >>> redact("unknown token abcdefgh1234", ["https://h.example/hook/abcdefgh1234"])
    'unknown token ***'
    """
    values: set[str] = set()
    for s in secrets:
        if s is None:
            continue
        try:
            raw = s.reveal() if isinstance(s, Secret) else s
        except ConfigError:
            continue
        values.update(_variants(raw))
    # Longest first, so a URL is masked whole before its path is.
    for v in sorted(values, key=len, reverse=True):
        text = text.replace(v, _MASK)
    return text
