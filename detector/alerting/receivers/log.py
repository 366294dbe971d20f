"""The log receiver: notifications as log records, for development and as a last resort.

It needs nothing outside the process, so it is the receiver a new pipeline starts with and
the one a route can fall back to. The record carries the idempotency key and group key in
``extra`` (for JSON log formatters) and the rendered title and text in the message.

>>> from detector.alerting.model import Alert, Notification
>>> r = LogReceiver("dev")
>>> r.send(Notification.build("dev", "g", {}, [Alert({"alertname": "orders"}, "2026-01-01")]))
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from detector.alerting.model import Notification
from detector.alerting.receivers.base import BaseReceiver, ReceiverSettings

__all__ = ["LogReceiver", "LogSettings"]

Level = Literal["debug", "info", "warning", "error", "critical"]
log = logging.getLogger(__name__)


class LogSettings(ReceiverSettings):
    """``log: {level: warning}``: the level of firing notifications (resolved ones log at info)."""

    level: Level = "warning"
    logger: str = __name__


class LogReceiver(BaseReceiver):
    """Writes each notification to a logger (``detector.alerting.receivers.log`` by default)."""

    kind = "log"

    def __init__(
        self, name: str, *, level: Level = "warning", logger: str = __name__, **common: Any
    ) -> None:
        super().__init__(name, **common)
        self.level = level
        self.logger = logger

    def _deliver(self, notification: Notification) -> None:
        firing = notification.status == "firing"
        level = logging.getLevelName(self.level.upper()) if firing else logging.INFO
        logging.getLogger(self.logger).log(
            level,
            "%s\n%s",
            self.templates.title(notification),
            self.templates.text(notification),
            extra={
                "receiver": self.name,
                "notification_key": notification.key,
                "group_key": notification.group_key,
                "status": notification.status,
            },
        )
