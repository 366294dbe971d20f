"""The router's durable state on both backends: outbox claims and leases, alerts, acks, silences."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pandas as pd
import pytest

from detector.alerting.model import Alert, Notification
from detector.alerting.state import AlertState, episode_id
from detector.errors import DetectorError
from detector.store import open_store

T0 = pd.Timestamp("2026-03-02T10:00Z")
US = 1_000_000


@pytest.fixture()
def state(store_url: str) -> Iterator[AlertState]:
    store = open_store(store_url)
    yield AlertState(store, "shop")
    store.close()


def alert(market: str = "DE", ends: pd.Timestamp | None = None, **labels: str) -> Alert:
    return Alert({"alertname": "orders", "market": market, **labels}, T0, {"reason": "r"}, ends)


def notes(n: int, receiver: str = "chat") -> list[Notification]:
    return [
        Notification.build(receiver, f"g{i}", {}, [alert(f"M{i}")], created_at=T0) for i in range(n)
    ]


def test_enqueue_is_idempotent_across_instances(store_url: str):
    a, b = open_store(store_url), open_store(store_url)
    try:
        batch = notes(5)
        assert AlertState(a, "shop").enqueue(batch, now_us=0) == 5
        assert AlertState(b, "shop").enqueue(batch, now_us=1) == 0  # the same keys
        assert AlertState(b, "other").enqueue(batch, now_us=1) == 5  # another pipeline
        assert AlertState(a, "shop").outbox_counts() == {"pending": 5}
    finally:
        a.close(), b.close()


def test_concurrent_claims_never_hand_a_row_to_two_senders(store_url: str):
    stores = [open_store(store_url) for _ in range(3)]
    try:
        AlertState(stores[0], "shop").enqueue(notes(60), now_us=0)
        got: Counter[str] = Counter()
        lock = threading.Lock()

        def sender(i: int) -> None:
            st = AlertState(stores[i], "shop")
            while rows := st.claim(f"s{i}", now_us=10, limit=4):
                for r in rows:
                    with lock:
                        got[r.key] += 1
                    st.delivered(r.key, f"s{i}", now_us=11)

        threads = [threading.Thread(target=sender, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(got) == 60 and set(got.values()) == {1}
        assert AlertState(stores[0], "shop").outbox_counts() == {"delivered": 60}
    finally:
        for s in stores:
            s.close()


def test_an_expired_lease_lets_another_sender_deliver(state: AlertState):
    (n,) = notes(1)
    state.enqueue([n], now_us=0)
    assert [r.key for r in state.claim("dead", now_us=0, lease_us=30 * US)] == [n.key]
    assert state.claim("alive", now_us=29 * US) == []
    (row,) = state.claim("alive", now_us=30 * US)
    assert row.notification == n
    state.delivered(n.key, "alive", now_us=31 * US)
    state.delivered(n.key, "dead", now_us=40 * US)  # the late original changes nothing
    assert state.outbox(state="delivered")[0]["delivered_us"] == 31 * US


def test_retry_waits_counts_attempts_and_keeps_the_first_attempt(state: AlertState):
    (n,) = notes(1)
    state.enqueue([n], now_us=0)
    state.claim("s", now_us=1)
    state.retry_at(n.key, "s", 10 * US, "HTTP 503", attempted_us=1)
    assert state.claim("s", now_us=10 * US - 1) == []
    (row,) = state.claim("s", now_us=10 * US)
    assert (row.attempts, row.first_attempt_us) == (1, 1)
    state.retry_at(n.key, "s", 20 * US, "timeout", attempted_us=10 * US)
    (row,) = state.claim("s", now_us=20 * US)
    assert (row.attempts, row.first_attempt_us) == (2, 1)
    state.failed(n.key, "s", 21 * US, "retry budget spent")
    assert state.claim("s", now_us=99 * US) == []
    (out,) = state.outbox(state="failed")
    assert (out["attempts"], out["last_error"]) == (3, "retry budget spent")


def test_claims_by_receiver(state: AlertState):
    state.enqueue(notes(2, "chat") + notes(3, "pager"), now_us=0)
    assert {r.receiver for r in state.claim("s", now_us=0, receivers=["pager"])} == {"pager"}
    assert len(state.claim("s", now_us=0, receivers=["chat", "pager"])) == 2
    assert state.claim("s", now_us=0, receivers=[]) == []


def test_outbox_rows_commit_and_roll_back_with_the_consumer_commit(store_url: str):
    store = open_store(store_url)
    try:
        st = AlertState(store, "shop")
        batch = notes(2)
        store.commit(
            "shop",
            "g",
            offsets={("t", 0): 5},
            state=b"s",
            also=lambda cur: st.enqueue(batch, 0, cur),
        )
        assert st.outbox_counts() == {"pending": 2}

        def fail(cur) -> None:
            st.enqueue(notes(4), 0, cur)
            raise RuntimeError("crash half way")

        with pytest.raises(RuntimeError):
            store.commit("shop", "g", offsets={("t", 0): 9}, state=b"s2", also=fail)
        assert st.outbox_counts() == {"pending": 2}
        assert store.load("shop", "g").offsets == {("t", 0): 5}
    finally:
        store.close()


def test_alert_episodes_ack_snooze_and_feedback(state: AlertState):
    a, b = alert("DE"), alert("FR")
    with state.store.transaction(write=True) as cur:
        state.write_alerts(cur, [a, b], now_us=0)
    with state.store.transaction(write=True) as cur:  # an update keeps one row per episode
        state.write_alerts(cur, [b.resolved(T0 + pd.Timedelta("10min"))], now_us=1)
    assert {r.alert.labels["market"] for r in state.alerts(state="firing")} == {"DE"}
    assert {r.alert.labels["market"] for r in state.alerts(state="resolved")} == {"FR"}

    aid = episode_id(a.fingerprint, a.starts_at)
    until = T0 + pd.Timedelta("1h")
    row = state.ack(aid[:6], "ana", until=until, comment="looking", now_us=0)
    assert (row.acked_by, row.ack_until, row.ack_comment) == ("ana", until, "looking")
    assert state.acked_fingerprints(until.value // 1000 - 1) == {a.fingerprint}
    assert state.acked_fingerprints(until.value // 1000) == set()  # the snooze ran out
    assert [r.id for r in state.alerts(state="acked", at=T0)] == [aid]
    assert state.label(aid, "false-positive", "promo").feedback == "false-positive"

    with pytest.raises(DetectorError, match="no alert with id 'zzz'"):
        state.find("zzz")


def test_silences_are_stored_listed_and_expired(state: AlertState):
    s = state.add_silence(["market=DE"], T0, T0 + pd.Timedelta("2h"), "ana", "maintenance")
    assert [x.matchers for x in state.silences(active_at_us=T0.value // 1000)] == [["market=DE"]]
    state.expire_silence(s.id[:5], T0.value // 1000)
    assert state.silences(active_at_us=T0.value // 1000) == []
    with pytest.raises(DetectorError, match="must end after"):
        state.add_silence(["market=DE"], T0, T0, "ana", "")
