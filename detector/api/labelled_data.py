"""Generated shop metrics with their incident labels, ready for :func:`~detector.api.search`.

Tuning needs series whose incidents are known; the shop generator
(:mod:`detector.datasets.shop`, ``detector generate shop``) makes them. Here several seeds are
stacked into one table, since scoring costs time per time step far more than per series.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from detector.datasets.shop import Incident, make_shop_metrics
from detector.errors import ConfigError
from detector.evaluation.incidents import Labels

__all__ = ["LabelledData", "shop_metrics"]


@dataclass(frozen=True)
class LabelledData:
    """Series with their labels, and where an evaluation should start (after the warm-up)."""

    data: pd.DataFrame  # timestamp, series, value, denominator
    labels: Labels
    start: pd.Timestamp
    series_kinds: dict[str, str] = field(default_factory=dict)


def shop_metrics(
    seeds: int | Sequence[int] = 1,
    *,
    weeks: int = 3,
    series: str | Sequence[str] | None = None,
    incidents: bool = True,
    gaps: bool = True,
) -> LabelledData:
    """Generated 5-minute shop metrics with their incident labels
    (:func:`detector.datasets.shop.make_shop_metrics`; ``detector generate shop``).

    With several ``seeds`` the series of each are named ``seed<N>/<series>`` and stacked in
    one table: scoring costs time per time step far more than per series, so three seeds cost
    about as much as one. ``series`` keeps series whose name starts with it (a string such as
    ``"orders."``) or the listed names; labels of other series are dropped. ``start`` is the
    end of the warm-up (incidents come after it).

    >>> shop = shop_metrics(seeds=[1, 2], series="orders.")
    >>> shop.data["series"].nunique(), sorted(shop.data["series"].unique())[0]
    (12, 'seed1/orders.AU')
    >>> sorted({i.series.split("/")[0] for i in shop.labels.incidents})
    ['seed1', 'seed2']
    """
    several = not isinstance(seeds, int)
    seed_list = list(seeds) if several else [seeds]  # type: ignore[arg-type]
    if not seed_list:
        raise ConfigError("shop_metrics needs at least one seed")
    frames, found, gap_list, kinds, start = [], [], [], {}, None
    for seed in seed_list:
        shop = make_shop_metrics(seed=seed, weeks=weeks, incidents=incidents, gaps=gaps)
        keep = _select(list(shop.series_kinds), series)
        prefix = f"seed{seed}/" if several else ""
        part = shop.data[shop.data["series"].isin(keep)]
        frames.append(part.assign(series=prefix + part["series"].astype(str)))
        found += [_renamed(i, prefix) for i in shop.incidents if i.series in keep]
        for g in shop.gaps:
            if g.series == "*":
                # A gap of every series of this seed: one per kept series once renamed.
                gap_list += [type(g)(prefix + s, g.start, g.end) for s in keep] if several else [g]
            elif g.series in keep:
                gap_list.append(type(g)(prefix + g.series, g.start, g.end))
        kinds.update({prefix + s: shop.series_kinds[s] for s in keep})
        start = shop.warmup_end
    data = pd.concat(frames, ignore_index=True)
    assert start is not None
    return LabelledData(data, Labels(tuple(found), tuple(gap_list)), start, kinds)


def _select(names: list[str], series: str | Sequence[str] | None) -> list[str]:
    if series is None:
        return names
    if isinstance(series, str):
        keep = [n for n in names if n.startswith(series)]
    else:
        keep = [n for n in names if n in set(series)]
    if not keep:
        raise ConfigError(f"no generated series matches {series!r}; the shop has {names}")
    return keep


def _renamed(inc: Incident, prefix: str) -> Incident:
    return Incident(prefix + inc.series, inc.start, inc.end, inc.kind, inc.description)
