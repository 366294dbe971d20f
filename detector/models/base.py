"""The Model protocol, the forecast it returns, and the registry of models by name.

A model forecasts; it does not decide. Given a :class:`~detector.panel.Panel` it returns, for
each point, the expected value and the variance of a single point around it
(:class:`Forecast`). The detection layer (:mod:`detector.scoring`) turns those into scores,
bounds, decisions, kinds and reasons, the same way for every model, as river keeps scorers
apart from thresholds.

Causality is the engine's job and the protocol makes it easy to keep: the engine calls
``fit(panel, end)`` with the rows before ``end`` only, then ``predict(panel, start, stop)``,
whose output for row ``t`` may use rows ``< t`` only. Models keep state between ``predict``
calls on consecutive ranges (that is the "update with new points" step).

One optional step: ``declare_level_changes(changes)``, a list of ``(row, column)`` where a person
said a series settled on a new normal (feedback, :mod:`detector.calendars.feedback`). A model
that has it accepts the new level from that row on; for one that has not, the engine hides the
series' history before the change from the refits after it.

Another: ``end_pass()``, called by the engine once it has forecast the last row of a panel. A
model that keeps caches the size of the panel between refits (the profile's baseline stacks)
drops them there, so they are not alive while the detection layer works; what it learned per
series (``info()``) stays, and a later ``fit`` on any panel builds the caches again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from detector.errors import ConfigError
from detector.panel import Panel

#: Noise families: how a series' values vary around their expectation.
FAMILIES = ("count", "ratio", "continuous", "level")


@dataclass
class Forecast:
    """What a model predicts for rows ``[start, stop)`` of a panel.

    ``expected`` and ``variance`` are ``(stop - start, n_series)`` arrays; ``variance`` is the
    calibrated variance of one point. ``level_shift`` is non-zero on rows where the model
    accepted a level shift as the new normal, holding its relative size (+0.4 = 40% up).
    """

    expected: np.ndarray
    variance: np.ndarray
    level_shift: np.ndarray | None = None


@dataclass
class SeriesInfo:
    """What a model learned about each series at its last fit, for reasons and notebooks."""

    family: np.ndarray  # str per series, one of FAMILIES
    baseline: np.ndarray  # str per series: weekly, daily, level, naive, stl, ...
    extra: dict[str, np.ndarray] = field(default_factory=dict)


@runtime_checkable
class Model(Protocol):
    """Forecast a panel causally; see the module docstring for the calling contract."""

    def fit(self, panel: Panel, end: int) -> Model:
        """Learn from rows ``[0, end)``; return ``self``."""
        ...

    def predict(self, panel: Panel, start: int, stop: int) -> Forecast:
        """Forecast rows ``[start, stop)``, row ``t`` using rows ``< t`` only."""
        ...

    def info(self) -> SeriesInfo:
        """What the last fit chose per series."""
        ...


ModelFactory = Callable[..., Model]
_REGISTRY: dict[str, ModelFactory] = {}


def register(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Class decorator adding a model to the registry under ``name``."""

    def add(factory: ModelFactory) -> ModelFactory:
        _REGISTRY[name] = factory
        return factory

    return add


def available_models() -> list[str]:
    """Names accepted by ``--model`` (besides ``auto``)."""
    _load_builtin()
    return sorted(_REGISTRY)


def create_model(name: str, **params: Any) -> Model:
    """Build a registered model; unknown names and parameters get a clear ConfigError.

    >>> create_model("profile").__class__.__name__
    'SeasonalProfileModel'
    >>> create_model("profil")
    Traceback (most recent call last):
    ...
    detector.errors.ConfigError: Unknown model 'profil'. Did you mean 'profile'? ...
    """
    _load_builtin()
    key = "profile" if name == "auto" else name
    if key not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(key, list(_REGISTRY), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"Unknown model {name!r}.{hint} Available: auto, {', '.join(sorted(_REGISTRY))}."
        )
    try:
        return _REGISTRY[key](**params)
    except TypeError as exc:
        raise ConfigError(f"Bad parameters for model {name!r}: {exc}") from exc


def _load_builtin() -> None:
    # Importing the modules runs their @register decorators.
    from detector.models import holt_winters, profile, stl  # noqa: F401


def lagged_stack(values: np.ndarray, lags: list[int]) -> np.ndarray:
    """Stack ``values`` shifted down by each lag (NaN-padded): ``out[i, t] = values[t - lags[i]]``.

    Negative lags look into the future and are only used in retrospective (non-causal) mode.
    """
    t = values.shape[0]
    out = np.full((len(lags), *values.shape), np.nan)
    for i, lag in enumerate(lags):
        if lag > 0 and lag < t:
            out[i, lag:] = values[: t - lag]
        elif lag < 0 and -lag < t:
            out[i, : t + lag] = values[-lag:]
        elif lag == 0:
            out[i] = values
    return out


def sorted0(values: np.ndarray) -> np.ndarray:
    """Sort along axis 0 (NaN last), as a view of a last-axis sort: contiguous runs sort
    several times faster than strided ones."""
    # An explicit copy: for one column the moved view is already contiguous, and sorting it
    # in place would reorder the caller's array.
    moved = np.moveaxis(values, 0, -1).copy(order="C")
    moved.sort(axis=-1)
    return np.moveaxis(moved, -1, 0)


def nanmedian0(stack: np.ndarray) -> np.ndarray:
    """Median over axis 0 ignoring NaN, several times faster than ``np.nanmedian`` here.

    >>> nanmedian0(np.array([[1.0, np.nan], [3.0, np.nan], [np.nan, np.nan]])).tolist()
    [2.0, nan]
    """
    s = sorted0(stack)
    n = np.sum(~np.isnan(stack), axis=0)
    lo = np.clip((n - 1) // 2, 0, None)
    hi = np.clip(n // 2, 0, None)
    a = np.take_along_axis(s, lo[None], axis=0)[0]
    b = np.take_along_axis(s, hi[None], axis=0)[0]
    med = (a + b) / 2.0
    med[n == 0] = np.nan
    return med
