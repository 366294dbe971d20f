"""NAB (Numenta Anomaly Benchmark) scoring, written from the published rules.

NAB rewards a detector for flagging each labelled anomaly window early and penalises false
alarms, so it measures what an on-call person feels: one early alert per incident, little noise.
This module implements the scoring rules of Lavin & Ahmad (2015), "Evaluating Real-time Anomaly
Detection Algorithms - the Numenta Anomaly Benchmark", as refined by NAB v1.x:

* The first ``min(floor(0.15 * rows), 750)`` rows of each file are a probationary period: a
  detector is still learning there, so detections in it are ignored.
* A detection is a row whose anomaly score is ``>= threshold``.
* Inside a window only the first detection counts. It earns
  ``a_tp * σ(p) / σ(-1)`` with ``p = -(right - i + 1) / width`` (row ``i``, window rows
  ``left..right``), so the first row of a window earns exactly ``a_tp`` and the last one about 0.
  Later detections in the same window earn nothing and cost nothing.
* A detection outside every window is a false positive costing ``a_fp * σ(p)`` (a negative
  number), with ``p = (i - prev_right) / (prev_width - 1)`` relative to the closest preceding
  window; with no preceding window it costs the full ``a_fp``. Just after a window it costs
  little (the detector was probably reacting late to the same incident).
* Each window without a detection costs ``a_fn``. True negatives are worth 0 (``a_tn`` is kept in
  the profile for completeness only, as in NAB).
* ``σ(p) = 2 / (1 + exp(5 p)) - 1``, and ``-1`` for ``p >= 3``.
* Per profile, one threshold for the whole corpus; the raw score is summed over files and
  normalised to ``100 * (raw - null) / (perfect - null)`` where the null detector misses every
  window (``-a_fn`` each) and the perfect one detects each window at its first row (``a_tp``).

Windows lying wholly inside the probationary period (none in NAB's corpus) are not counted at all.
The threshold search is exact: the corpus score only changes at the distinct score values, and
it is evaluated at all of them with one sort and one cumulative sum.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from detector.errors import ConfigError, InputError

#: Fraction of each file's rows that is probationary, and the cap in rows (NAB: 0.15 * 5000).
PROBATION_FRACTION = 0.15
PROBATION_CAP_ROWS = 750

#: An anomaly window: first and last timestamp, both inclusive.
Window = tuple[pd.Timestamp, pd.Timestamp]


@dataclass(frozen=True)
class CostProfile:
    """Weights of NAB's cost matrix: what a true positive earns and each error costs.

    >>> PROFILES["reward_low_FN_rate"].a_fn
    2.0
    """

    a_tp: float
    a_fp: float
    a_tn: float
    a_fn: float


#: NAB's three application profiles (config/profiles.json of NAB v1.x).
PROFILES: dict[str, CostProfile] = {
    "standard": CostProfile(a_tp=1.0, a_fp=0.11, a_tn=1.0, a_fn=1.0),
    "reward_low_FP_rate": CostProfile(a_tp=1.0, a_fp=0.22, a_tn=1.0, a_fn=1.0),
    "reward_low_FN_rate": CostProfile(a_tp=1.0, a_fp=0.11, a_tn=1.0, a_fn=2.0),
}


@dataclass(frozen=True)
class FileScore:
    """Score of one file at one threshold.

    ``tp`` and ``fn`` count windows (detected, missed), ``fp`` counts detections outside
    windows after the probationary period. (NAB's own CSVs count rows instead; windows are
    what a reader of a benchmark table wants.) ``null`` and ``perfect`` are this file's share
    of the normalisation bounds.
    """

    raw: float
    tp: int
    fp: int
    fn: int
    windows: int
    null: float
    perfect: float


@dataclass(frozen=True)
class NABResult:
    """A corpus score under one profile, with the parts needed to explain it."""

    profile: str
    costs: CostProfile
    score: float
    threshold: float
    raw: float
    null: float
    perfect: float
    tp: int
    fp: int
    fn: int
    files: dict[str, FileScore] = field(default_factory=dict)


@dataclass(frozen=True)
class _Prepared:
    """One file reduced to its scorable rows: false-positive rows and per-window rows.

    ``window_values`` decrease along each window, so the first detection is also the best one.
    """

    fp_scores: np.ndarray
    fp_values: np.ndarray
    window_scores: tuple[np.ndarray, ...]
    window_values: tuple[np.ndarray, ...]
    costs: CostProfile


def scaled_sigmoid(position: Any) -> np.ndarray:
    """NAB's weight of a relative position: about 1 at a window's start, 0 at its end, -1 far after.

    >>> [round(float(v), 5) for v in scaled_sigmoid([-1.0, -0.5, 0.0, 1.0, 3.0])]
    [0.98661, 0.84828, 0.0, -0.98661, -1.0]
    """
    x = np.minimum(np.asarray(position, dtype=float), 3.0)
    return np.where(x >= 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0)


def probation_length(rows: int) -> int:
    """Number of leading rows NAB does not score: 15% of the file, at most 750 rows.

    >>> probation_length(4032), probation_length(22695)
    (604, 750)
    """
    return int(min(math.floor(PROBATION_FRACTION * rows), PROBATION_CAP_ROWS))


def parse_nab_windows(data: Any, source: str | None = None) -> dict[str, list[Window]]:
    """Turn NAB's ``{"file.csv": [[start, end], ...]}`` mapping into sorted timestamp windows.

    Timestamps are naive in NAB's labels and are taken as UTC.

    >>> parse_nab_windows({"a.csv": [["2024-01-02", "2024-01-03"]], "b.csv": []})
    {'a.csv': [(Timestamp('2024-01-02 00:00:00'), Timestamp('2024-01-03 00:00:00'))], 'b.csv': []}
    """
    if not isinstance(data, Mapping):
        raise InputError("expected a JSON object mapping file names to windows", source=source)
    return {str(name): _parse_window_list(name, spans, source) for name, spans in data.items()}


def _parse_window_list(name: Any, spans: Any, source: str | None) -> list[Window]:
    """Parse one file's list of ``[start, end]`` pairs; why: errors must name the file."""
    if not isinstance(spans, list):
        raise InputError(f"windows of {name!r} must be a list of [start, end]", source=source)
    windows = []
    for span in spans:
        if not isinstance(span, list | tuple) or len(span) != 2:
            raise InputError(f"window {span!r} of {name!r} is not [start, end]", source=source)
        start, end = (_utc_naive_timestamp(t, source) for t in span)
        if start > end:
            raise InputError(f"window {span!r} of {name!r} ends before it starts", source=source)
        windows.append((start, end))
    return sorted(windows)


