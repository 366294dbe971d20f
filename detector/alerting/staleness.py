"""The "pipeline stale" alert: one alert when an app stops sending, instead of a drop per series.

When an app goes silent (its heartbeats, or without heartbeats every event it emits), the
aggregator marks the windows of its metrics *missing*, not zero, so no series of it alerts on
a drop. What people need instead is one alert that names the app: "shop-api has sent nothing
since 10:45", routed like any other (``alertname=pipeline_stale``, ``kind=stale``,
``source=<app>``, ``severity=critical``) and resolved when the app is heard again.

:class:`SourceWatch` reads the aggregator's silence records (app, window start, window end,
silent) in time order and keeps one open alert per silent app.

>>> watch = SourceWatch("shop")
>>> log = [("shop-api", 0, 300, False), ("shop-api", 300, 600, True),
...        ("shop-api", 600, 900, True), ("shop-api", 900, 1200, False)]
>>> [a.status for a in watch.update(log)]
['firing', 'resolved']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from detector.alerting.model import Alert

__all__ = ["STALE_ALERTNAME", "SourceWatch"]

STALE_ALERTNAME = "pipeline_stale"


def _ts(seconds: int) -> pd.Timestamp:
    return pd.Timestamp(int(seconds), unit="s", tz="UTC")


class SourceWatch:
    """One open "pipeline stale" alert per silent app."""

    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self.open: dict[str, Alert] = {}
        self.seen: dict[str, int] = {}  # app -> end of the last window looked at

    def transitions(
        self, records: Iterable[tuple[str, int, int, bool]]
    ) -> list[tuple[pd.Timestamp, Alert]]:
        """(time, alert) for each app that went silent or was heard again, in time order."""
        records = list(records)
        # Judge each app on its narrowest windows: a wider window of the same stretch would
        # call it silent for a gap the narrow ones already place exactly (and flap).
        width: dict[str, int] = {}
        for src, start, end, _ in records:
            width[src] = min(width.get(src, end - start), end - start)
        out: list[tuple[pd.Timestamp, Alert]] = []
        for src, start, end, silent in sorted(records, key=lambda r: (r[1], r[2], r[0])):
            if end - start != width[src] or end <= self.seen.get(src, -(2**62)):
                continue  # a wider window, or one already looked at
            self.seen[src] = end
            cur = self.open.get(src)
            if silent and cur is None:
                t = _ts(start)
                alert = Alert(
                    {
                        "alertname": STALE_ALERTNAME,
                        "pipeline": self.pipeline,
                        "source": src,
                        "kind": "stale",
                        "severity": "critical",
                    },
                    t,
                    {
                        "reason": f"no events from {src} since {t:%Y-%m-%d %H:%M} UTC: its "
                        "metrics' windows are marked missing (not zero) until it is heard again",
                        "summary": f"{src} stopped sending events",
                    },
                )
                self.open[src] = alert
                out.append((t, alert))
            elif not silent and cur is not None:
                t = _ts(start)
                out.append((t, cur.resolved(t)))
                del self.open[src]
        return out

    def update(self, records: Iterable[tuple[str, int, int, bool]]) -> list[Alert]:
        return [a for _, a in self.transitions(records)]

    def snapshot(self) -> dict[str, Any]:
        return {"open": {s: a.to_dict() for s, a in self.open.items()}, "seen": dict(self.seen)}

    def restore(self, snap: Mapping[str, Any]) -> None:
        self.open = {s: Alert.from_dict(a) for s, a in snap.get("open", {}).items()}
        self.seen = dict(snap.get("seen", {}))
