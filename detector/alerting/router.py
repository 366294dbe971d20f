"""The router: scored points in, notifications out. Composes the pieces of the package.

One :class:`Router` per pipeline and consumer holds the alert tracker (which series fire),
the inhibitor (firing alerts that mute others), silences and acks (refreshed from the store,
where the CLI writes them), the dispatcher (routing tree, groups, timers) and the escalator.
It does no I/O of its own and never sleeps: the caller passes ``now`` (the wall clock in
``detector run``, simulated scoring times in ``detector backtest --notify``), so the same code
gives the same notifications in both.

An alert is *muted* when its route is in a mute time interval (or outside its active ones), a
silence matches it, an inhibition rule mutes it, or it was acknowledged (an ack stops reminders
and escalation; a snooze does so until it runs out). Muted alerts are left out of notifications;
one already notified as firing still gets its resolved notice.

>>> import pandas as pd
>>> from detector.alerting.config import AlertingConfig
>>> cfg = AlertingConfig.model_validate({
...     "receivers": [{"name": "chat", "log": {}}],
...     "route": {"receiver": "chat", "group_by": ["market"], "group_wait": "0s"}})
>>> router = Router("shop", cfg)
>>> t = pd.Timestamp("2026-01-01T10:00Z")
>>> scored = pd.DataFrame({"timestamp": [t], "series": ["orders{market=DE}"],
...     "metric": ["orders"], "value": [0.0], "expected": [50.0], "lower": [30.0],
...     "upper": [70.0], "score": [0.8], "is_anomaly": [True], "kind": ["dip"],
...     "reason": ["orders dropped to 0"]})
>>> [a.status for a in router.observe(scored, now=t)]
['firing']
>>> [(n.receiver, n.status) for n in router.flush(t)]
[('chat', 'firing')]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import pandas as pd

from detector.alerting.alerts import AlertTracker
from detector.alerting.config import AlertingConfig
from detector.alerting.escalation import Escalator
from detector.alerting.grouping import Dispatcher
from detector.alerting.inhibit import Inhibitor
from detector.alerting.model import Alert, Notification, ts
from detector.alerting.routing import Route
from detector.alerting.silences import Silence, Silencer, time_muted
from detector.alerting.staleness import LagWatch, SourceWatch

__all__ = ["Router"]


class Router:
    """Alert tracking, muting, grouping and escalation for one pipeline (no I/O)."""

    def __init__(self, pipeline: str, cfg: AlertingConfig, *, ratios: Iterable[str] = ()) -> None:
        self.pipeline = pipeline
        self.cfg = cfg
        self.route = cfg.compiled_route()
        self.intervals = {t.name: t for t in cfg.time_intervals}
        self.tracker = AlertTracker(
            pipeline,
            severity=cfg.severity.rules(),
            units=cfg.units,
            link=cfg.link,
            ratios=set(ratios),
        )
        self.sources = SourceWatch(pipeline)  # the "pipeline stale" alert per silent app
        self.lag = (
            LagWatch(pipeline, max_records=cfg.lag.max_records, after=cfg.lag.after)
            if cfg.lag is not None
            else None
        )
        self.inhibitor = Inhibitor(cfg.inhibit_rules)
        self.silencer = Silencer()
        self.acked: set[str] = set()
        self.escalator = Escalator(cfg.escalations)
        resolved = {r.name: r.send_resolved for r in cfg.receivers}
        self.dispatcher = Dispatcher(
            self.route, muted=self._muted, send_resolved=lambda r: resolved.get(r, True)
        )
        self._later: list[Notification] = []  # escalation resolved notices, out at next flush
        self.counts: Counter[str] = Counter()  # alerts opened/resolved, notifications by receiver
        self._episodes: set[tuple[str, int]] = set()  # open (fingerprint, starts_at)

    @classmethod
    def for_pipeline(cls, pipeline: Any) -> Router:
        """The router of a loaded pipeline (its ``alerting:`` section and ratio metrics)."""
        ratios = [m.name for m in pipeline.metrics if m.aggregation == "ratio"]
        return cls(pipeline.name, pipeline.alerting_config, ratios=ratios)

    # -- muting -------------------------------------------------------------------------------

    def _muted(self, alert: Alert, route: Route | None, now: pd.Timestamp) -> bool:
        if route is not None and time_muted(
            route.mute_time_intervals, route.active_time_intervals, self.intervals, now
        ):
            return True
        if alert.status == "firing" and alert.fingerprint in self.acked:
            return True
        if self.silencer.silenced_by(alert.labels, now):
            return True
        return alert.status == "firing" and self.inhibitor.inhibited(alert) is not None

    def why_muted(self, alert: Alert, now: pd.Timestamp) -> list[str]:
        """Reasons an alert is muted at ``now`` (for people: ``alerts list``, logs)."""
        out = [f"silenced by {s}" for s in self.silencer.silenced_by(alert.labels, now)]
        if alert.fingerprint in self.acked:
            out.append("acknowledged")
        found = self.inhibitor.inhibiting(alert)
        if found is not None:
            out.append(f"inhibited by {found[1].labels.get('series', found[1].fingerprint)}")
        return out

    def set_silences(self, silences: Iterable[Silence]) -> None:
        self.silencer = Silencer(silences)

    def set_acked(self, fingerprints: Iterable[str]) -> None:
        self.acked = set(fingerprints)

    # -- the flow -----------------------------------------------------------------------------

    def observe(self, scored: pd.DataFrame, now: Any) -> list[Alert]:
        """Take newly scored points; returns the alert transitions (to be stored)."""
        return self.add(self.tracker.update(scored), now)

    def observe_sources(
        self, records: Iterable[tuple[str, int, int, bool]], now: Any
    ) -> list[Alert]:
        """Take the aggregator's silence records (``drain_silence``): "pipeline stale" alerts."""
        return self.add(self.sources.update(records), now)

    def observe_lag(self, topic: str, lag: int, now: Any) -> list[Alert]:
        """Take the consumer's lag (records behind the topic's end): "pipeline lag" alert."""
        if self.lag is None:
            return []
        return self.add(self.lag.update(topic, lag, ts(now)), now)

    def add(self, alerts: list[Alert], now: Any) -> list[Alert]:
        """Take alert transitions (from :meth:`observe`, or replayed with their times)."""
        if not alerts:
            return alerts
        now = ts(now)
        self.inhibitor.update(alerts)
        self.dispatcher.add(alerts, now)
        self._later += self.escalator.resolve(alerts, now)
        for a in alerts:
            key = (a.fingerprint, a.starts_at.value)
            if a.status == "resolved":
                self.counts["alerts_resolved"] += 1
                self._episodes.discard(key)
            elif key not in self._episodes:
                self.counts["alerts_opened"] += 1
                self._episodes.add(key)
        return alerts

    def flush(self, now: Any) -> list[Notification]:
        """Notifications due by ``now``: groups' notifications, then escalations."""
        now = ts(now)
        out = self.dispatcher.flush(now)
        self.escalator.observe(out, now)
        out += self._later
        self._later = []
        out += self.escalator.due(now, acked=self.acked, muted=lambda a: self._muted(a, None, now))
        for n in out:
            self.counts[f"notifications_{n.receiver}"] += 1
        return out

    def next_wakeup(self) -> pd.Timestamp | None:
        """When :meth:`flush` next has work (None: nothing pending)."""
        times = [t for t in (self.dispatcher.next_wakeup(), self.escalator.next_due()) if t]
        if self._later:
            return pd.Timestamp.min.tz_localize("UTC")
        return min(times, default=None)

    # -- state ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "tracker": self.tracker.snapshot(),
            "sources": self.sources.snapshot(),
            "lag": None if self.lag is None else self.lag.snapshot(),
            "dispatcher": self.dispatcher.snapshot(),
            "escalator": self.escalator.snapshot(),
            "later": [n.to_json() for n in self._later],
        }

    def restore(self, snap: dict[str, Any]) -> None:
        self.tracker.restore(snap["tracker"])
        self.sources.restore(snap.get("sources", {}))
        if self.lag is not None and snap.get("lag"):
            self.lag.restore(snap["lag"])
        self.dispatcher.restore(snap["dispatcher"])
        self.escalator.restore(snap["escalator"])
        self._later = [Notification.from_json(b) for b in snap.get("later", [])]
        # The inhibitor's sources are exactly the firing alerts.
        self.inhibitor = Inhibitor(self.cfg.inhibit_rules)
        self.inhibitor.update(o.alert for o in self.tracker.open.values())
        self.inhibitor.update(self.sources.open.values())
        if self.lag is not None and self.lag.open is not None:
            self.inhibitor.update([self.lag.open])
        self._episodes = {
            (o.alert.fingerprint, o.alert.starts_at.value) for o in self.tracker.open.values()
        }
