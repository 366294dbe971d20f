"""Properties that must hold for any input: causality, order independence, no crashes."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.scoring import score_frame
from detector.types import OUTPUT_COLUMNS
from tests.conftest import seasonal_counts

NUMERIC = ["value", "expected", "lower", "upper", "score"]


def same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    assert a["timestamp"].equals(b["timestamp"])
    for col in NUMERIC:
        np.testing.assert_allclose(a[col].to_numpy(float), b[col].to_numpy(float), equal_nan=True)
    assert a["is_anomaly"].tolist() == b["is_anomaly"].tolist()
    assert a["kind"].tolist() == b["kind"].tolist()
    assert a["reason"].tolist() == b["reason"].tolist()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut_day=st.integers(min_value=2, max_value=9),
    cut_step=st.integers(min_value=0, max_value=287),
    future=st.sampled_from(["zeros", "spike", "noise", "missing"]),
)
def test_causal_outputs_do_not_depend_on_the_future(cut_day, cut_step, future):
    """Appending or changing later points never changes an earlier output row."""
    df = seasonal_counts(days=10, seed=cut_day)
    cut = df["timestamp"].iloc[0] + pd.Timedelta(days=cut_day) + pd.Timedelta(minutes=5 * cut_step)
    past = df[df["timestamp"] < cut]
    later = df[df["timestamp"] >= cut].copy()
    if future == "zeros":
        later["value"] = 0.0
    elif future == "spike":
        later["value"] = later["value"] * 50
    elif future == "noise":
        later["value"] = np.random.default_rng(cut_step).normal(0, 100, len(later))
    else:
        later = later.iloc[::7]
    full = score_frame(pd.concat([past, later]))
    short = score_frame(past)
    same(full[full["timestamp"] < cut], short)


def test_series_order_does_not_change_results():
    a = seasonal_counts(days=9, seed=1, series="orders.DE")
    b = seasonal_counts(days=9, seed=2, series="orders.FR", level=20)
    one = score_frame(pd.concat([a, b]))
    two = score_frame(pd.concat([b, a]).sample(frac=1.0, random_state=3))
    for name in ("orders.DE", "orders.FR"):
        same(one[one["series"] == name], two[two["series"] == name])
    alone = score_frame(a)
    same(one[one["series"] == "orders.DE"], alone)


values = st.one_of(
    st.floats(min_value=-1e12, max_value=1e12),
    st.just(float("nan")),
    st.just(0.0),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.lists(values, min_size=1, max_size=400),
    freq=st.sampled_from(["5min", "1h", "1D"]),
)
def test_any_values_never_crash(data, freq):
    idx = pd.date_range("2026-01-01", periods=len(data), freq=freq, tz="UTC")
    df = pd.DataFrame({"timestamp": idx, "series": "s", "value": data})
    df = df[df["value"].notna() | (np.arange(len(df)) % 2 == 0)]
    if df.empty or df["timestamp"].nunique() < 2:
        return
    out = score_frame(df, freq=freq)
    assert list(out.columns) == list(OUTPUT_COLUMNS)
    assert out["score"].dropna().between(0, 1).all()
    assert set(out["kind"]) <= {"", "spike", "dip", "level_shift", "stale", "missing", "variance"}
    assert not out.loc[out["kind"] == "missing", "is_anomaly"].any()


def test_constant_short_huge_and_negative_series():
    idx = pd.date_range("2026-01-01", periods=288 * 3, freq="5min", tz="UTC")
    cases = {
        "constant": np.full(len(idx), 7.0),
        "huge": np.random.default_rng(0).normal(1e15, 1e13, len(idx)),
        "negative": np.random.default_rng(1).normal(-500, 20, len(idx)),
        "short": np.array([1.0, 2.0, 3.0] + [np.nan] * (len(idx) - 3)),
    }
    for name, v in cases.items():
        df = pd.DataFrame({"timestamp": idx, "series": name, "value": v}).dropna()
        out = score_frame(df, freq="5min")
        assert len(out) == len(df), name
        assert out["score"].dropna().between(0, 1).all(), name
    constant = score_frame(
        pd.DataFrame({"timestamp": idx, "series": "c", "value": np.full(len(idx), 7.0)})
    )
    assert not (constant["is_anomaly"] & (constant["kind"] != "stale")).any()


def test_retrospective_mode_runs_and_finds_the_incident():
    df = seasonal_counts(days=14, seed=3)
    t0 = pd.Timestamp("2026-01-12 12:00", tz="UTC")
    sel = (df["timestamp"] >= t0) & (df["timestamp"] < t0 + pd.Timedelta("2h"))
    df.loc[sel, "value"] = 0.0
    out = score_frame(df, causal=False)
    inside = out[(out["timestamp"] >= t0) & (out["timestamp"] < t0 + pd.Timedelta("2h"))]
    assert inside["is_anomaly"].mean() > 0.5
    outside = out[(out["timestamp"] < t0 - pd.Timedelta("1h"))]
    assert outside["is_anomaly"].mean() < 0.01


def test_chunked_scoring_equals_one_pass():
    """A big panel is scored in chunks of series; the result must not depend on it."""
    from detector.panel import to_panel
    from detector.scoring import score_panel

    frames = [seasonal_counts(days=9, seed=s, series=f"s{s}", level=10 + 10 * s) for s in range(5)]
    panel = to_panel(pd.concat(frames))
    whole = score_panel(panel, chunk=100).to_frame()
    parts = score_panel(panel, chunk=2).to_frame()
    for name in whole["series"].unique():
        same(whole[whole["series"] == name], parts[parts["series"] == name])


def test_a_model_instance_is_cloned_not_mutated():
    """Passing a configured model object scores like its name and leaves the object unfitted."""
    from detector.models import create_model
    from detector.panel import to_panel
    from detector.scoring import score_panel

    frames = [seasonal_counts(days=9, seed=s, series=f"s{s}") for s in range(3)]
    panel = to_panel(pd.concat(frames))
    model = create_model("profile", weeks=2)
    by_object = score_panel(panel, model=model, chunk=2).to_frame()
    by_name = score_panel(panel, model="profile", weeks=2, chunk=2).to_frame()
    same(by_object, by_name)
    assert not hasattr(model, "stack_")


def test_the_table_gathered_chunk_by_chunk_equals_the_stitched_panel_exactly():
    """score_frame builds its table from each chunk's columns (never holding every chunk's
    scoring arrays at once): the same table, dtypes included, as the whole panel's."""
    from detector.calendars.calendar import Calendar
    from detector.calendars.events import Event
    from detector.panel import to_panel
    from detector.scoring import score_panel

    frames = [seasonal_counts(days=9, seed=s, series=f"s{s}", level=10 + 10 * s) for s in range(5)]
    data = pd.concat(frames, ignore_index=True)
    data.loc[data.index[3000:3040], "value"] = 0.0  # an incident, so reasons are written
    start = pd.Timestamp("2026-01-10 10:00", tz="UTC")
    promo = Event("promo", start, start + pd.Timedelta("4h"), expect="higher", factor=1.5)
    calendar = Calendar(events=[promo])
    for cal in (None, calendar):
        gathered = score_frame(data, chunk=2, calendar=cal)
        stitched = score_panel(to_panel(data), chunk=100, calendar=cal).to_frame()
        pd.testing.assert_frame_equal(gathered, stitched, check_exact=True)
        assert gathered["is_anomaly"].any()
    assert gathered["reason"].str.contains("promo").any()


def test_a_model_drops_its_panel_sized_caches_after_the_pass():
    from detector.models import create_model
    from detector.panel import to_panel

    panel = to_panel(seasonal_counts(days=9))
    model = create_model("profile").fit(panel, 288 * 8)
    model.predict(panel, 288 * 8, 288 * 9)
    assert model.stack_.shape[1:] == panel.values.shape
    info = model.info()
    model.end_pass()
    assert not hasattr(model, "stack_") and not hasattr(model, "adjusted_")
    assert model.info().baseline.tolist() == info.baseline.tolist()
    model.fit(panel, 288 * 8)  # a new pass builds them again
    assert model.stack_.shape[1:] == panel.values.shape
