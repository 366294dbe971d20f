"""Compiled loops behind the panel maths (numba), each equal to the numpy code it replaces.

Why compiled: the seasonal profile's baselines are medians of 12-40 lagged samples for every
point of every series. As numpy that meant materialising a ``(lags, time, series)`` stack, a
sorted copy of it and a handful of temporaries (about 1.3 GiB per 500 series x 4 weeks) and
most of the scoring time; a loop that gathers each point's few samples and sorts them in a
small buffer needs no stack at all. The same goes for the trailing window sums of the
detection layer, which are called on every full ``(time, series)`` array.

Each kernel keeps the arithmetic of its numpy twin (the same additions in the same order, no
fast-math), so results are identical to the last bit, not merely close;
``tests/test_kernels.py`` checks that against the numpy code on random panels. Compilation
happens on first use and is cached on disk (``cache=True``), so importing this module costs
nothing and a second process starts warm.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

_compiled: dict[str, Callable[..., Any]] = {}


def _jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Compile ``fn`` with numba on its first call (nopython, cached), not at import."""

    def call(*args: Any) -> Any:
        kernel = _compiled.get(fn.__name__)
        if kernel is None:
            import numba

            kernel = _compiled[fn.__name__] = numba.njit(cache=True, nogil=True)(fn)
        return kernel(*args)

    call.__name__ = fn.__name__
    call.__doc__ = fn.__doc__
    call.__wrapped__ = fn  # type: ignore[attr-defined]
    return call


