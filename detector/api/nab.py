"""The NAB corpus (Numenta Anomaly Benchmark): found, read and scored as the benchmark does.

NAB is not shipped with the package: :func:`find_nab` looks for it, :func:`load_nab` reads
its files and anomaly windows, :func:`detect_nab` runs a detector over each file on its own
and :func:`score_nab` gives a model's NAB scores. ``benchmarks/nab.py`` prints the README's
figures with the same functions, so a notebook and the benchmark agree.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from detector.errors import InputError
from detector.evaluation.nab import NABResult, Window
from detector.scoring import score_frame

__all__ = [
    "NAB_RELATIVE",
    "Detector",
    "NABCorpus",
    "NABReport",
    "detect_nab",
    "find_nab",
    "load_nab",
    "nab_detector",
    "score_nab",
]

#: A detector for :func:`detect_nab`: one file's rows in, the scored table out (at least
#: ``timestamp``, ``score`` and ``is_anomaly``).
Detector = Callable[[pd.DataFrame], pd.DataFrame]

#: Where :func:`find_nab` looks, after ``$DETECTOR_NAB_DATA``: ``shared/data/nab`` beside the
#: repository (the layout of this project's machines and CI).
NAB_RELATIVE = Path("shared") / "data" / "nab"


def find_nab(path: str | Path | None = None) -> Path | None:
    """The NAB folder (``data/`` and ``labels/combined_windows.json``), or None if absent.

    Looks only at ``path`` when given, else only at ``$DETECTOR_NAB_DATA`` when it is set
    (set it to an empty folder to run without NAB), else for ``shared/data/nab`` beside the
    repository and above the working directory. NAB is not shipped with the package.

    >>> import tempfile
    >>> find_nab(tempfile.mkdtemp()) is None
    True
    """
    chosen = path if path is not None else os.environ.get("DETECTOR_NAB_DATA")
    if chosen is not None:
        candidates = [Path(chosen)]
    else:
        repo = Path(__file__).resolve().parents[2]
        candidates = [p / NAB_RELATIVE for p in (repo.parent, *Path.cwd().parents)]
    for c in candidates:
        if (c / "labels" / "combined_windows.json").is_file() and (c / "data").is_dir():
            return c
    return None


@dataclass(frozen=True)
class NABCorpus:
    """NAB files as long tables (``timestamp, series, value``, file order) and their windows."""

    path: Path
    data: dict[str, pd.DataFrame]
    windows: dict[str, list[Window]]


def load_nab(
    path: str | Path | None = None, *, files: Iterable[str] | str | None = None
) -> NABCorpus:
    """Read NAB files (all of them, those whose name contains ``files`` if a string, or the
    listed ones) with their anomaly windows. InputError if the folder or a file is missing."""
    from detector.evaluation.nab import load_nab_windows

    root = find_nab(path)
    if root is None:
        where = path or f"$DETECTOR_NAB_DATA or .../{NAB_RELATIVE}"
        raise InputError(f"no NAB data (data/ and labels/combined_windows.json) at {where}")
    windows = load_nab_windows(root / "labels" / "combined_windows.json")
    if files is None:
        names = sorted(windows)
    elif isinstance(files, str):
        names = [n for n in sorted(windows) if files in n]
    else:
        names = list(files)
    unknown = [n for n in names if n not in windows]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(windows), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(f"no NAB file {unknown[0]!r} in the labels{hint}", source=str(root))
    if not names:
        raise InputError(f"no NAB file matches {files!r}", source=str(root))
    data = {n: _read_nab_file(root / "data" / n, n) for n in names}
    return NABCorpus(root, data, {n: windows[n] for n in names})


def _read_nab_file(path: Path, name: str) -> pd.DataFrame:
    try:
        raw = pd.read_csv(path)
        return pd.DataFrame(
            {
                "timestamp": pd.to_datetime(raw["timestamp"], utc=True).dt.as_unit("ns"),
                "series": name,
                "value": raw["value"].astype(float),
            }
        )
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"cannot read the NAB file: {exc}", source=str(path)) from exc


@dataclass(frozen=True)
class NABReport:
    """A model's NAB results: the score of its own alerts and the threshold-optimised one."""

    model: str
    decisions: NABResult  # alert onsets are the detections (what a user gets)
    optimised: NABResult  # one corpus threshold on the alert-onset strength (NAB's scoreboard)
    files: pd.DataFrame  # per file: rows, windows, detected, false alerts, weeks, NAB
    scores: dict[str, pd.DataFrame]  # per file: the scored table (for plot)

    @property
    def score(self) -> float:
        return self.decisions.score

    @property
    def recall(self) -> float:
        d = self.decisions
        return d.tp / (d.tp + d.fn) if d.tp + d.fn else float("nan")

    @property
    def false_alerts_per_series_week(self) -> float:
        weeks = float(self.files["weeks"].sum())
        return self.decisions.fp / weeks if weeks else float("nan")

    def metrics(self) -> dict[str, Any]:
        """The headline numbers as a flat dict (one row of a comparison table)."""
        d = self.decisions
        return {
            "model": self.model,
            "nab_score": d.score,
            "nab_score_optimised": self.optimised.score,
            "windows": d.tp + d.fn,
            "detected": d.tp,
            "recall": self.recall,
            "false_alerts": d.fp,
            "false_alerts_per_series_week": self.false_alerts_per_series_week,
        }


