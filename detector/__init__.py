"""detector: anomaly detection for business metrics.

The public API is kept small: score a long table of series, or a panel, with a named model;
and the library API of :mod:`detector.api`, the Python face of the CLI (load, aggregate, score,
evaluate, plot, and the tuning helpers notebooks use).

>>> import detector
>>> 'score_frame' in detector.__all__, 'evaluate' in detector.__all__
(True, True)
>>> detector.load_series is detector.api.load_series
True

The library API is imported on first use, so ``import detector`` (and every CLI command) does
not pay for pipelines, event readers and plotting it may not need.
"""

from __future__ import annotations

from typing import Any

from detector.errors import ConfigError, DetectorError, InputError, ModelError
from detector.models import available_models, create_model
from detector.scoring import score_frame, score_panel

__version__ = "0.1.0"

#: Names :mod:`detector.api` provides, loaded when first asked for.
_API = (
    "Evaluation",
    "Incident",
    "Labels",
    "aggregate",
    "best",
    "describe",
    "evaluate",
    "find_nab",
    "load_events",
    "load_nab",
    "load_scores",
    "load_series",
    "plot",
    "score",
    "score_nab",
    "search",
    "shop_metrics",
)

__all__ = [
    "ConfigError",
    "DetectorError",
    "InputError",
    "ModelError",
    "available_models",
    "create_model",
    "score_frame",
    "score_panel",
    *_API,
]


def __getattr__(name: str) -> Any:
    if name in _API or name == "api":
        import importlib

        api = importlib.import_module("detector.api")
        return api if name == "api" else getattr(api, name)
    raise AttributeError(f"module 'detector' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, "api"})
