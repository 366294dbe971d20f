"""The compiled kernels and the fast panel path equal, bit for bit, the numpy code they replace.

Equality is exact (``np.array_equal``), not approximate: scoring's output must not move when a
loop is compiled, so the kernels keep their twins' order of additions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from detector.kernels import lag_summary, normal_equations, window_sums
from detector.models.base import lagged_stack, nanmedian0
from detector.panel import _grouped, _unique_buckets, to_panel

values = st.one_of(st.just(np.nan), st.floats(-1e6, 1e6, width=64))
panels = hnp.arrays(np.float64, st.tuples(st.integers(0, 40), st.integers(1, 5)), elements=values)


@settings(max_examples=60, deadline=None)
@given(
    x=panels,
    lags=st.lists(st.integers(-12, 30), min_size=1, max_size=12),
    row0=st.integers(0, 10),
)
def test_lag_summary_equals_the_stack(x: np.ndarray, lags: list[int], row0: int) -> None:
    row0 = min(row0, x.shape[0])
    stack = lagged_stack(x, lags)[:, row0:]
    med, tot, cnt = lag_summary(x, lags, row0)
    assert np.array_equal(med, nanmedian0(stack), equal_nan=True)
    assert np.array_equal(tot, np.nansum(stack, axis=0))
    assert np.array_equal(cnt, np.sum(np.isfinite(stack), axis=0))


def test_lag_summary_writes_into_out_and_checks_its_shape() -> None:
    x = np.arange(12.0).reshape(6, 2)
    out = (np.empty((6, 2)), np.empty((6, 2)), np.empty((6, 2)))
    med, _, cnt = lag_summary(x, [1, 2], out=out)
    assert med is out[0] and cnt.dtype == np.float64
    assert med[3].tolist() == [3.0, 4.0]
    with pytest.raises(ValueError, match="shape"):
        lag_summary(x, [1], out=(np.empty((5, 2)),) * 3)


def _cumsum_window_sums(a: np.ndarray, m: int) -> np.ndarray:
    c = np.cumsum(np.nan_to_num(a, nan=0.0), axis=0)
    out = c.copy()
    out[m:] = c[m:] - c[:-m]
    return out


@settings(max_examples=60, deadline=None)
@given(
    a=hnp.arrays(
        np.float64,
        st.tuples(st.integers(0, 50), st.integers(1, 4)),
        elements=st.floats(allow_nan=True, allow_infinity=True, width=64),
    ),
    m=st.integers(1, 30),
)
def test_window_sums_equal_the_cumulative_sum_formula(a: np.ndarray, m: int) -> None:
    with np.errstate(all="ignore"):
        want = _cumsum_window_sums(a, m)
        got = window_sums(a, m)
    assert np.array_equal(got, want, equal_nan=True)


@settings(max_examples=40, deadline=None)
@given(
    t=st.integers(0, 60),
    n=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
)
def test_normal_equations_equal_the_einsums(t: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    reg = rng.normal(size=(3, t, n)) * 10.0 ** rng.integers(-3, 4, size=(3, 1, n))
    active = rng.random((3, n)) < 0.7
    y = rng.exponential(size=(t, n))
    w = (rng.random((t, n)) < 0.8).astype(float)
    r = reg * active[:, None, :]
    a, b = normal_equations(reg, active, y, w)
    assert np.array_equal(a, np.einsum("itn,jtn,tn->nij", r, r, w))
    assert np.array_equal(b, np.einsum("itn,tn,tn->ni", r, y, w))


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 400),  # minutes after the start
            st.sampled_from(["b", "a", "DE", "c.x"]),
            st.one_of(st.none(), st.floats(-1e3, 1e3)),
        ),
        min_size=2,
        max_size=60,
        unique_by=lambda r: (r[0], r[1]),
    ),
    seconds=st.sampled_from([0, 0, 30, 120]),
    freq=st.sampled_from(["5min", "10min", "1min"]),
    denominator=st.booleans(),
)
def test_the_fast_panel_equals_the_grouped_one(
    rows: list[tuple[int, str, float | None]], seconds: int, freq: str, denominator: bool
) -> None:
    start = pd.Timestamp("2026-03-01", tz="UTC") + pd.Timedelta(seconds=seconds)
    data = pd.DataFrame(
        {
            "timestamp": [start + pd.Timedelta(minutes=5 * m) for m, _, _ in rows],
            "series": [s for _, s, _ in rows],
            "value": [np.nan if v is None else v for _, _, v in rows],
        }
    )
    if denominator:
        data["denominator"] = np.arange(len(data), dtype=float)
    step = pd.Timedelta(freq)
    fast, slow = _unique_buckets(data, step), _grouped(data, step)
    if freq != "10min":
        assert fast is not None  # rows 5 minutes apart: never two in a bucket of 5 or 1
    if fast is None:
        return
    assert fast.index.equals(slow.index) and fast.series == slow.series
    assert np.array_equal(fast.values, slow.values, equal_nan=True)
    assert fast.first.tolist() == slow.first.tolist() and fast.last.tolist() == slow.last.tolist()
    assert fast.merged_rows == slow.merged_rows == 0
    if denominator:
        assert np.array_equal(fast.denominator, slow.denominator, equal_nan=True)


def test_rows_sharing_a_bucket_take_the_grouped_path() -> None:
    ts = pd.to_datetime(["2026-01-01 00:00", "2026-01-01 00:02", "2026-01-01 00:05"], utc=True)
    data = pd.DataFrame({"timestamp": ts, "series": "a", "value": [1.0, 3.0, 5.0]})
    assert _unique_buckets(data, pd.Timedelta("5min")) is None
    panel = to_panel(data, "5min")
    assert panel.values[:, 0].tolist() == [2.0, 5.0] and panel.merged_rows == 1
