"""Parameter search on labelled incidents, and the best setting under a false-alert budget.

:func:`search` fits each model setting once (:mod:`detector.api.recording`), tries the
decision parameters on the recorded forecasts and evaluates every combination with
:func:`~detector.api.evaluate`; :func:`best` picks the setting with the highest recall that
pages no more often than the budget allows.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from detector.api.evaluation import evaluate
from detector.api.inputs import as_labels, as_series
from detector.api.parameters import DETECTION_PARAMS, ENGINE_PARAMS, build_model, split_params
from detector.api.recording import Recording, Replay, record
from detector.errors import ConfigError, InputError
from detector.scoring import DetectionParams, score_frame

__all__ = ["SEARCH_METRICS", "best", "search"]


#: The columns of :func:`search` after the grid's: the evaluation's headline numbers.
SEARCH_METRICS = (
    "recall",
    "precision",
    "f1",
    "false_alerts_per_series_week",
    "incidents",
    "detected",
    "alerts",
    "false_alerts",
    "median_delay_min",
    "nab_score",
)


def search(
    series: pd.DataFrame | str | Path,
    labels: Any,
    grid: Mapping[str, Iterable[Any]],
    *,
    start: Any = None,
    grace: str | pd.Timedelta = "30min",
    causal: bool = True,
    freq: str | None = None,
    **fixed: Any,
) -> pd.DataFrame:
    """Score ``series`` with every combination of ``grid`` and :func:`evaluate` each.

    ``grid`` maps ``model`` and any parameter of :func:`~detector.api.score` (``sensitivity``,
    ``min_duration``, ``min_change``, ``direction``, a model's ``weeks``, ...) to the values to
    try; ``fixed`` parameters apply to every run. Returns one row per combination, in grid
    order: the grid's values, :data:`SEARCH_METRICS`, and ``params`` (the whole setting as a
    dict, ready for ``score(**params)`` or for writing back to a pipeline).

    Each model setting is fitted once; decision parameters are then tried on its recorded
    forecasts (the decisions only read them), which gives the numbers of a fresh
    :func:`~detector.api.score` for a fraction of the time.

    Tuning on the data you report is optimistic: search on one part (seeds, or weeks) and
    report :func:`evaluate` on another.

    >>> from detector.api import shop_metrics
    >>> shop = shop_metrics(seeds=1, weeks=3, series=["orders.DE", "orders.FR"])
    >>> found = search(shop.data, shop.labels, {"sensitivity": [0.5, 1.0]}, start=shop.start)
    >>> found[["sensitivity", "incidents"]].values.tolist()
    [[0.5, 1.0], [1.0, 1.0]]
    >>> found["params"].iloc[0]
    {'model': 'auto', 'sensitivity': 0.5}
    >>> search(shop.data, shop.labels, {"sensitivty": [1.0]})
    Traceback (most recent call last):
    ...
    detector.errors.ConfigError: unknown search parameter 'sensitivty'; did you mean ...
    """
    data = as_series(series)
    truth = as_labels(labels)
    keys = list(grid)
    values = [list(grid[k]) for k in keys]
    for k, v in zip(keys, values, strict=True):
        if not v:
            raise ConfigError(f"the search grid has no value for {k!r}")
    base = {"model": "auto", **fixed}
    for combo in itertools.product(*values):
        _check_setting({**base, **dict(zip(keys, combo, strict=True))})
    rows = []
    recordings: dict[str, Recording] = {}
    for combo in itertools.product(*values):
        setting = {**base, **dict(zip(keys, combo, strict=True))}
        model = setting.pop("model")
        det, eng, mod = split_params(setting)
        key = repr((model, sorted(eng.items()), sorted(mod.items())))
        if key not in recordings:
            recordings[key], scores = record(data, model, causal, freq, setting)
        else:
            scores = score_frame(
                data, model=Replay(recordings[key]), causal=causal, freq=freq, **det, **eng
            )  # type: ignore[arg-type]
        report = evaluate(scores, truth, grace=grace, start=start)
        numbers = report.metrics()
        row: dict[str, Any] = dict(zip(keys, combo, strict=True))
        row.update({m: numbers[m] for m in SEARCH_METRICS if m in numbers})
        row["params"] = {"model": model, **setting}
        rows.append(row)
    return pd.DataFrame(rows, columns=[*keys, *SEARCH_METRICS, "params"])


def _check_setting(setting: Mapping[str, Any]) -> None:
    """Raise ConfigError for a parameter neither the model nor the decisions know."""
    params = dict(setting)
    model = params.pop("model")
    if not isinstance(model, str):
        raise ConfigError(f"search takes models by name; got {type(model).__name__}")
    det, _eng, mod = split_params(params)
    try:
        DetectionParams(**det)
        build_model(model, True, mod)
    except ConfigError as exc:
        names = [*DETECTION_PARAMS, *ENGINE_PARAMS, "model"]
        for k in mod:
            close = difflib.get_close_matches(k, names, n=1)
            if close:
                raise ConfigError(
                    f"unknown search parameter {k!r}; did you mean {close[0]!r}? ({exc})"
                ) from None
        raise


def best(
    results: pd.DataFrame,
    *,
    max_false_alerts_per_series_week: float = 0.2,
    by: str = "recall",
) -> pd.Series:
    """The row of :func:`search` results with the highest ``by`` (recall) among those within
    the false-alert budget; ties go to fewer false alerts, then to the earlier row.

    >>> results = pd.DataFrame({"recall": [0.9, 1.0, 0.9], "false_alerts_per_series_week":
    ...                         [0.1, 0.5, 0.05], "params": [{"a": 1}, {"a": 2}, {"a": 3}]})
    >>> best(results)["params"]
    {'a': 3}
    """
    if by not in results.columns:
        raise ConfigError(f"no column {by!r} in the search results; choose one of {SEARCH_METRICS}")
    ok = results[results["false_alerts_per_series_week"] <= max_false_alerts_per_series_week]
    if ok.empty:
        raise InputError(
            f"no setting stays within {max_false_alerts_per_series_week} false alerts per "
            f"series-week (the fewest: {results['false_alerts_per_series_week'].min():.3f})"
        )
    ranked = ok.assign(_by=-ok[by].fillna(-np.inf)).sort_values(
        ["_by", "false_alerts_per_series_week"], kind="stable"
    )
    return ranked.drop(columns="_by").iloc[0]
