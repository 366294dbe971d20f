"""Forwarded records, offsets that move only from where their writer saw them, and the merger
lease, on both backends (see detector.store.forwarding)."""

from __future__ import annotations

import pytest

from detector.store import Forwarded, PartitionMoved, StateConflict, open_store

TP0, TP1 = ("t", 0), ("t", 1)


@pytest.fixture()
def store(store_url):
    s = open_store(store_url)
    yield s
    s.close()


def test_forward_moves_offsets_and_keeps_rows_in_fold_order(store) -> None:
    store.forward("p", "g", [Forwarded("t", 0, 0, 10, False, b"a")], {TP0: None})
    store.forward(
        "p", "g", [Forwarded("t", 0, 10, 10, True), Forwarded("t", 1, 5, 7, False, b"b")],
        {TP0: 10, TP1: None},
    )  # fmt: skip
    store.forward("p", "g", [Forwarded("t", 0, 10, 25, False, b"c")], {TP0: 10})
    assert store.load("p", "g").offsets == {TP0: 25, TP1: 7}
    keys = store.forwarded_keys("p", "g")
    assert [k.key for k in keys] == [("t", 0, 0, 10), ("t", 0, 10, 10), ("t", 0, 10, 25),
                                     ("t", 1, 5, 7)]  # fmt: skip
    assert [k.idle for k in keys] == [False, True, False, False]
    rows = store.forwarded_records("p", "g", [keys[2], keys[0]])
    assert [r.records for r in rows] == [b"c", b"a"]


def test_a_member_that_lost_its_partition_cannot_forward_it_again(store) -> None:
    store.forward("p", "g", [Forwarded("t", 0, 0, 10, False, b"a")], {TP0: None})
    # the new owner read on from 10; the old one (paused) still thinks the offset is 0
    store.forward("p", "g", [Forwarded("t", 0, 10, 20, False, b"new")], {TP0: 10})
    with pytest.raises(PartitionMoved) as err:
        store.forward(
            "p", "g", [Forwarded("t", 0, 0, 20, False, b"old"), Forwarded("t", 1, 0, 3, False)],
            {TP0: 0, TP1: None},
        )  # fmt: skip
    assert err.value.partitions == [TP0]
    assert "t[0] moved on" in str(err.value)
    # nothing of the refused forward was written, not even the partition that was fine
    assert store.load("p", "g").offsets == {TP0: 20}
    assert [k.key for k in store.forwarded_keys("p", "g")] == [("t", 0, 0, 10), ("t", 0, 10, 20)]
    with pytest.raises(PartitionMoved):  # "no offset yet" is a claim too
        store.forward("p", "g", [Forwarded("t", 0, 0, 5, False)], {TP0: None})


def test_the_merger_commit_deletes_what_it_folded_and_checks_its_own_offsets(store) -> None:
    store.forward("p", "g", [Forwarded("t", 1, 0, 10, False, b"a")], {TP1: None})
    keys = [k.key for k in store.forwarded_keys("p", "g")]
    v = store.commit("p", "g", offsets={TP0: 50}, state=b"s1", expect_offsets={TP0: None},
                     taken=keys)  # fmt: skip
    assert store.forwarded_keys("p", "g") == []
    assert store.load("p", "g").offsets == {TP0: 50, TP1: 10}
    # a member took TP0 over from 50 while this merger was paused at its old view
    store.forward("p", "g", [Forwarded("t", 0, 50, 60, False, b"b")], {TP0: 50})
    with pytest.raises(PartitionMoved):
        store.commit("p", "g", offsets={TP0: 70}, state=b"s2", expect_version=v,
                     expect_offsets={TP0: 50})  # fmt: skip
    snap = store.load("p", "g")
    assert (snap.state, snap.offsets[TP0], snap.version) == (b"s1", 60, v)
    # and a second merger's commit fences the first by the state version
    store.commit("p", "g", offsets={}, state=b"s3", expect_version=v)
    with pytest.raises(StateConflict):
        store.commit("p", "g", offsets={}, state=b"s4", expect_version=v)


def test_the_lease_is_held_renewed_taken_over_when_expired_and_released(store) -> None:
    a = store.lease("p", "g", "a", now_us=1_000, ttl_us=100)
    assert (a.held, a.holder, a.expires_us) == (True, "a", 1_100)
    b = store.lease("p", "g", "b", now_us=1_050, ttl_us=100)
    assert (b.held, b.holder) == (False, "a")
    a = store.lease("p", "g", "a", now_us=1_090, ttl_us=100, last_closed_us=7)
    assert (a.held, a.expires_us, a.last_closed_us) == (True, 1_190, 7)
    b = store.lease("p", "g", "b", now_us=1_191, ttl_us=100)  # a stopped renewing
    assert (b.held, b.holder, b.last_closed_us) == (True, "b", 7)
    assert not store.lease("p", "g", "a", now_us=1_200, ttl_us=100).held
    store.release_lease("p", "g", "b")
    assert store.lease("p", "g", "a", now_us=1_201, ttl_us=100).held
    assert store.lease("p", "other", "b", now_us=1_201, ttl_us=100).held  # per group


def test_an_idle_mark_given_again_after_a_rebalance_is_kept_once(store) -> None:
    store.forward("p", "g", [Forwarded("t", 0, 4, 4, True)], {TP0: None})
    store.forward("p", "g", [Forwarded("t", 0, 4, 4, True)], {TP0: 4})
    assert [k.key for k in store.forwarded_keys("p", "g")] == [("t", 0, 4, 4)]
