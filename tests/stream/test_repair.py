"""``detector repair``: a store that lost a stretch of events is put right from files or Kafka."""

from __future__ import annotations

from pathlib import Path

import orjson
import pandas as pd
import pytest
from click.testing import CliRunner

from detector.backtest import aggregate_files
from detector.cli import main
from detector.pipeline.config import parse_pipeline
from detector.store import open_store
from tests.stream.shop import PIPELINE, shop_events
from tests.stream.test_run import produce

T1, T2 = "2026-01-08T10:00:00Z", "2026-01-08T16:00:00Z"


def write(path: Path, events: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def damaged_store(tmp: Path, events: list[dict]) -> str:
    """A store built from the events minus an hour around the incident (a lost batch)."""
    lost = [e for e in events if not ("2026-01-08T12:00" <= e["ts"] < "2026-01-08T13:00")]
    pipeline = parse_pipeline(PIPELINE)
    metrics, _ = aggregate_files(pipeline, [write(tmp / "lost.jsonl", lost)])
    from detector.aggregation.windows import Point

    url = f"sqlite:///{tmp / 'store.db'}"
    with open_store(url) as store:
        points = [
            Point(r.metric, r.series, int(r.timestamp.value // 10**9), r.value,
                  None if pd.isna(r.denominator) else r.denominator, bool(r.missing))
            for r in metrics.itertuples(index=False)
        ]  # fmt: skip
        store.commit("streamshop", "g", offsets={}, state=None, points=points)
    return url


def stored(tmp: Path, url: str) -> pd.DataFrame:
    args = ["metrics", "--pipeline", str(tmp / "p.yaml"), "--store", url, "--from", T1,
            "--to", T2, "-o", str(tmp / "m.csv")]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    return pd.read_csv(tmp / "m.csv")


def truth(tmp: Path, events: list[dict]) -> pd.DataFrame:
    metrics, _ = aggregate_files(parse_pipeline(PIPELINE), [write(tmp / "all.jsonl", events)])
    t = metrics["timestamp"]
    keep = metrics[(t >= pd.Timestamp(T1)) & (t < pd.Timestamp(T2))]
    return keep[["timestamp", "series", "value"]].reset_index(drop=True)


def same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    a = a.assign(timestamp=pd.to_datetime(a["timestamp"], utc=True))
    b = b.assign(timestamp=pd.to_datetime(b["timestamp"], utc=True))
    key = ["series", "timestamp"]
    a, b = a.sort_values(key, ignore_index=True), b.sort_values(key, ignore_index=True)
    return a[key].equals(b[key]) and ((a["value"] - b["value"]).abs() < 1e-9).all()


@pytest.fixture()
def events() -> list[dict]:
    return shop_events(days=4, per_5min=20, seed=4)


def test_repair_from_files_reports_then_fixes(tmp_path, events):
    (tmp_path / "p.yaml").write_text(PIPELINE)
    url = damaged_store(tmp_path, events)
    before = stored(tmp_path, url)
    assert not same(before, truth(tmp_path, events))
    full = write(tmp_path / "events.jsonl", events)
    args = ["repair", "--pipeline", str(tmp_path / "p.yaml"), "--from", T1, "--to", T2,
            "--store", url, str(full)]  # fmt: skip

    res = CliRunner().invoke(main, [*args, "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "48 windows changed" in res.output and "dry run: nothing written" in res.output
    assert stored(tmp_path, url).equals(before)

    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "48 windows changed" in res.output and "written to the store" in res.output
    assert "anomalies:" in res.output
    assert same(stored(tmp_path, url), truth(tmp_path, events))
    # The incident (DE sells x6 from 12:00) was in the lost hour: repaired, it is found.
    with open_store(url) as store:
        found = store.anomalies("streamshop", start=pd.Timestamp(T1), end=pd.Timestamp(T2))
    assert "orders{market=DE}" in set(found["series"])

    res = CliRunner().invoke(main, args)  # again: nothing left to change
    assert "0 windows changed, 0 added" in res.output and "0 new, 0 gone" in res.output


def test_repair_from_kafka(kafka_broker, topic, tmp_path, events):
    (tmp_path / "p.yaml").write_text(PIPELINE)
    produce(kafka_broker.bootstrap, topic, events)
    url = damaged_store(tmp_path, events)
    res = CliRunner().invoke(main, ["repair", "--pipeline", str(tmp_path / "p.yaml"), "--from",
                                    T1, "--to", T2, "--store", url, "--bootstrap-servers",
                                    kafka_broker.bootstrap, "--topic", topic])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "48 windows changed" in res.output, res.output
    assert same(stored(tmp_path, url), truth(tmp_path, events))


def test_repair_rejects_a_backwards_range(tmp_path):
    (tmp_path / "p.yaml").write_text(PIPELINE)
    res = CliRunner().invoke(main, ["repair", "--pipeline", str(tmp_path / "p.yaml"), "--from",
                                    T2, "--to", T1, "x.jsonl"])  # fmt: skip
    assert res.exit_code == 2 and "--to must be after --from" in res.output
