"""Noise families and their variance: how a series' values vary around their expectation.

Counts (orders, tickets) vary like a negative binomial, ``a + b*e + c*e^2``; sums of counted
things such as revenue like a compound Poisson (variance proportional to the mean, times the
amount spread); success rates with a denominator like a binomial, ``p(1-p)/n``; levels (prices,
currency rates) are judged by their changes. The coefficients are fitted per series by batched
non-negative least squares on past squared residuals (past incidents dropped), then calibrated
so the median squared standardised residual is a normal variable's.

:class:`NoiseModel` is the part of :class:`~detector.models.profile.SeasonalProfileModel` that
does this; it expects ``family_``, ``mult_``, ``rate_``, ``coef_``, ``stack_``, ``choice_`` and
``expected_hist_`` on the model.
"""

from __future__ import annotations

import numpy as np

from detector.kernels import normal_equations
from detector.models.base import nanmedian0
from detector.panel import Panel

_NORMAL_MEDIAN_SQ = 0.4549364  # median of a chi-square with one degree of freedom


class NoiseModel:
    """Noise family detection and the variance model of one point (a mixin)."""

    family_: np.ndarray
    mult_: np.ndarray
    rate_: np.ndarray
    coef_: np.ndarray
    stack_: np.ndarray
    choice_: np.ndarray
    expected_hist_: np.ndarray
    window_steps_: int

    def _families(self, panel: Panel, end: int) -> np.ndarray:
        x = panel.values[max(0, end - 4 * self.window_steps_) : end]
        finite = ~np.isnan(x)
        anyv = finite.any(axis=0)
        xi = np.where(finite, x, 0.0)
        integer = np.all(xi == np.round(xi), axis=0) & np.all(xi >= 0, axis=0)
        unit = np.all((xi >= 0) & (xi <= 1), axis=0)
        fam = np.full(x.shape[1], "continuous", dtype=object)
        fam[unit & ~integer] = "ratio"
        fam[integer & anyv] = "count"
        if panel.denominator is not None:
            has_den = np.any(~np.isnan(panel.denominator[: max(end, 1)]), axis=0)
            fam[has_den & unit] = "ratio"
        return fam

    def _regressors(self, panel: Panel, e: np.ndarray, rows: slice) -> np.ndarray:
        """Columns of the variance model ``a + b*g(e) + c*e^2`` for each series' family."""
        ep = np.maximum(e, 0.0)
        g = np.where(self._poisson_like()[None], ep, 0.0)
        if panel.denominator is not None:
            den = panel.denominator[rows]
            with np.errstate(invalid="ignore", divide="ignore"):
                pr = self._binomial_p()[None]
                binom = pr * (1 - pr) / den
            use = (self.family_ == "ratio")[None] & np.isfinite(binom) & (den > 0)
            g = np.where(use, binom, g)
        return np.stack([np.ones_like(e), g, e * e])

    def _fit_variance(self, panel: Panel, lo: int, end: int) -> np.ndarray:
        x = panel.values[lo:end]
        e = self.expected_hist_[lo:end]
        chosen = np.take_along_axis(self.stack_[:, lo:end], self.choice_[None, None, :], axis=0)[0]
        e = np.where(np.isnan(e), chosen, e)
        r2 = (x - e) ** 2
        ok = np.isfinite(r2) & np.isfinite(e)
        reg = self._regressors(panel, np.where(ok, e, 0.0), slice(lo, end))
        reg = np.where(np.isfinite(reg), reg, 0.0)
        coef = self._nonneg_ls(reg, np.where(ok, r2, 0.0), ok)
        for _ in range(2):  # drop outliers (past incidents) and refit
            v = np.maximum(self._var(coef, reg), 1e-12)
            ok = ok & (r2 / v < 25.0)
            coef = self._nonneg_ls(reg, np.where(ok, r2, 0.0), ok)
        v = np.maximum(self._var(coef, reg), 1e-12)
        with np.errstate(invalid="ignore"):
            ratio = np.where(ok, r2 / v, np.nan)
            kappa = nanmedian0(np.where(ok.any(axis=0), ratio, 1.0)) / _NORMAL_MEDIAN_SQ
        kappa = np.where(np.isfinite(kappa) & (kappa > 0), kappa, 1.0)
        coef = coef * kappa
        # A floor so a perfectly flat history does not make every later wobble infinite.
        scale = nanmedian0(np.abs(np.where(ok, x, np.nan))) if ok.any() else 0.0
        floor = (1e-3 * np.nan_to_num(scale, nan=0.0)) ** 2 + 1e-9
        coef[0] = np.maximum(coef[0], floor)
        # Counts vary at least about like a Poisson: an absolute floor instead would turn a
        # sparse series' noise into a hugely overdispersed, heavy-tailed one.
        is_count = self.family_ == "count"
        coef[1] = np.where(is_count, np.maximum(coef[1], 0.5), coef[1])
        coef[0] = np.where(is_count, np.maximum(coef[0], 0.01), coef[0])
        return coef

    @staticmethod
    def _var(coef: np.ndarray, reg: np.ndarray) -> np.ndarray:
        return np.einsum("kn,ktn->tn", coef, reg)

    @staticmethod
    def _nonneg_ls(reg: np.ndarray, y: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """Batched least squares of ``y`` on ``reg`` per series, negative terms dropped."""
        k, _, n = reg.shape
        w = ok.astype(float)
        active = np.ones((k, n), dtype=bool)
        coef = np.zeros((k, n))
        for _ in range(k):
            a, b = normal_equations(reg, active, y, w)
            # A ridge relative to each regressor's own scale keeps empty or constant columns
            # solvable without shrinking the others.
            diag = np.einsum("nii->ni", a)
            a = a + np.eye(k)[None] * (diag * 1e-9 + 1e-12)[:, :, None]
            coef = np.linalg.solve(a, b[..., None])[..., 0].T * active
            neg = coef < 0
            if not neg.any():
                break
            active &= ~neg
        return np.maximum(coef, 0.0)

    # -- forecasting --------------------------------------------------------------------------

    def _poisson_like(self) -> np.ndarray:
        """Series whose variance grows with their mean: counts and sums of counted things
        (revenue is a compound Poisson sum: its variance is proportional to its mean)."""
        return (self.family_ == "count") | ((self.family_ == "continuous") & self.mult_)

    def _binomial_p(self) -> np.ndarray:
        """The success rate for binomial noise: the recent mean, kept off 0 and 1.

        Not the point forecast: at night a rate of exactly 1.0 out of 5 attempts is common, and
        p = 1 would claim zero variance, making any failure look impossible.
        """
        return np.clip(self.rate_, 0.01, 0.99)

    def _point_var(self, e: np.ndarray, den: np.ndarray | None, unfitted: np.ndarray) -> np.ndarray:
        ep = np.maximum(e, 0.0)
        g = np.where(self._poisson_like(), ep, 0.0)
        if den is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                p = self._binomial_p()
                binom = p * (1 - p) / den
            g = np.where((self.family_ == "ratio") & np.isfinite(binom) & (den > 0), binom, g)
        c = self.coef_
        var = c[0] + c[1] * g + c[2] * e * e
        # Before the first fit with history: a wide, honest band (warm-up is not scored).
        return np.where(unfitted | ~np.isfinite(var), np.maximum(np.abs(e), 1.0) ** 2, var)
