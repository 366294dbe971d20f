"""What the API accepts, read as the CLI reads it: series, scored output, pipelines, labels.

Every function of the API takes a table in memory or a file, and a pipeline or labels as a
path or a loaded object; the conversions live here, once, so a frame built by hand is typed
like a file and a bad row is an :class:`~detector.errors.InputError` naming its place.
``detector score`` reads series with :func:`load_series`'s code and ``detector evaluate``
reads its PREDICTIONS with :func:`load_scores`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from detector.api.labelled_data import LabelledData
from detector.datasets.shop import ShopMetrics
from detector.errors import ConfigError, InputError
from detector.evaluation.incidents import Labels, load_labels

if TYPE_CHECKING:
    from detector.pipeline.config import Pipeline

__all__ = ["as_labels", "as_pipeline", "as_series", "load_scores", "load_series"]


def load_series(
    path: str | Path,
    *,
    timestamp_col: str = "timestamp",
    series_col: str = "series",
    value_col: str = "value",
    denominator_col: str = "denominator",
) -> pd.DataFrame:
    """Read a long series file (CSV, CSV.gz or Parquet) as ``detector score`` reads it.

    Returns ``timestamp`` (UTC), ``series`` (``"value"`` when the file has no series column),
    ``value`` (NaN: missing, never 0) and ``denominator`` when the file has one. Every problem
    is an :class:`~detector.errors.InputError` naming the file, line and column.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "orders.csv"
    >>> _ = path.write_text("timestamp,value\\n2026-01-05T00:00Z,3\\n2026-01-05T00:05Z,\\n")
    >>> load_series(path)["value"].tolist()
    [3.0, nan]
    >>> _ = path.write_text("timestamp,value\\n2026-01-05T00:00Z,3\\n2026-01-05T00:05Z,x\\n")
    >>> load_series(path)
    Traceback (most recent call last):
    ...
    detector.errors.InputError: ...orders.csv, line 3, column 'value': cannot parse 'x' as a number
    """
    from detector.io.series import Columns, read_series

    cols = Columns(timestamp_col, series_col, value_col, denominator_col)
    return read_series(str(path), cols)


def load_scores(path: str | Path) -> pd.DataFrame:
    """Read scored output back (``detector score -o``, backtest's ``scores.csv`` or
    ``anomalies.csv``): at least ``timestamp``, ``series`` and ``is_anomaly``, as
    ``detector evaluate`` reads it.

    Only an empty cell is missing: a series named ``NA`` stays ``NA``, and the empty ``kind``
    and ``reason`` of quiet rows read as ``""``, as they were written.
    """
    source = str(path)
    if not Path(source).is_file():
        raise InputError("file not found", source=source)
    try:
        if source.lower().endswith((".parquet", ".pq")):
            frame = pd.read_parquet(source)
        else:
            frame = pd.read_csv(source, low_memory=False, keep_default_na=False, na_values=[""])
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        # The words of `detector evaluate` (PREDICTIONS), which reads its input here.
        raise InputError(f"cannot read predictions: {exc}", source=source) from exc
    for col in ("timestamp", "series", "is_anomaly"):
        if col not in frame.columns:
            raise InputError(
                f"no {col!r} column; pass scored output (detector score, backtest's scores.csv "
                f"or anomalies.csv); the file has {list(frame.columns)}",
                source=source,
            )
    flags = frame["is_anomaly"]
    if flags.dtype != bool:
        text = flags.astype(str).str.strip().str.lower()
        bad = ~text.isin(["true", "false", "1", "0"])
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise InputError(
                f"is_anomaly must be true/false, got {flags.iloc[row]!r}",
                source=source, line=row + 2, column="is_anomaly",
            )  # fmt: skip
        frame["is_anomaly"] = text.isin(["true", "1"])
    try:
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise InputError(f"unparsable timestamp: {exc}", source=source, column="timestamp") from exc
    frame["series"] = frame["series"].astype(str)
    for col in ("kind", "reason"):
        if col in frame.columns:
            frame[col] = frame[col].astype(object).where(frame[col].notna(), "").astype(str)
    return frame


def as_series(series: Any) -> pd.DataFrame:
    """A long table (``timestamp, series, value[, denominator]``) from a table, a series file
    or generated data (:class:`~detector.api.LabelledData`, ``ShopMetrics``)."""
    if isinstance(series, pd.DataFrame):
        return _normalised(series)
    if isinstance(series, str | os.PathLike):
        return load_series(series)
    if isinstance(series, LabelledData | ShopMetrics):
        return series.data
    raise InputError(
        "expected a long table (timestamp, series, value) or a series file; "
        f"got {type(series).__name__}"
    )


def _normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """A table typed as :func:`load_series` types it (UTC times, float values), so a frame
    built by hand scores like a file; an InputError names the first bad row."""
    for col in ("timestamp", "value"):
        if col not in frame.columns:
            raise InputError(
                f"missing column; the table has {list(map(str, frame.columns))}", column=col
            )
    ts = frame["timestamp"]
    fixes: dict[str, Any] = {}
    if not isinstance(ts.dtype, pd.DatetimeTZDtype) or str(ts.dt.tz) != "UTC":
        if pd.api.types.is_datetime64_any_dtype(ts):
            parsed = ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")
        else:
            parsed = pd.to_datetime(ts.astype(str), utc=True, format="ISO8601", errors="coerce")
            bad = parsed.isna().to_numpy()
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise InputError(
                    f"cannot parse {ts.iloc[row]!r} as an ISO 8601 timestamp",
                    row=row + 1,
                    column="timestamp",
                )
        fixes["timestamp"] = parsed
    for col in ("value", "denominator"):
        if col in frame.columns and not pd.api.types.is_float_dtype(frame[col]):
            values = pd.to_numeric(frame[col], errors="coerce")
            bad = (values.isna() & frame[col].notna()).to_numpy()
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise InputError(
                    f"cannot parse {frame[col].iloc[row]!r} as a number", row=row + 1, column=col
                )
            fixes[col] = values.astype(float)
    return frame.assign(**fixes) if fixes else frame


def as_pipeline(pipeline: str | Path | Pipeline) -> Pipeline:
    """A loaded pipeline, or the pipeline file loaded (every error reported at once)."""
    # Imported here: `detector evaluate` reads its input with this module, and pipelines
    # (pydantic) would add a fifth of a second to its start.
    from detector.pipeline.config import Pipeline, load_pipeline

    if isinstance(pipeline, Pipeline):
        return pipeline
    if isinstance(pipeline, str | os.PathLike):
        return load_pipeline(pipeline)
    raise ConfigError(
        f"expected a pipeline file or a loaded Pipeline, got {type(pipeline).__name__}"
    )


def as_labels(labels: Any) -> Labels:
    """Labels from a labels file, :class:`Labels`, generated data with labels
    (:class:`~detector.api.LabelledData`, ``ShopMetrics``, ``ShopEvents``)."""
    if isinstance(labels, Labels):
        return labels
    if isinstance(labels, str | os.PathLike):
        return load_labels(labels)
    if isinstance(labels, ShopMetrics):
        return Labels(tuple(labels.incidents), tuple(labels.gaps))
    inner = getattr(labels, "labels", None)
    if isinstance(inner, Labels):
        return inner
    raise InputError(
        f"expected labels (a labels JSON file, Labels, or generated data); got "
        f"{type(labels).__name__}"
    )
