"""The dispatcher: alerts into aggregation groups, groups into notifications, on timers.

Every alert is routed (:meth:`Route.match`) to one or more routes; per route it joins the
aggregation group named by the route's id and its ``group_by`` label values. A group then
follows Alertmanager's clock:

- a new group waits ``group_wait`` (counted from the ``now`` its first alert came in) so that
  alerts arriving together go out together;
- after that the group is looked at every ``group_interval``; a notification goes out when
  something changed since the last one (an alert started firing, or resolved and the receiver
  wants resolved notices), and otherwise every ``repeat_interval`` as a reminder while alerts
  fire;
- resolved alerts are in one look (sent if the receiver wants them) and then leave the group;
  an empty group is dropped.

Whether a change "needs a notification" is Alertmanager's dedup rule, applied per group to the
set of alerts last notified (its notification log). Muting happens when a group is looked at,
through the ``muted(alert, route, now)`` callable (silences, inhibition, time intervals, acks,
composed by the caller): muted alerts are left out and a group whose alerts are all muted sends
nothing. Two deliberate refinements over Alertmanager: a resolved alert whose *firing* was
notified in this group is sent as resolved even if it is muted now (the receiver was told it
fires, so it must hear it stopped); and an episode that began and ended between two looks at
its group (a backlog read in one go, an incident shorter than group_wait) is news in itself
and is sent, as resolved, unless muted. Alertmanager drops such alerts; for business metrics
an hour in which nothing sold is an incident even if it is over by the time it is scored, and
``detector run`` catching up on a backlog must tell what a live run would have.

There are no threads and no sleeps: the caller drives time with ``add(alerts, now)`` and
``flush(now)``, and :meth:`Dispatcher.next_wakeup` says when the next flush is due. Given the
same alerts at the same instants, two dispatchers produce the same notifications with the same
idempotency keys, so two instances (or one restarted from :meth:`Dispatcher.snapshot`) send
what the outbox stores once.

>>> from detector.alerting.model import Alert, ts
>>> from detector.alerting.routing import compile_route
>>> route = compile_route({"receiver": "chat", "group_by": ["market"], "group_wait": "30s"},
...                       {"chat"})
>>> d = Dispatcher(route)
>>> t0 = ts("2026-01-01T10:00Z")
>>> d.add([Alert({"alertname": "orders", "market": "DE"}, t0)], t0)
>>> d.flush(t0), d.next_wakeup()
([], Timestamp('2026-01-01 10:00:30+0000', tz='UTC'))
>>> [(n.receiver, n.group_key, len(n.alerts)) for n in d.flush(d.next_wakeup())]
[('chat', '0:{market="DE"}', 1)]
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from detector.alerting.model import Alert, Notification, ts
from detector.alerting.routing import Route, group_key

__all__ = ["Dispatcher", "MutedFn", "SendResolvedFn"]

MutedFn = Callable[[Alert, Route, pd.Timestamp], bool]
SendResolvedFn = Callable[[str], bool]
_SNAPSHOT_VERSION = 1
_ROUTE_CACHE_SIZE = 100_000


def _never_muted(alert: Alert, route: Route, now: pd.Timestamp) -> bool:
    return False


def _always(receiver: str) -> bool:
    return True


def _alert_id(fingerprint: str, alert: Alert) -> str:
    """One firing episode of a series: a re-fired alert (new ``starts_at``) is news again."""
    return f"{fingerprint}@{alert.starts_at.value}"


@dataclass
class _Group:
    """One aggregation group and its notification log (what was last sent, when)."""

    key: str
    route: Route
    labels: dict[str, str]
    next_flush: int  # ns since the epoch, UTC
    alerts: dict[str, Alert] = field(default_factory=dict)  # by fingerprint, latest version
    last_firing: frozenset[str] = frozenset()  # alert ids in the last notification
    last_resolved: frozenset[str] = frozenset()
    last_at: pd.Timestamp | None = None  # when the last notification went out
    notified: set[str] = field(default_factory=set)  # alert ids ever sent as firing here
    sequences: dict[str, int] = field(default_factory=dict)  # content hash -> times sent

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "route": self.route.id,
            "receiver": self.route.receiver,
            "labels": dict(self.labels),
            "next_flush": pd.Timestamp(self.next_flush, tz="UTC").isoformat(),
            "alerts": [a.to_dict() for _, a in sorted(self.alerts.items())],
            "last_firing": sorted(self.last_firing),
            "last_resolved": sorted(self.last_resolved),
            "last_at": None if self.last_at is None else self.last_at.isoformat(),
            "notified": sorted(self.notified),
            "sequences": dict(sorted(self.sequences.items())),
        }


class Dispatcher:
    """Aggregation groups with Alertmanager's timers, driven by the caller's clock.

    ``muted(alert, route, now)`` decides, when a group is looked at, whether an alert is left
    out (default: never); ``send_resolved(receiver)`` whether a receiver gets resolved notices
    (default: always).
    """

    def __init__(
        self,
        route: Route,
        *,
        muted: MutedFn | None = None,
        send_resolved: SendResolvedFn | None = None,
    ) -> None:
        self.route = route
        self.muted = muted or _never_muted
        self.send_resolved = send_resolved or _always
        self._groups: dict[str, _Group] = {}
        self._heap: list[tuple[int, str]] = []  # (next_flush ns, group key); stale entries skipped
        self._routes: dict[tuple[tuple[str, str], ...], list[tuple[Route, str, dict]]] = {}
        self._now: pd.Timestamp | None = None

    # -- input ---------------------------------------------------------------------------

    def add(self, alerts: Iterable[Alert], now: Any) -> None:
        """Take in new or updated alerts (an alert replaces the one with its fingerprint).

        A resolved alert is taken only by groups that hold it firing: one that no group knows
        (never sent firing, or already looked at as resolved) has nobody to tell.
        """
        now = self._tick(now)
        for alert in alerts:
            labels = alert.labels
            cache_key = tuple(labels.items())  # labels are sorted by Alert
            targets = self._routes.get(cache_key)
            if targets is None:
                targets = self._targets(labels)
                if len(self._routes) >= _ROUTE_CACHE_SIZE:
                    self._routes.clear()
                self._routes[cache_key] = targets
            fp = alert.fingerprint
            for route, key, group_labels in targets:
                group = self._groups.get(key)
                if alert.status != "firing":
                    if group is not None and fp in group.alerts:
                        group.alerts[fp] = alert
                    continue
                if group is None:
                    first = (now + route.group_wait).value
                    group = _Group(key, route, group_labels, first)
                    self._groups[key] = group
                    heapq.heappush(self._heap, (first, key))
                group.alerts[fp] = alert

    def _targets(self, labels: Mapping[str, str]) -> list[tuple[Route, str, dict]]:
        out = []
        for route in self.route.match(labels):
            group_labels = route.group_labels(labels)
            out.append((route, group_key(route.id, group_labels), group_labels))
        return out

    def _tick(self, now: Any) -> pd.Timestamp:
        now = ts(now)
        if self._now is None or now > self._now:
            self._now = now
        return now

    # -- output --------------------------------------------------------------------------

    def next_wakeup(self) -> pd.Timestamp | None:
        """When :meth:`flush` next has something to look at (None without groups)."""
        while self._heap:
            when, key = self._heap[0]
            group = self._groups.get(key)
            if group is not None and group.next_flush == when:
                return pd.Timestamp(when, tz="UTC")
            heapq.heappop(self._heap)
        return None

    def flush(self, now: Any) -> list[Notification]:
        """Look at every group due by ``now``; the notifications to send, in due order."""
        now = self._tick(now)
        out: list[Notification] = []
        limit = now.value
        while self._heap and self._heap[0][0] <= limit:
            when, key = heapq.heappop(self._heap)
            group = self._groups.get(key)
            if group is None or group.next_flush != when:
                continue  # stale heap entry
            notification = self._flush_group(group, now)
            if notification is not None:
                out.append(notification)
            if group.alerts:
                group.next_flush = (now + group.route.group_interval).value
                heapq.heappush(self._heap, (group.next_flush, key))
            else:
                del self._groups[key]
        return out

    def _flush_group(self, group: _Group, now: pd.Timestamp) -> Notification | None:
        route = group.route
        muted = self.muted
        firing: dict[str, Alert] = {}
        resolved: dict[str, Alert] = {}
        unseen: set[str] = set()  # episodes that began and ended between two looks
        gone: list[str] = []
        for fp, alert in group.alerts.items():
            aid = _alert_id(fp, alert)
            if alert.status == "firing":
                if not muted(alert, route, now):
                    firing[aid] = alert
            else:
                gone.append(fp)
                if aid in group.notified:
                    resolved[aid] = alert
                elif not muted(alert, route, now):
                    resolved[aid] = alert
                    unseen.add(aid)
                group.notified.discard(aid)
        for fp in gone:  # resolved alerts are looked at once, then leave the group
            del group.alerts[fp]
        if not firing and not resolved:
            return None  # nothing, or everything muted: send nothing, keep the log as it is
        firing_ids, resolved_ids = frozenset(firing), frozenset(resolved)
        wants_resolved = self.send_resolved(route.receiver)
        if not unseen and not self._needs_update(
            group, firing_ids, resolved_ids, wants_resolved, now
        ):
            return None
        group.last_firing, group.last_resolved, group.last_at = firing_ids, resolved_ids, now
        group.notified |= firing_ids
        alerts = list(firing.values()) + [
            a for aid, a in resolved.items() if wants_resolved or aid in unseen
        ]
        if not alerts:
            return None  # all resolved and the receiver does not want that: logged, not sent
        content = (
            ",".join(sorted(firing_ids))
            + "|"
            + ",".join(sorted(resolved_ids) if wants_resolved else sorted(unseen))
        )
        digest = hashlib.sha256(content.encode()).hexdigest()[:16]
        sequence = group.sequences.get(digest, 0)
        group.sequences[digest] = sequence + 1
        return Notification.build(
            route.receiver, group.key, group.labels, alerts, created_at=now, sequence=sequence
        )

    @staticmethod
    def _needs_update(
        group: _Group,
        firing: frozenset[str],
        resolved: frozenset[str],
        wants_resolved: bool,
        now: pd.Timestamp,
    ) -> bool:
        """Alertmanager's dedup rule against the group's last notification."""
        if group.last_at is None:
            return bool(firing)  # never notified: only firing alerts are news
        if not firing <= group.last_firing:
            return True  # something new fires
        if not firing:
            return bool(group.last_firing)  # all resolved: tell whoever was told they fire
        if wants_resolved and not resolved <= group.last_resolved:
            return True
        return now - group.last_at >= group.route.repeat_interval  # a reminder

    # -- state ---------------------------------------------------------------------------

    def __len__(self) -> int:
        """The number of aggregation groups."""
        return len(self._groups)

    def group_keys(self) -> list[str]:
        """The keys of the current aggregation groups, sorted."""
        return sorted(self._groups)

    def alerts(self, key: str) -> list[Alert]:
        """The alerts of one group (firing and not yet looked-at resolved ones)."""
        group = self._groups.get(key)
        return [] if group is None else [a for _, a in sorted(group.alerts.items())]

    def snapshot(self) -> dict[str, Any]:
        """The groups and their notification logs, JSON-serialisable, for :meth:`restore`."""
        return {
            "version": _SNAPSHOT_VERSION,
            "now": None if self._now is None else self._now.isoformat(),
            "groups": [self._groups[k].to_dict() for k in sorted(self._groups)],
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Replace the groups with those of a :meth:`snapshot` (e.g. after a restart).

        A group is restored when its route still exists with the same receiver and grouping;
        the alerts of other groups (the config changed) are added again as new alerts at the
        snapshot's time, so they are routed by the current tree and notified afresh.
        """
        if state.get("version") != _SNAPSHOT_VERSION:
            raise ValueError(f"unknown dispatcher snapshot version {state.get('version')!r}")
        self._groups.clear()
        self._heap.clear()
        self._routes.clear()
        self._now = None if state.get("now") is None else ts(state["now"])
        by_id = {r.id: r for r in self.route.walk()}
        orphans: list[Alert] = []
        for g in state["groups"]:
            alerts = [Alert.from_dict(a) for a in g["alerts"]]
            route = by_id.get(g["route"])
            if (
                route is None
                or route.receiver != g["receiver"]
                or any(route.group_key(a.labels) != g["key"] for a in alerts)
                or any(route not in self.route.match(a.labels) for a in alerts)
            ):
                orphans.extend(alerts)
                continue
            group = _Group(
                key=g["key"],
                route=route,
                labels=dict(g["labels"]),
                next_flush=ts(g["next_flush"]).value,
                alerts={a.fingerprint: a for a in alerts},
                last_firing=frozenset(g["last_firing"]),
                last_resolved=frozenset(g["last_resolved"]),
                last_at=None if g["last_at"] is None else ts(g["last_at"]),
                notified=set(g["notified"]),
                sequences=dict(g["sequences"]),
            )
            self._groups[group.key] = group
            heapq.heappush(self._heap, (group.next_flush, group.key))
        if orphans and self._now is not None:
            self.add(orphans, self._now)
