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

__all__ = ["LAG_ALERTNAME", "STALE_ALERTNAME", "LagWatch", "SourceWatch"]

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


LAG_ALERTNAME = "pipeline_lag"


class LagWatch:
    """One ``pipeline_lag`` alert while the detector itself is behind its topic.

    Windows close on event time, so a lagging consumer delays alerts rather than faking drops;
    but people should know that what they see is late. The alert fires once the lag has stayed
    above ``max_records`` for ``after`` (a burst that is read in seconds pages nobody) and
    resolves when the lag is back under the bound.

    >>> w = LagWatch("shop", max_records=1000, after=pd.Timedelta("5min"))
    >>> t = pd.Timestamp("2026-01-01T10:00Z")
    >>> w.update("events", 5000, t), w.update("events", 6000, t + pd.Timedelta("4min"))
    ([], [])
    >>> [a.status for a in w.update("events", 7000, t + pd.Timedelta("5min"))]
    ['firing']
    >>> [a.status for a in w.update("events", 10, t + pd.Timedelta("9min"))]
    ['resolved']
    """

    def __init__(self, pipeline: str, *, max_records: int, after: pd.Timedelta) -> None:
        self.pipeline = pipeline
        self.max_records = max_records
        self.after = after
        self.since: pd.Timestamp | None = None  # when the lag went over the bound
        self.open: Alert | None = None

    def update(self, topic: str, lag: int, now: pd.Timestamp) -> list[Alert]:
        """The alert transitions for the lag ``lag`` (records) measured at ``now``."""
        if lag <= self.max_records:
            self.since = None
            if self.open is not None:
                alert, self.open = self.open.resolved(now), None
                return [alert]
            return []
        if self.since is None:
            self.since = now
        if self.open is None and now - self.since >= self.after:
            self.open = Alert(
                {
                    "alertname": LAG_ALERTNAME,
                    "pipeline": self.pipeline,
                    "topic": topic,
                    "kind": "stale",
                    "severity": "warning",
                },
                self.since,
                {
                    "reason": f"detector is {lag:,} records behind on {topic} (over "
                    f"{self.max_records:,} since {self.since:%H:%M} UTC): alerts come late",
                    "summary": f"detector lags on {topic}",
                    "value": str(lag),
                },
            )
            return [self.open]
        return []

    def snapshot(self) -> dict[str, Any]:
        return {
            "since": None if self.since is None else self.since.value,
            "open": None if self.open is None else self.open.to_dict(),
        }

    def restore(self, snap: Mapping[str, Any]) -> None:
        since = snap.get("since")
        self.since = None if since is None else pd.Timestamp(since, tz="UTC")
        self.open = None if snap.get("open") is None else Alert.from_dict(snap["open"])
