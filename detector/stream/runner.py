"""``detector run``: the pipeline on a Kafka topic, exactly once, surviving kill -9.

Per batch: poll -> decode -> validate and aggregate with the same
:class:`~detector.aggregation.windows.WindowAggregator` as ``detector backtest`` -> close the
windows the watermark has passed -> dead-letter the rejected records to ``<topic>.dlq`` (the
reason in a header) -> score the closed windows now and then -> one store transaction with
the points, the anomalies, the aggregator's state and the next offset of every partition.

Why this gives exactly-once without Kafka transactions: the store, not Kafka, says where each
partition resumes, and it says so in the same transaction as the state those records built.
Killed anywhere, a restart loads the last committed state, seeks every partition to the
offset stored with it, and reads the uncommitted records again into the same state: nothing
lost, nothing counted twice. (Dead letters are flushed to the broker before that commit, so
a crash can repeat a dead letter, never lose one; each carries its origin to tell.)

Scoring is causal (each window judged from earlier windows only), so scoring a window in the
batch it closes or a few batches later gives the same verdict: the runner scores as soon as it
has read the backlog, and while catching up on one at most every ``score_every`` seconds, so
that it does not re-fit the models for every batch.

Alerting: the scored windows go through the pipeline's alert router
(:mod:`detector.alerting`), on the wall clock. Alert episodes and the notifications the router
decides to send are written to the store in the same commit as the offsets and the router's
state, so a crash neither loses a notification nor makes a different one: a replay produces
the same notifications with the same idempotency keys. A background sender (one thread per
receiver) delivers the store's outbox; scoring never waits for a receiver.
"""

from __future__ import annotations

import logging
import pickle
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pandas as pd

from detector.aggregation.windows import Point, Rejected, WindowAggregator
from detector.errors import DetectorError
from detector.events.schema import Undecodable
from detector.logs import correlation
from detector.pipeline.config import Pipeline
from detector.store import PartitionMoved, StateConflict, Store
from detector.stream.sharing import SharingMixin, without_partitions
from detector.stream.source import Batch, Source, TopicPartition

__all__ = ["RunStats", "StreamRunner"]

log = logging.getLogger("detector.stream")

SourceFactory = Callable[..., Source]


#: History read before the windows a round scores (see detector.stream.scoring).
SCORE_LOOKBACK = pd.Timedelta(days=35)


@dataclass
class RunStats:
    """What a run did (for logs, ``/metrics`` later, and tests)."""

    records: int = 0
    batches: int = 0
    rejected: int = 0
    dead_letters: int = 0
    points: int = 0
    anomalies: int = 0
    alerts: int = 0  # alert transitions (opened, updated, resolved)
    notifications: int = 0  # written to the outbox
    reloads: int = 0  # pipeline reloads applied (SIGHUP)
    reloads_refused: int = 0  # invalid files, or changes that need a restart
    rebases: int = 0  # commits retried after a partition moved to another instance
    forwarded: int = 0  # records read as a member and forwarded to the merger
    merged: int = 0  # records other instances forwarded, folded in as the merger
    role_changes: int = 0  # became the merger, or stopped being it
    commits: int = 0
    scorings: int = 0
    errors: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    #: Seconds from closing windows to their scores being committed (the latest 10,000).
    score_latency: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))


