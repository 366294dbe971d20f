"""Scoring: forecasts to scores, bounds, decisions, kinds and reasons."""

from detector.scoring.detect import DetectionParams
from detector.scoring.engine import ScoredPanel, score_frame, score_panel

__all__ = ["DetectionParams", "ScoredPanel", "score_frame", "score_panel"]
