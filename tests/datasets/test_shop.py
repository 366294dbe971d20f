"""The shop generator: deterministic, well-typed, realistic, and its labels match its data."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from detector.datasets.shop import (
    INCIDENT_KINDS,
    Gap,
    Incident,
    ShopMetrics,
    make_panel,
    make_shop_metrics,
)
from detector.errors import ConfigError, InputError


@pytest.fixture(scope="module")
def shop() -> ShopMetrics:
    return make_shop_metrics(seed=11)


@pytest.fixture(scope="module")
def clean() -> ShopMetrics:
    return make_shop_metrics(seed=11, incidents=False)


def _series(shop: ShopMetrics, name: str) -> pd.Series:
    rows = shop.data[shop.data["series"] == name]
    return rows.set_index("timestamp")["value"]


def _window(shop: ShopMetrics, inc: Incident) -> pd.Series:
    values = _series(shop, inc.series)
    return values[(values.index >= inc.start) & (values.index < inc.end)]


def _incidents(shop: ShopMetrics, text: str) -> list[Incident]:
    found = [i for i in shop.incidents if text in i.description]
    assert found, f"no incident described with {text!r}"
    return found


def test_same_seed_same_everything() -> None:
    a, b = make_shop_metrics(seed=5, weeks=3), make_shop_metrics(seed=5, weeks=3)
    pd.testing.assert_frame_equal(a.data, b.data)
    assert a.incidents == b.incidents
    assert a.gaps == b.gaps


def test_other_seed_other_data() -> None:
    a, b = make_shop_metrics(seed=5, weeks=3), make_shop_metrics(seed=6, weeks=3)
    assert not a.data["value"].equals(b.data["value"])
    assert a.incidents != b.incidents


def test_columns_and_dtypes(shop: ShopMetrics) -> None:
    data = shop.data
    assert list(data.columns) == ["timestamp", "series", "value", "denominator"]
    assert str(data["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert pd.api.types.is_string_dtype(data["series"])
    assert data["value"].dtype == np.float64
    assert data["denominator"].dtype == np.float64
    assert not data.duplicated(["series", "timestamp"]).any()
    assert data["value"].notna().all()


def test_series_catalogue(shop: ShopMetrics) -> None:
    names = set(shop.data["series"].unique())
    assert {"orders.DE", "revenue.DE", "orders.JP", "orders.US", "orders.AU"} <= names
    assert {"payment_success_rate.adyen", "fx.EURUSD", "tickets.show_12"} <= names
    assert len(names) == len(shop.series_kinds) == 23
    assert set(shop.series_kinds.values()) == {"count", "sum", "ratio", "level"}


def test_timestamps_on_the_grid(shop: ShopMetrics) -> None:
    ts = shop.data["timestamp"]
    assert ts.min() == shop.start == pd.Timestamp("2026-01-05", tz="UTC")
    assert ts.max() == shop.end - shop.freq
    assert ((ts - shop.start) % shop.freq == pd.Timedelta(0)).all()


def test_missing_data_is_absent_rows(shop: ShopMetrics) -> None:
    assert any(g.series == "*" for g in shop.gaps)
    assert sum(g.series != "*" for g in shop.gaps) >= 2
    full = len(pd.date_range(shop.start, shop.end, freq=shop.freq, inclusive="left"))
    for gap in shop.gaps:
        names = list(shop.series_kinds) if gap.series == "*" else [gap.series]
        assert pd.Timedelta("30min") <= gap.end - gap.start <= pd.Timedelta("120min")
        for name in names:
            values = _series(shop, name)
            assert not ((values.index >= gap.start) & (values.index < gap.end)).any()
            assert (values.index == gap.start - shop.freq).any()  # present just before
            assert (values.index == gap.end).any()  # and again at the end
    per_series = shop.data.groupby("series").size()
    assert (per_series < full).all()  # the all-series gap removed rows everywhere


def test_gaps_are_not_incidents(shop: ShopMetrics) -> None:
    for gap in shop.gaps:
        for inc in shop.incidents:
            if gap.covers(inc.series):
                assert gap.end <= inc.start or inc.end <= gap.start


def test_no_gaps_means_full_grid() -> None:
    shop = make_shop_metrics(seed=2, weeks=2, gaps=False)
    assert shop.gaps == []
    assert (shop.data.groupby("series").size() == 2 * 7 * 288).all()


def test_incidents_inside_the_data_after_warmup(shop: ShopMetrics) -> None:
    assert shop.warmup_end == shop.start + pd.Timedelta("14D")
    assert {i.kind for i in shop.incidents} == set(INCIDENT_KINDS)
    for inc in shop.incidents:
        assert shop.warmup_end <= inc.start < inc.end <= shop.end
        assert inc.series in shop.series_kinds
        assert inc.start.tz is not None and str(inc.start.tz) == "UTC"


def test_incident_counts_per_kind(shop: ShopMetrics) -> None:
    kinds = pd.Series([i.kind for i in shop.incidents]).value_counts().to_dict()
    assert kinds["spike"] >= 2 and kinds["stale"] >= 2 and kinds["level_shift"] >= 2
    assert kinds["dip"] >= 6 and kinds["variance"] >= 1


def test_market_incidents_are_labelled_on_orders_and_revenue(shop: ShopMetrics) -> None:
    for inc in shop.incidents:
        if inc.series.startswith("orders."):
            twin = inc.series.replace("orders.", "revenue.")
            assert any(
                j.series == twin and (j.start, j.end) == (inc.start, inc.end)
                for j in shop.incidents
            )


def test_drop_to_zero_is_zero(shop: ShopMetrics) -> None:
    for inc in _incidents(shop, "drop to zero"):
        window = _window(shop, inc)
        assert len(window) > 0 and (window == 0).all()
        assert pd.Timedelta("1h") <= inc.end - inc.start <= pd.Timedelta("6h")


def test_stale_rate_is_constant(shop: ShopMetrics, clean: ShopMetrics) -> None:
    for inc in shop.incidents:
        if inc.kind == "stale":
            window = _window(shop, inc)
            assert window.nunique() == 1
            assert _window(clean, inc).nunique() > 1
            assert pd.Timedelta("2h") <= inc.end - inc.start <= pd.Timedelta("24h")


def test_spikes_are_big_on_sparse_tickets(shop: ShopMetrics, clean: ShopMetrics) -> None:
    for inc in shop.incidents:
        if inc.kind == "spike":
            assert inc.series.startswith("tickets.")
            assert _window(shop, inc).mean() >= 5 * max(_window(clean, inc).mean(), 0.1)


def test_partial_drops_are_visible_but_partial(shop: ShopMetrics, clean: ShopMetrics) -> None:
    for inc in _incidents(shop, "a payment method fails"):
        if any(j.kind == "level_shift" and j.series == inc.series for j in shop.incidents):
            continue  # the clean run has no level shift to compare with
        dirty, base = _window(shop, inc).mean(), _window(clean, inc).mean()
        if inc.series.startswith("orders."):
            assert base >= 15  # on a market big enough to see it
        assert 0.25 * base < dirty < 0.85 * base


def test_rate_dip_drops_points(shop: ShopMetrics, clean: ShopMetrics) -> None:
    for inc in _incidents(shop, "success rate down"):
        drop = _window(clean, inc).mean() - _window(shop, inc).mean()
        assert 0.03 < drop < 0.25


def test_level_shift_is_permanent(shop: ShopMetrics, clean: ShopMetrics) -> None:
    for inc in shop.incidents:
        if inc.kind == "level_shift" and inc.series.startswith("orders."):
            assert inc.end - inc.start == pd.Timedelta("2h")
            after = _series(shop, inc.series)[inc.start :]
            base = _series(clean, inc.series)[inc.start :]
            ratio = after.sum() / base.sum()
            assert 0.45 < ratio < 0.75 or 1.25 < ratio < 1.55


def test_variance_incident_is_noisier(shop: ShopMetrics, clean: ShopMetrics) -> None:
    for inc in shop.incidents:
        if inc.kind == "variance":
            noisy = _window(shop, inc).diff().std()
            assert noisy > 4 * _window(clean, inc).diff().std()


def test_clean_run_equals_dirty_outside_incidents(shop: ShopMetrics, clean: ShopMetrics) -> None:
    merged = shop.data.merge(clean.data, on=["timestamp", "series"], suffixes=("", "_clean"))
    touched = np.zeros(len(merged), bool)
    for inc in shop.incidents:
        end = shop.end if inc.kind == "level_shift" else inc.end
        touched |= (
            (merged["series"] == inc.series)
            & (merged["timestamp"] >= inc.start)
            & (merged["timestamp"] < end)
        ).to_numpy()
    outside = merged[~touched]
    assert (outside["value"] == outside["value_clean"]).all()
    assert not (merged.loc[touched, "value"] == merged.loc[touched, "value_clean"]).all()


def _peak_hour_utc(shop: ShopMetrics, name: str) -> int:
    values = _series(shop, name)
    return int(values.groupby(values.index.hour).mean().idxmax())


def test_daily_shape_follows_local_time(clean: ShopMetrics) -> None:
    berlin, tokyo = _peak_hour_utc(clean, "orders.DE"), _peak_hour_utc(clean, "orders.JP")
    new_york = _peak_hour_utc(clean, "orders.US")
    distance = min((berlin - tokyo) % 24, (tokyo - berlin) % 24)
    assert distance >= 5  # Tokyo is 8 hours ahead of Berlin in winter
    assert berlin != new_york
    values = _series(clean, "orders.DE")
    local_hour = values.index.tz_convert("Europe/Berlin").hour
    night = values[(local_hour >= 2) & (local_hour < 5)].mean()
    evening = values[(local_hour >= 19) & (local_hour < 22)].mean()
    assert night < 0.25 * evening


def test_weekend_differs(clean: ShopMetrics) -> None:
    values = _series(clean, "orders.DE")
    local = values.index.tz_convert("Europe/Berlin")
    weekend = local.day_of_week >= 5
    morning = (local.hour >= 8) & (local.hour < 10)
    assert values[morning & weekend].mean() < 0.9 * values[morning & ~weekend].mean()


def test_market_sizes_range_from_small_to_large(clean: ShopMetrics) -> None:
    means = clean.data[clean.data["series"].str.startswith("orders.")].groupby("series")["value"]
    means = means.mean()
    assert means.min() < 5 and means.max() > 100


def test_counts_are_overdispersed(clean: ShopMetrics) -> None:
    values = _series(clean, "orders.US")
    local = values.index.tz_convert("America/New_York")
    slot = values[(local.hour == 20) & (local.minute == 0) & (local.day_of_week < 5)]
    assert slot.var() > 1.5 * slot.mean()  # more than Poisson


def test_revenue_matches_orders(clean: ShopMetrics) -> None:
    orders, revenue = _series(clean, "orders.DE"), _series(clean, "revenue.DE")
    both = pd.DataFrame({"o": orders}).join(revenue.rename("r"), how="inner")
    assert ((both["o"] == 0) == (both["r"] == 0)).all()
    per_order = both["r"].sum() / both["o"].sum()
    assert 50 < per_order < 75  # mean amount 61 EUR


def test_ratio_series_in_unit_interval_with_denominators(shop: ShopMetrics) -> None:
    ratio = [n for n, k in shop.series_kinds.items() if k == "ratio"]
    assert len(ratio) == 4
    rows = shop.data[shop.data["series"].isin(ratio)]
    assert rows["value"].between(0, 1).all()
    assert (rows["denominator"] > 0).all()
    assert (rows["denominator"] == rows["denominator"].round()).all()
    assert 0.88 < rows["value"].mean() < 0.98
    assert shop.data.loc[~shop.data["series"].isin(ratio), "denominator"].isna().all()


def test_tickets_are_sparse(clean: ShopMetrics) -> None:
    values = _series(clean, "tickets.show_12")
    assert (values == 0).mean() > 0.4
    assert values.quantile(0.95) <= 3


def test_fx_is_a_slow_random_walk(clean: ShopMetrics) -> None:
    values = _series(clean, "fx.EURUSD")
    assert 1.0 < values.mean() < 1.2
    changes = values.diff().dropna()
    assert (changes != 0).mean() > 0.9  # updated every bucket
    assert changes.abs().median() < 0.001


def test_other_frequency_and_length() -> None:
    shop = make_shop_metrics(seed=1, weeks=1, freq="15min", gaps=False)
    assert (shop.data.groupby("series").size() == 7 * 96).all()
    assert shop.warmup_end == shop.start + pd.Timedelta("3.5D")
    assert all(i.start >= shop.warmup_end for i in shop.incidents)


def test_fewer_series() -> None:
    shop = make_shop_metrics(seed=1, weeks=3, n_markets=2, n_providers=1, n_pairs=1, n_shows=1)
    assert len(shop.series_kinds) == 2 * 2 + 3


@pytest.mark.parametrize(
    "kwargs",
    [{"weeks": 0}, {"n_markets": 0}, {"n_markets": 99}, {"freq": "soon"}, {"freq": "-5min"}],
)
def test_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        make_shop_metrics(**kwargs)


def test_incident_validation() -> None:
    with pytest.raises(InputError, match="kind"):
        Incident("a", "2026-01-05", "2026-01-06", "meltdown")
    with pytest.raises(InputError, match="before it starts"):
        Incident("a", "2026-01-06", "2026-01-05", "dip")
    with pytest.raises(InputError, match="timestamp"):
        Gap("*", "yesterday-ish", "2026-01-05")
    naive = Incident("a", "2026-01-05 10:00", "2026-01-05 11:00", "dip")
    assert naive.start == pd.Timestamp("2026-01-05 10:00", tz="UTC")


def test_fast_enough() -> None:
    began = time.perf_counter()
    make_shop_metrics(seed=3)
    assert time.perf_counter() - began < 2.0  # typically ~0.15 s


def test_panel_for_benchmarks() -> None:
    panel = make_panel(n_series=20, weeks=2, seed=4)
    assert list(panel.columns) == ["timestamp", "series", "value"]
    assert str(panel["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert panel.shape == (20 * 2 * 7 * 288, 3)
    assert panel["value"].notna().all() and (panel["value"] >= 0).all()
    pd.testing.assert_frame_equal(panel, make_panel(n_series=20, weeks=2, seed=4))
    means = panel.groupby("series")["value"].mean()
    assert means.max() > 10 * means.min()  # sizes differ
