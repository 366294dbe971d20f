"""The panel: many series on one regular time grid, the shape every model works on.

Models score a ``(time x series)`` float array at once instead of looping over series, which is
what makes 1,000 series x 4 weeks fit in seconds. A bucket with no row is NaN in the panel
(missing data), never 0.

>>> df = pd.DataFrame({
...     "timestamp": pd.to_datetime(["2026-01-01 00:00", "2026-01-01 00:10"], utc=True),
...     "series": ["a", "a"], "value": [1.0, 3.0]})
>>> p = to_panel(df)
>>> p.freq, p.values[:, 0].tolist()
(Timedelta('0 days 00:10:00'), [1.0, 3.0])
>>> to_panel(df, freq="5min").values[:, 0].tolist()
[1.0, nan, 3.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from detector.errors import ConfigError, InputError


@dataclass
class Panel:
    """Series aligned on a regular UTC grid.

    ``values[t, j]`` is series ``j`` at ``index[t]``; ``first[j]``/``last[j]`` are the rows of
    the series' first and last observation, so output is not padded before a series began.
    """

    values: np.ndarray
    index: pd.DatetimeIndex
    series: list[str]
    freq: pd.Timedelta
    first: np.ndarray
    last: np.ndarray
    denominator: np.ndarray | None = None
    #: Input rows that shared a bucket with another row of their series and were averaged in.
    merged_rows: int = 0

    @property
    def steps_per_day(self) -> float:
        return pd.Timedelta("1D") / self.freq

    def __len__(self) -> int:
        return len(self.index)


def parse_freq(freq: str | pd.Timedelta) -> pd.Timedelta:
    """Parse ``"5min"``, ``"1h"``, ``"30s"`` or a pandas alias (``"h"``, which is what
    ``to_offset("1h").freqstr`` gives); raise :class:`ConfigError` on anything else.

    >>> parse_freq("h"), parse_freq("15min")
    (Timedelta('0 days 01:00:00'), Timedelta('0 days 00:15:00'))
    """
    try:
        delta = pd.Timedelta(freq)
    except (ValueError, TypeError) as exc:
        try:  # a fixed-size offset alias: "h", "D", "min", "2h"
            delta = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
        except (ValueError, TypeError):
            raise ConfigError(
                f"The 'freq' option must be a duration like '5min' or '1h'. Got {freq!r} instead."
            ) from exc
    if delta <= pd.Timedelta(0):
        raise ConfigError(f"The 'freq' option must be a positive duration. Got {freq!r} instead.")
    return delta


def infer_freq(data: pd.DataFrame) -> pd.Timedelta:
    """The typical spacing of observations: the median gap between a series' timestamps.

    The median, not the minimum, so that a few jittered or duplicated timestamps do not shrink
    the grid. Rounded to whole seconds.
    """
    sorted_gaps = _sorted_gaps(data)
    if sorted_gaps is not None:
        if sorted_gaps.size == 0:
            raise InputError(
                "cannot infer the time step from a single timestamp per series; pass --freq"
            )
        median = pd.Series(sorted_gaps).median()  # the grouped path's median, in ns
        return pd.Timedelta(seconds=max(1, round(pd.Timedelta(median).total_seconds())))
    ts = data[["series", "timestamp"]].drop_duplicates().sort_values(["series", "timestamp"])
    gaps = ts.groupby("series", sort=False)["timestamp"].diff().dropna()
    gaps = gaps[gaps > pd.Timedelta(0)]
    if gaps.empty:
        raise InputError(
            "cannot infer the time step from a single timestamp per series; pass --freq"
        )
    return pd.Timedelta(seconds=max(1, round(gaps.median().total_seconds())))


def _sorted_gaps(data: pd.DataFrame) -> np.ndarray | None:
    """The positive gaps (ns) between consecutive timestamps of each series, when the rows
    are already in series and time order (as stored metrics are); None otherwise.

    Without the sort and group-by of the general path, which on millions of rows cost more
    than bucketing them.
    """
    ts, names = data["timestamp"], data["series"]
    if (
        len(data) < 2
        or not isinstance(ts.dtype, pd.DatetimeTZDtype)
        or ts.isna().any()
        or names.isna().any()
    ):
        return None
    try:
        stamp = ts.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
    except (OverflowError, ValueError):
        return None
    codes, _ = pd.factorize(names, sort=True)
    step = np.diff(codes)
    gap = np.diff(stamp)
    same = step == 0
    if (step < 0).any() or (gap[same] < 0).any():
        return None
    gaps = gap[same]
    return gaps[gaps > 0]


def to_panel(data: pd.DataFrame, freq: str | pd.Timedelta | None = None) -> Panel:
    """Bucket long data (``timestamp, series, value[, denominator]``) onto a regular grid.

    Irregular timestamps are floored to the grid; several rows in one bucket are averaged. The
    grid is aligned to the UTC epoch (5-minute buckets start at :00, :05, ...) shifted by the
    most common offset of the data, so data stamped at :02, :07, ... keeps its own timestamps.
    """
    step = parse_freq(freq) if freq is not None else infer_freq(data)
    fast = _unique_buckets(data, step)
    return fast if fast is not None else _grouped(data, step)


def _grouped(data: pd.DataFrame, step: pd.Timedelta) -> Panel:
    """:func:`to_panel` in general: any time zone, rows averaged per series and bucket."""
    ts = data["timestamp"]
    offsets = (ts - pd.Timestamp(0, tz="UTC")) % step
    shift = offsets.mode().iloc[0] if len(offsets) else pd.Timedelta(0)
    bucket = (ts - shift).dt.floor(step) + shift
    has_den = "denominator" in data.columns
    frame = pd.DataFrame({"bucket": bucket, "series": data["series"], "value": data["value"]})
    if has_den:
        frame["denominator"] = data["denominator"]
    grouped = frame.groupby(["bucket", "series"], sort=True).mean()
    merged = len(frame) - len(grouped)  # rows averaged into a bucket another row already had
    names = sorted(frame["series"].unique().tolist())
    start, end = grouped.index.get_level_values(0).min(), grouped.index.get_level_values(0).max()
    index = pd.date_range(start, end, freq=step)
    wide = grouped["value"].unstack("series").reindex(index=index, columns=names)
    values = wide.to_numpy(dtype=float)
    den = None
    if has_den:
        den = grouped["denominator"].unstack("series").reindex(index=index, columns=names)
        den = den.to_numpy(dtype=float)
    # First/last *rows present in the file* (a present row may carry an empty value).
    present = grouped.index.to_frame(index=False)
    pos = index.get_indexer(present["bucket"])
    col = pd.Index(names).get_indexer(present["series"])
    first = np.full(len(names), len(index), dtype=int)
    last = np.full(len(names), -1, dtype=int)
    np.minimum.at(first, col, pos)
    np.maximum.at(last, col, pos)
    return Panel(values, index, names, step, first, last, den, merged)


def _unique_buckets(data: pd.DataFrame, step: pd.Timedelta) -> Panel | None:
    """:func:`to_panel` for the common case, in numpy: UTC timestamps and numeric values with
    at most one row per series and bucket (aggregated metrics always are). Then no bucket is
    averaged and a scatter gives exactly what the grouped mean would, in a fraction of the
    time. Anything else (rows to average, other time zones, missing keys) returns None and
    takes the general path.
    """
    ts, names_col, value = data["timestamp"], data["series"], data["value"]
    den_col = data["denominator"] if "denominator" in data.columns else None
    numeric = [value] if den_col is None else [value, den_col]
    if (
        len(data) == 0
        or not isinstance(ts.dtype, pd.DatetimeTZDtype)
        or str(ts.dt.tz) != "UTC"
        or any(not _plain_number(c) for c in numeric)
        or ts.isna().any()
        or names_col.isna().any()
    ):
        return None
    try:
        stamp = ts.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
    except (OverflowError, ValueError):  # outside ns timestamps: the general path reports it
        return None
    ns = step.value
    offsets = stamp % ns
    uniq, counts = np.unique(offsets, return_counts=True)
    shift = int(uniq[np.argmax(counts)])  # the most common offset; the smallest of ties
    bucket = (stamp - shift) // ns  # bucket number on the shifted grid
    codes, names = pd.factorize(names_col, sort=True)
    lo, hi = int(bucket.min()), int(bucket.max())
    t, n = hi - lo + 1, len(names)
    if t * n > 4 * len(data) + 1_000_000:  # sparse: the grouped path is no worse
        return None
    cell = (bucket - lo) * n + codes
    seen = np.bincount(cell, minlength=t * n)
    if seen.max() > 1:
        return None
    values = np.full(t * n, np.nan)
    values[cell] = value.to_numpy(dtype=float)
    den = None
    if den_col is not None:
        den = np.full(t * n, np.nan)
        den[cell] = den_col.to_numpy(dtype=float)
        den = den.reshape(t, n)
    start = pd.Timestamp(lo * ns + shift, tz="UTC")
    index = pd.date_range(start, periods=t, freq=step)
    present = seen.reshape(t, n).astype(bool)
    first = present.argmax(axis=0).astype(int)
    last = (t - 1 - present[::-1].argmax(axis=0)).astype(int)
    return Panel(values.reshape(t, n), index, names.tolist(), step, first, last, den, 0)


def _plain_number(col: pd.Series) -> bool:
    return pd.api.types.is_float_dtype(col.dtype) or (
        pd.api.types.is_integer_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype)
    )