def _utc_naive_timestamp(value: Any, source: str | None) -> pd.Timestamp:
    """One timestamp as naive UTC, so labels and tz-aware results compare consistently."""
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise InputError(f"unparsable timestamp {value!r}", source=source) from exc
    if stamp is pd.NaT:
        raise InputError(f"missing timestamp {value!r}", source=source)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp


def load_nab_windows(path: str | Path) -> dict[str, list[Window]]:
    """Read NAB's ``labels/combined_windows.json``.

    >>> import json, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "windows.json"
    ...     _ = path.write_text(json.dumps({"x/a.csv": [["2014-04-10 07:15:00.000000",
    ...                                                    "2014-04-11 16:45:00.000000"]]}))
    ...     load_nab_windows(path)
    {'x/a.csv': [(Timestamp('2014-04-10 07:15:00'), Timestamp('2014-04-11 16:45:00'))]}
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read NAB windows: {exc}", source=str(path)) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc}", source=str(path)) from exc
    return parse_nab_windows(data, source=str(path))


def _as_utc_nanoseconds(values: Any, source: str | None) -> np.ndarray:
    """Timestamps as int64 nanoseconds of naive UTC; why: cheap, unit-proof comparisons."""
    try:
        index = pd.DatetimeIndex(pd.to_datetime(values))
    except (ValueError, TypeError) as exc:
        message = f"unparsable timestamps: {exc}"
        raise InputError(message, source=source, column="timestamp") from exc
    if index.hasnans:
        raise InputError("missing timestamps", source=source, column="timestamp")
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.as_unit("ns").asi8


def _as_scores(values: Any, rows: int, source: str | None, column: str) -> np.ndarray:
    """Scores as floats with NaN as 0: a row the detector did not score is not a detection."""
    try:
        scores = np.asarray(values, dtype=float).reshape(-1)
    except (ValueError, TypeError) as exc:
        raise InputError(f"non-numeric scores: {exc}", source=source, column=column) from exc
    if scores.size != rows:
        message = f"{scores.size} scores for {rows} timestamps"
        raise InputError(message, source=source, column=column)
    return np.nan_to_num(scores, nan=0.0)


def _window_spans(
    stamps: np.ndarray, windows: Sequence[Window], source: str | None
) -> list[tuple[int, int]]:
    """Row spans ``(left, right)`` of the windows; windows holding no row are dropped."""
    spans = []
    for start, end in windows:
        lo, hi = (_utc_naive_timestamp(t, source).as_unit("ns").value for t in (start, end))
        rows = np.flatnonzero((stamps >= lo) & (stamps <= hi))
        if rows.size:
            spans.append((int(rows[0]), int(rows[-1])))
    spans.sort()
    for (_, right), (left, _) in pairwise(spans):
        if left <= right:
            raise InputError("anomaly windows overlap", source=source)
    return spans


def _past_window_position(rows: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """Relative distance of rows after the closest preceding window (3.0 = no such window)."""
    if not spans:
        return np.full(rows.shape, 3.0)
    rights = np.array([right for _, right in spans])
    widths = np.array([right - left + 1 for left, right in spans])
    previous = np.searchsorted(rights, rows, side="left") - 1
    safe = np.maximum(previous, 0)
    position = (rows - rights[safe]) / np.maximum(widths[safe] - 1, 1)
    return np.where(previous >= 0, position, 3.0)


def _row_weights(
    rows: int, spans: list[tuple[int, int]], costs: CostProfile
) -> tuple[np.ndarray, np.ndarray]:
    """Window id of each row (-1 outside) and what a detection there would add to the score."""
    window_of = np.full(rows, -1, dtype=np.int64)
    weight = np.zeros(rows)
    index = np.arange(rows)
    max_tp = float(scaled_sigmoid(-1.0))
    for k, (left, right) in enumerate(spans):
        inside = index[left : right + 1]
        window_of[inside] = k
        position = -(right - inside + 1) / (right - left + 1)
        weight[inside] = costs.a_tp * scaled_sigmoid(position) / max_tp
    outside = window_of < 0
    weight[outside] = costs.a_fp * scaled_sigmoid(_past_window_position(index[outside], spans))
    return window_of, weight


def _prepare(
    timestamps: Any,
    scores: Any,
    windows: Sequence[Window],
    costs: CostProfile,
    source: str | None = None,
    column: str = "score",
) -> _Prepared:
    """Weigh every row once, drop the probationary rows, and group the rest by window."""
    stamps = _as_utc_nanoseconds(timestamps, source)
    values = _as_scores(scores, stamps.size, source, column)
    spans = _window_spans(stamps, windows, source)
    window_of, weight = _row_weights(stamps.size, spans, costs)
    start = probation_length(stamps.size)
    window_of, weight, values = window_of[start:], weight[start:], values[start:]
    outside = window_of < 0
    groups = [window_of == k for k in range(len(spans))]
    groups = [g for g in groups if g.any()]
    return _Prepared(
        fp_scores=values[outside],
        fp_values=weight[outside],
        window_scores=tuple(values[g] for g in groups),
        window_values=tuple(weight[g] for g in groups),
        costs=costs,
    )


def _evaluate(prepared: _Prepared, threshold: float) -> FileScore:
    """Score one prepared file at one threshold."""
    costs = prepared.costs
    false_alarms = prepared.fp_scores >= threshold
    raw = float(prepared.fp_values[false_alarms].sum())
    detected = 0
    for scores, values in zip(prepared.window_scores, prepared.window_values, strict=True):
        hits = np.flatnonzero(scores >= threshold)
        if hits.size:
            detected += 1
            raw += float(values[hits[0]])
    windows = len(prepared.window_scores)
    missed = windows - detected
    return FileScore(
        raw=raw - costs.a_fn * missed,
        tp=detected,
        fp=int(false_alarms.sum()),
        fn=missed,
        windows=windows,
        null=-costs.a_fn * windows,
        perfect=costs.a_tp * windows,
    )


def _resolve_profile(profile: str | CostProfile) -> tuple[str, CostProfile]:
    """Accept a profile by name or as custom weights."""
    if isinstance(profile, CostProfile):
        return "custom", profile
    if profile not in PROFILES:
        raise ConfigError(f"unknown NAB profile {profile!r}; choose one of {sorted(PROFILES)}")
    return profile, PROFILES[profile]


def _check_threshold(threshold: float) -> float:
    """A NaN threshold would silently detect nothing; refuse it."""
    value = float(threshold)
    if math.isnan(value):
        raise ConfigError("the NAB threshold must be a number, not NaN")
    return value


def score_file(
    timestamps: Any,
    scores: Any,
    windows: Sequence[Window],
    threshold: float,
    profile: str | CostProfile = "standard",
) -> FileScore:
    """NAB raw score of one file: rows with ``score >= threshold`` are detections.

    Here 20 hourly rows (the first 3 probationary), one window on rows 10..14 and a
    detection at its first row, which earns exactly ``a_tp``:

    >>> stamps = pd.date_range("2024-01-01", periods=20, freq="h")
    >>> scores = np.zeros(20)
    >>> scores[10] = 1.0
    >>> score_file(stamps, scores, [(stamps[10], stamps[14])], threshold=0.5)
    FileScore(raw=1.0, tp=1, fp=0, fn=0, windows=1, null=-1.0, perfect=1.0)
    """
    _, costs = _resolve_profile(profile)
    return _evaluate(_prepare(timestamps, scores, windows, costs), _check_threshold(threshold))


def _threshold_events(prepared: _Prepared) -> tuple[np.ndarray, np.ndarray]:
    """Score changes of a file as the threshold falls: ``(level, delta)`` pairs.

    A false-positive row adds its (negative) weight once the threshold drops to its score. In
    a window, the first detection moves earlier only at rows that beat every earlier score
    (running maxima); each such level swaps the window's value for an earlier, larger one. The
    first level reached (the window's maximum) also cancels the ``-a_fn`` of a missed window.
    """
    levels, deltas = [prepared.fp_scores], [prepared.fp_values]
    for scores, values in zip(prepared.window_scores, prepared.window_values, strict=True):
        running = np.maximum.accumulate(scores)
        record = np.concatenate(([True], running[1:] > running[:-1]))
        gains = values[record]
        levels.append(running[record])
        deltas.append(gains - np.concatenate((gains[1:], [-prepared.costs.a_fn])))
    return np.concatenate(levels), np.concatenate(deltas)


def _optimal_threshold(prepared: Iterable[_Prepared]) -> float:
    """The corpus-wide threshold with the best raw score, searched exactly over all score levels.

    Ties go to the highest threshold (fewest detections). If detecting nothing is best, the
    threshold is just above the highest score.
    """
    parts = [_threshold_events(p) for p in prepared]
    levels = np.concatenate([level for level, _ in parts]) if parts else np.empty(0)
    if levels.size == 0:
        return 1.0
    deltas = np.concatenate([delta for _, delta in parts])
    order = np.argsort(-levels, kind="stable")
    levels, gains = levels[order], np.cumsum(deltas[order])
    last_of_level = np.concatenate((levels[1:] != levels[:-1], [True]))
    levels, gains = levels[last_of_level], gains[last_of_level]
    best = int(np.argmax(gains))
    if gains[best] <= 1e-12:
        return float(np.nextafter(levels[0], np.inf))
    return float(levels[best])


def _prepare_frame(
    name: str,
    frame: pd.DataFrame,
    windows: Mapping[str, Sequence[Window]],
    costs: CostProfile,
    column: str,
) -> _Prepared:
    """Check one result frame's columns and labels, then prepare it."""
    if name not in windows:
        raise InputError("no NAB windows for this file (not in the labels)", source=name)
    for needed in ("timestamp", column):
        if needed not in frame.columns:
            raise InputError("missing column", source=name, column=needed)
    return _prepare(frame["timestamp"], frame[column], windows[name], costs, name, column)


def _summarise(
    name: str, costs: CostProfile, threshold: float, files: dict[str, FileScore]
) -> NABResult:
    """Add the files up and normalise between the null and the perfect detector."""
    raw = sum(f.raw for f in files.values())
    null = sum(f.null for f in files.values())
    perfect = sum(f.perfect for f in files.values())
    if perfect <= null:
        raise InputError("no scorable anomaly window: the NAB score is undefined")
    return NABResult(
        profile=name,
        costs=costs,
        score=100.0 * (raw - null) / (perfect - null),
        threshold=threshold,
        raw=raw,
        null=null,
        perfect=perfect,
        tp=sum(f.tp for f in files.values()),
        fp=sum(f.fp for f in files.values()),
        fn=sum(f.fn for f in files.values()),
        files=files,
    )


def nab_score(
    results: Mapping[str, pd.DataFrame],
    windows: Mapping[str, Sequence[Window]],
    profile: str | CostProfile = "standard",
    threshold: float | None = None,
    *,
    column: str = "score",
) -> NABResult:
    """Normalised NAB score of a detector over a corpus (100 = perfect, 0 = never detects).

    ``results`` maps file names (keys of ``windows``) to frames with ``timestamp`` and
    ``column`` (anomaly score, higher = more anomalous, NaN = 0), one row per data row, in file
    order. With ``threshold=None`` the single corpus-wide threshold that maximises the score is
    found exactly, as NAB does per profile. To score a detector's own decisions, pass a boolean
    or 0/1 column and a fixed threshold: ``column="is_anomaly", threshold=0.5`` (or use
    :func:`nab_score_decisions`).

    >>> stamps = pd.date_range("2024-01-01", periods=20, freq="h")
    >>> frame = pd.DataFrame({"timestamp": stamps, "score": 0.1})
    >>> frame.loc[10, "score"] = 0.9
    >>> result = nab_score({"a.csv": frame}, {"a.csv": [(stamps[10], stamps[14])]})
    >>> round(result.score, 6), result.threshold, (result.tp, result.fp, result.fn)
    (100.0, 0.9, (1, 0, 0))
    """
    name, costs = _resolve_profile(profile)
    prepared = {
        key: _prepare_frame(key, frame, windows, costs, column) for key, frame in results.items()
    }
    if threshold is None:
        threshold = _optimal_threshold(prepared.values())
    threshold = _check_threshold(threshold)
    files = {key: _evaluate(p, threshold) for key, p in prepared.items()}
    return _summarise(name, costs, threshold, files)


def nab_score_decisions(
    results: Mapping[str, pd.DataFrame],
    windows: Mapping[str, Sequence[Window]],
    profile: str | CostProfile = "standard",
    *,
    column: str = "is_anomaly",
) -> NABResult:
    """NAB score of a detector's own yes/no decisions (no threshold search: it is the detector's).

    >>> stamps = pd.date_range("2024-01-01", periods=20, freq="h")
    >>> frame = pd.DataFrame({"timestamp": stamps, "is_anomaly": False})
    >>> frame.loc[[10, 18], "is_anomaly"] = True
    >>> result = nab_score_decisions({"a.csv": frame}, {"a.csv": [(stamps[10], stamps[14])]})
    >>> (result.tp, result.fp, result.fn), result.score < 100
    ((1, 1, 0), True)
    """
    return nab_score(results, windows, profile, threshold=0.5, column=column)
