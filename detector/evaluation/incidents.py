"""Incident-level evaluation: did the detector raise an alert for each incident, and how many
alerts were false?

Why incident level and not point level: an operator is paged once per alert, not once per
bucket, and an incident is handled once however many buckets it lasts. So the quality target is
phrased as *recall of incidents* and *false alerts per series-week*.

Definitions (all per series):

- an **alert** is a run of flagged rows (``is_anomaly`` True) of one series, in time order;
  up to ``max_gap`` unflagged rows inside a run do not split it (default 1: one quiet bucket in
  the middle of an incident is one alert, not two). Runs are also split where a labelled
  ingestion gap begins or ends, so an alert is either entirely inside a gap or entirely out;
- an incident ``[start, end)`` is **detected** when a flagged row of its series, outside any
  gap, falls in ``[start, end + grace)``; its **delay** is the first such row's timestamp minus
  ``start``. ``grace`` accepts alerts that come a little late (a causal detector confirms a
  drop after a few buckets; a stale rate is only sure after a while);
- an alert is a **true alert** when one of its (non-gap) flagged rows falls in such a window of
  its series, otherwise a **false alert**. Alerts inside labelled gaps are always false: the
  data did not arrive, the metric did not change, and a detector must not page on that;
- **precision** = true alerts / alerts; **F1** from precision and recall;
- **false alerts per series-week** = false alerts / series-weeks, where series-weeks is the sum
  over scored series of ``(last - first timestamp + freq) / 7 days`` (rows before ``start``
  excluded), ``freq`` being the median spacing of the scored timestamps.

Warm-up: with ``start``, rows before it are ignored and incidents that begin before it are left
out (a causal detector has no history there yet). Incidents beginning after the last scored
timestamp are left out too (nothing could have detected them); an incident whose series is
absent from the scored table counts as missed.

Timestamps: naive means UTC, as everywhere in the detector.

Labels file (JSON, UTF-8); ``end`` is exclusive, ``gaps`` may be omitted, ``"*"`` is a gap of
every series::

    {
      "incidents": [
        {"series": "orders.DE", "start": "2026-01-20T14:05:00Z", "end": "2026-01-20T16:05:00Z",
         "kind": "dip", "description": "checkout broken in Germany"}
      ],
      "gaps": [
        {"series": "*", "start": "2026-01-22T06:00:00Z", "end": "2026-01-22T06:50:00Z"}
      ]
    }

``kind`` is one of ``spike``, ``dip``, ``level_shift``, ``stale``, ``variance``.

>>> ts = pd.date_range("2026-01-05", periods=2016, freq="5min", tz="UTC")
>>> flags = np.zeros(len(ts), bool)
>>> flags[[100, 101, 1000]] = True  # an alert on the incident, one elsewhere
>>> scored = pd.DataFrame({"timestamp": ts, "series": "a", "is_anomaly": flags})
>>> labels = Labels((Incident("a", ts[99], ts[110], "dip"),))
>>> report = evaluate(scored, labels)
>>> report.recall, report.n_alerts, report.n_false_alerts, report.false_alerts_per_series_week
(1.0, 2, 1, 1.0)
>>> report.median_delay
Timedelta('0 days 00:05:00')
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from detector.datasets.shop import Gap, Incident, ShopMetrics, to_utc
from detector.errors import InputError

__all__ = [
    "Alert",
    "EvaluationReport",
    "IncidentResult",
    "Labels",
    "combine_reports",
    "evaluate",
    "labels_from_shop",
    "load_labels",
    "save_labels",
]

_WEEK = pd.Timedelta("7D")


# --------------------------------------------------------------------------------------------
# Labels and their file format
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Labels:
    """Ground truth: incidents to detect and ingestion gaps not to alert on.

    >>> Labels((Incident("a", "2026-01-05", "2026-01-05 01:00", "dip"),)).incidents[0].kind
    'dip'
    """

    incidents: tuple[Incident, ...] = ()
    gaps: tuple[Gap, ...] = ()


def labels_from_shop(shop: ShopMetrics) -> Labels:
    """The labels of generated shop metrics (to save them, or evaluate against them).

    >>> from detector.datasets.shop import make_shop_metrics
    >>> shop = make_shop_metrics(seed=1, weeks=3)
    >>> len(labels_from_shop(shop).incidents) == len(shop.incidents)
    True
    """
    return Labels(tuple(shop.incidents), tuple(shop.gaps))


def _iso(ts: pd.Timestamp) -> str:
    return ts.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def save_labels(labels: Labels, path: str | Path) -> None:
    """Write labels as JSON (format in the module docstring).

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "labels.json")
    >>> labels = Labels((Incident("a", "2026-01-05", "2026-01-05 01:00", "dip", "x"),))
    >>> save_labels(labels, path)
    >>> load_labels(path) == labels
    True
    """
    doc = {
        "incidents": [
            {
                "series": i.series,
                "start": _iso(i.start),
                "end": _iso(i.end),
                "kind": i.kind,
                "description": i.description,
            }
            for i in labels.incidents
        ],
        "gaps": [
            {"series": g.series, "start": _iso(g.start), "end": _iso(g.end)} for g in labels.gaps
        ],
    }
    Path(path).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def load_labels(path: str | Path) -> Labels:
    """Read a labels JSON file; every problem is an InputError naming the entry and field.

    The error's ``row`` is the 0-based position in the ``incidents`` (or ``gaps``) list.
    """
    source = str(path)
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError("file not found", source=source) from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg} at line {exc.lineno}", source=source) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the file: {exc}", source=source) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("incidents", []), list):
        raise InputError('expected an object {"incidents": [...], "gaps": [...]}', source=source)
    incidents = tuple(
        _entry(e, i, source, "incidents", Incident) for i, e in enumerate(doc.get("incidents", []))
    )
    gaps_doc = doc.get("gaps", [])
    if not isinstance(gaps_doc, list):
        raise InputError('"gaps" must be a list', source=source, column="gaps")
    gaps = tuple(_entry(e, i, source, "gaps", Gap) for i, e in enumerate(gaps_doc))
    return Labels(incidents, gaps)


def _entry(entry: object, row: int, source: str, section: str, cls: type) -> object:
    fields = ("series", "start", "end", "kind") if cls is Incident else ("series", "start", "end")
    if not isinstance(entry, dict):
        raise InputError(f"{section}[{row}] must be an object", source=source, row=row)
    for name in fields:
        if name not in entry:
            raise InputError(
                f"{section}[{row}] has no {name!r}", source=source, row=row, column=name
            )
    args = [str(entry[name]) for name in fields]
    if cls is Incident:
        args.append(str(entry.get("description", "")))
    try:
        return cls(*args)
    except InputError as exc:
        raise InputError(
            f"{section}[{row}]: {exc.message}", source=source, row=row, column=exc.column
        ) from exc


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IncidentResult:
    """One incident and whether (and how fast) it was detected."""

    series: str
    kind: str
    start: pd.Timestamp
    end: pd.Timestamp
    detected: bool
    delay: pd.Timedelta  # NaT when missed
    description: str = ""


@dataclass(frozen=True)
class Alert:
    """A run of flagged rows of one series (``start``/``end``: first/last flagged row)."""

    series: str
    start: pd.Timestamp
    end: pd.Timestamp
    n_flagged: int
    max_score: float
    kind: str
    matched: bool  # overlaps an incident window (extended by grace) of its series
    in_gap: bool  # inside a labelled ingestion gap (then never matched)


def _fmt_delta(delta: pd.Timedelta) -> str:
    if pd.isna(delta):
        return "-"
    minutes = round(delta / pd.Timedelta("1min"))
    hours, mins = divmod(minutes, 60)
    return f"{hours}h{mins:02d}" if hours else f"{mins}min"


def _ratio(num: float, den: float) -> float:
    return num / den if den else float("nan")


@dataclass(frozen=True)
class EvaluationReport:
    """Per-incident results and all alerts; the metrics are derived properties."""

    incidents: tuple[IncidentResult, ...]
    alerts: tuple[Alert, ...]
    series_weeks: float
    grace: pd.Timedelta

    @property
    def n_incidents(self) -> int:
        return len(self.incidents)

    @property
    def n_detected(self) -> int:
        return sum(r.detected for r in self.incidents)

    @property
    def recall(self) -> float:
        """Detected / incidents (NaN without incidents)."""
        return _ratio(self.n_detected, self.n_incidents)

    @property
    def n_alerts(self) -> int:
        return len(self.alerts)

    @property
    def false_alerts(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if not a.matched)

    @property
    def n_false_alerts(self) -> int:
        return len(self.false_alerts)

    @property
    def precision(self) -> float:
        """True alerts / alerts (NaN without alerts)."""
        return _ratio(self.n_alerts - self.n_false_alerts, self.n_alerts)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        if np.isnan(p) or np.isnan(r):
            return float("nan")
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def false_alerts_per_series_week(self) -> float:
        return _ratio(self.n_false_alerts, self.series_weeks)

    def _delay_quantile(self, q: float) -> pd.Timedelta:
        delays = [r.delay / pd.Timedelta("1s") for r in self.incidents if r.detected]
        if not delays:
            return pd.NaT
        return pd.Timedelta(seconds=round(float(np.percentile(delays, q))))

    @property
    def median_delay(self) -> pd.Timedelta:
        return self._delay_quantile(50)

    @property
    def p90_delay(self) -> pd.Timedelta:
        return self._delay_quantile(90)

    @property
    def recall_by_kind(self) -> dict[str, float]:
        """Recall per incident kind, kinds sorted by name."""
        frame = self.by_kind()
        return {str(k): float(v) for k, v in frame["recall"].items()}

    def by_kind(self) -> pd.DataFrame:
        """Incidents, detected and recall per kind."""
        rows = self.to_frame()
        if rows.empty:
            return pd.DataFrame({"incidents": [], "detected": [], "recall": []})
        grouped = rows.groupby("kind", sort=True)["detected"]
        out = pd.DataFrame({"incidents": grouped.size(), "detected": grouped.sum()})
        out["recall"] = out["detected"] / out["incidents"]
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per incident: series, kind, start, end, detected, delay, description."""
        columns = ["series", "kind", "start", "end", "detected", "delay", "description"]
        if not self.incidents:
            return pd.DataFrame({c: [] for c in columns})
        return pd.DataFrame([{c: getattr(r, c) for c in columns} for r in self.incidents])

    def alerts_frame(self, *, false_only: bool = True) -> pd.DataFrame:
        """Alerts (by default only the false ones) as a frame, for debugging."""
        columns = ["series", "start", "end", "n_flagged", "max_score", "kind", "matched", "in_gap"]
        alerts = self.false_alerts if false_only else self.alerts
        if not alerts:
            return pd.DataFrame({c: [] for c in columns})
        return pd.DataFrame([{c: getattr(a, c) for c in columns} for a in alerts])

    def metrics(self) -> dict[str, float]:
        """The headline numbers as a flat dict (delays in minutes)."""
        minute = pd.Timedelta("1min")
        return {
            "incidents": self.n_incidents,
            "detected": self.n_detected,
            "recall": self.recall,
            "alerts": self.n_alerts,
            "false_alerts": self.n_false_alerts,
            "precision": self.precision,
            "f1": self.f1,
            "series_weeks": self.series_weeks,
            "false_alerts_per_series_week": self.false_alerts_per_series_week,
            "median_delay_min": self.median_delay / minute if self.n_detected else float("nan"),
            "p90_delay_min": self.p90_delay / minute if self.n_detected else float("nan"),
        }

    def summary(self, max_listed: int = 20) -> str:
        """A readable report: headline numbers, recall by kind, misses, false alerts.

        At most ``max_listed`` false alerts are listed, highest score first;
        :meth:`alerts_frame` has them all.
        """
        false = sorted(self.false_alerts, key=lambda a: -np.nan_to_num(a.max_score, nan=-1.0))
        lines = [
            f"incidents {self.n_incidents}, detected {self.n_detected}, recall {self.recall:.3f}",
            f"alerts {self.n_alerts}, false alerts {self.n_false_alerts} "
            f"({sum(a.in_gap for a in false)} in gaps), "
            f"precision {self.precision:.3f}, F1 {self.f1:.3f}",
            f"series-weeks {self.series_weeks:.1f}, false alerts per series-week "
            f"{self.false_alerts_per_series_week:.3f}",
            f"detection delay: median {_fmt_delta(self.median_delay)}, "
            f"p90 {_fmt_delta(self.p90_delay)} (grace {_fmt_delta(self.grace)})",
        ]
        kinds = self.by_kind()
        if not kinds.empty:
            parts = [
                f"{k} {r.recall:.2f} ({int(r.detected)}/{int(r.incidents)})"
                for k, r in kinds.iterrows()
            ]
            lines.append("recall by kind: " + ", ".join(parts))
        missed = [r for r in self.incidents if not r.detected]
        if missed:
            lines.append("missed:")
            lines += [f"  {r.series} {r.kind} at {_iso(r.start)}: {r.description}" for r in missed]
        if false:
            lines.append("false alerts:")
            lines += [
                f"  {a.series} {_iso(a.start)}..{_iso(a.end)} {a.kind or '-'} "
                f"max score {a.max_score:.2f}{' (in gap)' if a.in_gap else ''}"
                for a in false[:max_listed]
            ]
            if len(false) > max_listed:
                lines.append(f"  ... and {len(false) - max_listed} more (see alerts_frame())")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def combine_reports(reports: Sequence[EvaluationReport]) -> EvaluationReport:
    """Pool several reports (e.g. one per seed) into one: incidents and alerts add up.

    >>> empty = EvaluationReport((), (), 2.0, pd.Timedelta("30min"))
    >>> combine_reports([empty, empty]).series_weeks
    4.0
    """
    if not reports:
        raise InputError("combine_reports needs at least one report")
    return EvaluationReport(
        incidents=tuple(r for rep in reports for r in rep.incidents),
        alerts=tuple(a for rep in reports for a in rep.alerts),
        series_weeks=float(sum(rep.series_weeks for rep in reports)),
        grace=reports[0].grace,
    )


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rows:
    """The scored rows as arrays sorted by (series, timestamp); timestamps naive UTC [ns]."""

    names: np.ndarray  # series name per code
    code: np.ndarray  # series code per row
    ts: np.ndarray  # datetime64[ns]
    flag: np.ndarray  # bool
    source: np.ndarray  # row position in the scored frame (to fetch score and kind)

    def code_of(self, series: str) -> int:
        hits = np.flatnonzero(self.names == series)
        return int(hits[0]) if hits.size else -1


