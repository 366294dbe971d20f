"""Evaluating scored output on labelled incidents: the report ``detector evaluate`` prints.

:func:`evaluate` returns it as an object; the command prints it from the same steps, which
are public here so both run one code path: :func:`on_scored_span` (anomalous rows only,
completed by the metrics' span), :func:`anomalous_rows_only` (when to warn that the quiet
rows are missing) and :func:`incident_nab` (the NAB score with the incidents as windows).
The command differs in one place only: it stops with an error where the NAB score is
undefined, while :attr:`Evaluation.nab` is then None.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from detector.api.inputs import as_labels, as_series, load_scores
from detector.datasets.shop import to_utc
from detector.errors import InputError
from detector.evaluation.incidents import EvaluationReport, Labels
from detector.evaluation.nab import NABResult

__all__ = [
    "Evaluation",
    "anomalous_rows_only",
    "evaluate",
    "incident_nab",
    "nab_line",
    "on_scored_span",
]


def nab_line(nab: NABResult) -> str:
    """The NAB line of the report."""
    return f"NAB score (standard profile, incident windows): {nab.score:.1f}"


@dataclass(frozen=True, repr=False)
class Evaluation(EvaluationReport):
    """:class:`~detector.evaluation.incidents.EvaluationReport` plus the NAB score over the
    incident windows: what ``detector evaluate`` prints is ``str(evaluation)``.

    ``nab`` is None when no incident window lies in the scored range (the CLI stops with an
    error there).
    """

    nab: NABResult | None = None

    def summary(self, max_listed: int = 20) -> str:
        text = super().summary(max_listed)
        if self.nab is not None:
            text += "\n" + nab_line(self.nab)
        return text

    def metrics(self) -> dict[str, float]:
        out = super().metrics()
        out["nab_score"] = self.nab.score if self.nab is not None else float("nan")
        return out

    def __repr__(self) -> str:
        return (
            f"<Evaluation: {self.n_detected}/{self.n_incidents} incidents, "
            f"{self.n_false_alerts} false of {self.n_alerts} alerts>"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.summary())


def evaluate(
    scores: pd.DataFrame | str | Path,
    labels: Any,
    *,
    metrics: pd.DataFrame | str | Path | None = None,
    grace: str | pd.Timedelta = "30min",
    start: Any = None,
) -> Evaluation:
    """Incident recall, alert precision, F1, false alerts per series-week, delay and NAB
    score: ``detector evaluate``'s report (``print(evaluate(...))`` is its output).

    ``scores`` is scored output (a table, or a file for :func:`~detector.api.load_scores`);
    when it holds anomalous rows only (``anomalies.csv``), pass ``metrics`` (the metrics table
    or ``metrics.csv``) for the scored span. ``labels``: see :func:`~detector.api.as_labels`.
    ``grace`` is the accepted alert delay; rows and incidents before ``start`` are left out (a
    warm-up). Definitions: :mod:`detector.evaluation.incidents`; NAB:
    :mod:`detector.evaluation.nab`, every flagged row of a series a detection, its incidents
    the windows.
    """
    from detector.evaluation.incidents import evaluate as incident_report

    truth = as_labels(labels)
    pred = load_scores(scores) if isinstance(scores, str | os.PathLike) else scores
    if not isinstance(pred, pd.DataFrame):
        raise InputError(f"expected scored output (a table or a file); got {type(pred).__name__}")
    if metrics is not None:
        pred = on_scored_span(pred, as_series(metrics))
    elif anomalous_rows_only(pred):
        warnings.warn(
            "the scored table holds anomalous rows only, so false alerts per series-week and "
            "the NAB score lack the quiet rows; pass metrics=... or score every row",
            UserWarning,
            stacklevel=2,
        )
    report = incident_report(pred, truth, grace=grace, start=start)
    fields = {f: getattr(report, f) for f in EvaluationReport.__dataclass_fields__}
    return Evaluation(**fields, nab=_nab_if_defined(pred, truth, start))


def on_scored_span(pred: pd.DataFrame, span: pd.DataFrame) -> pd.DataFrame:
    """Anomalous rows (``anomalies.csv``) on every ``timestamp, series`` of ``span`` (the
    metrics that were scored): the rows not in ``pred`` are quiet ones.

    >>> span = pd.DataFrame({"timestamp": pd.date_range("2026-01-05", periods=3, freq="5min",
    ...                                                 tz="UTC"), "series": "a"})
    >>> on_scored_span(span.iloc[[1]].assign(is_anomaly=True), span)["is_anomaly"].tolist()
    [False, True, False]
    """
    rows = span[["timestamp", "series"]].copy()
    rows["timestamp"] = pd.to_datetime(rows["timestamp"], utc=True)
    out = rows.merge(pred, on=["timestamp", "series"], how="left")
    out["is_anomaly"] = out["is_anomaly"].astype("boolean").fillna(False).astype(bool)
    return out


def anomalous_rows_only(pred: pd.DataFrame) -> bool:
    """True when every row is flagged: ``anomalies.csv`` rather than every scored row, so the
    quiet rows that false alerts per series-week and the NAB score need are missing."""
    return bool(len(pred) and "is_anomaly" in pred.columns and pred["is_anomaly"].all())


def incident_nab(pred: pd.DataFrame, labels: Labels, start: Any = None) -> NABResult:
    """The NAB score (standard profile) of the flagged rows, each series' incidents its
    windows, rows before ``start`` left out.

    InputError ("no scorable anomaly window") when no incident window lies in the scored
    range, or every one falls into NAB's probationary rows.
    """
    from detector.evaluation.nab import nab_score_decisions

    frames, windows = _incident_windows(pred, labels, start)
    return nab_score_decisions(frames, windows)


def _nab_if_defined(pred: pd.DataFrame, labels: Labels, start: Any) -> NABResult | None:
    """:func:`incident_nab`, or None where it is undefined (the CLI stops there)."""
    from detector.evaluation.nab import nab_score_decisions

    frames, windows = _incident_windows(pred, labels, start)
    if not any(windows.values()):
        return None
    try:
        return nab_score_decisions(frames, windows)
    except InputError as exc:
        if "no scorable anomaly window" in str(exc):
            return None  # every window fell into the probationary rows
        raise


def _incident_windows(
    pred: pd.DataFrame, labels: Labels, start: Any
) -> tuple[dict[str, pd.DataFrame], dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]]:
    """Per scored series: its rows from ``start`` on and its incidents as NAB windows."""
    by_series: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]] = {}
    for inc in labels.incidents:
        by_series.setdefault(inc.series, []).append((inc.start, inc.end))
    rows = pred if start is None else pred[pred["timestamp"] >= to_utc(start, what="start")]
    frames = {
        s: g[["timestamp", "is_anomaly"]].reset_index(drop=True)
        for s, g in rows.groupby("series", sort=True)
    }
    return frames, {s: by_series.get(s, []) for s in frames}
