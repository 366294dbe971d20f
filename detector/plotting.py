"""Plots of scored series: value, expected value and band, anomalies by kind, missing data, labels.

One drawing code serves the HTML report (:mod:`detector.report`, rendered to SVG) and notebooks
(:func:`plot`, a :class:`matplotlib.figure.Figure`), so a series looks the same in both.

Why the object-oriented API only: a :class:`~matplotlib.figure.Figure` draws and renders on
its own, so nothing here selects a backend or registers figures in pyplot's global list; a
notebook's or a server's matplotlib setup is left as it was, and a figure is freed as soon as
nobody holds it. matplotlib is imported only when something is drawn, so importing
:mod:`detector` (and the CLI) stays fast.

>>> idx = pd.date_range("2026-01-05", periods=288 * 3, freq="5min", tz="UTC")
>>> rng = np.random.default_rng(0)
>>> data = pd.DataFrame({"timestamp": idx, "series": "orders.DE",
...                      "value": rng.poisson(40, len(idx)).astype(float)})
>>> data.loc[700:711, "value"] = 0.0
>>> from detector.scoring import score_frame
>>> fig = plot(score_frame(data))
>>> [ax.get_title(loc="left") for ax in fig.axes]
['orders.DE']
>>> sorted(set(fig.axes[0].get_legend_handles_labels()[1]))
['dip', 'expected', 'expected range', 'value']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from detector.errors import ConfigError, InputError
from detector.types import OUTPUT_COLUMNS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from detector.evaluation.incidents import Labels

__all__ = ["KIND_COLOURS", "draw_series", "plot", "prepare_scores", "stacked_figure"]

#: The expected range is drawn with at most about this many points (an envelope, see below).
MAX_BAND_POINTS = 1000

#: Marker colour per anomaly kind (also used for the kind badges of the report's tables).
KIND_COLOURS: Mapping[str, str] = {
    "spike": "#d62728",
    "dip": "#ff7f0e",
    "level_shift": "#9467bd",
    "stale": "#8c564b",
    "variance": "#e377c2",
    "missing": "#7f7f7f",
    "": "#000000",
}

#: Labelled windows drawn behind the data: incidents (what should be found) and ingestion gaps.
INCIDENT_COLOUR = "#2ca02c"
GAP_COLOUR = "#bcbd22"


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def prepare_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """The scored table's columns, typed (UTC times, floats, booleans, strings), sorted by
    (series, timestamp); :class:`~detector.errors.InputError` when a column is missing.

    >>> prepare_scores(pd.DataFrame({"timestamp": ["2026-01-05"]}))
    Traceback (most recent call last):
    ...
    detector.errors.InputError: the scored table lacks columns ['series', 'value', ...
    """
    if not isinstance(scores, pd.DataFrame):
        raise InputError(
            f"expected the scored table (a DataFrame with {', '.join(OUTPUT_COLUMNS)}); "
            f"got {type(scores).__name__}"
        )
    missing = [c for c in OUTPUT_COLUMNS if c not in scores.columns]
    if missing:
        raise InputError(
            f"the scored table lacks columns {missing}; it has {list(map(str, scores.columns))}"
        )
    try:
        ts = pd.to_datetime(scores["timestamp"], utc=True)
        flag = scores["is_anomaly"].astype("boolean").fillna(False).astype(bool)
    except (ValueError, TypeError) as exc:
        raise InputError(f"cannot read the scored table: {exc}") from exc
    frame = pd.DataFrame(
        {
            # .to_numpy() of tz-aware stamps would give slow Timestamp objects.
            "timestamp": ts.reset_index(drop=True),
            "series": scores["series"].astype(str).to_numpy(),
            "is_anomaly": flag.to_numpy(),
            "kind": scores["kind"].astype(object).fillna("").astype(str).to_numpy(),
            "reason": scores["reason"].astype(object).fillna("").astype(str).to_numpy(),
        }
    )
    for col in ("value", "expected", "lower", "upper", "score"):
        frame[col] = pd.to_numeric(scores[col], errors="coerce").to_numpy(dtype=float)
    return frame.sort_values(["series", "timestamp"], kind="stable", ignore_index=True)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def stacked_figure(
    panels: Sequence[pd.DataFrame],
    *,
    titles: Sequence[str] | None = None,
    labels: Labels | None = None,
    width: float = 10.0,
) -> Figure:
    """One panel per frame (rows of one series each, prepared), stacked, with one legend on top.

    ``titles`` puts a title over each panel; ``labels`` shades the labelled incidents and gaps
    of each panel's series.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, 1.0))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for i, (ax, part) in enumerate(zip(axes, panels, strict=True)):
        draw_series(ax, part, labels=labels)
        if titles is not None:
            ax.set_title(titles[i], loc="left", fontsize=9)
    axes[-1].set_xlabel("time (UTC)")
    handles: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    # The report's plots keep one legend row (their layout is fixed); a notebook's figure,
    # with titles and labelled windows, wraps the legend after six entries.
    ncols = len(handles) if titles is None else min(len(handles), 6)
    rows = -(-len(handles) // max(ncols, 1))
    top = 0.35 if titles is None else 0.35 + 0.22 * rows
    bottom, per_panel = 0.45, (2.3 if titles is None else 2.6)
    space = 0.55 if titles is None else 0.85
    height = top + bottom + per_panel * len(panels)
    fig.set_size_inches(width, height)
    # Fixed margins instead of a layout engine: constrained layout doubled the drawing time.
    fig.subplots_adjust(
        left=0.07,
        right=0.99,
        top=1 - top / height,
        bottom=bottom / height,
        hspace=space / per_panel,
    )
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="upper left",
        ncols=max(ncols, 1),
        bbox_to_anchor=(0.07, 1.0),
        frameon=False,
        fontsize=8,
    )
    return fig


def draw_series(ax: Axes, part: pd.DataFrame, *, labels: Labels | None = None) -> None:
    """Draw one series' prepared rows on ``ax``: band, expected, value, missing, anomalies."""
    import matplotlib.dates as mdates

    ts = part["timestamp"].dt.tz_convert(None).to_numpy()  # naive UTC: matplotlib's default
    value, expected = part["value"].to_numpy(), part["expected"].to_numpy()
    lower, upper = part["lower"].to_numpy(), part["upper"].to_numpy()
    ax.fill_between(
        *_envelope(ts, lower, upper),
        color="#9ecae1",
        alpha=0.5,
        linewidth=0,
        label="expected range",
    )
    ax.plot(ts, expected, color="#3182bd", linewidth=0.9, linestyle="--", label="expected")
    ax.plot(ts, value, color="#333333", linewidth=0.9, label="value")
    _shade_missing(ax, ts, part["kind"].to_numpy() == "missing")
    if labels is not None and len(part):
        _shade_labels(ax, str(part["series"].iloc[0]), ts, labels)
    flag, kinds = part["is_anomaly"].to_numpy(), part["kind"].to_numpy()
    for kind, colour in KIND_COLOURS.items():
        mark = flag & (kinds == kind) & np.isfinite(value)
        if mark.any():
            ax.scatter(ts[mark], value[mark], s=14, color=colour, zorder=3, label=kind or "anomaly")
    _set_ylim(ax, value, lower, upper)
    ax.set_xlim(ts[0], ts[-1])
    locator = mdates.AutoDateLocator(tz=mdates.UTC)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=mdates.UTC))
    ax.grid(True, color="#eeeeee", linewidth=0.6)


