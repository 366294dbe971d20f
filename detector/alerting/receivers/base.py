"""What every receiver shares: settings models, ``send_resolved``, templates, HTTP delivery.

A receiver sends one notification once and says how that went: it returns, or raises
:class:`~detector.alerting.model.DeliveryError` with ``retryable`` set. It has no retry loop:
the outbox's retry stage (:mod:`detector.alerting.breaker`) owns timing, budgets and breakers,
like Alertmanager's notify pipeline. A new receiver is one module with a settings model and a
:class:`BaseReceiver` subclass implementing ``_deliver``, plus one line in ``RECEIVERS``.

HTTP receivers map answers the same way (:meth:`HttpReceiver._post`): 2xx is delivered; 408,
429, 5xx, refused connections and timeouts are retryable; other 4xx (and 3xx: a moved endpoint
is a configuration error, and following it would turn a POST into a GET) are not. A 429 or
503 with ``Retry-After`` raises :class:`RetryAfter` carrying the seconds.

Time limit: ``timeout`` bounds the TCP connect (at most half of it, and 5 s) and every read;
the response body is read at most 1 KiB. A server that drips its status line and headers one
byte per just-under-``timeout`` can stretch one send beyond ``timeout``: ``requests`` has no
total deadline. The sender should therefore treat ``timeout`` as the normal bound, not a hard
one.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, ClassVar

import orjson
import requests
from pydantic import BaseModel, ConfigDict, model_validator

from detector.alerting.model import DeliveryError, Notification
from detector.alerting.secrets import Secret, redact
from detector.alerting.templates import Templates
from detector.errors import ConfigError
from detector.pipeline.config import Duration as PipelineDuration

__all__ = [
    "BaseReceiver",
    "BasicAuth",
    "Duration",
    "HttpReceiver",
    "HttpSettings",
    "ReceiverSettings",
    "RetryAfter",
    "UrlReceiver",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

_BODY_LIMIT = 1024  # bytes of an error answer quoted in the message
_USER_AGENT = "detector-alerting/1"


#: ``"10s"``, ``"5m"`` or a number of seconds, > 0, as a pandas Timedelta (the pipeline's own).
Duration = PipelineDuration


class ReceiverSettings(BaseModel):
    """Base of each kind's settings: strict (typos are errors) and frozen.

    The fields are exactly the receiver's constructor arguments (besides the common ones), so
    ``build_receiver`` is ``cls(name, **settings)``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class RetryAfter(DeliveryError):
    """A retryable failure where the service said how long to wait (``Retry-After``)."""

    def __init__(self, message: str, *, after: float) -> None:
        super().__init__(message, retryable=True)
        self.after = after


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date; None if unusable.

    >>> parse_retry_after("120"), parse_retry_after("soon"), parse_retry_after(None)
    (120.0, None, None)
    >>> parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now=1767225600.0)
    60.0
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


