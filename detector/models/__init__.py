"""Models that forecast a panel; see :mod:`detector.models.base` for the protocol."""

from detector.models.base import Forecast, Model, available_models, create_model, register

__all__ = ["Forecast", "Model", "available_models", "create_model", "register"]
