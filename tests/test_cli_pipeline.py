"""validate, backtest, evaluate and demo through the command line (click's runner)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from click.testing import CliRunner

from detector.cli import main
from detector.types import OUTPUT_COLUMNS

ROOT = Path(__file__).resolve().parents[1]

PIPELINE = """name: mini
emitters:
  shop: {heartbeat: heartbeat, every: 1m}
events:
  heartbeat: {}
  order_placed:
    fields:
      market: {type: string, required: true, allowed: [DE, FR]}
      amount: {type: number, required: true, min: 0}
segments:
  market: {values: [DE, FR]}
metrics:
  - {name: orders, event: order_placed, aggregation: count, group_by: [market]}
  - {name: revenue, event: order_placed, aggregation: sum, field: amount, group_by: [market]}
"""

T0 = datetime(2026, 1, 5, tzinfo=UTC).timestamp()
DROP = (T0 + 2 * 86400 + 12 * 3600, T0 + 2 * 86400 + 14 * 3600)  # day 3, 12:00-14:00


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.fixture(scope="module")
def shop_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three days of orders in DE and FR (DE drops to zero on day 3 at noon) plus bad lines."""
    tmp = tmp_path_factory.mktemp("shop")
    rng = np.random.default_rng(0)
    events: list[dict | str] = []
    n = 0
    for b in range(3 * 288):
        start = T0 + 300 * b
        hour = (b % 288) / 12
        mu = 4 + 16 * np.exp(-((hour - 13) ** 2) / 18)
        for market in ("DE", "FR"):
            if market == "DE" and DROP[0] <= start < DROP[1]:
                continue
            for t in np.sort(start + rng.random(rng.poisson(mu)) * 300):
                n += 1
                events.append(
                    {
                        "event_id": f"o{n}",
                        "type": "order_placed",
                        "ts": _iso(t),
                        "source": "shop",
                        "market": market,
                        "amount": round(float(rng.lognormal(3, 0.5)), 2),
                    }
                )
        for k in range(10):
            events.append(
                {
                    "event_id": f"h{b}-{k}",
                    "type": "heartbeat",
                    "ts": _iso(start + 30 * k),
                    "source": "shop",
                }
            )
    events.sort(key=lambda e: e["ts"])  # type: ignore[index]
    events.insert(100, "{not json")
    events.insert(
        200,
        {
            "event_id": "x1",
            "type": "order_placed",
            "ts": _iso(T0 + 900),
            "source": "shop",
            "market": "DE",
            "amount": "12,5",
        },
    )
    events.insert(
        300,
        {
            "event_id": "x2",
            "type": "order_placed",
            "ts": _iso(T0 + 900),
            "source": "shop",
            "market": "XX",
            "amount": 1.0,
        },
    )
    path = tmp / "events.jsonl"
    path.write_bytes(
        b"".join((e.encode() if isinstance(e, str) else orjson.dumps(e)) + b"\n" for e in events)
    )
    pipeline = tmp / "mini.yaml"
    pipeline.write_text(PIPELINE, encoding="utf-8")
    labels = tmp / "labels.json"
    labels.write_text(
        json.dumps(
            {
                "incidents": [
                    {
                        "series": "orders{market=DE}",
                        "start": _iso(DROP[0]),
                        "end": _iso(DROP[1]),
                        "kind": "dip",
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    return {"events": path, "pipeline": pipeline, "labels": labels, "dir": tmp}


@pytest.fixture(scope="module")
def backtest_dir(shop_files: dict[str, Path]) -> Path:
    out = shop_files["dir"] / "out"
    result = CliRunner().invoke(
        main,
        [
            "backtest",
            "--pipeline",
            str(shop_files["pipeline"]),
            str(shop_files["events"]),
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "3 rejected" in result.output
    return out


def test_validate_accepts_the_shipped_pipeline_and_names_errors_with_lines(tmp_path: Path) -> None:
    ok = CliRunner().invoke(main, ["validate", str(ROOT / "pipelines" / "shop.yaml")])
    assert ok.exit_code == 0 and "OK" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(PIPELINE.replace("aggregation: sum", "aggregation: summ"), encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(bad)])
    assert result.exit_code == 2
    assert (
        f"{bad}:14: metrics[1].aggregation: unknown aggregation 'summ'; did you mean 'sum'?"
        in result.output
    )


def test_backtest_writes_metrics_with_explicit_zeros(backtest_dir: Path) -> None:
    metrics = pd.read_csv(backtest_dir / "metrics.csv")
    assert list(metrics.columns) == ["timestamp", "series", "value"]
    assert set(metrics["series"]) == {
        "orders{market=DE}",
        "orders{market=FR}",
        "revenue{market=DE}",
        "revenue{market=FR}",
    }
    de = metrics[metrics["series"] == "orders{market=DE}"].set_index("timestamp")["value"]
    assert len(de) == 3 * 288 - 1  # the last, incomplete window stays open
    assert de.loc[_iso(DROP[0])[:19] + "Z"] == 0  # a window with no orders is an explicit 0
    assert metrics["value"].notna().all()


def test_backtest_finds_the_drop_and_writes_score_columns(backtest_dir: Path) -> None:
    anomalies = pd.read_csv(backtest_dir / "anomalies.csv")
    assert list(anomalies.columns) == list(OUTPUT_COLUMNS)
    assert anomalies["is_anomaly"].all()
    de = anomalies[anomalies["series"] == "orders{market=DE}"]
    ts = pd.to_datetime(de["timestamp"])
    assert len(de) and (ts >= pd.Timestamp(DROP[0], unit="s", tz="UTC")).all()
    assert (ts < pd.Timestamp(DROP[1], unit="s", tz="UTC")).all()
    assert set(de["kind"]) == {"dip"}
    assert not (anomalies["series"].str.contains("FR")).any()


def test_backtest_keeps_rejected_events_with_reason_and_line(backtest_dir: Path) -> None:
    rows = [
        json.loads(line)
        for line in (backtest_dir / "rejected.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(rows) == 3
    assert rows[0]["origin"].endswith("events.jsonl:101")
    assert rows[0]["reason"].startswith("not valid JSON") and rows[0]["event"] == "{not json"
    assert rows[1]["reason"] == "field 'amount': expected a number, got '12,5'"
    assert rows[2]["reason"].startswith("field 'market': 'XX' is not one of")
    html = (backtest_dir / "report.html").read_text(encoding="utf-8")
    assert "orders{market=DE}" in html and "<svg" in html


def test_evaluate_reports_recall_precision_and_nab(
    backtest_dir: Path, shop_files: dict[str, Path]
) -> None:
    result = CliRunner().invoke(
        main, ["evaluate", "--labels", str(shop_files["labels"]), str(backtest_dir / "scores.csv")]
    )
    assert result.exit_code == 0, result.output
    assert "recall 1.00" in result.output or "recall: 1.00" in result.output, result.output
    assert "NAB score" in result.output
    only = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--labels",
            str(shop_files["labels"]),
            str(backtest_dir / "anomalies.csv"),
            "--metrics",
            str(backtest_dir / "metrics.csv"),
        ],
    )
    assert only.exit_code == 0, only.output
    assert only.output.splitlines()[:3] == result.output.splitlines()[:3]


def test_bad_inputs_exit_2_with_the_file_named(shop_files: dict[str, Path], tmp_path: Path) -> None:
    run = CliRunner().invoke
    missing = run(
        main,
        [
            "backtest",
            "--pipeline",
            str(shop_files["pipeline"]),
            str(tmp_path / "none.jsonl"),
            "-o",
            str(tmp_path / "o"),
        ],
    )
    assert missing.exit_code == 2 and "none.jsonl" in missing.output
    wrong = run(
        main,
        [
            "backtest",
            "--pipeline",
            str(shop_files["pipeline"]),
            str(tmp_path / "events.txt"),
            "-o",
            str(tmp_path / "o"),
        ],
    )
    assert wrong.exit_code == 2 and "unknown event file type" in wrong.output
    not_events = run(
        main,
        [
            "backtest",
            "--pipeline",
            str(shop_files["pipeline"]),
            str(shop_files["labels"]),
            "-o",
            str(tmp_path / "o"),
        ],
    )
    assert not_events.exit_code == 2 and "no valid event in" in not_events.output
    assert "labels.json:1: missing required field 'type'" in not_events.output
    labels = tmp_path / "l.json"
    labels.write_text('{"incidents": [{"series": "a"}]}', encoding="utf-8")
    bad_labels = run(main, ["evaluate", "--labels", str(labels), str(shop_files["events"])])
    assert bad_labels.exit_code == 2 and "incidents[0] has no 'start'" in bad_labels.output


def test_demo_finds_every_incident_and_reports_the_gap_as_missing(tmp_path: Path) -> None:
    """The README's first command, end to end (two weeks to keep CI short)."""
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "-o", str(out), "--weeks", "2", "--seed", "0"])
    assert result.exit_code == 0, result.output
    found = [line for line in result.output.splitlines() if "found" in line and " of " in line]
    assert found, result.output
    n_found, n_total = found[0].split("found ")[1].split(";")[0].split(" of ")
    assert n_found == n_total and int(n_total) >= 5
    assert "false alerts: 0 " in result.output
    assert "reported as missing data, no drop alert" in result.output
    assert "(1 pipeline_stale)" in result.output
    for name in [
        "events.jsonl",
        "labels.json",
        "metrics.csv",
        "anomalies.csv",
        "scores.csv",
        "rejected.jsonl",
        "report.html",
    ]:
        assert (out / name).is_file(), name
    rejected = (out / "rejected.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rejected) > 0 and all('"reason"' in line for line in rejected)