class BaseReceiver:
    """Common behaviour: the name, the timeout, ``send_resolved`` and the templates.

    Subclasses implement ``_deliver(notification)`` and list the secrets their errors must
    not show in ``_secrets()``.
    """

    kind: ClassVar[str] = ""

    def __init__(
        self,
        name: str,
        *,
        timeout: float = 10.0,
        send_resolved: bool = True,
        title: str | None = None,
        text: str | None = None,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"The 'timeout' parameter of {type(self).__name__} must be > 0.")
        self.name = name
        self.timeout = float(timeout)
        self.send_resolved = send_resolved
        self.templates = Templates(title, text)

    @property
    def _who(self) -> str:
        return f"{self.kind} receiver {self.name!r}"

    def _secrets(self) -> Iterable[Secret | str | None]:
        return ()

    def _error(self, message: str, *, retryable: bool) -> DeliveryError:
        return DeliveryError(
            f"{self._who}: {redact(message, self._secrets())}", retryable=retryable
        )

    def send(self, notification: Notification) -> None:
        """Deliver ``notification`` once; resolved alerts are dropped if ``send_resolved`` is off.

        Like Alertmanager: without ``send_resolved`` a group's resolved alerts are left out, and
        a notification with nothing firing is not sent at all.
        """
        if not self.send_resolved and notification.resolved_alerts:
            if not notification.firing:
                log.debug("%s: skipping resolved notification %s", self._who, notification.key)
                return
            notification = replace(notification, alerts=tuple(notification.firing))
        self._deliver(notification)

    def _deliver(self, notification: Notification) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; the receiver must not be used afterwards."""

    def __enter__(self) -> BaseReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class BasicAuth(ReceiverSettings):
    """HTTP basic authentication; the password is a secret."""

    username: str
    password: Secret


class HttpSettings(ReceiverSettings):
    """Authentication and headers shared by the HTTP receivers (values are secrets: an
    ``X-Api-Key`` header is as sensitive as a password)."""

    headers: dict[str, Secret] = {}
    bearer_token: Secret | None = None
    basic_auth: BasicAuth | None = None

    @model_validator(mode="after")
    def _one_auth(self) -> HttpSettings:
        if self.bearer_token is not None and self.basic_auth is not None:
            raise ValueError("give bearer_token or basic_auth, not both")
        return self


class _RedactUrllib3(logging.Filter):
    """Scrubs live receivers' secrets from urllib3's DEBUG records, which quote URL paths
    (``"POST /services/T0/B0/XXXX HTTP/1.1" 200``). Runs only when DEBUG is enabled."""

    def __init__(self) -> None:
        super().__init__()
        self.receivers: weakref.WeakSet[HttpReceiver] = weakref.WeakSet()

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = [s for r in list(self.receivers) for s in r._secrets()]
        if secrets:
            record.msg, record.args = redact(record.getMessage(), secrets), ()
        return True


_URLLIB3_FILTER = _RedactUrllib3()
logging.getLogger("urllib3.connectionpool").addFilter(_URLLIB3_FILTER)


class HttpReceiver(BaseReceiver):
    """A receiver that POSTs JSON, with one ``requests.Session`` (pooled connections).

    The session's connection pool is thread-safe, so one receiver may be shared by sender
    threads; ``close()`` it when done (tests run with ``ResourceWarning`` as an error).
    Proxies come from the usual environment variables (``HTTPS_PROXY``, ``NO_PROXY``).
    """

    def __init__(
        self,
        name: str,
        *,
        headers: Mapping[str, Secret | str] | None = None,
        bearer_token: Secret | str | None = None,
        basic_auth: BasicAuth | None = None,
        **common: Any,
    ) -> None:
        super().__init__(name, **common)
        self.headers = {k: Secret.parse(v) for k, v in (headers or {}).items()}
        self.bearer_token = None if bearer_token is None else Secret.parse(bearer_token)
        self.basic_auth = basic_auth
        self._session = requests.Session()
        _URLLIB3_FILTER.receivers.add(self)

    def _secrets(self) -> list[Secret | str | None]:
        out: list[Secret | str | None] = [*self.headers.values(), self.bearer_token]
        if self.basic_auth is not None:
            out.append(self.basic_auth.password)
        return out

    def _request_headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT}
        headers.update({k: v.reveal() for k, v in self.headers.items()})
        if self.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self.bearer_token.reveal()}"
        return headers

    def _post(self, url: Secret | str, body: Any, headers: Mapping[str, str] | None = None) -> None:
        """POST ``body`` as JSON to ``url``; raise :class:`DeliveryError` unless 2xx."""
        try:
            target = url.reveal() if isinstance(url, Secret) else url
            all_headers = {**self._request_headers(), **(headers or {})}
            auth = None
            if self.basic_auth is not None:
                auth = (self.basic_auth.username, self.basic_auth.password.reveal())
        except ConfigError as exc:
            raise self._error(str(exc), retryable=False) from None
        connect = min(5.0, self.timeout / 2)
        secrets = [url if isinstance(url, Secret) else None, *self._secrets()]
        try:
            with self._session.post(
                target,
                data=orjson.dumps(body),
                headers=all_headers,
                auth=auth,
                timeout=(connect, self.timeout),
                allow_redirects=False,
                stream=True,
            ) as resp:
                if 200 <= resp.status_code < 300:
                    return
                detail = _read_some(resp)
                raise self._status_error(resp, detail, secrets)
        except requests.Timeout:
            error = self._error(f"no answer within {self.timeout:g}s (timeout)", retryable=True)
        except requests.ConnectionError as exc:
            reason = redact(_root_reason(exc), secrets)
            error = self._error(f"connection failed: {reason}", retryable=True)
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
        ):
            error = self._error("invalid URL (check the receiver's url)", retryable=False)
        except requests.RequestException as exc:
            reason = redact(f"{type(exc).__name__}: {exc}", secrets)
            error = self._error(reason, retryable=True)
        # Raised outside the except blocks so the traceback does not chain the original
        # exception, whose message may quote the secret URL.
        raise error

    def _status_error(
        self, resp: requests.Response, detail: str, secrets: list[Secret | str | None]
    ) -> DeliveryError:
        status = resp.status_code
        message = f"HTTP {status} {resp.reason or ''}".rstrip()
        if detail:
            message += f": {redact(detail, secrets)}"
        message = f"{self._who}: {redact(message, secrets)}"
        retryable = status in (408, 429) or status >= 500
        after = parse_retry_after(resp.headers.get("Retry-After"))
        if status in (429, 503) and after is not None:
            return RetryAfter(f"{message} (retry after {after:g}s)", after=after)
        return DeliveryError(message, retryable=retryable)

    def close(self) -> None:
        self._session.close()


def _read_some(resp: requests.Response) -> str:
    """The start of an error answer, one line, for the message (bounded: a body can be huge)."""
    try:
        raw = next(resp.iter_content(_BODY_LIMIT), b"")
    except requests.RequestException:
        return ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())[:200]


def _root_reason(exc: BaseException) -> str:
    """The innermost cause's text ("Connection refused"), not urllib3's wrapper prose."""
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    reason = getattr(seen, "strerror", None) or str(seen) or type(seen).__name__
    return str(reason)


class UrlReceiver(HttpReceiver):
    """An HTTP receiver whose destination is one URL, kept as a secret (its path or query may
    hold a token) and never shown in an error."""

    def __init__(self, name: str, *, url: Secret | str, **options: Any) -> None:
        super().__init__(name, **options)
        self.url = Secret.parse(url)

    def _secrets(self) -> list[Secret | str | None]:
        return [self.url, *super()._secrets()]
