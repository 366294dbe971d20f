"""Recorded forecasts: fit a model once, decide many times.

The engine refits a model (daily) and asks it for forecasts; the decisions (thresholds,
durations, sensitivity) only read those forecasts. :func:`record` scores once through a
:class:`Recording` that keeps every fit's info and every forecast, and a :class:`Replay` of it
gives the engine the same forecasts again without refitting: the numbers of a fresh run, for
the price of the decisions. :func:`~detector.api.search` tries decision parameters so, and
:func:`~detector.api.describe` reads what the model chose at each refit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from detector.api.parameters import build_model, split_params
from detector.errors import ConfigError
from detector.models.base import Forecast, Model, SeriesInfo
from detector.scoring import DetectionParams, score_frame

__all__ = ["Recording", "Replay", "record"]


def _fingerprint(panel: Any) -> tuple[Any, ...]:
    digest = hashlib.blake2b(np.ascontiguousarray(panel.values).tobytes(), digest_size=16)
    return (panel.values.shape, tuple(panel.series), panel.index[0], panel.freq, digest.digest())


class _Fingerprints:
    """The fingerprint of each panel object a model is fitted on, computed once per object."""

    def __init__(self) -> None:
        self._id: int | None = None
        self._value: tuple[Any, ...] = ()

    def __call__(self, panel: Any) -> tuple[Any, ...]:
        if self._id != id(panel):
            self._id, self._value = id(panel), _fingerprint(panel)
        return self._value


def _copy_info(info: SeriesInfo) -> SeriesInfo:
    extra = {k: np.array(v, copy=True) for k, v in info.extra.items()}
    return SeriesInfo(np.array(info.family, copy=True), np.array(info.baseline, copy=True), extra)


def _copy_forecast(fc: Forecast) -> Forecast:
    shift = None if fc.level_shift is None else fc.level_shift.copy()
    return Forecast(fc.expected.copy(), fc.variance.copy(), shift)


class Recording:
    """A model that forwards to ``model`` and keeps every fit's info and every forecast, with
    a fingerprint of the data each fit saw (a :class:`Replay` checks it)."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.infos: dict[int, SeriesInfo] = {}
        self.panels: dict[int, tuple[Any, ...]] = {}  # what each fit saw (its fingerprint)
        self.forecasts: dict[tuple[int, int], Forecast] = {}
        self.index: pd.DatetimeIndex | None = None
        self._fingerprint = _Fingerprints()

    def fit(self, panel: Any, end: int) -> Recording:
        self.index = panel.index
        self.panels[end] = self._fingerprint(panel)
        self.model.fit(panel, end)
        self.infos[end] = _copy_info(self.model.info())
        return self

    def predict(self, panel: Any, start: int, stop: int) -> Forecast:
        fc = self.model.predict(panel, start, stop)
        self.forecasts[(start, stop)] = _copy_forecast(fc)
        return fc

    def info(self) -> SeriesInfo:
        return self.model.info()

    def __getattr__(self, name: str) -> Any:
        # The wrapped model's optional steps (``declare_level_changes``) stay visible.
        if name.startswith("_") or name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)


class Replay:
    """Plays a :class:`Recording` back to the engine (same data, same refit settings)."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self._end: int | None = None
        self._fingerprint = _Fingerprints()

    def fit(self, panel: Any, end: int) -> Replay:
        if end not in self.recording.infos:
            raise ConfigError(f"no recorded fit at row {end}: refit or causal settings changed")
        if self._fingerprint(panel) != self.recording.panels[end]:
            raise ConfigError("recorded forecasts replayed on other data")
        self._end = end
        return self

    def predict(self, panel: Any, start: int, stop: int) -> Forecast:
        fc = self.recording.forecasts.get((start, stop))
        if fc is None:
            raise ConfigError(f"no recorded forecast of rows {start}-{stop}")
        return _copy_forecast(fc)

    def info(self) -> SeriesInfo:
        assert self._end is not None
        return self.recording.infos[self._end]

    def __getattr__(self, name: str) -> Any:
        # A step the recorded model took (declared level changes) is in its forecasts already;
        # offering it keeps the engine on the same path as when recording.
        if name == "declare_level_changes" and hasattr(self.recording.model, name):
            return lambda changes: None
        raise AttributeError(name)


def record(
    data: pd.DataFrame, model: str, causal: bool, freq: str | None, params: Mapping[str, Any]
) -> tuple[Recording, pd.DataFrame]:
    """Score once with a recording model; return the recording and the scores."""
    det, eng, mod = split_params(params)
    DetectionParams(**det)  # a bad decision parameter fails before the model runs
    recording = Recording(build_model(model, causal, mod))
    scores = score_frame(data, model=recording, causal=causal, freq=freq, **det, **eng)  # type: ignore[arg-type]
    return recording, scores
