"""Incident-level evaluation on hand-made scored tables with known alerts."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from detector.datasets.shop import Gap, Incident, make_shop_metrics
from detector.errors import InputError
from detector.evaluation.incidents import (
    EvaluationReport,
    Labels,
    combine_reports,
    evaluate,
    labels_from_shop,
    load_labels,
    save_labels,
)

START = pd.Timestamp("2026-01-05", tz="UTC")
STEP = pd.Timedelta("5min")
WEEK_ROWS = 7 * 288


def at(row: int) -> pd.Timestamp:
    return START + row * STEP


def scored(flags: dict[str, list[int]], rows: int = WEEK_ROWS) -> pd.DataFrame:
    """One row per bucket per series; ``flags`` lists the flagged rows of each series."""
    frames = []
    for name, flagged in flags.items():
        is_anomaly = np.zeros(rows, bool)
        is_anomaly[flagged] = True
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": pd.date_range(START, periods=rows, freq=STEP),
                    "series": name,
                    "value": 1.0,
                    "score": np.where(is_anomaly, 5.0, 0.1),
                    "is_anomaly": is_anomaly,
                    "kind": np.where(is_anomaly, "dip", ""),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def incident(series: str, first: int, stop: int, kind: str = "dip") -> Incident:
    return Incident(series, at(first), at(stop), kind, f"{series} {kind}")


def test_exact_counts_and_rates() -> None:
    table = scored({"a": [101, 102, 103, 1000], "b": [523, 600]})
    labels = Labels((incident("a", 100, 110), incident("b", 500, 520, "spike")))
    report = evaluate(table, labels)
    assert report.n_incidents == 2 and report.n_detected == 2 and report.recall == 1.0
    assert report.n_alerts == 4 and report.n_false_alerts == 2
    assert report.precision == 0.5
    assert report.f1 == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert report.series_weeks == pytest.approx(2.0)
    assert report.false_alerts_per_series_week == pytest.approx(1.0)
    delays = report.to_frame().set_index("series")["delay"]
    assert delays["a"] == pd.Timedelta("5min")
    assert delays["b"] == pd.Timedelta("115min")  # 3 rows after the end, inside the grace
    false = report.alerts_frame()
    assert sorted(zip(false["series"], false["start"], strict=True)) == [
        ("a", at(1000)),
        ("b", at(600)),
    ]
    assert (false["max_score"] == 5.0).all() and (false["kind"] == "dip").all()


def test_missed_incident_and_empty_alerts() -> None:
    report = evaluate(scored({"a": [], "b": []}), Labels((incident("a", 10, 20),)))
    assert report.recall == 0.0 and report.n_alerts == 0
    assert math.isnan(report.precision) and math.isnan(report.f1)
    assert report.false_alerts_per_series_week == 0.0
    assert pd.isna(report.median_delay)
    assert report.to_frame()["detected"].tolist() == [False]


def test_grace_accepts_late_alerts_only_within_it() -> None:
    table = scored({"a": [25]})  # 5 rows (25 min) after the end at row 20
    labels = Labels((incident("a", 10, 20),))
    strict = evaluate(table, labels, grace="0min")
    assert strict.recall == 0.0 and strict.n_false_alerts == 1
    late = evaluate(table, labels, grace="30min")
    assert late.recall == 1.0 and late.n_false_alerts == 0
    assert late.median_delay == pd.Timedelta("75min")
    assert evaluate(table, labels, grace="25min").recall == 0.0  # end + grace is exclusive


def test_alert_before_the_incident_does_not_count() -> None:
    report = evaluate(scored({"a": [9]}), Labels((incident("a", 10, 20),)), max_gap=0)
    assert report.recall == 0.0 and report.n_false_alerts == 1


def test_run_that_starts_early_still_detects() -> None:
    report = evaluate(scored({"a": [8, 9, 10, 11]}), Labels((incident("a", 10, 20),)))
    assert report.recall == 1.0 and report.n_alerts == 1 and report.n_false_alerts == 0
    assert report.median_delay == pd.Timedelta(0)


@pytest.mark.parametrize(
    ("flags", "max_gap", "alerts"),
    [
        ([10, 11, 12], 0, 1),
        ([10, 12], 0, 2),
        ([10, 12], 1, 1),
        ([10, 13], 1, 2),
        ([10, 13], 2, 1),
        ([10, 12, 14, 16], 1, 1),
    ],
)
def test_runs_and_max_gap(flags: list[int], max_gap: int, alerts: int) -> None:
    assert evaluate(scored({"a": flags}), Labels(), max_gap=max_gap).n_alerts == alerts


def test_runs_are_split_per_series() -> None:
    # The last row of "a" and the first row of "b" are adjacent once sorted: still two alerts.
    table = scored({"a": [WEEK_ROWS - 1], "b": [0]})
    report = evaluate(table, Labels(), max_gap=3)
    assert report.n_alerts == 2
    assert sorted(a.series for a in report.alerts) == ["a", "b"]


def test_incident_on_another_series_does_not_match() -> None:
    report = evaluate(scored({"a": [], "b": [15]}), Labels((incident("a", 10, 20),)))
    assert report.recall == 0.0 and report.n_false_alerts == 1


def test_unsorted_input_is_fine() -> None:
    table = scored({"a": [11, 12], "b": [300]}).sample(frac=1.0, random_state=0)
    report = evaluate(table, Labels((incident("a", 10, 20),)))
    assert report.n_alerts == 2 and report.n_detected == 1


def test_alerts_in_gaps_are_false() -> None:
    table = scored({"a": [50, 51, 52, 53], "b": [200]})
    labels = Labels(
        (incident("b", 190, 210),),
        (Gap("a", at(50), at(52)), Gap("*", at(199), at(205))),
    )
    report = evaluate(table, labels)
    alerts = sorted(report.alerts, key=lambda a: (a.series, a.start))
    # The run 50-53 of "a" is split at the gap's end: 50-51 inside, 52-53 outside.
    assert [(a.series, a.start, a.in_gap) for a in alerts] == [
        ("a", at(50), True),
        ("a", at(52), False),
        ("b", at(200), True),
    ]
    assert report.n_false_alerts == 3
    assert report.recall == 0.0  # an alert on missing data does not detect the incident


def test_missing_rows_are_not_alerts() -> None:
    table = scored({"a": []})
    table.loc[100:130, "value"] = np.nan
    assert evaluate(table, Labels()).n_alerts == 0


def test_start_excludes_warmup() -> None:
    table = scored({"a": [5, 500, 1500]}, rows=2 * WEEK_ROWS)
    labels = Labels((incident("a", 0, 10), incident("a", 1490, 1510)))
    full = evaluate(table, labels)
    assert full.n_incidents == 2 and full.series_weeks == pytest.approx(2.0)
    later = evaluate(table, labels, start=at(WEEK_ROWS // 2))
    assert later.n_incidents == 1 and later.recall == 1.0
    assert later.n_alerts == 1  # the alerts at rows 5 and 500 are before the start
    assert later.series_weeks == pytest.approx(1.5)


def test_incidents_after_the_data_are_left_out() -> None:
    report = evaluate(scored({"a": []}), Labels((incident("a", WEEK_ROWS + 10, WEEK_ROWS + 20),)))
    assert report.n_incidents == 0 and math.isnan(report.recall)


def test_incident_on_an_unscored_series_is_missed() -> None:
    report = evaluate(scored({"a": [15]}), Labels((incident("zzz", 10, 20),)))
    assert report.n_incidents == 1 and report.recall == 0.0


def test_delays_per_kind_and_quantiles() -> None:
    table = scored({"a": [10, 102, 204], "b": [310]})
    labels = Labels(
        (
            incident("a", 10, 20, "spike"),  # delay 0
            incident("a", 100, 110, "dip"),  # delay 10 min
            incident("a", 200, 210, "dip"),  # delay 20 min
            incident("b", 300, 320, "stale"),  # delay 50 min
            incident("b", 400, 410, "stale"),  # missed
        )
    )
    report = evaluate(table, labels)
    assert report.recall == pytest.approx(0.8)
    assert report.recall_by_kind == {"dip": 1.0, "spike": 1.0, "stale": 0.5}
    assert report.median_delay == pd.Timedelta("15min")
    assert report.p90_delay == pd.Timedelta("41min")  # numpy's linear interpolation
    kinds = report.by_kind()
    assert kinds.loc["stale", "incidents"] == 2 and kinds.loc["stale", "detected"] == 1


def test_summary_and_frames_print() -> None:
    table = scored({"a": [15, 900], "b": []})
    report = evaluate(table, Labels((incident("a", 10, 20), incident("b", 10, 20))))
    text = report.summary()
    assert "recall 0.500" in text and "false alerts 1" in text
    assert "missed:" in text and "b dip" in text
    assert str(report) == text
    assert list(report.to_frame().columns) == [
        "series",
        "kind",
        "start",
        "end",
        "detected",
        "delay",
        "description",
    ]
    assert report.metrics()["false_alerts"] == 1


def test_summary_lists_a_bounded_number_of_false_alerts() -> None:
    report = evaluate(scored({"a": list(range(0, 400, 4))}), Labels())
    assert report.n_false_alerts == 100
    assert "... and 80 more" in report.summary(max_listed=20)


def test_combine_reports_pools() -> None:
    labels = Labels((incident("a", 10, 20),))
    one = evaluate(scored({"a": [12, 500]}), labels)
    two = evaluate(scored({"a": []}), labels)
    pooled = combine_reports([one, two])
    assert pooled.n_incidents == 2 and pooled.recall == 0.5
    assert pooled.n_false_alerts == 1 and pooled.series_weeks == pytest.approx(2.0)
    assert pooled.false_alerts_per_series_week == pytest.approx(0.5)
    with pytest.raises(InputError):
        combine_reports([])


def test_naive_timestamps_are_utc() -> None:
    table = scored({"a": [12]})
    table["timestamp"] = table["timestamp"].dt.tz_localize(None)
    assert evaluate(table, Labels((incident("a", 10, 20),))).recall == 1.0


def test_bad_scored_table() -> None:
    with pytest.raises(InputError, match="missing column"):
        evaluate(scored({"a": []}).drop(columns="is_anomaly"), Labels())
    bad = scored({"a": []})
    bad["is_anomaly"] = "maybe"
    with pytest.raises(InputError):
        evaluate(bad, Labels())
    with pytest.raises(InputError):
        evaluate(scored({"a": []}), Labels(), grace="-5min")


def test_labels_round_trip(tmp_path) -> None:
    labels = Labels(
        (incident("orders.DE", 10, 20), incident("fx.EURUSD", 30, 60, "stale")),
        (Gap("*", at(100), at(110)),),
    )
    path = tmp_path / "labels.json"
    save_labels(labels, path)
    doc = json.loads(path.read_text())
    assert doc["incidents"][0]["start"] == "2026-01-05T00:50:00Z"
    assert doc["gaps"][0]["series"] == "*"
    assert load_labels(path) == labels


def test_load_labels_without_gaps(tmp_path) -> None:
    path = tmp_path / "labels.json"
    path.write_text(
        json.dumps(
            {
                "incidents": [
                    {
                        "series": "orders.DE",
                        "start": "2026-01-20T14:05:00+01:00",
                        "end": "2026-01-20T15:05:00Z",
                        "kind": "dip",
                    }
                ]
            }
        )
    )
    labels = load_labels(path)
    assert labels.gaps == ()
    assert labels.incidents[0].start == pd.Timestamp("2026-01-20T13:05:00Z")
    assert labels.incidents[0].description == ""


@pytest.mark.parametrize(
    ("content", "match", "row", "column"),
    [
        ("{not json", "not valid JSON", None, None),
        ('["a list"]', "expected an object", None, None),
        ('{"incidents": [{"series": "a", "start": "2026-01-05"}]}', "has no 'end'", 0, "end"),
        (
            '{"incidents": [{"series": "a", "start": "2026-01-05", "end": "2026-01-06",'
            ' "kind": "dip"}, {"series": "a", "start": "2026-01-05", "end": "2026-01-06",'
            ' "kind": "boom"}]}',
            "unknown incident kind",
            1,
            "kind",
        ),
        ('{"incidents": [], "gaps": [{"series": "*", "start": "x", "end": "y"}]}', "gaps", 0, None),
    ],
)
def test_load_labels_errors(tmp_path, content, match, row, column) -> None:
    path = tmp_path / "labels.json"
    path.write_text(content)
    with pytest.raises(InputError, match=match) as info:
        load_labels(path)
    assert info.value.source == str(path)
    assert info.value.row == row
    if column is not None:
        assert info.value.column == column


def test_load_labels_missing_file(tmp_path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_labels(tmp_path / "nope.json")


def test_oracle_on_shop_metrics_is_perfect() -> None:
    """Flagging exactly the incident windows gives recall 1 and no false alert."""
    shop = make_shop_metrics(seed=21, weeks=3)
    table = shop.data.assign(is_anomaly=False)
    for inc in shop.incidents:
        inside = (
            (table["series"] == inc.series)
            & (table["timestamp"] >= inc.start)
            & (table["timestamp"] < inc.end)
        )
        table.loc[inside, "is_anomaly"] = True
    labels = labels_from_shop(shop)
    report = evaluate(table, labels, start=shop.warmup_end)
    assert isinstance(report, EvaluationReport)
    assert report.n_incidents == len(shop.incidents) > 0
    assert report.recall == 1.0 and report.n_false_alerts == 0
    assert report.series_weeks == pytest.approx(len(shop.series_kinds) * 1.5, rel=0.01)
    assert evaluate(table, shop, start=shop.warmup_end).recall == 1.0  # ShopMetrics works too
