"""A member's side of sharing the work: records read, packed per partition for the merger.

See :mod:`detector.store.forwarding` for the why. A member does no decoding: it keeps each
record's value as Kafka gave it (and the trace id of the few records that carry one), so the
merger decodes, validates, dead-letters and aggregates every record exactly as it would
records it read itself, and a forwarded stream gives the same windows and the same dead
letters (with the same origins) as one instance alone.

>>> b = Batch("t", [0, 1, 0], [5, 9, 6], [b"a", b"b", b"c"])
>>> out = Outbound()
>>> out.add(b)
>>> rows = out.rows({("t", 0): 5}, quiet={("t", 2): 3})
>>> [(r.partition, r.first, r.next, r.idle) for r in rows]
[(0, 5, 7, False), (1, 9, 10, False), (2, 3, 3, True)]
>>> again = unpack(rows[0])
>>> again.offsets, again.values, again.origin(1)
([5, 6], [b'a', b'c'], 't[0]@6')
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field

from detector.logs import trace_id_from_headers
from detector.store.forwarding import Forwarded
from detector.stream.source import Batch, TopicPartition

__all__ = ["Outbound", "unpack"]


@dataclass
class _Part:
    offsets: list[int] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)
    traces: dict[int, str] = field(default_factory=dict)  # index -> trace id


@dataclass
class Outbound:
    """Records read since the last forward, per partition, in offset order."""

    topic: str = ""
    parts: dict[int, _Part] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(p.offsets) for p in self.parts.values())

    def add(self, batch: Batch) -> None:
        self.topic = batch.topic
        headers = batch.headers
        for i, (p, o, v) in enumerate(zip(batch.partitions, batch.offsets, batch.values,
                                          strict=True)):  # fmt: skip
            part = self.parts.get(p)
            if part is None:
                part = self.parts[p] = _Part()
            if headers is not None:
                h = headers(i)
                if h:
                    trace = trace_id_from_headers(list(h))
                    if trace is not None:
                        part.traces[len(part.offsets)] = trace
            part.offsets.append(o)
            part.values.append(v)

    def drop(self, partitions: set[int]) -> None:
        for p in partitions:
            self.parts.pop(p, None)

    def rows(
        self,
        base: Mapping[TopicPartition, int | None],
        quiet: Mapping[TopicPartition, int] | None = None,
    ) -> list[Forwarded]:
        """One row per partition with records, from where the store's offset stands
        (``base``; the first record's offset if the store has none) to after the last
        record; ``quiet``: partitions read to their end and quiet (-> their position),
        marked idle on their row or on an empty one."""
        quiet = dict(quiet or {})
        out = []
        for p, part in sorted(self.parts.items()):
            if not part.offsets:
                continue
            tp = (self.topic, p)
            first = base.get(tp)
            records = pickle.dumps((part.offsets, part.values, part.traces or None), protocol=5)
            out.append(
                Forwarded(self.topic, p, part.offsets[0] if first is None else first,
                          part.offsets[-1] + 1, quiet.pop(tp, None) is not None, records)
            )  # fmt: skip
        for (topic, p), position in sorted(quiet.items()):
            at = base.get((topic, p))
            at = position if at is None else at
            out.append(Forwarded(topic, p, at, at, True, b""))
        return out


def unpack(row: Forwarded) -> Batch:
    """The records of a forwarded row as a :class:`Batch` (trace ids as a header again)."""
    offsets, values, traces = pickle.loads(row.records)  # our own store's bytes (rows())
    batch = Batch(row.topic, [row.partition] * len(offsets), offsets, values)
    if traces:
        batch.headers = lambda i: [("trace_id", traces[i].encode())] if i in traces else None
    return batch
