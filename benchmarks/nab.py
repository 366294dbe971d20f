"""Run a detector over the NAB corpus and print its NAB scores as markdown tables.

Usage::

    python benchmarks/nab.py [--data PATH] [--model auto] [--sensitivity 1.0]
                             [--baseline zscore] [--only SUBSTRING]

Each NAB file is scored on its own by ``detector.scoring.score_frame(..., causal=True)`` (file
frequencies differ, and NAB requires every file to be handled independently), and the scores are
matched back to the file's rows by timestamp: :func:`detector.api.load_nab` and
:func:`detector.api.detect_nab` do both, so ``detector.score_nab`` in a notebook gives these
figures. Two figures per profile:

* the NAB score with the corpus-optimised threshold on ``score`` (what NAB's scoreboard reports),
* the NAB score of the detector's own decisions, i.e. what a user gets: the rows where an alert
  starts (``is_anomaly`` true after a row where it was false). An alert is a run of flagged rows
  and notifies once, so its onset is the detection; counting every row of a long anomaly as a
  new detection would charge one alert many times.

``--baseline zscore`` swaps the engine for :func:`rolling_zscore_baseline`, a plain causal
rolling z-score implemented here, as a reference point. The default data path is
``../shared/data/nab`` next to the repository.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from detector.api.nab import (
    NAB_RELATIVE,
    Detector,
    NABCorpus,
    detect_nab,
    load_nab,
    nab_detector,
)
from detector.evaluation.nab import PROFILES, FileScore, NABResult, nab_score, nab_score_decisions

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / NAB_RELATIVE


def rolling_zscore_baseline(
    frame: pd.DataFrame, *, window: int = 288, min_periods: int = 48, sensitivity: float = 1.0
) -> pd.DataFrame:
    """A causal rolling z-score: the simplest honest detector, kept as a NAB reference point.

    Each value is compared with the mean and standard deviation of the previous ``window`` rows
    (never itself or the future). ``score = |z| / (|z| + 3)`` maps z to [0, 1) without
    saturating, so the threshold search can still rank large deviations; the decision is
    ``|z| >= 4 / sensitivity``. Returns the engine's output columns.

    >>> frame = pd.DataFrame({"timestamp": pd.date_range("2024", periods=60, freq="h", tz="UTC"),
    ...                       "series": "s", "value": [1.0, 2.0] * 29 + [1.5, 50.0]})
    >>> out = rolling_zscore_baseline(frame, window=20, min_periods=10)
    >>> bool(out["is_anomaly"].iloc[-1]), bool(out["is_anomaly"].iloc[:-1].any())
    (True, False)
    """
    value = frame["value"].astype(float)
    past = value.shift(1).rolling(window, min_periods=min_periods)
    mean, std = past.mean(), past.std()
    floor = 1e-9 * np.maximum(mean.abs(), 1.0)
    z = ((value - mean) / np.maximum(std, floor)).fillna(0.0)
    limit = 4.0 / sensitivity
    anomaly = z.abs() >= limit
    kind = np.where(anomaly, np.where(z > 0, "spike", "dip"), "")
    return pd.DataFrame(
        {
            "timestamp": frame["timestamp"],
            "series": frame["series"],
            "value": value,
            "expected": mean,
            "lower": mean - limit * std,
            "upper": mean + limit * std,
            "score": z.abs() / (z.abs() + 3.0),
            "is_anomaly": anomaly,
            "kind": kind,
            "reason": np.where(anomaly, "rolling z = " + z.round(1).astype(str), ""),
        }
    )


def engine_detector(model: str, sensitivity: float) -> Detector:
    """The project's scoring engine, as :func:`detector.score_nab` runs it."""
    return nab_detector(model, sensitivity=sensitivity)


def run_detector(data: Path, names: list[str], detect: Detector) -> dict[str, pd.DataFrame]:
    """Read and score the named files of the NAB folder ``data``."""
    return detect_corpus(load_nab(data, files=names), detect)


def detect_corpus(corpus: NABCorpus, detect: Detector) -> dict[str, pd.DataFrame]:
    """Score every file, reporting rows the detector output did not cover (scored 0)."""
    _scored, results = detect_nab(corpus, detect)
    for name, aligned in results.items():
        unmatched = int(aligned["score"].isna().sum())
        if unmatched:
            print(f"note: {name}: {unmatched} rows without a score (scored 0)", file=sys.stderr)
    return results


