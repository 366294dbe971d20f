"""The JSONL receiver: one JSON line per notification appended to a file, fsync'd.

For audits, tests and pipelines into other tools (``tail -f | jq``). Each line is
:meth:`Notification.to_json`, so ``Notification.from_json(line)`` reads it back, and its
``key`` lets a reader drop the duplicates a retry after a crash may append (the line was
written, the outbox did not hear of it). One ``os.write`` on an ``O_APPEND`` descriptor per
line keeps lines whole when several processes append to the same local file.

>>> import tempfile, pathlib
>>> from detector.alerting.model import Alert, Notification
>>> path = pathlib.Path(tempfile.mkdtemp()) / "alerts.jsonl"
>>> n = Notification.build("audit", "g", {}, [Alert({"alertname": "orders"}, "2026-01-01")])
>>> JsonlReceiver("audit", path=str(path)).send(n)
>>> Notification.from_json(path.read_text().splitlines()[0]) == n
True
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from detector.alerting.model import Notification
from detector.alerting.receivers.base import BaseReceiver, ReceiverSettings

__all__ = ["JsonlReceiver", "JsonlSettings"]


class JsonlSettings(ReceiverSettings):
    """``jsonl: {path: alerts.jsonl}`` (parent directories are created)."""

    path: str


class JsonlReceiver(BaseReceiver):
    """Appends notifications to ``path`` as JSON lines, durable once ``send`` returns."""

    kind = "jsonl"

    def __init__(self, name: str, *, path: str, **common: Any) -> None:
        super().__init__(name, **common)
        self.path = path
        self._lock = threading.Lock()

    def _deliver(self, notification: Notification) -> None:
        line = notification.to_json() + b"\n"
        try:
            with self._lock:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            # A full disk or a missing mount may come back: retryable.
            raise self._error(
                f"cannot append to {self.path}: {exc.strerror or exc}", retryable=True
            ) from None
