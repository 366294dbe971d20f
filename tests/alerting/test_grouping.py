"""The dispatcher: Alertmanager's timers, resolved notices, muting, deterministic keys, restore.

Scenarios are scripts of steps on a simulated clock (offsets from T0, ``HH:MM:SS``):

- ``("fire", at, "a,b")``: alerts a and b start firing at ``at`` (a new episode each time);
- ``("resolve", at, "a")``: alert a resolves at ``at``;
- ``("update", at, "a")``: alert a is sent again, same episode, new annotations;
- ``("mute", "a")`` / ``("unmute", "a")``: the muting callable starts or stops muting a;
- ``("run", until, [(at, "a,b/c"), ...])``: flush at every wake-up up to ``until``; the
  notifications sent, each as firing names ``/`` resolved names;
- ``("groups", n)``: the number of groups left.

The route groups by market (all alerts share one), with group_wait 30s, group_interval 5m and
repeat_interval 1h.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from detector.alerting.grouping import Dispatcher
from detector.alerting.model import Alert, Notification, ts
from detector.alerting.routing import Route, compile_route

T0 = ts("2026-01-05T10:00Z")
ROUTE = {
    "receiver": "chat",
    "group_by": ["market"],
    "group_wait": "30s",
    "group_interval": "5m",
    "repeat_interval": "1h",
}


def at(offset: str) -> pd.Timestamp:
    return T0 + pd.Timedelta(offset)


def summary(n: Notification) -> str:
    firing = ",".join(sorted(a.labels["alertname"] for a in n.firing))
    resolved = ",".join(sorted(a.labels["alertname"] for a in n.resolved_alerts))
    return f"{firing}/{resolved}" if resolved else firing


class Script:
    """Plays scenario steps against a dispatcher and checks the ``run`` and ``groups`` steps."""

    def __init__(self, route: Route | None = None, send_resolved: bool = True) -> None:
        self.route = route or compile_route(ROUTE, {"chat"})
        self.muted: set[str] = set()
        self.current: dict[str, Alert] = {}
        self.sent: list[Notification] = []
        self.dispatcher = self.make(send_resolved)
        self.version = 0

    def make(self, send_resolved: bool = True) -> Dispatcher:
        return Dispatcher(
            self.route,
            muted=lambda a, r, now: a.labels["alertname"] in self.muted,
            send_resolved=lambda receiver: send_resolved,
        )

    def play(self, steps: list[tuple]) -> None:
        for step in steps:
            kind, *args = step
            getattr(self, f"do_{kind}")(*args)

    def check_order(self, offset: str) -> None:
        wake = self.dispatcher.next_wakeup()
        assert wake is None or wake >= at(offset), "script error: run the clock up to here first"

    def do_fire(self, offset: str, names: str) -> None:
        self.check_order(offset)
        alerts = [Alert({"alertname": n, "market": "DE"}, at(offset)) for n in names.split(",")]
        self.current.update({a.labels["alertname"]: a for a in alerts})
        self.dispatcher.add(alerts, at(offset))

    def do_resolve(self, offset: str, names: str) -> None:
        self.check_order(offset)
        alerts = [self.current[n].resolved(at(offset)) for n in names.split(",")]
        self.dispatcher.add(alerts, at(offset))

    def do_update(self, offset: str, names: str) -> None:
        self.check_order(offset)
        self.version += 1
        alerts = [
            Alert(self.current[n].labels, self.current[n].starts_at, {"v": str(self.version)})
            for n in names.split(",")
        ]
        self.dispatcher.add(alerts, at(offset))

    def do_mute(self, names: str) -> None:
        self.muted |= set(names.split(","))

    def do_unmute(self, names: str) -> None:
        self.muted -= set(names.split(","))

    def run(self, until: str) -> list[tuple[str, str]]:
        got = []
        while (wake := self.dispatcher.next_wakeup()) is not None and wake <= at(until):
            for n in self.dispatcher.flush(wake):
                self.sent.append(n)
                offset = wake - T0
                got.append((str(offset).split(" days ")[-1], summary(n)))
        return got

    def do_run(self, until: str, expected: list[tuple[str, str]]) -> None:
        assert self.run(until) == expected

    def do_groups(self, n: int) -> None:
        assert len(self.dispatcher) == n


SCENARIOS: list[tuple[str, bool, list[tuple]]] = [
    # (id, send_resolved, steps)
    ("group-wait-batches", True, [
        ("fire", "0s", "a"), ("fire", "20s", "b"),
        ("run", "00:00:40", [("00:00:30", "a,b")]),
    ]),
    ("group-interval-batches-changes", True, [
        ("fire", "0s", "a"), ("run", "00:01:00", [("00:00:30", "a")]),
        ("fire", "00:01:00", "b"), ("fire", "00:02:00", "c"),
        ("run", "00:06:00", [("00:05:30", "a,b,c")]),
    ]),
    ("no-change-no-notification", True, [
        ("fire", "0s", "a"), ("run", "00:30:00", [("00:00:30", "a")]),
    ]),
    ("repeat-interval-reminders", True, [
        ("fire", "0s", "a"),
        ("run", "02:01:00", [("00:00:30", "a"), ("01:00:30", "a"), ("02:00:30", "a")]),
    ]),
    ("change-resets-repeat", True, [
        ("fire", "0s", "a"), ("run", "00:50:00", [("00:00:30", "a")]),
        ("fire", "00:50:00", "b"),
        ("run", "01:10:00", [("00:50:30", "a,b")]),  # next reminder an hour after that
        ("run", "01:51:00", [("01:50:30", "a,b")]),
    ]),
    ("resolved-notice", True, [
        ("fire", "0s", "a,b"), ("run", "00:01:00", [("00:00:30", "a,b")]),
        ("resolve", "00:02:00", "a"), ("run", "00:06:00", [("00:05:30", "b/a")]),
        ("run", "01:06:00", [("01:05:30", "b")]),  # the resolved alert left the group
    ]),
    ("all-resolved-then-group-dropped", True, [
        ("fire", "0s", "a"), ("run", "00:01:00", [("00:00:30", "a")]),
        ("resolve", "00:02:00", "a"), ("run", "00:06:00", [("00:05:30", "/a")]),
        ("groups", 0), ("run", "05:00:00", []),
    ]),
    ("send-resolved-false-all", False, [
        ("fire", "0s", "a"), ("run", "00:01:00", [("00:00:30", "a")]),
        ("resolve", "00:02:00", "a"), ("run", "00:06:00", []), ("groups", 0),
    ]),
    ("send-resolved-false-partial", False, [
        ("fire", "0s", "a,b"), ("run", "00:01:00", [("00:00:30", "a,b")]),
        ("resolve", "00:02:00", "a"), ("run", "00:59:00", []),
        ("run", "01:01:00", [("01:00:30", "b")]),  # the reminder shows what still fires
    ]),
    # An episode over before its group was looked at is news (sent once, as resolved), even
    # to a receiver that does not want resolved notices: it is the only word of the incident.
    ("fired-and-resolved-within-group-wait", True, [
        ("fire", "0s", "a"), ("resolve", "10s", "a"), ("run", "01:00:00", [("00:00:30", "/a")]),
        ("groups", 0),
    ]),
    ("unseen-episode-without-send-resolved", False, [
        ("fire", "0s", "a"), ("resolve", "10s", "a"), ("run", "01:00:00", [("00:00:30", "/a")]),
    ]),
    ("resolved-unknown-alert-ignored", True, [
        ("fire", "0s", "a"), ("resolve", "0s", "a"), ("groups", 1),
        ("run", "00:01:00", [("00:00:30", "/a")]), ("groups", 0),
        ("resolve", "00:02:00", "a"), ("groups", 0), ("run", "00:10:00", []),
    ]),
    ("resolved-twice-sent-once", True, [
        ("fire", "0s", "a,b"), ("run", "00:01:00", [("00:00:30", "a,b")]),
        ("resolve", "00:02:00", "a"), ("run", "00:06:00", [("00:05:30", "b/a")]),
        ("resolve", "00:07:00", "a"), ("fire", "00:07:00", "c"),
        ("run", "00:11:00", [("00:10:30", "b,c")]),
    ]),
    ("resolved-alongside-news", True, [
        ("fire", "0s", "a"), ("run", "00:01:00", [("00:00:30", "a")]),
        ("fire", "00:02:00", "b,c"), ("resolve", "00:03:00", "c"),
        ("run", "00:06:00", [("00:05:30", "a,b/c")]),
    ]),
    ("all-muted-sends-nothing", True, [
        ("mute", "a,b"), ("fire", "0s", "a,b"), ("run", "02:00:00", []), ("groups", 1),
    ]),
    ("muted-one-left-out", True, [
        ("mute", "b"), ("fire", "0s", "a,b"), ("run", "00:01:00", [("00:00:30", "a")]),
        ("unmute", "b"), ("run", "00:06:00", [("00:05:30", "a,b")]),
    ]),
    ("muting-a-notified-alert-is-not-news", True, [
        ("fire", "0s", "a,b"), ("run", "00:01:00", [("00:00:30", "a,b")]),
        ("mute", "b"), ("run", "00:59:00", []),
        ("run", "01:01:00", [("01:00:30", "a")]),
    ]),
    ("muted-never-notified-then-resolved", True, [
        ("mute", "a"), ("fire", "0s", "a"), ("run", "00:01:00", []),
        ("resolve", "00:02:00", "a"), ("run", "01:00:00", []), ("groups", 0),
    ]),
    ("muted-after-notified-then-resolved", True, [
        ("fire", "0s", "a"), ("run", "00:01:00", [("00:00:30", "a")]),
        ("mute", "a"), ("resolve", "00:02:00", "a"),
        ("run", "00:06:00", [("00:05:30", "/a")]),
    ]),
    ("muted-after-reminder-then-resolved", True, [
        ("fire", "0s", "a,b"), ("run", "00:01:00", [("00:00:30", "a,b")]),
        ("mute", "b"), ("run", "01:01:00", [("01:00:30", "a")]),
        ("resolve", "01:02:00", "b"), ("run", "01:06:00", [("01:05:30", "a/b")]),
    ]),
    ("muted-then-resolved-send-resolved-false", False, [
        ("fire", "0s", "a"), ("run", "00:01:00", [("00:00:30", "a")]),
        ("mute", "a"), ("resolve", "00:02:00", "a"), ("run", "01:00:00", []), ("groups", 0),
    ]),
    ("refire-new-group", True, [
        ("fire", "0s", "a"), ("run", "00:01:00", [("00:00:30", "a")]),
        ("resolve", "00:02:00", "a"), ("run", "00:06:00", [("00:05:30", "/a")]),
        ("fire", "00:07:00", "a"), ("run", "00:08:00", [("00:07:30", "a")]),
    ]),
    ("refire-same-group-is-news", False, [
        ("fire", "0s", "a,b"), ("run", "00:01:00", [("00:00:30", "a,b")]),
        ("resolve", "00:02:00", "a"), ("run", "00:06:00", []),
        ("fire", "00:07:00", "a"), ("run", "00:11:00", [("00:10:30", "a,b")]),
    ]),
    ("update-is-not-news", True, [
        ("fire", "0s", "a"), ("run", "00:01:00", [("00:00:30", "a")]),
        ("update", "00:02:00", "a"), ("run", "00:30:00", []),
    ]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("send_resolved", "steps"), [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS]
)
def test_timers_and_muting(send_resolved: bool, steps: list[tuple]) -> None:
    Script(send_resolved=send_resolved).play(steps)


def test_update_replaces_the_alert_in_its_group() -> None:
    s = Script()
    s.play([("fire", "0s", "a"), ("update", "10s", "a"), ("update", "20s", "a")])
    [n] = s.dispatcher.flush(at("30s"))
    assert [a.annotations for a in n.alerts] == [{"v": "2"}]


def test_group_by_and_continue_make_groups_per_route() -> None:
    route = compile_route(
        {
            "receiver": "chat",
            "group_by": ["market"],
            "group_wait": "0s",
            "routes": [
                {"matchers": ["team=pay"], "receiver": "pay", "continue": True},
                {"matchers": ["market=DE"], "receiver": "de", "group_by": ["..."]},
            ],
        },
        {"chat", "pay", "de"},
    )
    d = Dispatcher(route)
    d.add(
        [
            Alert({"alertname": "x", "market": "DE", "team": "pay"}, T0),
            Alert({"alertname": "y", "market": "DE"}, T0),
            Alert({"alertname": "z", "market": "FR", "team": "pay"}, T0),
        ],
        T0,
    )
    got = sorted((n.receiver, n.group_key, len(n.alerts)) for n in d.flush(T0))
    assert got == [
        ("de", '0.1:{alertname="x",market="DE",team="pay"}', 1),
        ("de", '0.1:{alertname="y",market="DE"}', 1),
        ("pay", '0.0:{market="DE"}', 1),
        ("pay", '0.0:{market="FR"}', 1),
    ]
    assert d.flush(T0) == []


def test_late_flush_reschedules_from_the_flush() -> None:
    s = Script()
    s.play([("fire", "0s", "a")])
    assert s.dispatcher.flush(at("00:03:00"))  # the caller came late: 2m30s after group_wait
    assert s.dispatcher.next_wakeup() == at("00:08:00")


STEPS: list[tuple] = [
    ("fire", "0s", "a,b"),
    ("run", "00:01:00", [("00:00:30", "a,b")]),
    ("fire", "00:02:00", "c"),
    ("resolve", "00:03:00", "a"),
    ("run", "00:20:00", [("00:05:30", "b,c/a")]),
    ("mute", "c"),
    ("fire", "00:20:00", "a"),
    ("run", "00:40:00", [("00:20:30", "a,b")]),
    ("resolve", "00:40:00", "c"),
    ("run", "02:00:00", [("00:40:30", "a,b/c"), ("01:40:30", "a,b")]),
]


def test_same_inputs_same_keys() -> None:
    one, two = Script(), Script()
    one.play(STEPS)
    two.play(STEPS)
    keys = [n.key for n in one.sent]
    assert keys == [n.key for n in two.sent]
    assert len(set(keys)) == len(keys)  # reminders and repeated contents get new keys


def test_repeated_content_gets_a_new_sequence() -> None:
    # a fires; b joins; b resolves (not sent); the reminder is "a" again: not the first key.
    s = Script(send_resolved=False)
    s.play(
        [
            ("fire", "0s", "a"),
            ("run", "00:01:00", [("00:00:30", "a")]),
            ("fire", "00:02:00", "b"),
            ("run", "00:06:00", [("00:05:30", "a,b")]),
            ("resolve", "00:07:00", "b"),
            ("run", "01:06:00", [("01:05:30", "a")]),
        ]
    )
    first, _, reminder = s.sent
    assert first.alerts == reminder.alerts and first.key != reminder.key


@pytest.mark.parametrize("cut", range(1, len(STEPS)), ids=lambda c: f"after-step-{c}")
def test_snapshot_restore_gives_the_same_notifications(cut: int) -> None:
    whole = Script()
    whole.play(STEPS)
    part = Script()
    part.play(STEPS[:cut])
    state = json.loads(json.dumps(part.dispatcher.snapshot()))
    restarted = Script()
    restarted.current, restarted.muted = part.current, part.muted
    restarted.sent = list(part.sent)
    restarted.dispatcher.restore(state)
    restarted.play(STEPS[cut:])
    assert [n.key for n in restarted.sent] == [n.key for n in whole.sent]
    assert restarted.dispatcher.snapshot() == whole.dispatcher.snapshot()


def test_restore_with_a_changed_tree_reroutes_the_alerts() -> None:
    s = Script()
    s.play([("fire", "0s", "a"), ("run", "00:01:00", [("00:00:30", "a")])])
    state = s.dispatcher.snapshot()
    other = compile_route({**ROUTE, "receiver": "pager"}, {"pager"})
    d = Dispatcher(other)
    d.restore(state)
    assert d.group_keys() == ['0:{market="DE"}']
    [n] = d.flush(at("00:01:30"))  # a new group: group_wait from the snapshot's time
    assert n.receiver == "pager"
    with pytest.raises(ValueError, match="snapshot version"):
        d.restore({"version": 99})


def test_snapshot_is_json() -> None:
    s = Script()
    s.play(STEPS)
    state: dict[str, Any] = s.dispatcher.snapshot()
    assert json.loads(json.dumps(state)) == state
    assert s.dispatcher.alerts('0:{market="DE"}')