def _envelope(
    ts: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The band with at most about ``MAX_BAND_POINTS`` points: min/max per block of rows.

    A polygon is not simplified by matplotlib the way a line is, and a band of thousands of
    points would be most of an SVG's size while the plot cannot show more than its pixels.
    The envelope keeps every excursion visible.
    """
    step = -(-ts.size // MAX_BAND_POINTS)
    if step <= 1:
        return ts, lower, upper
    starts = np.arange(0, ts.size, step)
    # fmin/fmax skip NaN without the all-NaN warning of nanmin/nanmax.
    return ts[starts], np.fmin.reduceat(lower, starts), np.fmax.reduceat(upper, starts)


def _shade_missing(ax: Axes, ts: np.ndarray, missing: np.ndarray) -> None:
    """Grey spans over runs of missing buckets (one artist, however many runs)."""
    if not missing.any():
        return
    import matplotlib.dates as mdates

    x = mdates.date2num(ts)
    step = float(np.median(np.diff(x))) if x.size > 1 else 1 / 288
    edges = np.diff(np.r_[0, missing.astype(np.int8), 0])
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    spans = [(x[a] - step / 2, x[b] - x[a] + step) for a, b in zip(starts, stops, strict=True)]
    ax.broken_barh(
        spans,
        (0, 1),
        transform=ax.get_xaxis_transform(),
        color="#bdbdbd",
        alpha=0.6,
        linewidth=0,
        label="missing data",
    )


def _shade_labels(ax: Axes, series: str, ts: np.ndarray, labels: Labels) -> None:
    """Labelled incidents (green) and gaps (olive, hatched) of ``series`` within the panel."""
    import matplotlib.dates as mdates

    lo, hi = ts[0], ts[-1]
    kinds = (
        ((i.start, i.end) for i in labels.incidents if i.series == series),
        ((g.start, g.end) for g in labels.gaps if g.covers(series)),
    )
    for spans, colour, name, hatch in zip(
        kinds,
        (INCIDENT_COLOUR, GAP_COLOUR),
        ("labelled incident", "labelled gap"),
        (None, "//"),
        strict=True,
    ):
        bars = []
        for start, end in spans:
            a, b = (np.datetime64(t.tz_convert(None), "ns") for t in (start, end))
            if b < lo or a > hi:
                continue
            x0, x1 = mdates.date2num(np.array([max(a, lo), min(b, hi)]))
            bars.append((x0, x1 - x0))
        if bars:
            ax.broken_barh(
                bars,
                (0, 1),
                transform=ax.get_xaxis_transform(),
                facecolor=colour,
                alpha=0.18,
                hatch=hatch,
                linewidth=0,
                zorder=0,
                label=name,
            )


def _set_ylim(ax: Axes, value: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
    """Fit the values; let the band widen the view only up to its typical extent.

    A few buckets with a huge upper bound (just after a refit, say) would otherwise squash
    the line into the bottom of the plot.
    """
    lows, highs = [], []
    if np.isfinite(value).any():
        lows.append(np.nanmin(value))
        highs.append(np.nanmax(value))
    if np.isfinite(lower).any():
        lows.append(np.nanpercentile(lower, 1))
    if np.isfinite(upper).any():
        highs.append(np.nanpercentile(upper, 99))
    if not lows or not highs:
        return
    lo, hi = float(min(lows)), float(max(highs))
    pad = (hi - lo) * 0.05 or max(abs(hi) * 0.05, 1.0)
    ax.set_ylim(lo - pad, hi + pad)


# --------------------------------------------------------------------------------------------
# The notebook entry point
# --------------------------------------------------------------------------------------------


def plot(
    scores: pd.DataFrame,
    *,
    series: str | Iterable[str] | None = None,
    labels: Any = None,
    start: Any = None,
    end: Any = None,
    max_series: int = 8,
    width: float = 10.0,
) -> Figure:
    """A figure of scored series: one panel per series, value, expected value and band,
    anomalies marked by kind, missing data shaded grey, labelled incidents and gaps shaded.

    ``scores`` is the output table of :func:`detector.score` (or ``detector score``,
    ``scores.csv`` read with :func:`detector.load_scores`). ``series`` picks one or several
    series (all of them by default, at most ``max_series``); ``start`` and ``end`` (UTC,
    inclusive) zoom in; ``labels`` (a :class:`~detector.evaluation.incidents.Labels`, a labels
    file or generated data with labels) adds the windows a detector should (not) alert on.
    """
    from detector.api import as_labels  # the API's one reading of "labels", here too

    if isinstance(max_series, bool) or not isinstance(max_series, int) or max_series < 1:
        raise ConfigError(
            f"The 'max_series' parameter of plot must be an int >= 1. Got {max_series!r} instead."
        )
    frame = prepare_scores(scores)
    names = list(dict.fromkeys(frame["series"]))
    if series is None:
        chosen = names
    else:
        chosen = [series] if isinstance(series, str) else [str(s) for s in series]
        unknown = [s for s in chosen if s not in names]
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InputError(
                f"no series {unknown[0]!r} in the scored table{hint} "
                f"({len(names)} series: {', '.join(names[:5])}{', ...' if len(names) > 5 else ''})"
            )
    if not chosen:
        raise InputError("the scored table is empty: nothing to plot")
    if len(chosen) > max_series:
        raise ConfigError(
            f"{len(chosen)} series to plot, more than max_series={max_series}; "
            "pick some with series=[...] or raise max_series"
        )
    lo = _bound(start, "start")
    hi = _bound(end, "end")
    panels = []
    for name in chosen:
        part = frame[frame["series"] == name]
        if lo is not None:
            part = part[part["timestamp"] >= lo]
        if hi is not None:
            part = part[part["timestamp"] <= hi]
        if part.empty:
            raise InputError(f"series {name!r} has no rows between {lo} and {hi}")
        panels.append(part)
    return stacked_figure(
        panels,
        titles=chosen,
        labels=as_labels(labels) if labels is not None else None,
        width=width,
    )


def _bound(value: Any, what: str) -> pd.Timestamp | None:
    if value is None:
        return None
    from detector.datasets.shop import to_utc

    return to_utc(value, what=what)