class StreamRunner(SharingMixin):
    """Consumes ``topic`` in consumer group ``group`` and keeps the results in ``store``.

    Several instances of one group share the work (:mod:`detector.stream.sharing`): the one
    holding the group's lease merges (aggregates, scores, routes), the others forward what
    they read to it through the store.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        store: Store,
        *,
        topic: str,
        group: str,
        bootstrap_servers: str,
        client: str = "kafka-python",
        dead_letters: bool = True,
        max_records: int = 5_000,
        poll_timeout: float = 0.5,
        idle_close: float = 30.0,
        score_every: float = 5.0,
        score_budget: int = 400_000,
        score_lookback: pd.Timedelta | None = SCORE_LOOKBACK,
        session_timeout_ms: int = 10_000,
        idle_partition: float = 2.0,
        commit_every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        alerting: bool = True,
        wall: Callable[[], pd.Timestamp] | None = None,
        metrics: Any = None,
        lease_ttl: float | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.store = store
        self.topic = topic
        self.group = group
        self.bootstrap_servers = bootstrap_servers
        self.source_factory = CLIENTS[client]
        self.dead_letters = dead_letters
        self.max_records = max_records
        self.poll_timeout = poll_timeout
        self.idle_close = idle_close
        self.score_every = score_every
        self.session_timeout_ms = session_timeout_ms
        self.clock = clock
        self.stats = RunStats()
        self.agg = WindowAggregator(pipeline)
        self.agg.keep_exemplars = True  # alerts name an event of their window
        self.offsets: dict[TopicPartition, int] = {}
        self.scored_until: pd.Timestamp | None = None
        self._producer: Any = None
        self._source: Source | None = None
        self.idle_partition = idle_partition
        self.commit_every = commit_every
        self._pending: list[Point] = []  # closed since the last commit
        #: Windows closed since the last scoring, (series, start): what the next scoring
        #: reads (None: unknown, every series). Series known, for planning scoring slices.
        self._closed: set[tuple[str, int]] | None = set()
        self._unscored = False  # windows closed and not scored yet (the merger's; see _load)
        self._catalogue: Any = None
        self._repairs_taken: list[tuple[str, int]] = []  # repaired verdicts applied, to drop
        self._feedback: Any = None  # labelled alerts' lessons (see _feedback_calendar)
        self._feedback_at = -float("inf")
        #: Stored points scored at once, and how much history before the windows scored is
        #: read (see detector.stream.scoring).
        self.score_budget = score_budget
        self.score_lookback = score_lookback
        #: Batches read and folded in since the last commit, and the state version they build
        #: on: a merger that loses a partition folds the others' again on the stored state
        #: (:meth:`_rebase`); one that loses the lease forwards them (detector.stream.sharing).
        self._replay: list[Batch] = []
        self.version = 0
        self._held: set[TopicPartition] = set()  # partitions held since the last assignment
        self._stop = threading.Event()
        self._dirty = False  # records read since the last commit
        self._heard: dict[TopicPartition, float] = {}
        self._started = self._idle_checked = clock()
        #: Prometheus metrics (:class:`detector.ops.metrics.StreamMetrics`), or None.
        self.metrics = metrics
        self.last_loop = self.last_poll_ok = clock()  # for liveness and readiness
        self._observed = clock()
        self._lag_checked = clock()
        self._counted: dict[str, int] = {}  # aggregator counters already exported
        # The alert router, its durable state and the sender (None with alerting=False).
        self.wall = wall or (lambda: pd.Timestamp.now(tz="UTC"))
        self.router: Any = None
        self.alert_state: Any = None
        self.sender: Any = None
        self._alert_writes: list[Any] = []  # alert transitions since the last commit
        self._notes: list[Any] = []  # notifications since the last commit
        self._refreshed = -float("inf")
        #: A pipeline to switch to (set by :meth:`request_reload`, from SIGHUP), applied
        #: between batches by the consumer's own thread.
        self._reload: Callable[[], Pipeline] | None = None
        # The merger lease lasts a session timeout: a dead merger is replaced about when
        # the group hands its partitions on.
        self._init_sharing(lease_ttl or max(2.0, session_timeout_ms / 1000))
        if alerting:
            from detector.alerting.router import Router
            from detector.alerting.state import AlertState

            self.router = Router.for_pipeline(pipeline)
            self.alert_state = AlertState(store, pipeline.name)
            self.agg.log_silence = True

    # ----------------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, max_idle: float | None = None) -> RunStats:
        """Consume until ``stop`` is set (SIGTERM/SIGINT in the CLI), or until no record has
        come for ``max_idle`` seconds; then commit, leave the group and return."""
        stop = self._stop = stop or threading.Event()
        lease = self._ask_lease()  # the first instance of a group merges from the start
        self.merging = lease is not None and lease.held
        if self.merging:
            log.info("%s merges for %s/%s", self.instance, self.pipeline.name, self.group)
            self._load()
        self._start_sender()
        self._source = self._open_source(stop, max_idle)
        if self._source is None:  # stopped while waiting for the broker
            self._stop_sender()
            self._stop_keeper()
            return self.stats
        if self.merging:
            self._expect_all()
        self._start_keeper()
        last_record = last_score = last_commit = self.clock()
        # a join takes up to about the session timeout; past that, no partitions is idleness
        join_by = last_record + 2 * self.session_timeout_ms / 1000 + 5
        backoff = 0.5
        try:
            while not stop.is_set():
                if self._reload is not None:
                    self._apply_reload()
                try:
                    records = self._source.poll(self.poll_timeout, self.max_records)
                except Exception as exc:  # the broker went away: log, back off, go on
                    self.stats.errors += 1
                    if self.metrics is not None:
                        self.metrics.error("poll")
                    log.warning("poll failed (%s); retrying in %.1f s", exc, backoff)
                    stop.wait(backoff * random.uniform(0.5, 1.5))
                    backoff = min(backoff * 2, 30.0)
                    continue
                backoff = 0.5
                now = self.clock()
                self.last_loop = self.last_poll_ok = now
                self._mind_role()
                full = len(records) >= self.max_records
                # (waiting for a group join is not being idle)
                if len(records) or (not self._source.assignment() and now < join_by):
                    last_record = now
                if not self.merging:  # a member: forward what it reads to the merger
                    self._member_step(records, now, caught_up=not full)
                    idle = max_idle is not None and not records and now - last_record >= max_idle
                    if idle and not len(self._outbound) and self.merger_alive():
                        break  # (a dead merger's lease is taken over first)
                    continue
                if self._lost and len(records):
                    records = without_partitions(
                        records, {p for t, p in self._lost if t == self.topic}
                    )
                # Others' forwarded records first: a partition handed over to this instance
                # has its earlier records there.
                got, points, more = self._take_forwarded(now)
                if got:
                    last_record = now
                self._dirty |= bool(len(records)) or bool(got)
                if len(records):
                    points += self._aggregate(records)
                elif (
                    not got
                    and now - last_record >= self.idle_close
                    and self.agg.max_ts > -float("inf")
                ):
                    # Quiet: let stream time run on with the wall clock, so that a quiet
                    # market still shows its zero windows (re-emitted if a late event comes).
                    points += self.agg.close(
                        force_until=self.agg.max_ts + (now - last_record) - self.agg.lateness
                    )
                before = self.agg.watermark
                self.agg.tick(time.time())
                idle = self._check_idle(now, 5.0 if full else 1.0)
                if idle or self.agg.watermark > before:  # the watermark moved: close
                    points += self.agg.close()
                if points:
                    self._closed_wall_us = int(time.time() * 1e6)
                    self._unscored = True
                    self._pending += points
                    if self._closed is not None:
                        self._closed.update((p.series, p.start) for p in points)
                    if self._catalogue is not None:
                        self._catalogue.add((p.metric, p.series) for p in points)
                if self.metrics is not None:
                    self._observe(points, now)
                if self.router is not None and now - self._lag_checked >= 5.0:
                    self._lag_checked = now
                    self._watch_lag()
                    self._apply_repairs()
                if self.router is not None:  # apps that went silent, or were heard again
                    silence = self.agg.drain_silence()
                    if silence:
                        changed = self.router.observe_sources(silence, self.wall())
                        self._alert_writes += changed
                        self.stats.alerts += len(changed)
                # Score what closed as soon as the backlog is read (a poll that did not fill);
                # while catching up, every score_every seconds. Commit then, and while catching
                # up every commit_every seconds (re-applying a batch's points after a crash is
                # harmless: they are upserts, recomputed from the same state).
                anomalies = None
                caught_up = not full and not more
                if self._unscored and (caught_up or now - last_score >= self.score_every):
                    anomalies = self._score(self._pending)
                    last_score = now
                self._route()
                due = anomalies is not None or caught_up or now - last_commit >= self.commit_every
                routed = bool(self._notes or self._alert_writes or self._repairs_taken)
                if due and (self._dirty or self._pending or anomalies is not None or routed):
                    scored_now = bool(points) and anomalies is not None
                    self._commit(anomalies)
                    last_commit = now
                    if scored_now:
                        self.stats.score_latency.append(self.clock() - now)
                idle = max_idle is not None and not records and not got
                if idle and now - last_record >= max_idle:
                    break
            if self.merging:
                final = self._score(self._pending)
                self._route()
                self._commit(final)
            else:
                self._forward()
        finally:
            self._stop_keeper()
            self._stop_sender()
            self._source.close()
            if self._producer is not None:
                self._producer.close(timeout=10)
        return self.stats

    # ----------------------------------------------------------------------------------------

    def _open_source(self, stop: threading.Event, max_idle: float | None) -> Source | None:
        """Join the group; while the broker cannot be reached, log and retry with backoff
        (a consumer started before its broker waits for it). With ``max_idle``, give up after
        that long with an error that names the servers."""
        started, backoff = self.clock(), 0.5
        while True:
            try:
                return self.source_factory(
                    self.bootstrap_servers,
                    [self.topic],
                    self.group,
                    offsets=self._assignment_offsets,
                    on_revoked=self._revoked,
                    on_assigned=self._assigned,
                    session_timeout_ms=self.session_timeout_ms,
                )
            except DetectorError:
                raise
            except Exception as exc:
                self.stats.errors += 1
                if max_idle is not None and self.clock() - started >= max_idle:
                    raise DetectorError(
                        f"cannot reach Kafka at {self.bootstrap_servers} ({exc}); is the broker "
                        "running, and are --bootstrap-servers / DETECTOR_BOOTSTRAP_SERVERS right?"
                    ) from exc
                log.warning(
                    "cannot reach Kafka at %s (%s); retrying in %.1f s",
                    self.bootstrap_servers, exc, backoff,
                )  # fmt: skip
                if stop.wait(backoff * random.uniform(0.5, 1.5)):
                    return None
                backoff = min(backoff * 2, 30.0)

    def _load(self) -> None:
        snap = self.store.load(self.pipeline.name, self.group)
        self.offsets = dict(snap.offsets)
        self.version = snap.version
        for tp in self._held:
            self._base[tp] = snap.offsets.get(tp)
        if snap.state is not None:
            state = pickle.loads(snap.state)  # our own store's bytes (see snapshot())
            self.agg.restore(state["aggregator"])
            self.agg.doubt_idle(time.time())
            if self.router is not None and state.get("router") is not None:
                self.router.restore(state["router"])
            self.scored_until = state["scored_until"]
            self._unscored = state["unscored"]
            # windows closed since the last scoring (None in older states: score every series)
            closed = state.get("closed")
            self._closed = None if closed is None else set(closed)
            log.info("resuming %s/%s at %s", self.pipeline.name, self.group, self.offsets)
        else:
            self._unscored, self._closed = False, set()

    def _state(self) -> bytes:
        return pickle.dumps(
            {
                "version": 1,
                "aggregator": self.agg.snapshot(),
                "scored_until": self.scored_until,
                "unscored": self._unscored,
                "closed": None if self._closed is None else sorted(self._closed),
                "router": None if self.router is None else self.router.snapshot(),
            },
            protocol=5,
        )

    def _revoked(self, tps: set[TopicPartition]) -> None:
        """Partitions go to another member: commit (or forward) what was read of them. The
        merger's windows still wait for them: their records come forwarded from now on."""
        try:
            if self.merging and (self._dirty or self._pending):
                self._commit()
            elif not self.merging:
                self._forward()
        except DetectorError as exc:  # stopping with a failing store: already reported
            log.warning("%s", exc)
        self._held -= tps
        for tp in tps:
            self._base.pop(tp, None)
        if self.merging:  # their next records come forwarded, later than they would here
            self.agg.doubt_idle(time.time(), (p for t, p in tps if t == self.topic))
        self._export_assignment()

    def _assigned(self, tps: set[TopicPartition]) -> None:
        """Windows wait for each partition's first events (it may hold older ones); the
        records forwarded from a partition's last owner are folded before its own."""
        self._held |= tps
        self._lost -= tps
        self._quiet_marked -= tps
        now = self.clock()
        for tp in tps:  # (its records may be on their way: see _quiet_partitions)
            self._heard[tp] = now
        if self.merging:
            self._expect_all()
            self._fwd_force = True
        self._export_assignment()

    def _export_assignment(self) -> None:
        if self.metrics is not None and self._source is not None:
            held = {p for t, p in self._source.assignment() if t == self.topic}
            self.metrics.assigned(self.topic, held)

    def _check_idle(self, now: float, every: float = 1.0) -> bool:
        """Partitions read to their high watermark and quiet for ``idle_partition`` seconds
        stop holding the watermark back (an empty partition would hold it forever)."""
        if now - self._idle_checked < every or self._source is None:
            return False
        self._idle_checked = now
        quiet = [tp[1] for tp in self._quiet_partitions(now)]
        before = self.agg.watermark
        if quiet:
            self.agg.idle_partitions(quiet)
        return self.agg.watermark > before

    def _quiet_partitions(self, now: float) -> list[TopicPartition]:
        """Held partitions read to their end and without a record for ``idle_partition``
        seconds. A partition just assigned counts as heard at its assignment, and one with
        no fetch answer yet (no high watermark) is not at its end unless that has lasted
        10 s: its records may well be on their way."""
        out = []
        for tp in self._source.assignment() & self._held:
            heard = self._heard.get(tp, self._started)
            if now - heard < self.idle_partition:
                continue
            high, pos = self._source.highwater(tp), self._source.position(tp)
            if high is None and now - heard < 10.0:
                continue
            if pos is not None and (high is None or pos >= high):
                out.append(tp)
        return out

    def _fold(self, batch: Batch) -> list[Rejected]:
        """Decode a batch into the aggregator and move the offsets past it."""
        values = batch.values
        try:  # the whole batch in one C loop; a bad record sends it through the slow path
            events: list[Any] = list(map(orjson.loads, values))
        except (orjson.JSONDecodeError, TypeError):
            events = [_decode(v) for v in values]
        rejected = self.agg.add(
            events, batch.origin, partitions=batch.partitions, traces=batch.trace
        )
        self._advance(batch)
        return rejected

    def _advance(self, batch: Batch) -> list[TopicPartition]:
        """Move the offsets past a batch read (or folded); returns its partitions."""
        now = self.clock()
        # The last offset of each partition (they rise within one): dict keeps the last.
        last: dict[int, int] = dict(zip(batch.partitions, batch.offsets, strict=True))
        tps = []
        for p, o in last.items():
            tp = (batch.topic, p)
            self.offsets[tp] = max(self.offsets.get(tp, 0), o + 1)
            self._heard[tp] = now
            tps.append(tp)
        return tps

    def _aggregate(self, batch: Batch) -> list[Point]:
        rejected = self._fold(batch)
        # Headers were read for the exemplars; holding the client's record objects until the
        # commit (for a replay) would keep hundreds of thousands of them alive for the GC.
        batch.headers = None
        self._replay.append(batch)  # until committed: another consumer may commit first
        self.stats.records += len(batch)
        self.stats.batches += 1
        if self.metrics is not None:
            self.metrics.consumed(self.topic, len(batch))
            for r in rejected:
                self.metrics.rejected(self.topic, r.reason)
        if rejected:
            self._dead_letter(rejected, batch)
        return self.agg.close()

    def _dead_letter(self, rejected: list[Rejected], batch: Batch) -> None:
        self.stats.rejected += len(rejected)
        for r in rejected:
            key = r.reason.split(":")[0][:60]
            self.stats.rejected_by_reason[key] = self.stats.rejected_by_reason.get(key, 0) + 1
            log.info("rejected %s: %s", r.origin, r.reason)
        if not self.dead_letters:
            return
        producer = self._dlq_producer()
        where = {batch.origin(i): i for i in range(len(batch))} if rejected else {}
        for r in rejected:
            value = batch.values[where[r.origin]]
            producer.send(
                f"{self.topic}.dlq",
                value=value if value is not None else b"",
                headers=[
                    ("reason", r.reason.encode()),
                    ("origin", r.origin.encode()),
                    ("pipeline", self.pipeline.name.encode()),
                ],
            )
        self.stats.dead_letters += len(rejected)
        if self.metrics is not None:
            self.metrics.dead_lettered(self.topic, len(rejected))

    def _dlq_producer(self) -> Any:
        if self._producer is None:
            from kafka import KafkaProducer

            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                acks="all",
                linger_ms=5,
                retries=10,
                retry_backoff_ms=200,
                request_timeout_ms=10_000,
                max_block_ms=10_000,
            )
        return self._producer

    def _score(self, points: list[Point]) -> pd.DataFrame | None:
        """Score the windows closed since the last scoring, with the stored history.

        One slice of series at a time (:func:`~detector.stream.scoring.score_closed`), so
        that memory follows ``score_budget``, not the number of series.
        """
        if not self._unscored:
            return None
        from detector.backtest import points_frame
        from detector.stream.scoring import SeriesCatalogue, score_closed

        if self._catalogue is None:  # once per process: every other change comes from here
            self._catalogue = SeriesCatalogue.load(self.store, self.pipeline.name)
            self._catalogue.add((p.metric, p.series) for p in points)
        started = time.perf_counter()
        scores, newest = score_closed(
            self.store,
            self.pipeline,
            points_frame(points),
            self._catalogue,
            since=self.scored_until,
            closed=self._closed,
            timezones=self.agg.series_timezones(),
            budget_rows=self.score_budget,
            lookback=self.score_lookback,
            feedback=self._feedback_calendar(),
        )
        if self.metrics is not None:
            self.metrics.observe_scoring(time.perf_counter() - started)
        exemplars = self.agg.drain_exemplars()
        if exemplars and not scores.empty:
            scores = _with_exemplars(scores, exemplars)
        if newest is None or scores.empty:
            self.scored_until = newest
            self._unscored, self._closed = False, set()
            return None
        if self.router is not None:
            changed = self.router.observe(scores, self.wall())
            self._alert_writes += changed
            self.stats.alerts += len(changed)
        self.scored_until = newest
        self._unscored, self._closed = False, set()
        self.stats.scorings += 1
        found = scores.loc[scores["is_anomaly"].astype(bool)]
        ids = found["event_id"] if "event_id" in found else pd.Series(None, index=found.index)
        traces = found["trace_id"] if "trace_id" in found else pd.Series(None, index=found.index)
        for row, event_id, trace in zip(found.itertuples(index=False), ids, traces, strict=True):
            with correlation(
                series=row.series,
                window=str(row.timestamp),
                event_id=event_id if isinstance(event_id, str) else None,
                trace_id=trace if isinstance(trace, str) else None,
            ):
                log.warning("anomaly %s at %s: %s", row.series, row.timestamp, row.reason)
        self.stats.anomalies += len(found)
        if self.metrics is not None and len(found):
            metric = found["series"].astype(str).str.partition("{")[0]
            for (name, kind), n in found.groupby([metric, found["kind"]]).size().items():
                self.metrics.anomalies(name, kind, int(n))
        return found

    # -- self-monitoring ----------------------------------------------------------------------

    def _observe(self, points: list[Point], now: float) -> None:
        """Export what this loop did; the slower gauges (lag, sender) once a second."""
        m = self.metrics
        if points:
            per: dict[str, int] = {}
            for p in points:
                per[p.metric] = per.get(p.metric, 0) + 1
            for metric, n in per.items():
                m.windows_closed(metric, n)
            m.window_closed_at()
        c = self.agg.counters
        for key, fn in (("late", m.late), ("duplicate", m.duplicates)):
            delta = c.get(key, 0) - self._counted.get(key, 0)
            if delta > 0:
                fn(self.topic, delta)
                self._counted[key] = c.get(key, 0)
        if now - self._observed < 1.0:
            return
        self._observed = now
        if self.agg.watermark > -float("inf"):
            m.watermark(self.agg.watermark)
        if self._source is not None:
            for tp in self._source.assignment():
                high, pos = self._source.highwater(tp), self._source.position(tp)
                if high is not None and pos is not None:
                    m.lag(tp[0], tp[1], max(0, high - pos))
        if self.sender is not None:
            m.observe_sender(self.sender.workers)

    # -- hot reload ---------------------------------------------------------------------------

    def request_reload(self, load: Callable[[], Pipeline]) -> None:
        """Reload the pipeline between batches (safe to call from a signal handler).

        ``load`` reads and validates the file; an invalid file, or one that changes what
        is aggregated, is refused with the reasons logged and the running pipeline goes on.
        """
        self._reload = load

    def _apply_reload(self) -> None:
        load, self._reload = self._reload, None
        assert load is not None
        try:
            new = load()
        except DetectorError as exc:
            self.stats.reloads_refused += 1
            log.error("reload refused, the running pipeline goes on:\n%s", exc)
            return
        changed = structural_changes(self.pipeline, new)
        if changed:
            self.stats.reloads_refused += 1
            log.error(
                "reload refused: %s change(s) what is aggregated (%s); restart detector run to "
                "apply them. The running pipeline goes on.",
                new.source_file,
                ", ".join(changed),
            )
            return
        self.pipeline = new
        if self.router is not None:
            from detector.alerting.router import Router

            snapshot = self.router.snapshot()
            router = Router.for_pipeline(new)
            try:
                router.restore(snapshot)
            except Exception as exc:  # a route or policy that went away: start its state anew
                log.warning("alert router state not carried over (%s); starting afresh", exc)
                router = Router.for_pipeline(new)
            self._stop_sender()
            self.router = router
            self._refreshed = -float("inf")
            self._start_sender()
        self.stats.reloads += 1
        log.info("reloaded %s: scoring and alerting settings applied", new.source_file)

    # -- alerting -----------------------------------------------------------------------------

    def _start_sender(self) -> None:
        if self.router is None:
            return
        from detector.alerting.receivers import build_receiver
        from detector.alerting.sender import Sender

        cfg = self.router.cfg
        # The router has applied each receiver's send_resolved already (and sends an episode
        # that began and ended unseen even so): the receivers themselves must not drop it.
        receivers = {
            r.name: build_receiver(r.model_copy(update={"send_resolved": True}))
            for r in cfg.receivers
        }
        self.sender = Sender(
            self.alert_state,
            receivers,
            policies={r.name: r.retry.policy() for r in cfg.receivers},
            breakers={r.name: r.breaker.build() for r in cfg.receivers},
        ).start()

    def _stop_sender(self) -> None:
        if self.sender is None:
            return
        self.sender.stop(timeout=30)
        for w in self.sender.workers.values():
            close = getattr(w.receiver, "close", None)
            if close is not None:
                close()
        self.sender = None

    def _route(self) -> None:
        """Refresh silences and acks now and then; collect notifications that fell due."""
        if self.router is None:
            return
        now = self.wall()
        tick = self.clock()
        if tick - self._refreshed >= self.router.cfg.refresh:
            self._refreshed = tick
            try:
                self._refresh(now)
            except Exception as exc:  # the store is down: keep the last known, say so
                log.warning("could not refresh silences and acks (%s)", exc)
        wake = self.router.next_wakeup()
        if wake is not None and wake <= now:
            notes = self.router.flush(now)
            self._notes += notes
            self.stats.notifications += len(notes)

    def _watch_lag(self) -> None:
        """How far behind the topic's end this consumer is: the ``pipeline_lag`` alert."""
        if self._source is None or self.router is None or self.router.lag is None:
            return
        total = 0
        for tp in self._source.assignment():
            high, pos = self._source.highwater(tp), self._source.position(tp)
            if high is not None and pos is not None:
                total += max(0, high - pos)
        changed = self.router.observe_lag(self.topic, total, self.wall())
        self._alert_writes += changed
        self.stats.alerts += len(changed)

    def _refresh(self, now: pd.Timestamp) -> None:
        from detector.alerting.silences import Silence

        state = self.alert_state
        us = now.value // 1000
        self.router.set_silences(
            Silence(s.id, s.matchers, s.starts_at, s.ends_at, s.created_by, s.comment)
            for s in state.silences(active_at_us=us)
        )
        self.router.set_acked(state.acked_fingerprints(us))

    def _write_alerts(self, cur: Any) -> None:
        now_us = self.wall().value // 1000
        self.alert_state.write_alerts(cur, self._alert_writes, now_us)
        self.alert_state.enqueue(self._notes, now_us, cur)
        if self._repairs_taken:
            self.store.drop_rescored(cur, self.pipeline.name, self._repairs_taken)

    def _feedback_calendar(self) -> Any:
        """What alerts labelled ``expected`` or ``new-normal`` teach the models (``detector
        alerts label``), read again at most every 30 s; None while there is none."""
        now = self.clock()
        if now - self._feedback_at >= 30.0:
            from detector.calendars import load_feedback

            try:
                self._feedback = load_feedback(self.store, self.pipeline.name)
                self._feedback_at = now
            except Exception as exc:  # the store is down: keep what was known
                log.warning("could not read alert feedback (%s)", exc)
        return self._feedback

    def _apply_repairs(self) -> None:
        """Correct the alerts with the verdicts ``detector repair`` changed: a window it found
        normal takes its point back out of an open alert (resolved when none is left, with the
        resolved notice); one it found anomalous with no alert open is notified once, as
        resolved (see :meth:`AlertTracker._rescored`). Applied rows are deleted in the commit
        that stores the alerts' new state."""
        if self.router is None or self._repairs_taken or self.scored_until is None:
            return
        try:
            changed = self.store.rescored(self.pipeline.name)
        except Exception as exc:  # the store is down: the next check will see them
            log.warning("could not read repaired verdicts (%s)", exc)
            return
        if changed.empty:
            return
        applied = changed.loc[changed["timestamp"] <= self.scored_until]
        if applied.empty:
            return
        alerts = self.router.observe(applied, self.wall())
        self._alert_writes += alerts
        self.stats.alerts += len(alerts)
        us = pd.DatetimeIndex(applied["timestamp"]).as_unit("us").asi8.tolist()
        self._repairs_taken = list(zip(applied["series"].astype(str), us, strict=True))
        log.info("applied %d repaired verdicts: %d alert changes", len(applied), len(alerts))

    def _assignment_offsets(self) -> dict[TopicPartition, int]:
        """Where newly assigned partitions resume: the store's offsets for partitions another
        member held until now, this consumer's own for the ones it kept."""
        try:
            stored = self.store.load(self.pipeline.name, self.group).offsets
        except Exception as exc:  # the store is down: resume from what this consumer knows
            log.warning("could not read the stored offsets (%s)", exc)
            return dict(self.offsets)
        for tp, offset in stored.items():
            if tp not in self._held:
                self.offsets[tp] = offset
                self._base[tp] = offset
        return dict(self.offsets)

    def _own_offsets(self) -> dict[TopicPartition, int]:
        """The offsets of the partitions this consumer holds (others belong to other members
        of the group, who write their own)."""
        if self._source is None:
            return {}
        held = self._source.assignment() - self._lost
        return {tp: o for tp, o in self.offsets.items() if tp in held}

    def _rebase(self) -> None:
        """Reload the group's state and fold the uncommitted batches into it again (after a
        partition moved to another instance: its batches were dropped first); forwarded
        rows are read again."""
        batches = self._replay
        self._reset_merger()
        self._load()
        self._expect_all()
        self._replay = []
        points: list[Point] = []
        for batch in batches:
            self._fold(batch)
            self._replay.append(batch)
            points += self.agg.close()
        if points:
            self._unscored = True
            if self._closed is not None:
                self._closed.update((p.series, p.start) for p in points)
        self._pending = points
        if self.router is not None:
            silence = self.agg.drain_silence()
            if silence:
                self._alert_writes += self.router.observe_sources(silence, self.wall())

    def _commit(self, anomalies: pd.DataFrame | None = None) -> None:
        """Dead letters to the broker, then one store transaction (the pending points, the
        anomalies, the alerts and notifications, the state, the offsets of the partitions
        this instance reads and the forwarded rows folded); retried until it holds. A member
        forwards instead."""
        if not self.merging:
            self._forward()
            return
        points = self._pending
        routed = bool(self._alert_writes or self._notes or self._repairs_taken)
        backoff = 0.5
        failures = 0
        while True:
            try:
                if self._producer is not None:
                    self._producer.flush(timeout=30)
                started = time.perf_counter()
                own = self._own_offsets()
                self.version = self.store.commit(
                    self.pipeline.name,
                    self.group,
                    offsets=own,
                    state=self._state(),
                    points=points,
                    anomalies=anomalies,
                    also=self._write_alerts if routed else None,
                    expect_version=self.version,
                    expect_offsets={tp: self._base.get(tp) for tp in own},
                    taken=self._taken,
                )
                self._base.update(own)
                self._taken_committed()
                self._replay = []
                self.stats.commits += 1
                if self.metrics is not None:
                    self.metrics.observe_commit(time.perf_counter() - started)
                    self.metrics.committed()
                if routed:
                    self._alert_writes, self._notes = [], []
                    self._repairs_taken = []
                    if self.sender is not None:
                        self.sender.wake()
                self.stats.points += len(points)
                self._pending = []
                self._dirty = False
                return
            except StateConflict as exc:
                # Another instance merged meanwhile (this one lost the lease while paused):
                # hand the uncommitted batches to it as a member.
                log.warning("the group's state moved on (%s): forwarding to its merger", exc)
                self._become_member()
                self._forward()
                return
            except PartitionMoved as exc:
                # Another instance reads these partitions now: drop what this one read of
                # them, fold the rest into the stored state again, and commit that.
                self.stats.rebases += 1
                log.warning("%s; dropping what this instance read of them", exc)
                self._lost.update(exc.partitions)
                gone = {p for t, p in exc.partitions if t == self.topic}
                self._replay = [without_partitions(b, gone) for b in self._replay]
                self._rebase()
                anomalies = self._score(self._pending) if self._unscored else None
                self._route()
                points = self._pending
                routed = bool(self._alert_writes or self._notes or self._repairs_taken)
                continue
            except Exception as exc:  # the store (or the broker, for dead letters) fails
                failures += 1
                backoff = self._store_failed(exc, "commit", failures, backoff)


