"""Tests of NAB scoring on small hand-made files whose scores are worked out in the comments.

Unless said otherwise a file has 100 hourly rows, so the probationary period is
floor(0.15 * 100) = 15 rows (rows 0..14), and one window covers rows 40..49 (width 10).
σ(p) = 2 / (1 + exp(5 p)) - 1 and σ(-1) = 2 / (1 + e^-5) - 1 = 0.986614.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from detector.errors import ConfigError, InputError
from detector.evaluation.nab import (
    PROFILES,
    CostProfile,
    load_nab_windows,
    nab_score,
    nab_score_decisions,
    score_file,
)

ROWS = 100
STAMPS = pd.date_range("2024-01-01", periods=ROWS, freq="h")
WINDOW = (STAMPS[40], STAMPS[49])
NAB_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nab"


def frame_with(detections: dict[int, float], stamps: pd.DatetimeIndex = STAMPS) -> pd.DataFrame:
    """A result frame scoring 0 everywhere except the given rows."""
    scores = np.zeros(len(stamps))
    for row, score in detections.items():
        scores[row] = score
    return pd.DataFrame({"timestamp": stamps, "score": scores})


def one_file(detections: dict[int, float], **kwargs: object):
    """Score a single 100-row file with the window on rows 40..49."""
    return nab_score({"f.csv": frame_with(detections)}, {"f.csv": [WINDOW]}, **kwargs)


def test_perfect_detector_scores_100() -> None:
    # Detection at the window's first row: a_tp * σ(-1) / σ(-1) = 1 = perfect; null = -1.
    result = one_file({40: 1.0})
    assert result.raw == pytest.approx(1.0)
    assert (result.null, result.perfect) == (-1.0, 1.0)
    assert result.score == pytest.approx(100.0)
    assert (result.tp, result.fp, result.fn) == (1, 0, 0)


def test_null_detector_scores_0() -> None:
    # Nothing ever detected: raw = -a_fn = -1 = null, so 100 * 0 / 2 = 0, whatever the threshold.
    assert one_file({}).score == pytest.approx(0.0)
    assert one_file({}, threshold=0.5).score == pytest.approx(0.0)
    result = one_file({})
    assert (result.tp, result.fp, result.fn) == (0, 0, 1)
    assert result.threshold > 0.0  # the all-zero scores must not be "detected" at threshold 0


def test_early_detection_scores_close_to_perfect() -> None:
    # Row 41: p = -(49 - 41 + 1) / 10 = -0.9; σ(-0.9) = 2 / (1 + e^-4.5) - 1 = 0.978026,
    # / 0.986614 = 0.991296; score = 100 * (0.991296 + 1) / 2 = 99.5648.
    result = one_file({41: 1.0})
    assert result.raw == pytest.approx(0.991296, abs=1e-5)
    assert result.score == pytest.approx(99.5648, abs=1e-3)


def test_late_detection_scores_less() -> None:
    # Row 49 (last row): p = -1 / 10 = -0.1; σ(-0.1) = 2 / (1 + e^-0.5) - 1 = 0.244919,
    # / 0.986614 = 0.248242; score = 100 * 1.248242 / 2 = 62.4121.
    late = one_file({49: 1.0})
    assert late.raw == pytest.approx(0.248242, abs=1e-5)
    assert late.score == pytest.approx(62.4121, abs=1e-3)
    assert late.score < one_file({45: 1.0}).score < one_file({41: 1.0}).score


def test_false_positive_far_from_windows_costs_a_fp() -> None:
    # Row 20 precedes every window: costs the full a_fp = 0.11. With a perfect hit on row 40:
    # raw = 1 - 0.11 = 0.89, score = 100 * 1.89 / 2 = 94.5.
    before = one_file({20: 1.0, 40: 1.0})
    assert before.raw == pytest.approx(0.89)
    assert before.score == pytest.approx(94.5)
    assert before.fp == 1
    # Row 99: p = (99 - 49) / (10 - 1) = 5.56 >= 3, so σ = -1: also the full a_fp.
    assert one_file({99: 1.0, 40: 1.0}).raw == pytest.approx(0.89)


def test_false_positive_just_after_window_costs_less() -> None:
    # Row 50: p = (50 - 49) / 9 = 0.1111; σ = 2 / (1 + e^0.5556) - 1 = -0.270829;
    # cost = 0.11 * 0.270829 = 0.029791, so raw = 1 - 0.029791 = 0.970209.
    result = one_file({40: 1.0, 50: 1.0})
    assert result.raw == pytest.approx(0.970209, abs=1e-5)
    assert result.fp == 1


def test_detections_in_probationary_period_are_ignored() -> None:
    # Rows 0..14 are probationary: rows 3 and 14 do not count, row 15 does (-0.11).
    assert one_file({3: 1.0, 14: 1.0, 40: 1.0}).score == pytest.approx(100.0)
    assert one_file({3: 1.0, 14: 1.0, 40: 1.0}).fp == 0
    assert one_file({15: 1.0, 40: 1.0}).raw == pytest.approx(0.89)


def test_only_first_detection_in_window_counts() -> None:
    # Rows 40, 41, 45, 49 all in the window: only row 40 counts (raw 1); the rest are neither
    # true positives nor false positives.
    result = one_file({40: 1.0, 41: 1.0, 45: 1.0, 49: 1.0})
    assert result.raw == pytest.approx(1.0)
    assert (result.tp, result.fp, result.fn) == (1, 0, 0)
    # Row 45 alone (p = -0.5, σ = 0.848284 / 0.986614 = 0.859792) is not improved by row 49.
    assert one_file({45: 1.0, 49: 1.0}).raw == pytest.approx(one_file({45: 1.0}).raw)


def test_threshold_optimisation_beats_both_extremes() -> None:
    # Scores: row 47 = 0.9 (late: p = -0.3, σ = 0.635149 / 0.986614 = 0.643766), row 44 = 0.6
    # (p = -0.6, σ = 0.905148 / 0.986614 = 0.917430), rows 20, 25, 30 = 0.7 (-0.11 each), all
    # other rows 0.
    #   threshold > 0.9: nothing, raw -1 (score 0)
    #   threshold 0.9:   row 47 only, raw 0.643766 (score 82.19)  <- best
    #   threshold 0.7:   row 47 and 3 FPs, raw 0.643766 - 0.33 = 0.313766
    #   threshold 0.6:   row 44 and 3 FPs, raw 0.917430 - 0.33 = 0.587430
    #   threshold 0:     everything: row 40 (1.0) but 75 rows outside the window are FPs.
    result = one_file({47: 0.9, 44: 0.6, 20: 0.7, 25: 0.7, 30: 0.7})
    assert result.threshold == pytest.approx(0.9)
    assert result.raw == pytest.approx(0.643766, abs=1e-5)
    assert result.score == pytest.approx(82.1883, abs=1e-3)
    everything = one_file({47: 0.9, 44: 0.6, 20: 0.7, 25: 0.7, 30: 0.7}, threshold=0.0)
    nothing = one_file({47: 0.9, 44: 0.6, 20: 0.7, 25: 0.7, 30: 0.7}, threshold=1.0)
    assert result.score > everything.score
    assert result.score > nothing.score


def test_optimised_threshold_matches_brute_force() -> None:
    # Random scores on three files: the exact search must equal the best of evaluating every
    # distinct score value (and "above everything") one by one.
    rng = np.random.default_rng(7)
    results, windows = {}, {}
    for k in range(3):
        scores = rng.random(ROWS) ** 4
        results[f"f{k}.csv"] = pd.DataFrame({"timestamp": STAMPS, "score": scores})
        windows[f"f{k}.csv"] = [(STAMPS[30 + 5 * k], STAMPS[39 + 5 * k]), (STAMPS[70], STAMPS[80])]
    for profile in PROFILES:
        best = nab_score(results, windows, profile)
        levels = np.unique(np.concatenate([f["score"].to_numpy() for f in results.values()]))
        tried = [nab_score(results, windows, profile, threshold=t).raw for t in levels]
        assert best.raw == pytest.approx(max([*tried, best.null]))


def test_profiles_differ_as_expected() -> None:
    # Two windows (rows 40..49 and 70..79), a perfect hit on the first, the second missed, one
    # FP on row 20 (before any window):
    #   standard:           raw = 1 - 1 - 0.11 = -0.11; null -2, perfect 2 -> 100 * 1.89 / 4 = 47.25
    #   reward_low_FP_rate: raw = 1 - 1 - 0.22 = -0.22                     -> 100 * 1.78 / 4 = 44.5
    #   reward_low_FN_rate: raw = 1 - 2 - 0.11 = -1.11; null -4, perfect 2 -> 100 * 2.89 / 6 = 48.17
    frame = frame_with({20: 1.0, 40: 1.0})
    windows = {"f.csv": [WINDOW, (STAMPS[70], STAMPS[79])]}
    scores = {p: nab_score({"f.csv": frame}, windows, p, threshold=0.5).score for p in PROFILES}
    assert scores["standard"] == pytest.approx(47.25)
    assert scores["reward_low_FP_rate"] == pytest.approx(44.5)
    assert scores["reward_low_FN_rate"] == pytest.approx(48.1667, abs=1e-3)
    assert PROFILES["standard"] == CostProfile(a_tp=1.0, a_fp=0.11, a_tn=1.0, a_fn=1.0)


def test_corpus_sums_files_and_normalises_once() -> None:
    # File a: perfect hit (raw 1). File b: window missed (raw -1). File c: no window, one FP
    # (raw -0.11). raw = -0.11, null = -2, perfect = 2: score = 100 * 1.89 / 4 = 47.25.
    results = {
        "a.csv": frame_with({40: 1.0}),
        "b.csv": frame_with({}),
        "c.csv": frame_with({60: 1.0}),
    }
    windows = {"a.csv": [WINDOW], "b.csv": [WINDOW], "c.csv": []}
    result = nab_score(results, windows, threshold=0.5)
    assert result.score == pytest.approx(47.25)
    assert (result.tp, result.fp, result.fn) == (1, 1, 1)
    assert result.files["c.csv"].windows == 0


def test_decisions_column_is_scored_directly() -> None:
    # is_anomaly True on row 40 (hit) and row 20 (FP): raw 0.89 as above, score 94.5.
    frame = pd.DataFrame({"timestamp": STAMPS, "is_anomaly": False})
    frame.loc[[20, 40], "is_anomaly"] = True
    result = nab_score_decisions({"f.csv": frame}, {"f.csv": [WINDOW]})
    assert result.score == pytest.approx(94.5)
    assert result.threshold == 0.5


def test_nan_scores_are_not_detections() -> None:
    frame = frame_with({40: 1.0})
    frame.loc[20, "score"] = np.nan
    assert nab_score({"f.csv": frame}, {"f.csv": [WINDOW]}).score == pytest.approx(100.0)


def test_tz_aware_results_match_naive_windows() -> None:
    # The same instants in UTC, and in Paris time (UTC+1 in January): identical scores.
    for tz in ("UTC", "Europe/Paris"):
        stamps = STAMPS.tz_localize("UTC").tz_convert(tz)
        frame = frame_with({20: 1.0, 41: 1.0}, stamps=stamps)
        result = nab_score({"f.csv": frame}, {"f.csv": [WINDOW]}, threshold=0.5)
        assert result.raw == pytest.approx(0.991296 - 0.11, abs=1e-5)


def test_window_inside_probation_is_not_counted() -> None:
    # A window on rows 5..10 lies wholly in the probationary rows: neither TP nor FN.
    windows = {"f.csv": [(STAMPS[5], STAMPS[10]), WINDOW]}
    result = nab_score({"f.csv": frame_with({40: 1.0})}, windows)
    assert (result.tp, result.fn, result.null) == (1, 0, -1.0)


def test_score_file_reports_counts() -> None:
    scores = np.zeros(ROWS)
    scores[[20, 45, 46]] = 1.0
    result = score_file(STAMPS, scores, [WINDOW], threshold=0.5, profile="reward_low_FP_rate")
    # Row 45: 0.859792; row 20: -0.22.
    assert result.raw == pytest.approx(0.859792 - 0.22, abs=1e-5)
    assert (result.tp, result.fp, result.fn, result.windows) == (1, 1, 0, 1)


def test_bad_input_is_reported() -> None:
    frame = frame_with({40: 1.0})
    with pytest.raises(InputError, match="no NAB windows"):
        nab_score({"other.csv": frame}, {"f.csv": [WINDOW]})
    with pytest.raises(InputError, match="missing column"):
        nab_score({"f.csv": frame.drop(columns="score")}, {"f.csv": [WINDOW]})
    with pytest.raises(InputError, match="overlap"):
        nab_score({"f.csv": frame}, {"f.csv": [WINDOW, (STAMPS[45], STAMPS[60])]})
    with pytest.raises(InputError, match="undefined"):
        nab_score({"f.csv": frame}, {"f.csv": []})
    with pytest.raises(ConfigError, match="unknown NAB profile"):
        nab_score({"f.csv": frame}, {"f.csv": [WINDOW]}, "lenient")
    with pytest.raises(InputError, match="scores for"):
        score_file(STAMPS, np.zeros(3), [WINDOW], threshold=0.5)


def test_bad_windows_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "windows.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_nab_windows(path)
    path.write_text('{"a.csv": [["2024-01-02", "2024-01-01"]]}')
    with pytest.raises(InputError, match="ends before it starts"):
        load_nab_windows(path)
    with pytest.raises(InputError, match="cannot read"):
        load_nab_windows(tmp_path / "missing.json")


@pytest.mark.skipif(not NAB_DATA.is_dir(), reason="shared NAB data not present")
def test_real_nab_labels_load() -> None:
    windows = load_nab_windows(NAB_DATA / "labels" / "combined_windows.json")
    assert len(windows) == 35
    assert sum(len(w) for w in windows.values()) == 55
    assert len(windows["realKnownCause/nyc_taxi.csv"]) == 5
    assert windows["artificialNoAnomaly/art_flatline.csv"] == []
    for spans in windows.values():
        assert all(start < end for start, end in spans)
        assert spans == sorted(spans)
    for name in windows:
        assert (NAB_DATA / "data" / name).is_file()
