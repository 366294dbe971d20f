"""The command line: click's runner for behaviour, a real subprocess for the entry point."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from detector.cli import main
from detector.types import OUTPUT_COLUMNS
from tests.conftest import seasonal_counts


@pytest.fixture
def series_csv(tmp_path):
    df = seasonal_counts(days=4, seed=0)
    df.loc[3 * 288 + 144 : 3 * 288 + 167, "value"] = 0.0  # day 4, 12:00-14:00
    path = tmp_path / "orders.csv"
    df.assign(timestamp=df["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(path, index=False)
    return path


def test_score_writes_every_point_with_the_output_columns(series_csv, tmp_path):
    out = tmp_path / "scored.csv"
    result = CliRunner().invoke(main, ["score", str(series_csv), "-o", str(out)])
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(out)
    assert list(scored.columns) == list(OUTPUT_COLUMNS)
    assert len(scored) == 4 * 288
    flagged = scored[scored["is_anomaly"]]
    assert set(flagged["kind"]) == {"dip"}
    assert flagged["reason"].str.startswith("orders.DE = 0 at").all()


def test_score_parquet_and_options(series_csv, tmp_path):
    out = tmp_path / "scored.parquet"
    args = ["score", str(series_csv), "-o", str(out), "--no-causal", "--freq", "5min"]
    args += ["--sensitivity", "0.5", "--model", "profile"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert list(pd.read_parquet(out).columns) == list(OUTPUT_COLUMNS)


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("timestamp,series,value\n2026-01-01,a,1\n2026-01-01 00:05,a,x\n", [], "line 3"),
        ("when,value\n2026-01-01,1\n", [], "pass --timestamp-col"),
        ("timestamp,value\n2026-01-01,1\n2026-01-01 00:05,2\n", ["--model", "nope"], "nope"),
        ("timestamp,value\n2026-01-01,1\n2026-01-01 00:05,2\n", ["--sensitivity", "0"], "> 0"),
        ("timestamp,value\n2026-01-01,1\n2026-01-01 00:05,2\n", ["--freq", "soon"], "freq"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_output(tmp_path, content, args, message):
    src = tmp_path / "in.csv"
    src.write_text(content)
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(main, ["score", str(src), "-o", str(out), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert result.output.count("\n") == 1
    assert not out.exists()


def test_custom_column_names(tmp_path):
    df = seasonal_counts(days=2, seed=1)
    src = tmp_path / "in.csv"
    df.rename(columns={"timestamp": "t", "series": "name", "value": "n"}).to_csv(src, index=False)
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        main,
        ["score", str(src), "-o", str(out), "--timestamp-col", "t", "--series-col", "name",
         "--value-col", "n"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out)["series"].unique().tolist() == ["orders.DE"]


def test_console_script_reads_stdin_and_writes_stdout(series_csv):
    done = subprocess.run(
        [sys.executable, "-m", "detector.cli", "score", "-", "-o", "-"],
        input=series_csv.read_text(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    header = done.stdout.splitlines()[0]
    assert header == ",".join(OUTPUT_COLUMNS)


def test_console_script_missing_file_exit_code():
    done = subprocess.run(
        [sys.executable, "-m", "detector.cli", "score", "missing.csv", "-o", "x.csv"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "missing.csv: file not found" in done.stderr


def test_models_lists_the_registry():
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0
    assert set(result.output.split()) >= {"auto", "profile", "stl", "mstl", "holt_winters"}


def test_generate_writes_series_and_labels_that_score_reads(tmp_path):
    series, labels = tmp_path / "shop.csv", tmp_path / "labels.json"
    result = CliRunner().invoke(
        main, ["generate", "shop", "-o", str(series), "--labels", str(labels), "--weeks", "3"]
    )
    assert result.exit_code == 0, result.output
    from detector.evaluation.incidents import load_labels
    from detector.io.series import read_series

    data = read_series(str(series))
    assert data["series"].nunique() >= 20
    assert "denominator" in data.columns
    assert len(load_labels(labels).incidents) > 0


def test_params_reach_the_model_and_the_decisions(series_csv, tmp_path):
    out = tmp_path / "scored.csv"
    base = ["score", str(series_csv), "-o", str(out)]
    result = CliRunner().invoke(main, [*base, "-p", "direction=up"])
    assert result.exit_code == 0, result.output
    # The injected incident is a drop; with direction=up it must not be flagged.
    assert not pd.read_csv(out)["kind"].eq("dip").any()
    result = CliRunner().invoke(main, [*base, "-p", "weeks=2", "-p", "min_duration=3"])
    assert result.exit_code == 0, result.output


def test_engine_params_pass_through_p_and_change_no_number(series_csv, tmp_path):
    """``-p chunk=1`` (series scored one at a time, less memory) and ``-p refit=1D`` reach
    the engine, not the model, and the table is the same as with the defaults."""
    base = ["score", str(series_csv), "-o"]
    assert CliRunner().invoke(main, [*base, str(tmp_path / "a.csv")]).exit_code == 0
    result = CliRunner().invoke(main, [*base, str(tmp_path / "b.csv"), "-p", "chunk=1",
                                       "-p", "refit=1D"])  # fmt: skip
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv"))


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("nonsense=1", "nonsense"),
        ("direction=sideways", "direction"),
        ("oops", "KEY=VALUE"),
        ("chunk=0", "'chunk' parameter must be an int >= 1"),
    ],
)
def test_bad_params_exit_2(series_csv, tmp_path, param, message):
    out = tmp_path / "scored.csv"
    result = CliRunner().invoke(main, ["score", str(series_csv), "-o", str(out), "-p", param])
    assert result.exit_code == 2
    assert message in result.output
    assert not out.exists()


def test_dropped_and_merged_rows_are_counted_not_silent(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text(
        "timestamp,series,value\n"
        "2026-01-01T00:00:00Z,a,1\n2026-01-01T00:00:00Z,a,1\n"  # exact duplicate
        "2026-01-01T00:02:00Z,a,3\n"  # shares the 00:00 bucket
        "2026-01-01T00:05:00Z,a,2\n2026-01-01T00:15:00Z,a,2\n"  # 00:10 is missing
    )
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(main, ["score", str(src), "-o", str(out), "--freq", "5min"])
    assert result.exit_code == 0, result.output
    assert "1 missing buckets" in result.output
    assert "1 exact duplicate rows kept once" in result.output
    assert "1 rows averaged into shared 5min buckets" in result.output
    scored = pd.read_csv(out)
    assert scored.loc[scored["value"].isna(), "kind"].tolist() == ["missing"]
