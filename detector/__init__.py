"""detector: anomaly detection for business metrics.

The public API is kept small: score a long table of series, or a panel, with a named model.

>>> import detector
>>> 'score_frame' in detector.__all__
True
"""

from detector.errors import ConfigError, DetectorError, InputError, ModelError
from detector.models import available_models, create_model
from detector.scoring import score_frame, score_panel

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DetectorError",
    "InputError",
    "ModelError",
    "available_models",
    "create_model",
    "score_frame",
    "score_panel",
]
