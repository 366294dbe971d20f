"""Scoring a stream's closed windows against the stored history, a bounded slice at a time.

``detector run`` scores causally with each series' whole stored history, so that its verdicts
equal ``detector backtest``'s over the same events. Holding that history at once for every
series would make memory grow with the number of series (one day of 5-minute points for
100,000 series is 1.9 GiB as a long table). Series are independent, so the history is read
from the store and scored one slice of series at a time: a slice holds at most
``budget_rows`` stored points (always at least one series), and only the rows the round is
about are kept from it (new windows, and windows closed again by late events). Peak memory
then follows the budget, not the number of series.

:class:`SeriesCatalogue` knows which series exist and roughly how long they are, so slices are
planned without reading any points; it is read from the store once and kept up to date with
the windows the stream closes.

>>> cat = SeriesCatalogue({"orders": {"orders{market=DE}": 500, "orders{market=FR}": 500,
...                                   "orders{market=UK}": 10}})
>>> [(m, s) for m, s in cat.slices(600)]
[('orders', ['orders{market=DE}']), ('orders', ['orders{market=FR}', 'orders{market=UK}'])]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from detector.pipeline.config import Pipeline
from detector.store.base import Store

__all__ = ["SeriesCatalogue", "score_closed"]

#: Points read and scored at once by default: about 100 MB for the long table and the model's
#: arrays, whatever the number of series.
BUDGET_ROWS = 400_000

#: Series names per store query (one ``IN`` list; SQLite allows 32,766 parameters).
MAX_SERIES_PER_QUERY = 5_000


@dataclass
class SeriesCatalogue:
    """metric -> series -> number of stored points (approximate: for planning slices)."""

    sizes: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def load(cls, store: Store, pipeline: str) -> SeriesCatalogue:
        cat = cls()
        table = store.series_sizes(pipeline)
        for (metric, series, n) in table.itertuples(index=False, name=None):  # fmt: skip
            cat.sizes.setdefault(metric, {})[series] = int(n)
        return cat

    def add(self, keys: Iterable[tuple[str, str]]) -> None:
        """Count closed windows (``(metric, series)`` per window; re-emitted ones count again,
        which only makes a slice plan a little cautious)."""
        for metric, series in keys:
            per = self.sizes.setdefault(metric, {})
            per[series] = per.get(series, 0) + 1

    def slices(
        self,
        budget_rows: int,
        only: Mapping[str, set[str]] | None = None,
        cap: Mapping[str, int] | None = None,
    ) -> Iterator[tuple[str, list[str]]]:
        """``(metric, series)`` slices of at most ``budget_rows`` points each (a longer series
        is a slice of its own); with ``only``, just those series per metric; ``cap``: at most
        that many points per series of a metric are read (the scoring lookback)."""
        for metric in sorted(self.sizes):
            sizes = self.sizes[metric]
            names = sorted(sizes if only is None else only.get(metric, set()) & sizes.keys())
            most = (cap or {}).get(metric)
            chunk: list[str] = []
            rows = 0
            for name in names:
                n = sizes[name] if most is None else min(sizes[name], most)
                full = rows + n > budget_rows or len(chunk) >= MAX_SERIES_PER_QUERY
                if chunk and full:
                    yield metric, chunk
                    chunk, rows = [], 0
                chunk.append(name)
                rows += n
            if chunk:
                yield metric, chunk


def score_closed(
    store: Store,
    pipeline: Pipeline,
    fresh: pd.DataFrame,
    catalogue: SeriesCatalogue,
    *,
    since: pd.Timestamp | None,
    closed: Iterable[tuple[str, int]] | None,
    timezones: Mapping[str, str],
    budget_rows: int = BUDGET_ROWS,
    lookback: pd.Timedelta | None = None,
    feedback: Any = None,
) -> tuple[pd.DataFrame, pd.Timestamp | None]:
    """Score the windows closed since the last round; returns ``(scores, newest)``.

    ``fresh``: closed points not yet in the store (:func:`~detector.backtest.points_frame`).
    ``since``: the newest window scored before; rows after it are new. ``closed``: the
    ``(series, window start in seconds)`` closed since then, which also picks the windows
    closed again (late data) and the series to score; None (unknown after a restart) scores
    every series. ``scores`` has the output columns plus ``metric`` and, where ratios are
    scored, ``denominator``; ``newest`` is the newest window in the history seen.

    ``lookback``: read only the history that far before the earliest window scored (the
    models' own history, the calibration window and the confidence ramp fit in the default
    35 days), so that a round costs the same after a year as after a month. None reads it all.
    ``feedback``: what labelled alerts teach (:func:`detector.calendars.load_feedback`).
    """
    from detector.backtest import score_metrics

    keys = None if closed is None else set(closed)
    only: dict[str, set[str]] | None = None
    if keys is not None:
        only = {}
        touched = {s for s, _ in keys}
        for metric, sizes in catalogue.sizes.items():
            hit = touched & sizes.keys()
            if hit:
                only[metric] = hit
    again = pd.MultiIndex.from_tuples(
        [(s, pd.Timestamp(t, unit="s", tz="UTC")) for s, t in keys or ()],
        names=["series", "timestamp"],
    )
    fresh_by_metric = dict(tuple(fresh.groupby("metric", sort=False))) if len(fresh) else {}
    start = cap = None
    if lookback is not None and since is not None:
        earliest = min([since, *(t for _, t in again)]) if len(again) else since
        start = earliest - lookback
        widths = {m.name: m.window for m in [*pipeline.metrics, *pipeline.freshness]}
        cap = {n: int(lookback / w) + 2 for n, w in widths.items() if w is not None}
    parts: list[pd.DataFrame] = []
    newest = since
    for metric, names in catalogue.slices(budget_rows, only, cap):
        stored = store.points(pipeline.name, start=start, metrics=[metric], series=names)
        new = fresh_by_metric.get(metric)
        if new is not None:
            new = new.loc[new["series"].isin(names)]
            stored = pd.concat([stored, new], ignore_index=True) if len(stored) else new
        history = stored.drop_duplicates(["series", "timestamp"], keep="last")
        if history.empty:
            continue
        last = history["timestamp"].max()
        newest = last if newest is None else max(newest, last)
        scores = score_metrics(
            pipeline, history, causal=True, timezones=timezones, feedback=feedback
        )
        if since is not None:
            keep = scores["timestamp"] > since
            if len(again):
                keep |= pd.MultiIndex.from_frame(scores[["series", "timestamp"]]).isin(again)
            scores = scores.loc[keep]
        if scores.empty:
            continue
        scores = scores.assign(metric=metric)
        if history["denominator"].notna().any():  # ratio impact counts denominator units
            den = history[["timestamp", "series", "denominator"]]
            scores = scores.merge(den, on=["timestamp", "series"], how="left")
        parts.append(scores)
    if not parts:
        return pd.DataFrame(), newest
    return pd.concat(parts, ignore_index=True), newest
