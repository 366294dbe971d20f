"""Each event's (window, series) as one small integer, so counts and sums are one bincount.

A batch of a few thousand events touches a few dozen windows and a handful of series. Counting
them with a dict per event costs a hash of a (window, key) tuple each; numbering the series
once (their hashes are cached strings) and the windows by arithmetic gives every event a
group code, and ``numpy.bincount`` does the rest in C.

>>> import numpy as np
>>> g = Groups(np.array([0, 0, 300, 300]), ["DE", "FR", "DE", "DE"], width=300)
>>> counts = g.count()
>>> [(w, k, int(counts[code])) for w, k, code in g.present(counts)]
[(0, 'DE', 1), (0, 'FR', 1), (300, 'DE', 2)]
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["Groups", "take_spans", "window_spans"]


class Groups:
    """Group codes of a batch: ``code = window_number * n_keys + key_number``."""

    def __init__(self, ws: np.ndarray, keys: Sequence[Any], width: int) -> None:
        self.ws = ws
        self.width = width
        self.keys = list(dict.fromkeys(keys))
        n_keys = len(self.keys)
        self.w0 = int(ws.min()) if len(ws) else 0
        windows = (ws - self.w0) // width
        if n_keys == 1:
            self.codes = windows
        else:
            number = {k: i for i, k in enumerate(self.keys)}
            key_codes = np.fromiter(map(number.__getitem__, keys), np.int64, len(ws))
            self.codes = windows * n_keys + key_codes
        self.size = (int(windows.max()) + 1) * n_keys if len(ws) else 0

    def subset(self, mask: np.ndarray) -> Groups:
        """The groups of the events where ``mask`` is true (same numbering)."""
        out = object.__new__(Groups)
        out.ws, out.width, out.keys = self.ws[mask], self.width, self.keys
        out.w0, out.codes, out.size = self.w0, self.codes[mask], self.size
        return out

    def count(self) -> np.ndarray:
        """Events per group."""
        return np.bincount(self.codes, minlength=self.size)

    def sum(self, weights: np.ndarray) -> np.ndarray:
        """Sum of ``weights`` per group."""
        return np.bincount(self.codes, weights=weights, minlength=self.size)

    def present(self, counts: np.ndarray) -> Iterator[tuple[int, Any, int]]:
        """(window start, key, group code) of every group with events (``counts`` > 0)."""
        n_keys = len(self.keys)
        for code in np.flatnonzero(counts).tolist():
            w, k = divmod(code, n_keys)
            yield self.w0 + w * self.width, self.keys[k], code


def window_spans(ws: np.ndarray) -> dict[int, list[tuple[int, int]]]:
    """Per window start, the stretches ``[a, b)`` of the batch that fall in it (a batch is
    nearly in time order, so a window is usually one stretch)."""
    cuts = [0, *(np.flatnonzero(ws[1:] != ws[:-1]) + 1).tolist(), len(ws)]
    spans: dict[int, list[tuple[int, int]]] = {}
    for a, b in itertools.pairwise(cuts):
        spans.setdefault(int(ws[a]), []).append((a, b))
    return spans


def take_spans(seq: Sequence[Any], spans: Sequence[tuple[int, int]]) -> Sequence[Any]:
    """The items of ``seq`` in the stretches ``spans``, in order."""
    if len(spans) == 1:
        a, b = spans[0]
        return seq[a:b]
    return [x for a, b in spans for x in seq[a:b]]
