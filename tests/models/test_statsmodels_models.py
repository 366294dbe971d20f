"""The per-series statsmodels models (stl, mstl, holt_winters): they detect, stay causal, survive
degenerate series and reject bad parameters with the house message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detector.errors import ConfigError
from detector.models.base import create_model
from detector.models.holt_winters import HoltWintersModel
from detector.models.stl import MSTLModel, STLModel
from detector.panel import Panel, to_panel
from detector.scoring import score_frame

MODELS = ("stl", "mstl", "holt_winters")
DAY = 288  # 5-minute rows per day
DROP = slice(4 * DAY + 100, 4 * DAY + 112)  # one hour on day 5
NUMERIC = ("value", "expected", "lower", "upper", "score")


def _seasonal(days: int = 5, seed: int = 0, name: str = "orders") -> pd.DataFrame:
    idx = pd.date_range("2026-01-05", periods=DAY * days, freq="5min", tz="UTC")
    t = np.arange(len(idx))
    rng = np.random.default_rng(seed)
    value = 100 + 60 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, 5, len(t))
    return pd.DataFrame({"timestamp": idx, "series": name, "value": value})


@pytest.fixture(scope="module")
def dropped() -> pd.DataFrame:
    df = _seasonal()
    df.loc[DROP, "value"] *= 0.4
    return df


@pytest.fixture(scope="module")
def panel() -> Panel:
    return to_panel(_seasonal(days=4))


def _same_output(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert len(a) == len(b)
    for col in NUMERIC:
        x, y = a[col].to_numpy(dtype=float), b[col].to_numpy(dtype=float)
        assert np.allclose(x, y, equal_nan=True), col
    assert (a["is_anomaly"].to_numpy() == b["is_anomaly"].to_numpy()).all()
    assert (a["kind"].to_numpy() == b["kind"].to_numpy()).all()


@pytest.mark.parametrize("name", MODELS)
def test_flags_a_one_hour_drop_and_little_else(dropped: pd.DataFrame, name: str) -> None:
    out = score_frame(dropped, model=name)
    flagged = out["is_anomaly"].to_numpy()
    rows = np.arange(len(out))
    # The incident, and the two hours after it where its echo (kind variance) may linger.
    near = (rows >= DROP.start) & (rows < DROP.stop + 24)
    recall = flagged[DROP].mean()
    precision = flagged[near].sum() / max(flagged.sum(), 1)
    assert recall >= 0.75, recall
    assert precision >= 0.8, precision
    assert set(out["kind"].to_numpy()[DROP][flagged[DROP]]) <= {"dip"}
    assert np.isfinite(out["expected"].to_numpy()[DAY * 2 :]).all()


@pytest.mark.parametrize("name", MODELS)
def test_output_before_a_row_ignores_everything_after_it(dropped: pd.DataFrame, name: str) -> None:
    full = score_frame(dropped, model=name)
    # Just after a refit (a leak of a few rows would show) and mid-day.
    for k in (3 * DAY + 3, 4 * DAY + 150):
        cut = score_frame(dropped.iloc[:k], model=name)
        _same_output(full.iloc[:k], cut)
    changed = dropped.copy()
    changed.loc[k:, "value"] = changed.loc[k:, "value"] * 3 + 50
    _same_output(full.iloc[:k], score_frame(changed, model=name).iloc[:k])


@pytest.mark.parametrize("model", [STLModel(), MSTLModel(), HoltWintersModel()])
def test_predict_uses_no_row_at_or_after_the_fit_end(model, panel: Panel) -> None:
    end = 3 * DAY
    first = model.fit(panel, end).predict(panel, end, end + DAY)
    spoiled = Panel(
        panel.values.copy(), panel.index, panel.series, panel.freq, panel.first, panel.last
    )
    spoiled.values[end:] = -1e6
    second = model.fit(spoiled, end).predict(spoiled, end, end + DAY)
    assert np.array_equal(first.expected, second.expected)
    assert np.array_equal(first.variance, second.variance)
    assert np.isfinite(first.expected).all()
    assert (first.variance > 0).all()


@pytest.mark.parametrize("model", [STLModel(), MSTLModel(), HoltWintersModel()])
def test_forecast_starts_after_the_last_observation(model, panel: Panel) -> None:
    # Most of the last day missing: bridging it with a straight line would be the "last cycle".
    values = panel.values.copy()
    values[3 * DAY - 280 : 3 * DAY] = np.nan
    gappy = Panel(values, panel.index, panel.series, panel.freq, panel.first, panel.last)
    fc = model.fit(gappy, 3 * DAY).predict(gappy, 3 * DAY, 4 * DAY)
    rmse = np.sqrt(np.mean((panel.values[3 * DAY :] - fc.expected) ** 2))
    assert rmse < 10  # noise sd 5, daily swing +-60


@pytest.mark.parametrize("name", MODELS)
def test_degenerate_series_do_not_crash(name: str) -> None:
    base = _seasonal(days=3)
    idx = base["timestamp"]
    frames = [
        base,
        pd.DataFrame({"timestamp": idx, "series": "constant", "value": 7.0}),
        pd.DataFrame({"timestamp": idx, "series": "empty", "value": np.nan}),
        pd.DataFrame({"timestamp": idx[:20], "series": "short", "value": np.arange(20.0)}),
        pd.DataFrame({"timestamp": idx[DAY:], "series": "late", "value": np.arange(2 * DAY) % 4.0}),
    ]
    df = pd.concat(frames, ignore_index=True)
    df.loc[(df["series"] == "orders") & (df.index % 3 == 0), "value"] = np.nan  # gaps
    out = score_frame(df, model=name)
    assert out["expected"][out["series"] == "empty"].isna().all()
    constant = out[out["series"] == "constant"]
    assert not constant["is_anomaly"].any()
    assert np.isfinite(constant["expected"].to_numpy()[DAY:]).all()
    assert score_frame(df, model=name, causal=False)["series"].nunique() == 5


@pytest.mark.parametrize("model", [STLModel(), MSTLModel(), HoltWintersModel()])
def test_unknown_series_get_nan_expected_and_positive_variance(model, panel: Panel) -> None:
    values = panel.values.copy()
    values[: 2 * DAY] = np.nan
    sparse = Panel(values, panel.index, panel.series, panel.freq, panel.first, panel.last)
    fc = model.fit(sparse, 2 * DAY).predict(sparse, 2 * DAY, 3 * DAY)
    assert np.isnan(fc.expected).all()
    assert np.isfinite(fc.variance).all() and (fc.variance > 0).all()
    short = model.fit(panel, 30).predict(panel, 30, 60)  # 30 rows: a robust level
    assert np.isfinite(short.expected).all() and (short.variance > 0).all()


def test_info_reports_family_baseline_and_periods(panel: Panel) -> None:
    counts = Panel(
        np.round(np.abs(panel.values)), panel.index, ["a"], panel.freq, panel.first, panel.last
    )
    stl = STLModel().fit(counts, 3 * DAY).info()
    assert stl.family.tolist() == ["count"] and stl.baseline.tolist() == ["stl"]
    assert stl.extra["periods"].tolist() == ["288"]
    mstl = MSTLModel().fit(panel, 3 * DAY).info()
    assert mstl.family.tolist() == ["continuous"] and mstl.baseline.tolist() == ["mstl"]
    hw = HoltWintersModel().fit(panel, DAY).info()  # one day: no season yet
    assert hw.baseline.tolist() == ["holt_winters"]
    assert hw.extra["seasonal_periods"].tolist() == [0]


OWNERS = {"stl": "STLModel", "mstl": "MSTLModel", "holt_winters": "HoltWintersModel"}
BAD_PARAMETERS = [
    ("stl", {"period": 0}),
    ("stl", {"period": 2.5}),
    ("stl", {"seasonal": 4}),
    ("stl", {"history": "soon"}),
    ("stl", {"slope_damping": 1.0}),
    ("mstl", {"periods": [288, 1]}),
    ("mstl", {"seasonal_smooth": "-5min"}),
    ("mstl", {"periods": "288"}),
    ("holt_winters", {"trend": "mul"}),
    ("holt_winters", {"seasonal": "both"}),
    ("holt_winters", {"seasonal_periods": 1}),
    ("holt_winters", {"history": 7}),
]


@pytest.mark.parametrize(("name", "params"), BAD_PARAMETERS)
def test_bad_parameters_raise_config_error(
    dropped: pd.DataFrame, panel: Panel, name: str, params: dict
) -> None:
    model = create_model(name, **params)  # nothing is checked in __init__ (scikit-learn style)
    with pytest.raises(ConfigError) as err:
        model.fit(panel, DAY)
    ((key, value),) = params.items()
    assert str(err.value).startswith(f"The {key!r} parameter of {OWNERS[name]} must be ")
    assert str(err.value).endswith(f". Got {value!r} instead.")
    with pytest.raises(ConfigError):
        score_frame(dropped.iloc[: 2 * DAY], model=name, **params)


def test_config_error_messages_follow_the_template(panel: Panel) -> None:
    with pytest.raises(ConfigError) as err:
        STLModel(period=0).fit(panel, DAY)
    assert (
        str(err.value) == "The 'period' parameter of STLModel must be an int >= 2. Got 0 instead."
    )
    with pytest.raises(ConfigError) as err:
        HoltWintersModel(damped_trend=True).fit(panel, DAY)
    assert str(err.value) == (
        "The 'damped_trend' parameter of HoltWintersModel needs trend='add'. "
        "Got damped_trend=True with trend=None instead."
    )


def test_unknown_parameter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Bad parameters for model 'stl'"):
        create_model("stl", periods=[288])