def nab_detector(model: str = "auto", *, sensitivity: float = 1.0, **params: Any) -> Detector:
    """The engine as a :data:`Detector`: causal scoring of one file with ``model``."""

    def detect(frame: pd.DataFrame) -> pd.DataFrame:
        return score_frame(frame, model=model, causal=True, sensitivity=sensitivity, **params)

    return detect


def detect_nab(
    corpus: NABCorpus, detect: Detector
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Run ``detect`` on each file on its own; return, per file, the scored table and the
    scores on the file's own rows (``timestamp, score, is_anomaly, onset, onset_score``).

    NAB requires every file to be handled independently, and file frequencies differ. A few
    files repeat or step back in time (DST artefacts), so the detector sees sorted,
    de-duplicated rows; repeated file rows then share their timestamp's score, and NAB's
    row-based scoring still runs over every original row. A row the detector did not score
    has a NaN ``score`` (and counts as no detection).
    """
    scored, aligned = {}, {}
    for name, frame in corpus.data.items():
        clean = frame.drop_duplicates("timestamp").sort_values("timestamp", kind="stable")
        out = detect(clean.reset_index(drop=True))
        scored[name] = out
        aligned[name] = _align(frame, out)
    return scored, aligned


def score_nab(
    corpus: NABCorpus,
    model: str = "auto",
    *,
    profile: str = "standard",
    sensitivity: float = 1.0,
    **params: Any,
) -> NABReport:
    """Score each NAB file on its own, causally, and compute NAB scores as
    ``benchmarks/nab.py`` does: a detection is a row where an alert starts (an alert
    notifies once); ``optimised`` tunes one corpus threshold on the alert-onset score.

    Per file (``files``): rows, windows, detected (windows with an onset), false alerts
    (onsets outside windows after NAB's probationary rows), weeks scored after probation, and
    the file's NAB score (NaN without a window).
    """
    from detector.evaluation.nab import nab_score, nab_score_decisions, probation_length

    scored, aligned = detect_nab(corpus, nab_detector(model, sensitivity=sensitivity, **params))
    optimised = nab_score(aligned, corpus.windows, profile, column="onset_score")
    decisions = nab_score_decisions(aligned, corpus.windows, profile, column="onset")
    rows = []
    for name, frame in aligned.items():
        f = decisions.files[name]
        ts = frame["timestamp"]
        p = min(probation_length(len(ts)), len(ts) - 1)
        step = ts.diff().median() if len(ts) > 1 else pd.Timedelta(0)
        weeks = (ts.iloc[-1] - ts.iloc[p] + step) / pd.Timedelta("7D")
        rows.append(
            {
                "file": name,
                "rows": len(frame),
                "windows": f.windows,
                "detected": f.tp,
                "false_alerts": f.fp,
                "weeks": weeks,
                "false_alerts_per_week": f.fp / weeks if weeks else float("nan"),
                "nab": 100 * (f.raw - f.null) / (f.perfect - f.null)
                if f.perfect > f.null
                else float("nan"),
            }
        )
    return NABReport(model, decisions, optimised, pd.DataFrame(rows).set_index("file"), scored)


def _align(frame: pd.DataFrame, scored: pd.DataFrame) -> pd.DataFrame:
    """The scores on the file's own rows (some NAB files repeat a timestamp), with alert
    onsets and the onset strength the corpus threshold is tuned on."""
    out = scored.assign(timestamp=pd.to_datetime(scored["timestamp"], utc=True).dt.as_unit("ns"))
    out = out.drop_duplicates("timestamp", keep="last")[["timestamp", "score", "is_anomaly"]]
    aligned = frame[["timestamp"]].merge(out, on="timestamp", how="left")
    flagged = aligned["is_anomaly"].astype("boolean").fillna(False).astype(bool)
    aligned["is_anomaly"] = flagged
    aligned["onset"] = flagged & ~flagged.shift(1, fill_value=False)
    aligned["onset_score"] = aligned["score"].fillna(0.0).where(aligned["onset"], 0.0)
    return aligned
