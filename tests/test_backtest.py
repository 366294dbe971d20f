"""Backtest internals: local-time scoring of segments with a time zone."""

from __future__ import annotations

import numpy as np
import pandas as pd

from detector.backtest import score_local
from detector.scoring.engine import score_frame


def _berlin_evening_peak() -> pd.DataFrame:
    """Orders peaking at 19:00 Berlin time, across the 2026-10-25 daylight-saving change."""
    idx = pd.date_range("2026-10-01", "2026-11-10", freq="5min", tz="UTC", inclusive="left")
    local = idx.tz_convert("Europe/Berlin")
    hour = local.hour + local.minute / 60
    rng = np.random.default_rng(0)
    mu = 5 + 60 * np.exp(-((hour - 19) ** 2) / 4)
    return pd.DataFrame(
        {"timestamp": idx, "series": "orders{market=DE}", "value": rng.poisson(mu).astype(float)}
    )


def test_local_time_scoring_keeps_the_rows_and_the_shape_across_dst() -> None:
    df = _berlin_evening_peak()
    local = score_local(df, "Europe/Berlin")
    utc = score_frame(df)
    assert len(local) == len(df)
    assert (local["timestamp"].to_numpy() == df["timestamp"].to_numpy()).all()
    assert (local["value"].to_numpy() == df["value"].to_numpy()).all()
    after = local["timestamp"] >= "2026-10-25"
    # In UTC the peak moves an hour at the change and the weekly medians page for weeks.
    n_local = int(local.loc[after, "is_anomaly"].sum())
    n_utc = int(utc.loc[utc["timestamp"] >= "2026-10-25", "is_anomaly"].sum())
    assert n_utc >= 10 and n_local <= n_utc // 5, (n_local, n_utc)
    flagged = local.loc[local["is_anomaly"], "reason"]
    assert flagged.str.endswith("(times in Europe/Berlin)").all()


def test_hourly_and_daily_windows_score():
    """``window: 1h`` reaches scoring as pandas' alias ``h`` (``to_offset("1h").freqstr``)."""
    from detector.backtest import score_metrics
    from detector.pipeline.config import parse_pipeline

    rng = np.random.default_rng(0)
    for window, freq, periods in (("1h", "1h", 24 * 20), ("1d", "1D", 120)):
        pipeline = parse_pipeline(f"""
name: h
metrics: [{{name: orders, event: order_placed, aggregation: count, window: {window}}}]
""")
        idx = pd.date_range("2026-01-01", periods=periods, freq=freq, tz="UTC")
        values = rng.poisson(50, periods).astype(float)
        values[-5] = 0.0
        metrics = pd.DataFrame(
            {"timestamp": idx, "series": "orders", "value": values, "denominator": np.nan,
             "metric": "orders", "missing": False}
        )  # fmt: skip
        scored = score_metrics(pipeline, metrics)
        assert len(scored) == periods
        assert scored["score"].iloc[-5] == scored["score"].max(), window  # the zero stands out
