"""The two roles of a ``detector run`` instance in a group: the merger and the members.

The why is in :mod:`detector.store.forwarding`. Here is the how, as a mixin of
:class:`~detector.stream.runner.StreamRunner`:

- a **lease keeper** thread takes or renews the group's merger lease about once a second
  (the holder renews it; the others take it over once it expires, i.e. one session timeout
  after the merger died or stopped renewing);
- the consumer loop switches roles when the lease says so: a new merger first forwards what
  it read as a member, then loads the group's state and folds every forwarded row; a merger
  that lost the lease (paused past its expiry, or its commit found the state moved on) turns
  its uncommitted batches into forwarded rows and drops its state;
- a **member** keeps what it polls (:class:`~detector.stream.forward.Outbound`) and forwards
  it every half second once caught up, every ``commit_every`` seconds while reading a
  backlog, and at once when a partition goes quiet (an idle mark, so that the merger's
  watermark does not wait for it);
- the **merger** reads the forwarded rows every quarter second, before the records it polled
  itself, and folds them as if it had read them.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from typing import Any

from detector.aggregation.windows import Point, WindowAggregator
from detector.errors import DetectorError
from detector.store.forwarding import Forwarded, Lease, PartitionMoved
from detector.stream.forward import Outbound, unpack
from detector.stream.source import Batch, TopicPartition

__all__ = ["SharingMixin", "without_partitions"]

log = logging.getLogger("detector.stream")

#: Records (by offset span) folded from forwarded rows per loop turn, beyond the rows of
#: partitions the merger reads itself (those are always folded whole: they come first).
FOLD_RECORDS = 200_000


def instance_name() -> str:
    """host:pid:random, unique among the group's instances (a restart is a new instance)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def without_partitions(batch: Batch, partitions: set[int]) -> Batch:
    """``batch`` without the records of ``partitions``."""
    keep = [i for i, p in enumerate(batch.partitions) if p not in partitions]
    out = Batch(batch.topic, [batch.partitions[i] for i in keep],
                [batch.offsets[i] for i in keep], [batch.values[i] for i in keep])  # fmt: skip
    return out