def _prepare(scored: pd.DataFrame, start: pd.Timestamp | None) -> _Rows:
    """Check the columns and sort; rows before ``start`` are dropped."""
    for col in ("timestamp", "series", "is_anomaly"):
        if col not in scored.columns:
            raise InputError(
                f"missing column; the scored table has {list(map(str, scored.columns))}",
                column=col,
            )
    try:
        stamps = pd.to_datetime(scored["timestamp"], utc=True)
        ts = stamps.dt.tz_convert(None).dt.as_unit("ns").to_numpy()
    except (ValueError, TypeError) as exc:
        raise InputError(f"cannot read timestamps: {exc}", column="timestamp") from exc
    if np.isnat(ts).any():
        raise InputError("empty timestamp", column="timestamp", row=int(np.isnat(ts).argmax()))
    try:
        flag = scored["is_anomaly"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    except (ValueError, TypeError) as exc:
        raise InputError(f"is_anomaly must be True/False: {exc}", column="is_anomaly") from exc
    code, names = pd.factorize(scored["series"])
    if (code < 0).any():
        raise InputError("empty series name", column="series", row=int((code < 0).argmax()))
    order = np.lexsort((ts, code))
    if start is not None:
        order = order[ts[order] >= np.datetime64(start.tz_convert(None), "ns")]
    names = np.asarray([str(n) for n in names], dtype=object)
    return _Rows(names, code[order], ts[order], flag[order], order)


def _median_step(rows: _Rows) -> pd.Timedelta:
    same = rows.code[1:] == rows.code[:-1]
    steps = np.diff(rows.ts)[same]
    steps = steps[steps > np.timedelta64(0, "ns")]
    return pd.Timedelta(np.median(steps.astype(np.int64)), "ns") if steps.size else pd.Timedelta(0)


def _series_weeks(rows: _Rows, freq: pd.Timedelta) -> float:
    if rows.ts.size == 0:
        return 0.0
    first = np.flatnonzero(np.r_[True, rows.code[1:] != rows.code[:-1]])
    last = np.r_[first[1:] - 1, rows.ts.size - 1]
    spans = (rows.ts[last] - rows.ts[first]).astype(np.int64).sum() + first.size * freq.value
    return float(spans / _WEEK.value)


def _in_windows(
    rows: _Rows, idx: np.ndarray, windows: Iterable[tuple[str, pd.Timestamp, pd.Timestamp]]
) -> np.ndarray:
    """Which rows ``idx`` fall in any ``[start, end)`` window of their series (or of "*")."""
    hit = np.zeros(idx.size, bool)
    ts, code = rows.ts[idx], rows.code[idx]
    for name, lo, hi in windows:
        inside = (ts >= np.datetime64(lo.tz_convert(None), "ns")) & (
            ts < np.datetime64(hi.tz_convert(None), "ns")
        )
        hit |= inside if name == "*" else inside & (code == rows.code_of(name))
    return hit


def _runs(idx: np.ndarray, code: np.ndarray, gap: np.ndarray, max_gap: int) -> np.ndarray:
    """Run id per flagged row: new run on a new series, a longer pause, or a gap border."""
    new = np.ones(idx.size, bool)
    if idx.size > 1:
        new[1:] = (code[1:] != code[:-1]) | (idx[1:] - idx[:-1] - 1 > max_gap)
        new[1:] |= gap[1:] != gap[:-1]
    return np.cumsum(new) - 1


def _column(scored: pd.DataFrame, name: str, rows: np.ndarray) -> np.ndarray | None:
    return scored[name].iloc[rows].to_numpy() if name in scored.columns else None


def _alerts(
    rows: _Rows, idx: np.ndarray, run: np.ndarray, flags: dict[str, np.ndarray]
) -> list[Alert]:
    """One :class:`Alert` per run, aggregated with numpy (many runs must stay fast)."""
    if idx.size == 0:
        return []
    first = np.flatnonzero(np.r_[True, run[1:] != run[:-1]])
    last = np.r_[first[1:] - 1, idx.size - 1]
    score = flags["score"]
    best = np.maximum.reduceat(np.where(np.isnan(score), -np.inf, score), first)
    matched = np.logical_or.reduceat(flags["matched"], first)
    kind = _run_kinds(run, flags["kind"], first.size)
    ts = rows.ts[idx]
    return [
        Alert(
            series=str(rows.names[rows.code[idx[f]]]),
            start=pd.Timestamp(ts[f]).tz_localize("UTC"),
            end=pd.Timestamp(ts[e]).tz_localize("UTC"),
            n_flagged=int(e - f + 1),
            max_score=float(b) if np.isfinite(b) else float("nan"),
            kind=k,
            matched=bool(m),
            in_gap=bool(flags["in_gap"][f]),
        )
        for f, e, b, m, k in zip(first, last, best, matched, kind, strict=True)
    ]


def _run_kinds(run: np.ndarray, kind: np.ndarray, n_runs: int) -> list[str]:
    """The most frequent non-empty kind of each run (ties: alphabetical), "" if none."""
    out = [""] * n_runs
    frame = pd.DataFrame({"run": run, "kind": kind})
    frame = frame[frame["kind"] != ""]
    if frame.empty:
        return out
    counts = frame.groupby(["run", "kind"], sort=True).size().rename("n").reset_index()
    counts = counts.sort_values(["run", "n"], ascending=[True, False], kind="stable")
    for r, k in counts.drop_duplicates("run")[["run", "kind"]].itertuples(index=False):
        out[int(r)] = str(k)
    return out


def evaluate(
    scored: pd.DataFrame,
    labels: Labels | ShopMetrics,
    *,
    grace: str | pd.Timedelta = "30min",
    max_gap: int = 1,
    start: str | pd.Timestamp | None = None,
    freq: str | pd.Timedelta | None = None,
) -> EvaluationReport:
    """Match the detector's alerts to labelled incidents (definitions in the module docstring).

    ``scored`` needs ``timestamp``, ``series`` and ``is_anomaly``; ``score`` and ``kind`` are
    used for the false-alert list when present. ``freq`` (the bucket size, for series-weeks) is
    inferred from the timestamps when not given. ``labels`` may also be a
    :class:`~detector.datasets.shop.ShopMetrics`.

    >>> ts = pd.date_range("2026-01-05", periods=4, freq="5min", tz="UTC")
    >>> scored = pd.DataFrame({"timestamp": ts, "series": "a",
    ...                        "is_anomaly": [False, False, False, True]})
    >>> inc = Incident("a", ts[0], ts[2], "dip")
    >>> evaluate(scored, Labels((inc,)), grace="0min").recall
    0.0
    >>> evaluate(scored, Labels((inc,)), grace="10min").median_delay
    Timedelta('0 days 00:15:00')
    """
    grace_td = pd.Timedelta(grace)
    if grace_td < pd.Timedelta(0):
        raise InputError(f"grace must not be negative, got {grace!r}")
    if not isinstance(max_gap, int) or max_gap < 0:
        raise InputError(f"max_gap must be a non-negative integer, got {max_gap!r}")
    first = to_utc(start, what="start") if start is not None else None
    rows = _prepare(scored, first)
    step = pd.Timedelta(freq) if freq is not None else _median_step(rows)
    series_weeks = _series_weeks(rows, step)

    last = pd.Timestamp(rows.ts.max()).tz_localize("UTC") if rows.ts.size else None
    incidents = [
        i
        for i in labels.incidents
        if last is not None and (first is None or i.start >= first) and i.start <= last
    ]
    idx = np.flatnonzero(rows.flag)
    in_gap = _in_windows(rows, idx, ((g.series, g.start, g.end) for g in labels.gaps))
    windows = [(i.series, i.start, i.end + grace_td) for i in incidents]
    source = rows.source[idx]
    score = _column(scored, "score", source)
    kind = _column(scored, "kind", source)
    flags = {
        "in_gap": in_gap,
        "matched": _in_windows(rows, idx, windows) & ~in_gap,
        "score": (
            pd.to_numeric(pd.Series(score), errors="coerce").to_numpy(dtype=float)
            if score is not None
            else np.full(idx.size, np.nan)
        ),
        "kind": (
            pd.Series(kind, dtype=object).fillna("").astype(str).to_numpy()
            if kind is not None
            else np.full(idx.size, "", dtype=object)
        ),
    }
    run = _runs(idx, rows.code[idx], in_gap, max_gap)
    results = [_incident_result(i, rows, idx, in_gap, grace_td) for i in incidents]
    return EvaluationReport(
        tuple(results), tuple(_alerts(rows, idx, run, flags)), series_weeks, grace_td
    )


def _incident_result(
    inc: Incident, rows: _Rows, idx: np.ndarray, in_gap: np.ndarray, grace: pd.Timedelta
) -> IncidentResult:
    hits = _in_windows(rows, idx, [(inc.series, inc.start, inc.end + grace)]) & ~in_gap
    if inc.series == "*" or not hits.any():
        return IncidentResult(
            inc.series, inc.kind, inc.start, inc.end, False, pd.NaT, inc.description
        )
    delay = pd.Timestamp(rows.ts[idx[hits]].min()).tz_localize("UTC") - inc.start
    return IncidentResult(inc.series, inc.kind, inc.start, inc.end, True, delay, inc.description)
