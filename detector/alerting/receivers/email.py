"""The e-mail receiver: one message per notification over SMTP (stdlib ``smtplib``).

The subject is the title template, the plain-text body the text template. The Message-ID is
derived from the idempotency key (``<key@sender-domain>``), so a message sent twice (a retry
after the server accepted but the connection dropped) carries the same id, and mail clients
and archives that dedupe by Message-ID show it once. All messages of one alert group also
name a common ``References`` id, so clients thread firing and resolved together.

``timeout`` is passed to ``smtplib`` and bounds the connect and every command's answer; a
server answering each command just before the timeout can stretch one send beyond it.
SMTP answers map like HTTP ones: 4xx (try later) is retryable, 5xx (rejected) is not; a
refused or dropped connection and a timeout are retryable.

>>> from detector.alerting.model import Alert, Notification
>>> r = EmailReceiver("mail", host="smtp.example", sender="Detector <alerts@example.com>",
...                   to=["oncall@example.com"])
>>> n = Notification.build("mail", "g", {}, [Alert({"alertname": "orders"}, "2026-01-01")])
>>> m = r.message(n)
>>> m["Subject"], m["Message-ID"] == f"<{n.key}@example.com>"
('[FIRING:1] orders', True)
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from detector.alerting.model import Notification
from detector.alerting.receivers.base import BaseReceiver, ReceiverSettings
from detector.alerting.secrets import Secret
from detector.errors import ConfigError

__all__ = ["EmailReceiver", "EmailSettings"]

log = logging.getLogger(__name__)

Tls = Literal["starttls", "ssl", "none"]
_DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}


class EmailSettings(ReceiverSettings):
    """``email: {host, port, tls, username, password, from, to, hello}``.

    ``tls``: ``starttls`` (default, port 587), ``ssl`` (implicit TLS, port 465) or ``none``
    (port 25; only for a relay on a trusted network). ``port`` defaults by ``tls``.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, arbitrary_types_allowed=True, populate_by_name=True
    )

    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    tls: Tls = "starttls"
    username: str | None = None
    password: Secret | None = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    hello: str = "localhost"

    @model_validator(mode="after")
    def _check(self) -> EmailSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        for address in [self.sender, *self.to]:
            if "@" not in email.utils.parseaddr(address)[1]:
                raise ValueError(f"not an e-mail address: {address!r}")
        return self


class EmailReceiver(BaseReceiver):
    """Sends each notification as a plain-text e-mail to ``to``."""

    kind = "email"

    def __init__(
        self,
        name: str,
        *,
        host: str,
        sender: str,
        to: list[str],
        port: int | None = None,
        tls: Tls = "starttls",
        username: str | None = None,
        password: Secret | str | None = None,
        hello: str = "localhost",
        **common: Any,
    ) -> None:
        super().__init__(name, **common)
        self.host = host
        self.sender = sender
        self.to = list(to)
        self.port = port
        self.tls = tls
        self.username = username
        self.password = None if password is None else Secret.parse(password)
        self.hello = hello

    def _secrets(self) -> list[Secret | str | None]:
        return [self.password]

    @property
    def _domain(self) -> str:
        return email.utils.parseaddr(self.sender)[1].rpartition("@")[2] or "detector.invalid"

    def message(self, notification: Notification) -> EmailMessage:
        """The e-mail for ``notification`` (without sending it)."""
        msg = EmailMessage()
        msg["Subject"] = self.templates.title(notification)
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Date"] = email.utils.format_datetime(notification.created_at.to_pydatetime())
        msg["Message-ID"] = f"<{notification.key}@{self._domain}>"
        thread = hashlib.sha256(f"{notification.receiver}\x1f{notification.group_key}".encode())
        msg["References"] = f"<group-{thread.hexdigest()[:32]}@{self._domain}>"
        msg["X-Detector-Key"] = notification.key
        msg.set_content(self.templates.text(notification) + "\n")
        return msg

    def _deliver(self, notification: Notification) -> None:
        msg = self.message(notification)
        try:
            password = None if self.password is None else self.password.reveal()
        except ConfigError as exc:
            raise self._error(str(exc), retryable=False) from None
        error = self._smtp_send(msg, password)
        if error is not None:
            raise error  # outside the except block: the original may quote the server

    def _smtp_send(self, msg: EmailMessage, password: str | None) -> Exception | None:
        port = self.port or _DEFAULT_PORTS[self.tls]
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.tls == "ssl":
            smtp = smtplib.SMTP_SSL(
                local_hostname=self.hello, timeout=self.timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(local_hostname=self.hello, timeout=self.timeout)
        try:
            # connect() after construction, so a failed greeting still closes the socket below.
            smtp.connect(self.host, port)
            if self.tls == "starttls":
                smtp.starttls(context=context)
            if self.username is not None and password is not None:
                smtp.login(self.username, password)
            refused = smtp.send_message(msg)
            if refused:
                # Some recipients got it: retrying would send them a duplicate.
                log.warning("%s: recipients refused: %s", self._who, sorted(refused))
            smtp.quit()
            return None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            retryable = any(400 <= c < 500 for c in codes)
            return self._error(f"all recipients refused (SMTP {codes})", retryable=retryable)
        except smtplib.SMTPResponseException as exc:
            reply = (
                exc.smtp_error.decode("utf-8", "replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            return self._error(
                f"SMTP {exc.smtp_code} {' '.join(reply.split())}",
                retryable=400 <= exc.smtp_code < 500,
            )
        except smtplib.SMTPNotSupportedError as exc:  # e.g. no STARTTLS: a configuration error
            return self._error(f"server does not support it: {exc}", retryable=False)
        except ssl.SSLCertVerificationError as exc:
            return self._error(f"TLS certificate rejected: {exc.verify_message}", retryable=False)
        except (smtplib.SMTPException, OSError) as exc:
            # smtplib reports a timed-out reply as SMTPServerDisconnected("... timed out").
            if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
                return self._error(f"no answer within {self.timeout:g}s (timeout)", retryable=True)
            return self._error(f"{type(exc).__name__}: {exc}", retryable=True)
        finally:
            smtp.close()