@_jit
def _lag_summary(x, lags, row0, med, tot, cnt):
    t_all, n = x.shape
    k = lags.shape[0]
    buf = np.empty(k)
    for t in range(row0, t_all):
        for j in range(n):
            m = 0
            s = 0.0
            for i in range(k):
                src = t - lags[i]
                if src < 0 or src >= t_all:
                    continue  # before the start (or after the end): no sample
                v = x[src, j]
                if np.isnan(v):
                    continue  # np.nansum adds a zero in its place: the same sum
                s += v
                # Insertion into the sorted buffer: at most a few dozen samples.
                p = m
                while p > 0 and buf[p - 1] > v:
                    buf[p] = buf[p - 1]
                    p -= 1
                buf[p] = v
                m += 1
            r = t - row0
            tot[r, j] = s
            cnt[r, j] = m
            if m == 0:
                med[r, j] = np.nan
            else:
                med[r, j] = (buf[(m - 1) // 2] + buf[m // 2]) / 2.0


def lag_summary(
    x: np.ndarray,
    lags: list[int],
    row0: int = 0,
    out: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, sum and count of the finite lagged samples ``x[t - lag]`` for rows ``t >= row0``.

    Equal to ``nanmedian0``, ``np.nansum`` and the finite count over
    ``lagged_stack(x, lags)[:, row0:]``, without building the stack. Negative lags look ahead
    (retrospective mode only). ``out``: three C-contiguous ``(rows, series)`` arrays to write
    into (the count's may be float), so a caller stacking several baselines copies nothing.

    >>> x = np.array([[1.0], [2.0], [np.nan], [4.0]])
    >>> med, tot, cnt = lag_summary(x, [1, 2])
    >>> med[:, 0].tolist(), tot[:, 0].tolist(), cnt[:, 0].tolist()
    ([nan, 1.0, 1.5, 2.0], [0.0, 1.0, 3.0, 2.0], [0, 1, 2, 1])
    """
    values = np.ascontiguousarray(x, dtype=np.float64)
    shape = (max(0, values.shape[0] - row0), values.shape[1])
    if out is None:
        out = (np.empty(shape), np.empty(shape), np.empty(shape, dtype=np.int64))
    med, tot, cnt = out
    if any(a.shape != shape or not a.flags.c_contiguous for a in out):
        raise ValueError(f"lag_summary: out arrays must be C-contiguous of shape {shape}")
    if values.shape[0] == 0 or values.shape[1] == 0 or not lags:
        med.fill(np.nan), tot.fill(0.0), cnt.fill(0)
    else:
        _lag_summary(values, np.asarray(lags, dtype=np.int64), int(row0), med, tot, cnt)
    return med, tot, cnt


@_jit
def _window_sums(a, m):
    t_all, n = a.shape
    out = np.empty((t_all, n))
    c = np.zeros(n)
    ring = np.zeros((m, n))  # the cumulative sums of the last m rows
    big = np.finfo(np.float64).max
    for t in range(t_all):
        slot = t % m
        for j in range(n):
            v = a[t, j]
            if np.isnan(v):
                v = 0.0
            elif v == np.inf:  # np.nan_to_num's stand-ins for infinities
                v = big
            elif v == -np.inf:
                v = -big
            c[j] = v if t == 0 else c[j] + v
            if t >= m:
                out[t, j] = c[j] - ring[slot, j]
            else:
                out[t, j] = c[j]
            ring[slot, j] = c[j]
    return out


def window_sums(a: np.ndarray, m: int) -> np.ndarray:
    """Trailing sums over ``m`` rows (NaN counted as 0); rows < m-1 sum what exists.

    The same arithmetic as a cumulative sum minus the cumulative sum ``m`` rows earlier.

    >>> window_sums(np.array([[1.0], [2.0], [np.nan], [4.0]]), 2)[:, 0].tolist()
    [1.0, 3.0, 2.0, 4.0]
    """
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0 or m < 1:
        c = np.cumsum(np.nan_to_num(arr, nan=0.0), axis=0)
        out = c.copy()
        out[m:] = c[m:] - c[:-m]
        return out
    return _window_sums(np.ascontiguousarray(arr), int(m))


@_jit
def _normal_equations3(reg, active, y, w):
    _, t_all, n = reg.shape
    a = np.zeros((6, n))  # the upper triangle: 00, 01, 02, 11, 12, 22
    b = np.zeros((3, n))
    for t in range(t_all):
        for j in range(n):
            wt = w[t, j]
            r0 = reg[0, t, j] * active[0, j]
            r1 = reg[1, t, j] * active[1, j]
            r2 = reg[2, t, j] * active[2, j]
            yt = y[t, j]
            a[0, j] += r0 * r0 * wt
            a[1, j] += r0 * r1 * wt
            a[2, j] += r0 * r2 * wt
            a[3, j] += r1 * r1 * wt
            a[4, j] += r1 * r2 * wt
            a[5, j] += r2 * r2 * wt
            b[0, j] += r0 * yt * wt
            b[1, j] += r1 * yt * wt
            b[2, j] += r2 * yt * wt
    return a, b


def normal_equations(
    reg: np.ndarray, active: np.ndarray, y: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per series, ``A = sum_t r r' w`` and ``b = sum_t r y w`` with ``r = reg * active``.

    Equal to ``np.einsum("itn,jtn,tn->nij", r, r, w)`` and ``np.einsum("itn,tn,tn->ni", r,
    y, w)`` (both add over time in order), in one pass and without the masked copy of
    ``reg``. Shapes: ``reg (k, time, series)``, ``active (k, series)``, ``y`` and ``w``
    ``(time, series)``; returns ``A (series, k, k)`` and ``b (series, k)``. Compiled for the
    variance model's three regressors; other ``k`` run the einsums.
    """
    if y.shape != reg.shape[1:] or w.shape != y.shape or active.shape != (reg.shape[0], y.shape[1]):
        raise ValueError(f"normal_equations: reg {reg.shape}, active {active.shape}, y {y.shape}")
    if reg.shape[0] != 3:
        r = reg * active[:, None, :]
        return np.einsum("itn,jtn,tn->nij", r, r, w), np.einsum("itn,tn,tn->ni", r, y, w)
    arrays = [np.ascontiguousarray(v, dtype=np.float64) for v in (reg, active, y, w)]
    tri, b = _normal_equations3(*arrays)
    a = tri[[0, 1, 2, 1, 3, 4, 2, 4, 5]].T.reshape(-1, 3, 3)
    return np.ascontiguousarray(a), np.ascontiguousarray(b.T)


@_jit
def _scale_windows(
    x, e, var, ok, relative, m, h, min_change, min_abs_change, a, stop, c, ring, raw, valid
):
    _, n = x.shape
    huge = np.finfo(np.float64).max
    rows = stop - a
    use = np.empty((rows, n), dtype=np.bool_)
    e_sum = np.empty((rows, n))
    x_sum = np.empty((rows, n))
    v_sum = np.empty((rows, n))
    q = np.empty(7)
    sums = np.empty(7)
    for t in range(a, stop):
        for j in range(n):
            good = ok[t, j]
            r = x[t, j] - e[t, j] if good else 0.0
            vv = var[t, j] if good else 0.0
            if m > 1:
                cap = 4.0 * np.sqrt(vv)
                r = np.nan if np.isnan(cap) or np.isnan(r) else min(max(r, -cap), cap)
            q[0] = r
            q[1] = vv
            q[2] = 1.0 if good else 0.0
            q[3] = abs(e[t, j]) if good else 0.0
            q[4] = e[t, j] if good else 0.0
            q[5] = q[0]
            q[6] = q[2]
            for k in range(7 if h > 0 else 5):
                w = m if k < 5 else h
                v = q[k]
                if np.isnan(v):  # np.nan_to_num, as window_sums does
                    v = 0.0
                elif v == np.inf:
                    v = huge
                elif v == -np.inf:
                    v = -huge
                c[k, j] = v if t == 0 else c[k, j] + v
                slot = t % w
                sums[k] = c[k, j] - ring[k, slot, j] if t >= w else c[k, j]
                ring[k, slot, j] = c[k, j]
            s, v, cnt, lev, es = sums[0], sums[1], sums[2], sums[3], sums[4]
            is_valid = good and cnt >= (m // 2 + 1) and v > 0
            raw[t, j] = s / np.sqrt(v if v > 0 else 1.0) if is_valid else 0.0
            nn = max(cnt, 1.0)
            carries = m == 1 or (np.sign(r) == np.sign(s) and abs(r) >= 0.5 * abs(s) / nn)
            if h > 0 and carries:
                half = sums[5] / max(sums[6], 1.0)
                carries = np.sign(half) == np.sign(s) and abs(half) >= 0.5 * abs(s) / nn
            need = max(min_abs_change, min_change * (lev / nn) if relative[t, j] else 0.0)
            valid[t, j] = is_valid
            i = t - a
            use[i, j] = carries and abs(s) / nn >= need and is_valid
            e_sum[i, j] = es
            x_sum[i, j] = es + s
            v_sum[i, j] = v
    return use, e_sum, x_sum, v_sum


class ScaleWindows:
    """The detection layer's window statistics of one time scale ``m``, row range by row
    range, in order (:func:`detector.scoring.detect.decide` asks for one refit period at a
    time).

    ``raw`` (the uncalibrated z of the residual summed over the window) and ``valid`` are kept
    for every row, since calibration reads the past. :meth:`rows` returns, for the rows asked
    for only: ``use``, true where the window is valid, its newest point carries the window's
    deviation (same sign and at least half the window's mean size, and for windows of 6 and
    more the newest quarter too: once an outage is over its zeros still fill the window for a
    while, but no longer describe "now"), and the change is large enough to matter
    (``min_change`` of the level for counts and sums, ``min_abs_change``); then ``e_sum``,
    ``x_sum`` and ``v_sum``, the window's expected total, winsorised actual total and
    variance. For ``m > 1`` each residual is capped at 4 sd: one huge point is judged at
    ``m = 1`` and must not dominate a window for a whole window length after it, and the count
    tail judges the same winsorised evidence as the normal z.

    The running sums carry over from one call to the next, so a range's statistics equal those
    of one pass over the whole panel: the same additions, in the same order, as the numpy code
    (cumulative sums minus the cumulative sums ``m`` rows earlier).
    """

    def __init__(
        self,
        x: np.ndarray,
        e: np.ndarray,
        var: np.ndarray,
        ok: np.ndarray,
        relative: np.ndarray,
        m: int,
        min_change: float,
        min_abs_change: float,
    ) -> None:
        self.m = int(m)
        self.h = max(3, self.m // 4) if self.m >= 6 else 0
        self._inputs = [np.ascontiguousarray(v, dtype=np.float64) for v in (x, e, var)]
        self._inputs += [np.ascontiguousarray(v, dtype=np.bool_) for v in (ok, relative)]
        self._limits = (float(min_change), float(min_abs_change))
        t, n = x.shape
        self.raw = np.zeros((t, n))
        self.valid = np.zeros((t, n), dtype=bool)
        self._c = np.zeros((7, n))
        self._ring = np.zeros((7, max(self.m, self.h, 1), n))
        self._next = 0

    def rows(self, a: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``use, e_sum, x_sum, v_sum`` of rows ``[a, stop)``; ``a`` is where the last call
        stopped (0 at first)."""
        if a != self._next or not a <= stop <= self.raw.shape[0]:
            raise ValueError(
                f"ScaleWindows.rows: expected rows from {self._next} to at most "
                f"{self.raw.shape[0]}, got [{a}, {stop})"
            )
        self._next = stop
        return _scale_windows(
            *self._inputs, self.m, self.h, *self._limits, int(a), int(stop),
            self._c, self._ring, self.raw, self.valid,
        )  # fmt: skip


@_jit
def _choice_sums(stack, x, lo, end, day):
    nb, _, n = stack.shape
    sums = np.zeros((8, nb, n))  # sx, sb, s(x-b), cover; the same over the last `day` rows
    tail = max(lo, end - day)
    for b in range(nb):
        for t in range(lo, end):
            for j in range(n):
                xv = x[t, j]
                bv = stack[b, t, j]
                both = np.isfinite(xv) and np.isfinite(bv)
                xs = xv if both else 0.0
                bs = bv if both else 0.0
                sums[0, b, j] += xs
                sums[1, b, j] += bs
                sums[2, b, j] += xs - bs
                sums[3, b, j] += 1.0 if both else 0.0
                if t >= tail:
                    sums[4, b, j] += xs
                    sums[5, b, j] += bs
                    sums[6, b, j] += xs - bs
                    sums[7, b, j] += 1.0 if both else 0.0
    return sums


def _check_rows(lo: int, end: int, x: np.ndarray, stack: np.ndarray) -> None:
    # The kernels do not check their indices (numba): a bad range must stop here.
    if not 0 <= lo <= end <= x.shape[0] or stack.shape[1:] != x.shape:
        raise ValueError(f"rows [{lo}, {end}) of a {x.shape} panel, stack {stack.shape}")


def choice_sums(stack: np.ndarray, x: np.ndarray, lo: int, end: int, day: int) -> np.ndarray:
    """For the profile's baseline choice: per baseline and series, over rows ``[lo, end)``
    where both the value and the baseline are finite, the sums of values, of baselines, of
    their differences and the count; then the same over the last ``day`` rows of the window.

    Shape ``(8, baselines, series)``; each sum adds rows in order, as ``xs.sum(1)`` does on the
    masked ``(baselines, rows, series)`` arrays, which are never built.
    """
    _check_rows(lo, end, x, stack)
    if x.shape[1] == 1:  # numpy sums one series' contiguous rows pairwise: do as it does
        both = np.isfinite(stack[:, lo:end]) & np.isfinite(x[lo:end])[None]
        xs = np.where(both, x[lo:end][None], 0.0)
        bs = np.where(both, stack[:, lo:end], 0.0)
        d = max(0, (end - lo) - day)
        parts = (xs, bs, xs - bs, both.astype(float))
        return np.stack([p.sum(1) for p in parts] + [p[:, d:].sum(1) for p in parts])
    values = np.ascontiguousarray(x, dtype=np.float64)
    return _choice_sums(np.ascontiguousarray(stack), values, int(lo), int(end), int(day))


@_jit
def _choice_error(stack, x, lo, end, ratio, offset, mult, seasonal):
    nb, _, n = stack.shape
    err = np.zeros((nb, n))
    for b in range(nb):
        for t in range(lo, end):
            for j in range(n):
                xv = x[t, j]
                bv = stack[b, t, j]
                if not (np.isfinite(xv) and np.isfinite(bv)):
                    continue  # adds 0.0
                fitted = bv
                if seasonal[b]:
                    fitted = bv * ratio[b, j] if mult[j] else bv + offset[b, j]
                err[b, j] += abs(xv - fitted)
    return err


def choice_error(
    stack: np.ndarray,
    x: np.ndarray,
    lo: int,
    end: int,
    ratio: np.ndarray,
    offset: np.ndarray,
    mult: np.ndarray,
    seasonal: np.ndarray,
) -> np.ndarray:
    """Sum of absolute errors of each baseline over rows ``[lo, end)`` (both finite), seasonal
    ones after their level correction (``* ratio`` for multiplicative series, ``+ offset``
    otherwise). Shape ``(baselines, series)``."""
    _check_rows(lo, end, x, stack)
    if x.shape[1] == 1:  # numpy sums one series' contiguous rows pairwise: do as it does
        both = np.isfinite(stack[:, lo:end]) & np.isfinite(x[lo:end])[None]
        xs = np.where(both, x[lo:end][None], 0.0)
        bs = np.where(both, stack[:, lo:end], 0.0)
        fitted = np.where(mult[None, None], bs * ratio[:, None], bs + offset[:, None])
        fitted = np.where(seasonal[:, None, None], fitted, bs)
        return np.where(both, np.abs(xs - fitted), 0.0).sum(1)
    return _choice_error(
        np.ascontiguousarray(stack),
        np.ascontiguousarray(x, dtype=np.float64),
        int(lo),
        int(end),
        np.ascontiguousarray(ratio, dtype=np.float64),
        np.ascontiguousarray(offset, dtype=np.float64),
        np.ascontiguousarray(mult, dtype=np.bool_),
        np.ascontiguousarray(seasonal, dtype=np.bool_),
    )


@_jit
def _decide_rows(
    a, stop, zeff, zvar, ok, scorable, x, shifts, run, stale_need, wobbly, burst_ok, settled,
    events, st_sign, st_start, st_streak, st_zero, st_zero_start, kind, is_anomaly, run_start,
    thr, hold_thr, min_duration, burst_thr, min_shift, zero_events, noisy_thr, var_window,
):  # fmt: skip
    n = x.shape[1]
    for i in range(a, stop):
        for j in range(n):
            zi = zeff[i - a, j]
            side = np.sign(zi) if abs(zi) >= hold_thr else 0.0
            if side == 0:
                st_streak[j] = 0.0
            elif np.sign(st_streak[j]) == side:
                st_streak[j] = st_streak[j] + side
            else:
                st_streak[j] = side
            # Minimum duration: a lone point opens an anomaly only if it is far out (burst).
            lasting = abs(st_streak[j]) >= min_duration
            strong = abs(zi) >= thr and (lasting or (burst_ok[i, j] and abs(zi) >= burst_thr))
            sign = st_sign[j]
            cont = sign != 0 and zi * sign >= hold_thr
            new = strong and (sign == 0 or np.sign(zi) != sign)
            if new:
                st_start[j] = i
                sign = np.sign(zi)
            elif not (strong or cont):
                sign = 0.0
            good = ok[i, j]
            xv = x[i, j]
            miss = not np.isfinite(xv)  # a gap neither opens nor closes an anomaly
            f = (strong or cont) and good
            # An accepted shift is news when it ends an open anomaly or is big; a small
            # re-levelling of a series nobody was alerted about is the model's business.
            moved = shifts[i, j] != 0
            big = abs(shifts[i, j]) >= min_shift and settled[i, j]
            accepted = moved and scorable[i, j] and (sign != 0 or big)
            # A run of exact zeros where many events were expected: nothing sold at all. The
            # chance of that by luck is about exp(-expected events); the default 20 leaves
            # room for overdispersion (e^2 / var underestimates events then).
            zero_now = good and xv == 0 and events[i, j] > 0
            if zero_now and st_zero[j] == 0:
                st_zero_start[j] = i
            if zero_now:
                st_zero[j] = st_zero[j] + events[i, j]
            elif good:
                st_zero[j] = 0.0
            nothing = zero_now and st_zero[j] >= zero_events and not f
            f = f or nothing
            if nothing and sign >= 0:
                st_start[j] = st_zero_start[j]
            if nothing:
                sign = -1.0
            stale = run[i, j] >= stale_need[i, j] and good and not f
            noisy = zvar[i, j] >= noisy_thr and good and not f and not stale and wobbly[i, j]
            k = (1 if sign > 0 else 2) if f else 0
            if accepted:
                k = 3
            if stale:
                k = 4
            if noisy:
                k = 6
            kind[i, j] = 5 if (miss and scorable[i, j]) else k
            is_anomaly[i, j] = f or accepted or stale or noisy
            if noisy:
                run_start[i, j] = i - var_window + 1
            elif f or accepted:
                run_start[i, j] = st_start[j]
            elif stale:
                run_start[i, j] = int(i - run[i, j])
            else:
                run_start[i, j] = -1
            if moved:  # after an accepted shift the level is the new normal: close it
                sign = 0.0
            if not (good or miss):
                sign = 0.0
            st_sign[j] = sign


def decide_rows(a: int, stop: int, zeff: np.ndarray, arrays: dict, state: Any, out: Any,
                limits: tuple[float, ...]) -> None:  # fmt: skip
    """Rows ``[a, stop)`` of the detection layer's row-by-row decision, in place.

    ``arrays``: the ``(time, series)`` inputs by name (zvar, ok, scorable, x, shifts, run,
    stale_need, wobbly, burst_ok, settled, events); ``state`` the open-anomaly state carried
    from row to row (sign, start, streak, zero, zero_start); ``out`` receives kind,
    is_anomaly, run_start; ``limits`` the thresholds (z, hold * z, min_duration, burst * z,
    min_shift, zero_events, variance_factor * z, the variance window). The same comparisons
    and updates as ``detector.scoring.detect._decide_row``, per series and row.
    """
    names = ("zvar", "ok", "scorable", "x", "shifts", "run", "stale_need", "wobbly",
             "burst_ok", "settled", "events")  # fmt: skip
    shape = arrays["x"].shape
    if (
        not 0 <= a <= stop <= shape[0]
        or zeff.shape != (stop - a, shape[1])
        or any(arrays[k].shape != shape for k in names)
    ):
        raise ValueError(f"decide_rows: rows [{a}, {stop}) of {shape}, zeff {zeff.shape}")
    _decide_rows(
        int(a), int(stop), np.ascontiguousarray(zeff), *(arrays[k] for k in names),
        state.sign, state.start, state.streak, state.zero, state.zero_start,
        out.kind, out.is_anomaly, out.run_start, *limits,
    )  # fmt: skip