#: What a running consumer cannot change: its state (open windows, dedup ids, offsets) was
#: built by these. Scoring (model, sensitivity, params), freshness bounds and alerting can.
_RESTART_FIELDS = ("sources", "emitters", "events", "segments")
_METRIC_SCORING = {"model", "sensitivity", "params", "description"}
_FRESHNESS_SCORING = {"max_age", "schedule", "description"}


def structural_changes(old: Pipeline, new: Pipeline) -> list[str]:
    """What differs between two pipelines in ways a running aggregator cannot take.

    >>> from detector.pipeline.config import parse_pipeline
    >>> a = parse_pipeline("name: p\\nmetrics: [{name: o, event: e, aggregation: count}]")
    >>> b = parse_pipeline("name: p\\nmetrics: [{name: o, event: e, aggregation: count, "
    ...                    "sensitivity: 2}]")
    >>> structural_changes(a, b)
    []
    >>> c = parse_pipeline("name: p\\nmetrics: [{name: o, event: e, aggregation: count, "
    ...                    "group_by: [market]}]")
    >>> structural_changes(a, c)
    ['metrics']
    """
    out = []
    if old.name != new.name:
        out.append("name")
    for f in _RESTART_FIELDS:
        if getattr(old, f) != getattr(new, f):
            out.append(f)

    def shape(items: Any, scoring: set[str]) -> list[dict[str, Any]]:
        return [{k: v for k, v in dict(i).items() if k not in scoring} for i in items]

    if shape(old.metrics, _METRIC_SCORING) != shape(new.metrics, _METRIC_SCORING):
        out.append("metrics")
    if shape(old.freshness, _FRESHNESS_SCORING) != shape(new.freshness, _FRESHNESS_SCORING):
        out.append("freshness")
    return out


