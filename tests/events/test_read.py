"""Event files: every format gives the same events; bad lines are kept with their line."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pandas as pd
import pytest

from detector.errors import InputError
from detector.events.read import read_events
from detector.events.schema import Undecodable, parse_ts

EVENTS = [
    {
        "event_id": "007",
        "type": "order_placed",
        "ts": "2026-01-05T10:00:01.250Z",
        "source": "shop-api",
        "market": "DE",
        "amount": 12.5,
    },
    {
        "event_id": "008",
        "type": "order_placed",
        "ts": "2026-01-05T10:00:02Z",
        "source": "shop-api",
        "market": "FR",
    },
]


def _read(path: Path, chunk: int = 10_000) -> list:
    return [e for c in read_events([path], chunk=chunk) for e in c.events]


def test_jsonl_gzip_csv_and_parquet_give_the_same_events(tmp_path: Path) -> None:
    lines = b"".join(orjson.dumps(e) + b"\n" for e in EVENTS)
    (tmp_path / "e.jsonl").write_bytes(lines)
    with gzip.open(tmp_path / "e.jsonl.gz", "wb") as fh:
        fh.write(lines)
    frame = pd.DataFrame(EVENTS)
    frame.to_csv(tmp_path / "e.csv", index=False)
    frame.to_csv(tmp_path / "e.csv.gz", index=False)
    frame.to_parquet(tmp_path / "e.parquet", index=False)
    for name in ["e.jsonl", "e.jsonl.gz", "e.csv", "e.csv.gz", "e.parquet"]:
        assert _read(tmp_path / name) == EVENTS, name


def test_parquet_timestamps_become_iso_text(tmp_path: Path) -> None:
    frame = pd.DataFrame(EVENTS).assign(
        ts=pd.to_datetime([e["ts"] for e in EVENTS], utc=True, format="ISO8601")
    )
    frame.to_parquet(tmp_path / "e.parquet", index=False)
    got = _read(tmp_path / "e.parquet")
    assert [parse_ts(e["ts"]) for e in got] == [parse_ts(e["ts"]) for e in EVENTS]


def test_bad_lines_are_kept_with_their_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text('{"a": 1}\n\n{broken\n{"b": 2}\n', encoding="utf-8")
    chunks = list(read_events([path], chunk=2))
    events = [e for c in chunks for e in c.events]
    origins = [c.origin(i) for c in chunks for i in range(len(c.events))]
    assert events[0] == {"a": 1} and events[2] == {"b": 2}
    assert isinstance(events[1], Undecodable) and events[1].raw == "{broken"
    assert origins == [f"{path}:1", f"{path}:3", f"{path}:4"]


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        list(read_events([tmp_path / "none.jsonl"]))
    with pytest.raises(InputError, match="unknown event file type"):
        list(read_events([tmp_path / "e.txt"]))
    bad = tmp_path / "e.jsonl.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(InputError, match=str(bad)):
        list(read_events([bad]))


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-05T10:00:00Z",
        "2026-01-05T10:00:00.500Z",
        "2026-01-05T11:00:00+01:00",
        "2026-01-05T10:00:00",
        "2026-01-05 10:00:00.5+00:00",
        "2026-01-05T10:00:00.123456Z",
    ],
)
def test_timestamps_parse_like_fromisoformat(text: str) -> None:
    expected = (
        pd.Timestamp(text).tz_localize("UTC")
        if pd.Timestamp(text).tz is None
        else pd.Timestamp(text)
    )
    assert parse_ts(text) == pytest.approx(expected.timestamp(), abs=1e-6)


@pytest.mark.parametrize("text", ["yesterday", "2026-01-05T10:00:1e1Z", "2026-01-05T10:00:61Z", 5])
def test_bad_timestamps_raise(text: object) -> None:
    with pytest.raises(ValueError):
        parse_ts(text)
