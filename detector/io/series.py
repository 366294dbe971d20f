"""Reading long-format series files and writing scored output.

Input is long format: one row per (timestamp, series) with a value, CSV or Parquet chosen by
the file's extension (``.csv``, ``.csv.gz``, ``.parquet``, ``.pq``; ``-`` reads CSV from
stdin). Every problem is reported as an :class:`~detector.errors.InputError` that names the
file, the line (CSV) or row (Parquet) and the column, because the person who must fix the file
needs exactly that.

Rules that matter downstream:

- naive timestamps are UTC; timestamps with an offset are converted to UTC;
- an empty value is *missing* (NaN), exactly like a bucket with no row, never a zero;
- the same series and timestamp twice with the same value is a harmless duplicate and is kept
  once; with different values it is an error, since we could not know which one is true.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from detector.errors import InputError
from detector.types import OUTPUT_COLUMNS

DEFAULT_SERIES = "value"


@dataclass(frozen=True)
class Columns:
    """Names of the input columns (the CLI's ``--*-col`` options)."""

    timestamp: str = "timestamp"
    series: str = "series"
    value: str = "value"
    denominator: str = "denominator"


def _format_of(path: str) -> str:
    name = path.lower()
    if name == "-" or name.endswith((".csv", ".csv.gz", ".txt", ".txt.gz")):
        return "csv"
    if name.endswith((".parquet", ".pq", ".parquet.gz")):
        return "parquet"
    raise InputError(
        "unknown file type; use a .csv, .csv.gz, .parquet or .pq file (or '-' for CSV on stdin)",
        source=path,
    )


def read_table(path: str) -> tuple[pd.DataFrame, str]:
    """Read a CSV/Parquet file as strings-or-native columns; return the frame and its format."""
    fmt = _format_of(path)
    try:
        if fmt == "csv":
            source: object = io.StringIO(sys.stdin.read()) if path == "-" else path
            frame = pd.read_csv(source, dtype=str, keep_default_na=False, compression="infer")
        else:
            frame = pd.read_parquet(path)
    except FileNotFoundError as exc:
        raise InputError("file not found", source=path) from exc
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read the file as {fmt.upper()}: {exc}", source=path) from exc
    return frame, fmt


def _where(fmt: str, index: int) -> dict[str, int]:
    # CSV: header is line 1, so data row i (0-based) is on line i + 2.
    return {"line": index + 2} if fmt == "csv" else {"row": index + 1}


def _parse_timestamps(col: pd.Series, path: str, fmt: str, name: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(col):
        ts = col
    else:
        text = col.astype(str).str.strip()
        ts = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
        bad = ts.isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"cannot parse {text.iloc[i]!r} as an ISO 8601 timestamp",
                source=path,
                column=name,
                **_where(fmt, i),
            )
    if ts.dt.tz is None:
        ts = ts.dt.tz_localize("UTC")
    return ts.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")


def _parse_numbers(col: pd.Series, path: str, fmt: str, name: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return col.astype(float)
    text = col.astype(str).str.strip()
    empty = text.isin(["", "nan", "NaN", "NA", "null", "None"]) | col.isna()
    values = pd.to_numeric(text.where(~empty, None), errors="coerce")
    bad = values.isna() & ~empty
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"cannot parse {text.iloc[i]!r} as a number", source=path, column=name, **_where(fmt, i)
        )
    values = values.astype(float)
    inf = np.isinf(values.to_numpy())
    if inf.any():
        i = int(np.flatnonzero(inf)[0])
        raise InputError("infinite value", source=path, column=name, **_where(fmt, i))
    return values


def read_series(path: str, columns: Columns | None = None) -> pd.DataFrame:
    """Read a long-format series file into ``timestamp, series, value[, denominator]``.

    ``timestamp`` is ``datetime64[ns, UTC]``, ``series`` a string (``"value"`` when the file
    has no series column), ``value`` a float with NaN for empty cells. Exact duplicate rows are
    kept once (their number is in ``frame.attrs["duplicates_dropped"]``); conflicting
    duplicates raise :class:`InputError` naming both lines.
    """
    cols = columns or Columns()
    frame, fmt = read_table(path)
    if cols.timestamp not in frame.columns:
        raise InputError(
            f"missing column; the file has {list(map(str, frame.columns))}, "
            "pass --timestamp-col to name the timestamp column",
            source=path,
            column=cols.timestamp,
        )
    if cols.value not in frame.columns:
        raise InputError(
            f"missing column; the file has {list(map(str, frame.columns))}, "
            "pass --value-col to name the value column",
            source=path,
            column=cols.value,
        )
    if frame.empty:
        raise InputError("the file has no data rows", source=path)
    out = pd.DataFrame(
        {
            "timestamp": _parse_timestamps(frame[cols.timestamp], path, fmt, cols.timestamp),
            "series": (
                frame[cols.series].astype(str).str.strip()
                if cols.series in frame.columns
                else DEFAULT_SERIES
            ),
            "value": _parse_numbers(frame[cols.value], path, fmt, cols.value),
        }
    )
    if cols.denominator in frame.columns:
        out["denominator"] = _parse_numbers(frame[cols.denominator], path, fmt, cols.denominator)
    return _drop_duplicates(out, path, fmt, cols)


def _drop_duplicates(df: pd.DataFrame, path: str, fmt: str, cols: Columns) -> pd.DataFrame:
    key = ["series", "timestamp"]
    dup = df.duplicated(key, keep=False)
    if not dup.any():
        return df.reset_index(drop=True)
    dups = df[dup]
    # Two rows of one key conflict when their values differ (NaN == NaN counts as equal).
    filled = dups.fillna({"value": np.inf})
    nunique = filled.groupby(key, sort=False)["value"].transform("nunique")
    conflicting = dups[nunique.to_numpy() > 1]
    if not conflicting.empty:
        first = conflicting.iloc[0]
        same = conflicting[
            (conflicting["series"] == first["series"])
            & (conflicting["timestamp"] == first["timestamp"])
        ]
        a, b = (int(i) for i in same.index[:2])
        where_b = _where(fmt, b)
        other = f"line {where_b['line']}" if "line" in where_b else f"row {where_b['row']}"
        raise InputError(
            f"duplicate timestamp {first['timestamp'].isoformat()} for series "
            f"{first['series']!r} with conflicting values {same['value'].iloc[0]} and "
            f"{same['value'].iloc[1]} (also at {other}); keep one row per series and timestamp",
            source=path,
            column=cols.timestamp,
            **_where(fmt, a),
        )
    out = df.drop_duplicates(key).reset_index(drop=True)
    # Nothing is dropped without a count: the CLI reports it.
    out.attrs["duplicates_dropped"] = len(df) - len(out)
    return out


def _format_timestamps(ts: pd.Series) -> pd.Series:
    return ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_scores(frame: pd.DataFrame, path: str) -> None:
    """Write scored output atomically, so a failure never leaves a partial file behind.

    The columns are written in :data:`~detector.types.OUTPUT_COLUMNS` order; CSV timestamps
    are ISO 8601 in UTC with a ``Z``.
    """
    out = frame.loc[:, list(OUTPUT_COLUMNS)]
    if path == "-":
        out = out.assign(timestamp=_format_timestamps(out["timestamp"]))
        out.to_csv(sys.stdout, index=False, float_format="%.6g")
        return
    target = Path(path)
    fmt = _format_of(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        if fmt == "csv":
            out = out.assign(timestamp=_format_timestamps(out["timestamp"]))
            # The temporary name has no .gz suffix, so say the compression explicitly.
            gz = "gzip" if path.lower().endswith(".gz") else None
            out.to_csv(tmp, index=False, float_format="%.6g", compression=gz)
        else:
            out.to_parquet(tmp, index=False)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; an output file is for others to read
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