def category_of(name: str) -> str:
    """NAB's category is the file's folder."""
    return name.split("/", 1)[0]


def normalised(files: list[FileScore]) -> str:
    """NAB score of a subset of files, or a dash when it has no window to normalise by."""
    raw, null = sum(f.raw for f in files), sum(f.null for f in files)
    perfect = sum(f.perfect for f in files)
    return f"{100 * (raw - null) / (perfect - null):.1f}" if perfect > null else "–"


def counts(result: NABResult, names: list[str]) -> str:
    """TP / FP / FN of some files as one cell."""
    files = [result.files[n] for n in names]
    tp, fp, fn = (sum(getattr(f, k) for f in files) for k in ("tp", "fp", "fn"))
    return f"{tp} / {fp} / {fn}"


def profile_table(scores: dict[str, tuple[NABResult, NABResult]]) -> list[str]:
    """One row per profile: optimised-threshold score and own-decisions score."""
    lines = [
        "| profile | NAB, optimised threshold | threshold | TP / FP / FN "
        "| NAB, own decisions | TP / FP / FN |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for profile, (best, own) in scores.items():
        names = list(best.files)
        lines.append(
            f"| {profile} | {best.score:.1f} | {best.threshold:.4f} | {counts(best, names)} "
            f"| {own.score:.1f} | {counts(own, names)} |"
        )
    return lines


def category_table(best: NABResult, own: NABResult) -> list[str]:
    """Per NAB category under the standard profile, both ways of detecting."""
    lines = [
        "| category | files | windows | NAB, optimised | TP / FP / FN "
        "| NAB, own decisions | TP / FP / FN |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for category in sorted({category_of(n) for n in best.files}):
        names = [n for n in best.files if category_of(n) == category]
        windows = sum(best.files[n].windows for n in names)
        lines.append(
            f"| {category} | {len(names)} | {windows} "
            f"| {normalised([best.files[n] for n in names])} | {counts(best, names)} "
            f"| {normalised([own.files[n] for n in names])} | {counts(own, names)} |"
        )
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; the defaults reproduce the README figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="NAB folder")
    parser.add_argument("--model", default="auto", help="model passed to score_frame")
    parser.add_argument("--sensitivity", type=float, default=1.0)
    parser.add_argument(
        "--baseline",
        choices=["zscore"],
        help="score with a built-in baseline instead of the engine (zscore: causal rolling z)",
    )
    parser.add_argument("--only", default="", help="score only files whose name contains this")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Detect, score under the three profiles, print markdown."""
    args = parse_args(argv)
    started = time.perf_counter()
    corpus = load_nab(args.data, files=args.only)
    windows, names = corpus.windows, list(corpus.windows)
    if args.baseline == "zscore":
        label = "rolling z-score baseline"

        def detect(frame: pd.DataFrame) -> pd.DataFrame:
            return rolling_zscore_baseline(frame, sensitivity=args.sensitivity)
    else:
        label = f"detector.scoring (model={args.model})"
        detect = engine_detector(args.model, args.sensitivity)

    # The engine's rows of one long anomaly all carry high scores; NAB would count each as a
    # new detection. Its alerts start at onsets, so the threshold is tuned on onset strength.
    score_column = "score" if args.baseline == "zscore" else "onset_score"
    results = detect_corpus(corpus, detect)
    detected = time.perf_counter()
    scores = {
        p: (
            nab_score(results, windows, p, column=score_column),
            nab_score_decisions(results, windows, p, column="onset"),
        )
        for p in PROFILES
    }
    finished = time.perf_counter()

    rows = sum(len(f) for f in results.values())
    print(f"### NAB: {label}, sensitivity {args.sensitivity}, {len(names)} files, {rows} rows\n")
    print("\n".join(profile_table(scores)))
    print("\nPer category, standard profile (TP/FN count windows, FP count detections):\n")
    print("\n".join(category_table(*scores["standard"])))
    print(
        f"\nRun time: detection {detected - started:.1f} s "
        f"({rows / max(detected - started, 1e-9):,.0f} rows/s), "
        f"NAB scoring of 3 profiles x 2 {finished - detected:.2f} s."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