def _decode(value: bytes | None) -> Any:
    if value is None:
        return Undecodable("", "empty record (no value)")
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Undecodable(value.decode("utf-8", "replace"), f"not JSON: {exc}")


def _kafka_python_source(*args: Any, **kwargs: Any) -> Source:
    from detector.stream.source import KafkaPythonSource

    return KafkaPythonSource(*args, **kwargs)


def _confluent_source(*args: Any, **kwargs: Any) -> Source:
    from detector.stream.confluent import ConfluentSource

    return ConfluentSource(*args, **kwargs)


#: Consumer backends by name (``client:`` in the pipeline's Kafka source, ``--client``).
CLIENTS: dict[str, SourceFactory] = {
    "kafka-python": _kafka_python_source,
    "confluent": _confluent_source,
}


def _with_exemplars(
    scores: pd.DataFrame, exemplars: dict[tuple[str, int], tuple[str, str | None]]
) -> pd.DataFrame:
    """``scores`` with ``event_id`` and ``trace_id``: the exemplar event of each row's window."""
    keys = list(exemplars)
    ex = pd.DataFrame(
        {
            "series": [k[0] for k in keys],
            "timestamp": pd.to_datetime([k[1] for k in keys], unit="s", utc=True),
            "event_id": [v[0] for v in exemplars.values()],
            "trace_id": [v[1] for v in exemplars.values()],
        }
    )
    ex["timestamp"] = ex["timestamp"].astype(scores["timestamp"].dtype)
    return scores.merge(ex, on=["series", "timestamp"], how="left")