class SharingMixin:
    """Roles, lease and forwarding for :class:`~detector.stream.runner.StreamRunner`."""

    # provided by StreamRunner
    pipeline: Any
    store: Any
    group: str
    topic: str
    agg: WindowAggregator
    offsets: dict[TopicPartition, int]
    stats: Any
    metrics: Any
    router: Any
    clock: Any
    commit_every: float
    idle_partition: float
    _source: Any
    _replay: list[Batch]
    _heard: dict[TopicPartition, float]
    _held: set[TopicPartition]
    _started: float
    _stop: threading.Event
    _quiet_partitions: Any
    _advance: Any
    last_loop: float

    def _init_sharing(self, lease_ttl: float) -> None:
        self.instance = instance_name()
        self.lease_ttl = lease_ttl
        self.merging = False
        self._lease: Lease | None = None
        self._keeper: threading.Thread | None = None
        self._keeper_stop = threading.Event()
        self._closed_wall_us: int | None = None  # when this merger last closed a window
        #: Each held partition's offset in the store as this instance last saw or wrote it:
        #: offsets move only from there (see detector.store.forwarding).
        self._base: dict[TopicPartition, int | None] = {}
        self._lost: set[TopicPartition] = set()  # taken over by another instance meanwhile
        self._outbound = Outbound()
        self._forwarded_at = -float("inf")
        self._quiet_marked: set[TopicPartition] = set()
        self._quiet_checked = -float("inf")
        self._taken: list[tuple[str, int, int, int]] = []  # forwarded rows folded, uncommitted
        self._taken_set: set[tuple[str, int, int, int]] = set()
        self._fwd_checked = -float("inf")
        self._fwd_force = True

    # -- the lease ------------------------------------------------------------------------

    def _ask_lease(self) -> Lease | None:
        try:
            lease = self.store.lease(
                self.pipeline.name,
                self.group,
                self.instance,
                now_us=int(time.time() * 1e6),
                ttl_us=int(self.lease_ttl * 1e6),
                last_closed_us=self._closed_wall_us if self.merging else None,
            )
        except Exception as exc:  # the store is down: commits will say so too
            log.warning("could not renew the merger lease (%s)", exc)
            return None
        self._lease = lease
        return lease

    def _start_keeper(self) -> None:
        period = max(0.2, min(1.0, self.lease_ttl / 4))

        def keep() -> None:
            while not self._keeper_stop.wait(period * random.uniform(0.9, 1.1)):
                # A member whose consumer loop is stuck (a store it cannot write) must not
                # take the lease over: it could not merge either.
                if self.merging or self.clock() - self.last_loop < self.lease_ttl:
                    self._ask_lease()

        self._keeper = threading.Thread(target=keep, name="detector-lease", daemon=True)
        self._keeper.start()

    def _stop_keeper(self) -> None:
        self._keeper_stop.set()
        if self._keeper is not None:
            self._keeper.join(timeout=10)
        if self.merging:
            try:
                self.store.release_lease(self.pipeline.name, self.group, self.instance)
            except Exception as exc:
                log.warning("could not release the merger lease (%s)", exc)

    def merger_alive(self) -> bool:
        """Whether some instance holds an unexpired lease (as last seen)."""
        lease = self._lease
        return lease is not None and lease.expires_us > time.time() * 1e6

    def group_last_closed(self) -> float | None:
        """When the group's merger last closed a window (epoch seconds), as the lease says."""
        if self.merging:
            return None if self._closed_wall_us is None else self._closed_wall_us / 1e6
        lease = self._lease
        return None if lease is None or lease.last_closed_us is None else lease.last_closed_us / 1e6

    def _mind_role(self) -> None:
        """Switch roles if the lease keeper says the lease changed hands."""
        lease = self._lease
        if lease is None or lease.held == self.merging:
            return
        if lease.held:
            # The keeper's word may be old (this loop was held up in a rebalance or a slow
            # store, and stopped renewing meanwhile): ask again before taking the state.
            lease = self._ask_lease()
            if lease is None or not lease.held:
                return
            self._become_merger()
        else:
            log.info("merger lease now held by %s: forwarding to it", lease.holder)
            self._become_member()

    def _become_merger(self) -> None:
        if len(self._outbound):
            self._forward()
            if len(self._outbound):  # the store refused: stay a member for now
                return
        log.info("%s merges for %s/%s", self.instance, self.pipeline.name, self.group)
        self.merging = True
        self.stats.role_changes += 1
        self._reset_merger()
        self._load()
        self._expect_all()

    def _become_member(self) -> None:
        """Hand the merger's work back: uncommitted batches are forwarded, state dropped."""
        self.merging = False
        self.stats.role_changes += 1
        for batch in self._replay:
            self._outbound.add(batch)
        self._replay = []
        self._reset_merger()

    def _reset_merger(self) -> None:
        """Empty merger state (a member holds none; a new merger loads it)."""
        self.agg = WindowAggregator(self.pipeline)
        self.agg.keep_exemplars = True
        self.agg.log_silence = self.router is not None
        if self.router is not None:
            from detector.alerting.router import Router

            self.router = Router.for_pipeline(self.pipeline)
        self.scored_until = None
        self._alert_writes, self._notes, self._pending = [], [], []
        self._repairs_taken = []
        self._unscored, self._closed = False, set()
        self._catalogue = None
        self._taken, self._taken_set = [], set()
        self._fwd_force = True

    def _expect_all(self) -> None:
        """The merger's windows wait for every partition of the topic, whoever reads it."""
        if self._source is None:
            return
        try:
            parts = self._source.partitions()
        except Exception as exc:  # no metadata yet: the assigned ones, and again later
            log.warning("could not list the partitions of %s (%s)", self.topic, exc)
            parts = set()
        parts |= {p for t, p in self._source.assignment() if t == self.topic}
        self.agg.expect_partitions(parts)

    # -- a member ---------------------------------------------------------------------------

    def _buffer(self, batch: Batch) -> None:
        """Keep a polled batch for the next forward."""
        if self._lost:
            batch = without_partitions(batch, {p for t, p in self._lost if t == self.topic})
        self._outbound.add(batch)
        self._quiet_marked.difference_update(self._advance(batch))
        self.stats.records += len(batch)
        self.stats.batches += 1
        if self.metrics is not None:
            self.metrics.consumed(self.topic, len(batch))

    def _member_step(self, batch: Batch, now: float, caught_up: bool) -> None:
        if len(batch):
            self._buffer(batch)
        quiet = self._newly_quiet(now)
        wait = 0.5 if caught_up else self.commit_every
        if quiet or (len(self._outbound) and now - self._forwarded_at >= wait):
            self._forward(quiet)

    def _newly_quiet(self, now: float) -> dict[TopicPartition, int]:
        """Held partitions read to their end and quiet, not yet marked idle."""
        if now - self._quiet_checked < 1.0 or self._source is None:
            return {}
        self._quiet_checked = now
        out = {}
        for tp in self._quiet_partitions(now):
            if tp in self._quiet_marked or tp in self._lost:
                continue
            pos = self._source.position(tp)
            if pos is not None:
                out[tp] = pos
        return out

    def _forward(self, quiet: dict[TopicPartition, int] | None = None) -> None:
        """Forward what was read (and idle marks) in one transaction; retried until it holds.
        A partition another instance took over meanwhile is dropped from it."""
        backoff, failures = 0.5, 0
        while True:
            rows = self._outbound.rows(self._base, quiet)
            if not rows:
                return
            try:
                self.store.forward(self.pipeline.name, self.group, rows, self._base)
            except PartitionMoved as exc:
                log.warning("%s; dropping what this instance read of them", exc)
                self._lost.update(exc.partitions)
                self._outbound.drop({p for t, p in exc.partitions if t == self.topic})
                for tp in exc.partitions:
                    (quiet or {}).pop(tp, None)
                continue
            except Exception as exc:
                failures += 1
                backoff = self._store_failed(exc, "forward", failures, backoff)
                continue
            n = len(self._outbound)
            for row in rows:
                self._base[(row.topic, row.partition)] = row.next
                if row.idle:
                    self._quiet_marked.add((row.topic, row.partition))
            self._outbound = Outbound()
            self._forwarded_at = self.clock()
            self.stats.forwarded += n
            self.stats.commits += 1
            if self.metrics is not None:
                self.metrics.committed()
            return

    def _store_failed(self, exc: Exception, what: str, failures: int, backoff: float) -> float:
        """A store write (``what``: commit, forward) failed: count it; asked to stop and still
        failing, give up rather than hang (nothing is lost: the records since the last write
        are read again on restart); else wait with jitter. Returns the next backoff."""
        self.stats.errors += 1
        if self.metrics is not None:
            self.metrics.error("commit")
        if self._stop.is_set() and failures >= 3:
            raise DetectorError(
                f"could not {what} to the store {self.store.url} ({exc}); the records since "
                f"the last {what} will be read again when detector run restarts"
            ) from exc
        log.warning("%s failed (%s); retrying in %.1f s", what, exc, backoff)
        time.sleep(backoff * random.uniform(0.5, 1.5))
        return min(backoff * 2, 30.0)

    # -- the merger -------------------------------------------------------------------------

    def _take_forwarded(self, now: float) -> tuple[int, list[Point], bool]:
        """Fold the rows other instances forwarded: ``(records, closed points, more left)``."""
        if not self._fwd_force and now - self._fwd_checked < 0.25:
            return 0, [], False
        self._fwd_checked, self._fwd_force = now, False
        try:
            keys = self.store.forwarded_keys(self.pipeline.name, self.group)
        except Exception as exc:  # the store is down: the commit will say so
            log.warning("could not read forwarded records (%s)", exc)
            return 0, [], False
        held = self._source.assignment() if self._source is not None else set()
        chosen: list[Forwarded] = []
        budget = FOLD_RECORDS
        more = False
        for k in keys:
            if k.key in self._taken_set:
                continue
            tp = (k.topic, k.partition)
            if tp not in held:
                if budget <= 0:
                    more = True
                    continue
                budget -= k.next - k.first
            chosen.append(k)
        if not chosen:
            return 0, [], False
        n = 0
        for row in self.store.forwarded_records(self.pipeline.name, self.group, chosen):
            if row.records:
                batch = unpack(row)
                rejected = self._fold(batch)
                n += len(batch)
                if rejected:
                    self._dead_letter(rejected, batch)
                    if self.metrics is not None:
                        for r in rejected:
                            self.metrics.rejected(self.topic, r.reason)
            if row.idle:  # on another instance's word: see idle_partitions
                self.agg.idle_partitions([row.partition], since=time.time())
            self._taken.append(row.key)
            self._taken_set.add(row.key)
        self.stats.merged += n
        return n, self.agg.close(), more

    def _taken_committed(self) -> None:
        self._taken, self._taken_set = [], set()
