"""Per-case accuracy: injected incidents are found, clean seasonal noise is left alone.

Bounds, not exact floats: an alert is a run of flagged points; we count incidents caught and
alerts outside any incident.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detector.scoring import score_frame
from tests.conftest import seasonal_counts


def alerts(out: pd.DataFrame, series: str | None = None) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Runs of consecutive flagged rows, as (first, last) timestamps."""
    rows = out if series is None else out[out["series"] == series]
    flag = rows["is_anomaly"].to_numpy()
    ts = rows["timestamp"].tolist()
    runs, start = [], None
    for i, f in enumerate(flag):
        if f and start is None:
            start = i
        if not f and start is not None:
            runs.append((ts[start], ts[i - 1]))
            start = None
    if start is not None:
        runs.append((ts[start], ts[-1]))
    return runs


def overlaps(run, start, end) -> bool:
    return run[0] <= end and run[1] >= start


def inject(df: pd.DataFrame, start: str, hours: float, fn) -> tuple[pd.Timestamp, pd.Timestamp]:
    t0 = pd.Timestamp(start, tz="UTC")
    t1 = t0 + pd.Timedelta(hours=hours)
    sel = (df["timestamp"] >= t0) & (df["timestamp"] < t1)
    df.loc[sel, "value"] = fn(df.loc[sel, "value"].to_numpy())
    return t0, t1


def test_clean_seasonal_counts_give_almost_no_alerts():
    weeks = 0
    false = 0
    for seed in range(3):
        out = score_frame(seasonal_counts(days=21, seed=seed))
        scored = out[out["score"].notna()]
        weeks += (scored["timestamp"].max() - scored["timestamp"].min()) / pd.Timedelta("7D")
        false += len(alerts(out))
    assert false / weeks <= 0.5


@pytest.mark.parametrize(
    ("name", "fn", "hours", "kinds"),
    [
        ("drop to zero", lambda v: 0 * v, 2, {"dip"}),
        ("partial drop", lambda v: np.round(v * 0.5), 2, {"dip"}),
        ("spike", lambda v: v * 4, 0.5, {"spike"}),
    ],
)
def test_incidents_are_found_once(name, fn, hours, kinds):
    found = 0
    for seed in range(3):
        df = seasonal_counts(days=21, seed=seed)
        t0, t1 = inject(df, f"2026-01-{20 + seed} 12:00", hours, fn)
        out = score_frame(df)
        runs = alerts(out)
        hits = [r for r in runs if overlaps(r, t0, t1 + pd.Timedelta("30min"))]
        if hits:
            found += 1
            flagged = out[(out["timestamp"] >= t0) & (out["timestamp"] < t1) & out["is_anomaly"]]
            assert set(flagged["kind"]) <= kinds | {"level_shift"}
        assert len(runs) - len(hits) <= 1, f"{name}: false alerts {runs}"
    assert found == 3, name


def test_level_shift_is_flagged_once_then_learned():
    df = seasonal_counts(days=28, seed=4)
    t0 = pd.Timestamp("2026-01-21 09:00", tz="UTC")
    later = df["timestamp"] >= t0
    df.loc[later, "value"] = np.round(df.loc[later, "value"] * 1.6)
    out = score_frame(df)
    runs = alerts(out)
    assert any(overlaps(r, t0, t0 + pd.Timedelta("3h")) for r in runs)
    # Learned within hours: nothing flagged from one day after the shift on.
    after = out[out["timestamp"] >= t0 + pd.Timedelta("1D")]
    assert not after["is_anomaly"].any()
    assert (out["kind"] == "level_shift").sum() >= 1


def test_drop_to_zero_is_not_learned_as_normal():
    df = seasonal_counts(days=21, seed=5)
    t0, t1 = inject(df, "2026-01-21 08:00", 8, lambda v: 0 * v)
    out = score_frame(df)
    inside = out[(out["timestamp"] >= t0) & (out["timestamp"] < t1)]
    busy = inside[inside["expected"] > 10]
    assert busy["is_anomaly"].mean() > 0.9
    assert (inside["kind"] == "level_shift").sum() == 0


