"""The compiled kernels and the fast panel path equal, bit for bit, the numpy code they replace.

Equality is exact (``np.array_equal``), not approximate: scoring's output must not move when a
loop is compiled, so the kernels keep their twins' order of additions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from detector.kernels import (
    ScaleWindows,
    choice_error,
    choice_sums,
    decide_rows,
    lag_summary,
    normal_equations,
    window_sums,
)
from detector.models.base import lagged_stack, nanmedian0
from detector.panel import _grouped, _unique_buckets, infer_freq, to_panel
from detector.scoring.detect import VARIANCE_WINDOW, Detection, DetectionParams, _Open

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


def _numpy_scale(x, e, var, ok, relative, m, min_change, min_abs_change):
    """The detection layer's window statistics as numpy computed them before the kernel."""
    ws = _cumsum_window_sums
    r = np.where(ok, x - e, 0.0)
    if m > 1:
        cap = 4.0 * np.sqrt(np.where(ok, var, 0.0))
        r = np.clip(r, -cap, cap)
    s = ws(r, m)
    v = ws(np.where(ok, var, 0.0), m)
    n = ws(ok.astype(float), m)
    valid = ok & (n >= (m // 2 + 1)) & (v > 0)
    raw = np.where(valid, s / np.sqrt(np.where(v > 0, v, 1.0)), 0.0)
    nn = np.maximum(n, 1)
    carries = (np.sign(r) == np.sign(s)) & (np.abs(r) >= 0.5 * np.abs(s) / nn)
    if m >= 6:
        h = max(3, m // 4)
        half = ws(r, h) / np.maximum(ws(ok.astype(float), h), 1)
        carries &= (np.sign(half) == np.sign(s)) & (np.abs(half) >= 0.5 * np.abs(s) / nn)
    if m == 1:
        carries = np.ones_like(valid)
    level = ws(np.where(ok, np.abs(e), 0.0), m) / nn
    need = np.maximum(min_abs_change, np.where(relative, min_change * level, 0.0))
    big = np.abs(s) / nn >= need
    e_sum = ws(np.where(ok, e, 0.0), m)
    return raw, valid, carries & big & valid, e_sum, e_sum + s, v


@settings(max_examples=60, deadline=None)
@given(
    t=st.integers(0, 80),
    n=st.integers(1, 4),
    m=st.sampled_from([1, 3, 6, 12, 24]),
    seed=st.integers(0, 2**32 - 1),
    min_abs=st.sampled_from([0.0, 2.0]),
)
def test_the_window_statistics_equal_the_numpy_ones(
    t: int, n: int, m: int, seed: int, min_abs: float
) -> None:
    rng = np.random.default_rng(seed)
    e = rng.gamma(2.0, 20.0, size=(t, n))
    x = np.round(rng.normal(e, np.sqrt(e) * rng.choice([1.0, 5.0], size=(t, n))))
    x[rng.random((t, n)) < 0.1] = np.nan
    var = e * rng.uniform(0.5, 3.0, size=(t, n))
    var[rng.random((t, n)) < 0.05] = 0.0
    ok = np.isfinite(x) & (rng.random((t, n)) < 0.9)
    relative = rng.random((t, n)) < 0.7
    with np.errstate(invalid="ignore", divide="ignore"):
        want = _numpy_scale(x, e, var, ok, relative, m, 0.1, min_abs)
    whole = ScaleWindows(x, e, var, ok, relative, m, 0.1, min_abs)
    got = (whole.raw, whole.valid, *whole.rows(0, t))
    # Period by period, as the decision asks for them, the running sums carry over.
    sw = ScaleWindows(x, e, var, ok, relative, m, 0.1, min_abs)
    cut = t // 3
    first, second = sw.rows(0, cut), sw.rows(cut, t)
    pieces = [np.concatenate([a, b]) for a, b in zip(first, second, strict=True)]
    assert all(np.array_equal(a, b) for a, b in zip(pieces, got[2:], strict=True))
    assert np.array_equal(sw.raw, got[0]) and np.array_equal(sw.valid, got[1])
    with pytest.raises(ValueError, match="expected rows from"):
        sw.rows(0, 1)
    names = ("raw", "valid", "use", "e_sum", "x_sum", "v_sum")
    for name, a, b in zip(names, got, want, strict=True):
        assert np.array_equal(a, b, equal_nan=True), name


@settings(max_examples=40, deadline=None)
@given(
    t=st.integers(1, 60),
    n=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_choice_sums_and_errors_equal_the_masked_numpy_sums(
    t: int, n: int, seed: int, data: st.DataObject
) -> None:
    rng = np.random.default_rng(seed)
    lo = data.draw(st.integers(0, t - 1))
    end = data.draw(st.integers(lo, t))
    day = data.draw(st.integers(1, 30))
    x = rng.gamma(2.0, 10.0, size=(t, n))
    x[rng.random((t, n)) < 0.1] = np.nan
    stack = rng.gamma(2.0, 10.0, size=(4, t, n))
    stack[rng.random(stack.shape) < 0.2] = np.nan
    mult = rng.random(n) < 0.5
    seasonal = np.array([False, False, True, True])
    got = choice_sums(stack, x, lo, end, day)
    both = np.isfinite(stack[:, lo:end]) & np.isfinite(x[lo:end])[None]
    xs = np.where(both, x[lo:end][None], 0.0)
    bs = np.where(both, stack[:, lo:end], 0.0)
    d = max(0, (end - lo) - day)
    want = [xs.sum(1), bs.sum(1), (xs - bs).sum(1), both.sum(1)]
    want += [xs[:, d:].sum(1), bs[:, d:].sum(1), (xs - bs)[:, d:].sum(1), both[:, d:].sum(1)]
    for k, w in enumerate(want):
        assert np.array_equal(got[k], w), k
    ratio = rng.uniform(0.5, 2.0, size=(4, n))
    offset = rng.normal(size=(4, n))
    fitted = np.where(mult[None, None], bs * ratio[:, None], bs + offset[:, None])
    fitted = np.where(seasonal[:, None, None], fitted, bs)
    err = np.where(both, np.abs(xs - fitted), 0.0).sum(1)
    assert np.array_equal(choice_error(stack, x, lo, end, ratio, offset, mult, seasonal), err)


@settings(max_examples=40, deadline=None)
@given(
    minutes=st.lists(st.integers(0, 600), min_size=2, max_size=40),
    names=st.lists(st.sampled_from(["a", "b", "c"]), min_size=2, max_size=40),
    shuffle=st.booleans(),
)
def test_the_inferred_step_of_sorted_rows_equals_the_grouped_one(
    minutes: list[int], names: list[str], shuffle: bool
) -> None:
    k = min(len(minutes), len(names))
    data = pd.DataFrame(
        {
            "timestamp": pd.Timestamp("2026-03-01", tz="UTC")
            + pd.to_timedelta(np.asarray(minutes[:k]) * 60, unit="s"),
            "series": names[:k],
            "value": 1.0,
        }
    )
    data = data.sort_values(["series", "timestamp"], kind="stable").reset_index(drop=True)
    if shuffle:
        data = data.iloc[::-1].reset_index(drop=True)  # unsorted: the general path
    try:
        want = infer_freq(data.sample(frac=1.0, random_state=0))  # never sorted: grouped
    except Exception as exc:
        with pytest.raises(type(exc)):
            infer_freq(data)
        return
    assert infer_freq(data) == want


def _numpy_decide_row(  # the detection layer's row step as numpy had it
    i: int,
    out: Any,
    st: Any,
    zi: np.ndarray,
    zv: np.ndarray,
    ok: np.ndarray,
    scorable: np.ndarray,
    x: np.ndarray,
    shifts: np.ndarray,
    run: np.ndarray,
    stale_need: np.ndarray,
    params: Any,
    wobbly: np.ndarray,
    burst_ok: np.ndarray,
    settled_in: np.ndarray,
    events: np.ndarray,
) -> None:
    """Decide row ``i`` for every series from its z and the state left by row ``i - 1``."""
    thr = params.z
    side = np.where(np.abs(zi) >= params.hold * thr, np.sign(zi), 0.0)
    st.streak = np.where(
        side == 0, 0.0, np.where(np.sign(st.streak) == side, st.streak + side, side)
    )
    # Minimum duration: a lone point opens an anomaly only if it is far out (burst).
    lasting = np.abs(st.streak) >= params.min_duration
    strong = (np.abs(zi) >= thr) & (lasting | (burst_ok & (np.abs(zi) >= params.burst * thr)))
    cont = (st.sign != 0) & (zi * st.sign >= params.hold * thr)
    new = strong & ((st.sign == 0) | (np.sign(zi) != st.sign))
    st.start = np.where(new, i, st.start)
    st.sign = np.where(new, np.sign(zi), np.where(strong | cont, st.sign, 0.0))
    miss = ~np.isfinite(x[i])  # a gap neither opens nor closes an anomaly
    f = (strong | cont) & ok[i]
    # An accepted shift is news when it ends an open anomaly or is big; a small re-levelling
    # of a series nobody was alerted about is the model's business, not an alert.
    moved = shifts[i] != 0
    big = (np.abs(shifts[i]) >= params.min_shift) & settled_in
    accepted = moved & scorable[i] & ((st.sign != 0) | big)
    # A run of exact zeros where many events were expected: nothing sold at all. The chance
    # of that by luck is about exp(-expected events); the default 20 leaves room for
    # overdispersion (e^2 / var underestimates events then, but not always by enough).
    zero_now = ok[i] & (x[i] == 0) & (events > 0)
    st.zero_start = np.where(zero_now & (st.zero == 0), i, st.zero_start)
    st.zero = np.where(zero_now, st.zero + events, np.where(ok[i], 0.0, st.zero))
    nothing = zero_now & (st.zero >= params.zero_events) & ~f
    f = f | nothing
    st.start = np.where(nothing & (st.sign >= 0), st.zero_start, st.start)
    st.sign = np.where(nothing, -1.0, st.sign)
    stale = (run[i] >= stale_need[i]) & ok[i] & ~f
    noisy = (zv >= thr * params.variance_factor) & ok[i] & ~f & ~stale & wobbly
    kind = np.where(f, np.where(st.sign > 0, 1, 2), 0)
    kind = np.where(accepted, 3, kind)
    kind = np.where(stale, 4, kind)
    kind = np.where(noisy, 6, kind)
    out.kind[i] = np.where(miss & scorable[i], 5, kind)
    out.is_anomaly[i] = f | accepted | stale | noisy
    began = np.where(f | accepted, st.start, np.where(stale, i - run[i], -1))
    out.run_start[i] = np.where(noisy, i - VARIANCE_WINDOW + 1, began)
    # After an accepted shift the model's level is the new normal: close the anomaly.
    st.sign = np.where(moved, 0.0, st.sign)
    st.sign = np.where(ok[i] | miss, st.sign, 0.0)


@settings(max_examples=60, deadline=None)
@given(
    t=st.integers(1, 60),
    n=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    split=st.integers(0, 60),
)
def test_decide_rows_equal_the_numpy_row_step(t: int, n: int, seed: int, split: int) -> None:
    rng = np.random.default_rng(seed)
    params = DetectionParams(min_duration=int(rng.integers(1, 4)))
    x = np.round(rng.gamma(2.0, 5.0, size=(t, n))) * (rng.random((t, n)) > 0.2)
    x[rng.random((t, n)) < 0.05] = np.nan
    zeff = rng.normal(0, 4, size=(t, n)) * (rng.random((t, n)) < 0.6)
    inputs = {
        "zvar": np.abs(rng.normal(0, 6, size=(t, n))),
        "ok": np.isfinite(x) & (rng.random((t, n)) < 0.95),
        "scorable": rng.random((t, n)) < 0.95,
        "x": x,
        "shifts": np.where(rng.random((t, n)) < 0.05, rng.normal(0, 0.5, (t, n)), 0.0),
        "run": np.floor(rng.exponential(3.0, (t, n))),
        "stale_need": np.where(rng.random((t, n)) < 0.5, np.inf, rng.uniform(2, 8, (t, n))),
        "wobbly": rng.random((t, n)) < 0.5,
        "burst_ok": rng.random((t, n)) < 0.7,
        "settled": rng.random((t, n)) < 0.7,
        "events": rng.exponential(4.0, (t, n)) * (rng.random((t, n)) < 0.5),
    }

    def fresh() -> tuple[Any, Any]:
        out = Detection(*(np.zeros((t, n)) for _ in range(2)),
                        np.zeros((t, n), dtype=bool), np.zeros((t, n), dtype=np.int8),
                        *(np.zeros((t, n)) for _ in range(2)),
                        np.full((t, n), -1, dtype=np.int64), inputs["run"])  # fmt: skip
        return out, _Open.empty(n)

    want, st_want = fresh()
    for i in range(t):
        _numpy_decide_row(
            i, want, st_want, zeff[i], inputs["zvar"][i], inputs["ok"], inputs["scorable"], x,
            inputs["shifts"], inputs["run"], inputs["stale_need"], params,
            inputs["wobbly"][i], inputs["burst_ok"][i], inputs["settled"][i],
            inputs["events"][i],
        )  # fmt: skip
    got, st_got = fresh()
    thr = params.z
    limits = (
        thr, params.hold * thr, params.min_duration, params.burst * thr, params.min_shift,
        params.zero_events, thr * params.variance_factor, VARIANCE_WINDOW,
    )  # fmt: skip
    cut = min(split, t)  # two calls, as two refit periods: the state carries over
    decide_rows(0, cut, zeff[:cut], inputs, st_got, got, limits)
    decide_rows(cut, t, zeff[cut:], inputs, st_got, got, limits)
    for name in ("kind", "is_anomaly", "run_start"):
        assert np.array_equal(getattr(got, name), getattr(want, name)), name
    for name in ("sign", "start", "streak", "zero", "zero_start"):
        assert np.array_equal(getattr(st_got, name), getattr(st_want, name)), name


def test_warm_up_loads_every_compiled_loop_scoring_uses():
    """``detector run`` warms up before joining its group, so no scoring round mid-stream
    waits for numba: in a fresh process, warm_up leaves nothing for scoring to compile."""
    import ast
    import subprocess
    import sys

    code = (
        "from detector.scoring.engine import warm_up; warm_up(); "
        "from detector import kernels; print(sorted(kernels._compiled))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(ast.literal_eval(out.stdout.strip().splitlines()[-1]))
    assert {"_lag_summary", "_window_sums", "_normal_equations3", "_scale_windows",
            "_choice_sums", "_choice_error", "_decide_rows"} <= loaded  # fmt: skip
