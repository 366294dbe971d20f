from __future__ import annotations

import gzip
import io

import numpy as np
import pandas as pd
import pytest

from detector.errors import InputError
from detector.io.series import Columns, read_series, write_scores
from detector.types import OUTPUT_COLUMNS


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_reads_csv_naive_timestamps_as_utc_and_offsets_converted(tmp_path):
    path = write(
        tmp_path,
        "a.csv",
        "timestamp,series,value\n2026-01-01 00:00,a,1\n2026-01-01T02:05:00+02:00,a,2\n",
    )
    df = read_series(path)
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert df["timestamp"].tolist() == [
        pd.Timestamp("2026-01-01 00:00", tz="UTC"),
        pd.Timestamp("2026-01-01 00:05", tz="UTC"),
    ]
    assert df["value"].tolist() == [1.0, 2.0]


def test_no_series_column_means_one_series(tmp_path):
    path = write(tmp_path, "a.csv", "timestamp,value\n2026-01-01 00:00,1\n")
    assert read_series(path)["series"].tolist() == ["value"]


def test_empty_value_is_missing_not_zero(tmp_path):
    path = write(tmp_path, "a.csv", "timestamp,series,value\n2026-01-01 00:00,a,\n")
    assert np.isnan(read_series(path)["value"].iloc[0])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("timestamp,series,value\n2026-01-01,a,1\nnot-a-date,a,2\n", "line 3, column 'timestamp'"),
        ("timestamp,series,value\n2026-01-01,a,1\n2026-01-02,a,abc\n", "line 3, column 'value'"),
        ("timestamp,series,amount\n2026-01-01,a,1\n", "column 'value': missing column"),
        ("timestamp,series,value\n2026-01-01,a,1\n2026-01-01,a,2\n", "conflicting values"),
        ("timestamp,series,value\n", "no data rows"),
    ],
)
def test_bad_input_names_file_line_and_column(tmp_path, text, expected):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(InputError) as info:
        read_series(path)
    assert expected in str(info.value)
    assert "bad.csv" in str(info.value)


def test_identical_duplicates_are_kept_once(tmp_path):
    path = write(tmp_path, "a.csv", "timestamp,series,value\n2026-01-01,a,1\n2026-01-01,a,1\n")
    assert len(read_series(path)) == 1


def test_gzip_and_parquet_and_custom_columns(tmp_path):
    gz = tmp_path / "a.csv.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write("t,name,v\n2026-01-01,a,1\n")
    df = read_series(str(gz), Columns(timestamp="t", series="name", value="v"))
    assert df["series"].tolist() == ["a"]
    pq = tmp_path / "a.parquet"
    pd.DataFrame(
        {"timestamp": pd.to_datetime(["2026-01-01"]), "series": ["b"], "value": [2]}
    ).to_parquet(pq)
    df = read_series(str(pq))
    assert df["value"].tolist() == [2.0]
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"


def test_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("timestamp,value\n2026-01-01,3\n"))
    assert read_series("-")["value"].tolist() == [3.0]


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(InputError, match="unknown file type"):
        read_series(str(tmp_path / "a.xlsx"))
    with pytest.raises(InputError, match="file not found"):
        read_series(str(tmp_path / "nope.csv"))


def _scored() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2026-01-01"], utc=True),
            "series": ["a"],
            "value": [1.0],
            "expected": [1.0],
            "lower": [0.0],
            "upper": [2.0],
            "score": [0.1],
            "is_anomaly": [False],
            "kind": [""],
            "reason": [""],
        }
    )


@pytest.mark.parametrize("name", ["out.csv", "out.csv.gz", "out.parquet"])
def test_write_scores_round_trip(tmp_path, name):
    path = tmp_path / name
    write_scores(_scored(), str(path))
    back = pd.read_parquet(path) if name.endswith("parquet") else pd.read_csv(path)
    assert list(back.columns) == list(OUTPUT_COLUMNS)
    if name.endswith(".csv"):
        assert path.read_text().splitlines()[1].startswith("2026-01-01T00:00:00Z,a,1,")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_write_failure_leaves_no_partial_file(tmp_path):
    bad = _scored().drop(columns=["reason"])
    with pytest.raises(KeyError):
        write_scores(bad, str(tmp_path / "out.csv"))
    assert list(tmp_path.iterdir()) == []
