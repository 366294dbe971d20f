"""The event ids accepted within the lateness horizon, for counting a repeated event once.

A stream may deliver an event twice (a producer retry, a replay), so every accepted id is
remembered with the minute of its event time until no window it could touch can change any
more. The obvious structure, a dict ``id -> minute``, costs a hash insert per event and a
sweep to forget; here the ids of a batch are kept as they arrived (the id column and an array
of minutes), in generations of about ``GENERATION`` ids. A generation is forgotten whole once
its newest minute is past the horizon. Looking up the exact minute of an id scans a
generation's columns, which only happens for the rare id that repeats.

All remembered ids are also in one set, so that a batch's check is one intersection that walks
the batch, not the horizon: with partitions read at different speeds the horizon (set by the
slowest partition) can hold hundreds of thousands of ids. Forgetting a generation is then one
set difference, plus a put-back of the rare ids that another generation holds too (an id seen
again after its first sighting fell behind an event's horizon is accepted again).

>>> import numpy as np
>>> seen = SeenIds()
>>> seen.add([(["a", "b"], np.array([100, 101]))], {"a", "b"})
>>> seen.repeats({"b", "c"}), seen.minute_of("b"), seen.minute_of("c")
({'b'}, 101, None)
>>> seen.forget(before=102)
>>> seen.repeats({"b"})
set()
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["SeenIds"]

#: Ids per generation: forgetting is by whole generation, so small enough that it lags the
#: horizon by little.
GENERATION = 5_000


@dataclass
class _Generation:
    parts: list[tuple[Sequence[Any], np.ndarray]] = field(default_factory=list)
    newest: int = -(2**62)
    size: int = 0
    _ids: set[Any] | None = None  # built on demand (a repeated id, an evicted extra)

    @property
    def ids(self) -> set[Any]:
        if self._ids is None:
            self._ids = {i for ids, _ in self.parts for i in ids}
        return self._ids

    def __getstate__(self) -> dict[str, Any]:
        return {"parts": self.parts, "newest": self.newest, "size": self.size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.parts, self.newest, self.size = state["parts"], state["newest"], state["size"]
        self._ids = None


class SeenIds:
    """Accepted event ids with their minutes, forgotten by generation (see the module doc)."""

    def __init__(self) -> None:
        self._gens: list[_Generation] = []
        self._all: set[Any] = set()  # the union of the generations' ids
        self._extra: dict[Any, int] = {}  # id -> how many more generations hold it

    def __getstate__(self) -> dict[str, Any]:
        return {"gens": self._gens}  # the union is rebuilt on load

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._gens = state["gens"]
        self._all, self._extra = set(), {}
        for g in self._gens:
            ids = {i for part, _ in g.parts for i in part}
            self._count_again(ids)
            self._all |= ids

    def _count_again(self, idset: set[Any]) -> None:
        for i in idset & self._all:
            self._extra[i] = self._extra.get(i, 0) + 1

    def __len__(self) -> int:
        return sum(g.size for g in self._gens)

    def repeats(self, ids: set[Any]) -> set[Any]:
        """The ids of ``ids`` that are remembered (usually none: one set intersection)."""
        return ids & self._all

    def minute_of(self, eid: Any) -> int | None:
        """The minute of the newest accepted event with this id, or None."""
        best: int | None = None
        for g in self._gens:
            if eid not in g.ids:
                continue
            for ids, minutes in g.parts:
                for j, x in enumerate(ids):
                    if x == eid:
                        m = int(minutes[j])
                        best = m if best is None else max(best, m)
        return best

    def add(self, parts: Sequence[tuple[Sequence[Any], np.ndarray]], idset: set[Any]) -> None:
        """Remember accepted ids: ``parts`` are (ids, their minutes) columns and ``idset`` all
        those ids as a set (the caller has built it for :meth:`repeats`)."""
        parts = [(ids, minutes) for ids, minutes in parts if len(ids)]
        if not parts:
            return
        g = self._gens[-1] if self._gens and self._gens[-1].size < GENERATION else None
        if g is None:
            g = _Generation()
            self._gens.append(g)
        g._ids = None
        self._count_again(idset)
        self._all |= idset
        g.parts += parts
        g.newest = max(g.newest, *(int(m.max()) for _, m in parts))
        g.size += sum(len(ids) for ids, _ in parts)

    def forget(self, before: int) -> None:
        """Drop the generations whose every id is older than minute ``before``."""
        keep = []
        for g in self._gens:
            if g.newest >= before:
                keep.append(g)
            else:
                for ids, _ in g.parts:
                    self._all.difference_update(ids)
                held = [i for i in self._extra if i in g.ids] if self._extra else []
                for i in held:  # still held by another generation
                    self._all.add(i)
                    if self._extra[i] == 1:
                        del self._extra[i]
                    else:
                        self._extra[i] -= 1
        self._gens = keep