def test_missing_buckets_are_reported_and_do_not_cause_alerts():
    df = seasonal_counts(days=21, seed=6)
    t0 = pd.Timestamp("2026-01-20 11:00", tz="UTC")
    gap = (df["timestamp"] >= t0) & (df["timestamp"] < t0 + pd.Timedelta("2h"))
    out = score_frame(df[~gap])
    missing = out[out["kind"] == "missing"]
    assert len(missing) == 24
    assert missing["value"].isna().all()
    assert not missing["is_anomaly"].any()
    assert missing["reason"].str.contains("missing, not zero").all()
    near = out[
        (out["timestamp"] >= t0 - pd.Timedelta("3h")) & (out["timestamp"] < t0 + pd.Timedelta("5h"))
    ]
    assert not near["is_anomaly"].any()


def test_stale_currency_rate():
    rng = np.random.default_rng(7)
    idx = pd.date_range("2026-01-05", periods=288 * 14, freq="5min", tz="UTC")
    rate = 1.08 + np.cumsum(rng.normal(0, 0.0004, len(idx)))
    stuck = (idx >= pd.Timestamp("2026-01-15 10:00", tz="UTC")) & (
        idx < pd.Timestamp("2026-01-15 16:00", tz="UTC")
    )
    first = np.argmax(stuck)
    rate[stuck] = rate[first - 1]
    df = pd.DataFrame({"timestamp": idx, "series": "fx.EURUSD", "value": np.round(rate, 5)})
    out = score_frame(df)
    stale = out[out["kind"] == "stale"]
    assert len(stale) > 0
    assert stale["timestamp"].min() <= pd.Timestamp("2026-01-15 11:00", tz="UTC")
    assert stale["timestamp"].max() < pd.Timestamp("2026-01-15 16:05", tz="UTC")
    assert "unchanged" in stale["reason"].iloc[0]
    assert len(alerts(out[~out["kind"].eq("stale")])) <= 1


def test_success_rate_dip_with_denominator():
    rng = np.random.default_rng(8)
    counts = seasonal_counts(days=21, seed=8, level=80)
    attempts = counts["value"].to_numpy() + 5
    p = np.full(len(attempts), 0.95)
    t0 = pd.Timestamp("2026-01-21 13:00", tz="UTC")
    dip = (counts["timestamp"] >= t0) & (counts["timestamp"] < t0 + pd.Timedelta("1h"))
    p[dip.to_numpy()] = 0.82
    ok = rng.binomial(attempts.astype(int), p)
    df = pd.DataFrame(
        {
            "timestamp": counts["timestamp"],
            "series": "payment_success_rate.adyen",
            "value": ok / attempts,
            "denominator": attempts,
        }
    )
    out = score_frame(df)
    runs = alerts(out)
    assert any(overlaps(r, t0, t0 + pd.Timedelta("1h")) for r in runs)
    assert len(runs) <= 2


def test_sparse_ticket_sales_explosion():
    rng = np.random.default_rng(9)
    idx = pd.date_range("2026-01-05", periods=288 * 21, freq="5min", tz="UTC")
    hours = idx.hour.to_numpy()
    mean = np.where((hours >= 8) & (hours <= 22), 0.6, 0.05)
    values = rng.poisson(mean).astype(float)
    t0 = pd.Timestamp("2026-01-22 15:00", tz="UTC")
    boom = (idx >= t0) & (idx < t0 + pd.Timedelta("1h"))
    values[boom] = rng.poisson(15, boom.sum())
    out = score_frame(pd.DataFrame({"timestamp": idx, "series": "tickets.1", "value": values}))
    runs = alerts(out)
    assert any(overlaps(r, t0, t0 + pd.Timedelta("1h")) for r in runs)
    assert len(runs) <= 2
