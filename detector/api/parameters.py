"""Which keyword of :func:`~detector.api.score` goes where: the decisions, the engine or the model.

The API takes all of them flat, like the CLI's ``-p KEY=VALUE``; recording forecasts
(:mod:`detector.api.recording`) needs them apart, since only the model's parameters change
what is fitted, and a search can then try the decisions on forecasts it already has.

>>> split_params({"sensitivity": 0.5, "refit": "1D", "weeks": 3})
({'sensitivity': 0.5}, {'refit': '1D'}, {'weeks': 3})
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any

from detector.errors import ConfigError
from detector.models import Model, create_model
from detector.scoring import DetectionParams, score_frame, score_panel

__all__ = ["DETECTION_PARAMS", "ENGINE_PARAMS", "build_model", "split_params"]

#: Parameters of the decisions (thresholds, durations, direction, ...).
DETECTION_PARAMS = frozenset(f.name for f in dataclasses.fields(DetectionParams))

#: Parameters of the engine itself (refit period, warm-up, chunk, a calendar, a clock): the
#: keyword-only arguments of ``score_panel`` and ``score_frame`` that are neither the model's
#: nor the decisions', read from their signatures so a new engine argument is known here too.
ENGINE_PARAMS = frozenset(
    name
    for fn in (score_panel, score_frame)
    for name, p in inspect.signature(fn).parameters.items()
    if p.kind is p.KEYWORD_ONLY and name not in ("model", "causal", "sensitivity", "freq")
)


def split_params(
    params: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Detection, engine and model parameters."""
    det = {k: v for k, v in params.items() if k in DETECTION_PARAMS}
    eng = {k: v for k, v in params.items() if k in ENGINE_PARAMS}
    mod = {k: v for k, v in params.items() if k not in DETECTION_PARAMS and k not in ENGINE_PARAMS}
    return det, eng, mod


def build_model(name: str, causal: bool, params: Mapping[str, Any]) -> Model:
    """The model ``score_frame(model=name, causal=causal, **params)`` scores with.

    As the engine does, a retrospective run (``causal=False``) asks the model for its
    non-causal variant when the model has one and ``params`` do not choose. The engine's own
    helper is private, so this mirrors it on the public :func:`~detector.models.create_model`.

    >>> build_model("auto", False, {}).causal
    False
    """
    if causal or "causal" in params:
        return create_model(name, **params)
    try:
        return create_model(name, causal=False, **params)
    except ConfigError:
        return create_model(name, **params)
