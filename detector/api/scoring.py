"""Scoring series: the table ``detector score`` writes, or with a pipeline ``scores.csv``.

:func:`score` runs the engine the commands run (:func:`~detector.scoring.score_frame`, or the
backtest's ``score_metrics`` for a pipeline), after the checks the CLI makes first, so a
typo fails before any work and a number found here is the number ``detector`` prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from detector.api.inputs import as_pipeline, as_series
from detector.api.parameters import DETECTION_PARAMS, ENGINE_PARAMS
from detector.errors import ConfigError, InputError
from detector.models import Model
from detector.scoring import score_frame
from detector.scoring.engine import check_scoring
from detector.scoring.engines import Engine, check_engine, open_engine

if TYPE_CHECKING:
    from distributed import Client

    from detector.pipeline.config import Pipeline

__all__ = ["score"]


def score(
    series: pd.DataFrame | str | Path,
    model: str | Model = "auto",
    *,
    pipeline: str | Path | Pipeline | None = None,
    causal: bool = True,
    sensitivity: float = 1.0,
    freq: str | None = None,
    engine: str | Engine | Client = "local",
    scheduler: str | None = None,
    **params: Any,
) -> pd.DataFrame:
    """Score series; the table ``detector score`` writes (same code, same numbers).

    ``series`` is a long table (``timestamp, series, value[, denominator]``) or a file
    :func:`~detector.api.load_series` reads. ``model`` is ``auto``, a registered name
    (``detector models``) or a model object; ``params`` are the ``-p KEY=VALUE`` of the CLI:
    decision parameters (``min_duration``, ``min_change``, ``direction``, ``threshold``, ...
    see :class:`~detector.scoring.detect.DetectionParams`), the model's constructor arguments,
    and the engine's ``refit``, ``min_history``, ``confidence_ramp``.

    With ``pipeline``, ``series`` is a metrics table (:func:`~detector.api.aggregate`, or
    ``metrics.csv`` read with :func:`~detector.api.load_series`) scored as ``detector
    backtest`` scores it: each metric with its own model, sensitivity and params, freshness
    checks against their ``max_age``, series with a time zone on their local wall clock. The
    result is backtest's ``scores.csv``.

    ``engine`` is the CLI's ``--engine``: ``"local"`` scores in this process; ``"dask"``
    spreads the series over the dask.distributed cluster at ``scheduler``
    (``"tcp://host:8786"``), or over a local cluster started for this call when none is named
    (``pip install 'detector[dask]'``). A ``distributed.Client`` you opened can be passed as
    the engine instead, to reuse its cluster over many calls. The output is identical.

    Returns :data:`~detector.types.OUTPUT_COLUMNS`, one row per series and time bucket.

    >>> score(pd.DataFrame({"timestamp": ["2026-01-05"], "value": [1.0]}), model="profil")
    Traceback (most recent call last):
    ...
    detector.errors.ConfigError: Unknown model 'profil'. Did you mean 'profile'? ...
    """
    check_engine(engine, scheduler)
    if pipeline is None and isinstance(model, str):
        # Usage errors first, before any work on the data (as the CLI does).
        check_scoring(
            model,
            {
                "sensitivity": sensitivity,
                **{k: v for k, v in params.items() if k not in ENGINE_PARAMS},
            },
        )
    data = as_series(series)
    if pipeline is not None:
        given = {"model": model != "auto", "sensitivity": sensitivity != 1.0, "freq": freq}
        extra = [k for k, v in given.items() if v] + sorted(params)
        if extra:
            raise ConfigError(
                f"score(..., pipeline=...) takes each metric's model, sensitivity and params from "
                f"the pipeline; do not pass {', '.join(extra)} (edit the pipeline instead)"
            )
        pipe = as_pipeline(pipeline)
        with open_engine(engine, scheduler) as eng:
            return _score_pipeline(data, pipe, causal, eng)
    if not isinstance(model, str):
        model_params = sorted(
            k for k in params if k not in DETECTION_PARAMS and k not in ENGINE_PARAMS
        )
        if model_params:
            raise ConfigError(
                f"Model parameters {model_params} cannot be applied to a model object; "
                "set them on the object, or pass the model by name"
            )
    with open_engine(engine, scheduler) as eng:
        return score_frame(
            data, model=model, causal=causal, sensitivity=sensitivity, freq=freq, engine=eng,
            **params,
        )  # fmt: skip


def _score_pipeline(
    data: pd.DataFrame, pipe: Pipeline, causal: bool, engine: Engine
) -> pd.DataFrame:
    from detector.backtest import score_metrics
    from detector.tuning import series_timezones

    metrics = data
    if "metric" not in metrics.columns:
        metrics = metrics.assign(metric=metrics["series"].astype(str).str.split("{").str[0])
    known = set(pipe.metric_names())
    unknown = sorted(set(metrics["metric"]) - known)
    if unknown:
        raise InputError(
            f"series of metrics the pipeline {pipe.name!r} does not define: {unknown[:5]} "
            f"(it defines {sorted(known)})",
            column="series",
        )
    timezones = data.attrs.get("timezones")
    if timezones is None:
        # A metrics table read from a file no longer carries the aggregator's record of the
        # time zones: read them from the series names, as `detector tune` does.
        timezones = series_timezones(pipe, metrics["series"].unique())
    return score_metrics(pipe, metrics, causal=causal, timezones=timezones, engine=engine)
