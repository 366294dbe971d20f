"""The library API: what notebooks and scripts call, with the results the CLI gives.

Each function is the Python face of a command and runs the command's own code, so a number
found in a notebook is the number ``detector`` prints:

=============================  ===========================================================
:func:`load_events`            the events ``detector backtest`` reads (JSONL/CSV/Parquet, .gz)
:func:`aggregate`              the metrics ``detector backtest`` writes to ``metrics.csv``
:func:`load_series`            the long table ``detector score`` reads
:func:`score`                  the table ``detector score`` writes; with a pipeline, the
                               ``scores.csv`` of ``detector backtest``
:func:`load_scores`            scored output read back (``scores.csv``, ``detector score -o``)
:func:`evaluate`               the report ``detector evaluate`` prints, NAB score included
:func:`plot`                   value, expected band, anomalies and labels as a Figure
=============================  ===========================================================

and for tuning and exploring, built on those: :func:`describe` (what the model learned about
each series and what it chose, refit by refit), :func:`search` (a parameter grid evaluated on
labelled incidents), :func:`best` (the winner under a false-alert budget),
:func:`shop_metrics` (labelled generated data, several seeds in one table),
:func:`find_nab`, :func:`load_nab` and :func:`score_nab` (the NAB corpus, scored as
``benchmarks/nab.py`` does).

One module per step, named for what it holds:

========================  ==================================================================
``events``                :func:`load_events`, :func:`aggregate` (``detector backtest``)
``inputs``                :func:`load_series`, :func:`load_scores`, :func:`as_labels` and the
                          conversions every function applies to what it is given
``scoring``               :func:`score` (``detector score``)
``evaluation``            :func:`evaluate` (``detector evaluate``, which runs its steps)
``exploration``           :func:`describe`
``grid_search``           :func:`search`, :func:`best`
``recording``             forecasts recorded once and replayed, for describe and search
``parameters``            which keyword goes to the decisions, the engine or the model
``labelled_data``         :func:`shop_metrics`
``nab``                   :func:`find_nab`, :func:`load_nab`, :func:`score_nab`
                          (``benchmarks/nab.py`` runs them)
========================  ==================================================================

:func:`plot` lives in :mod:`detector.plotting`. Errors are the project's:
:class:`~detector.errors.InputError` for data that cannot be used (naming the file, line and
column), :class:`~detector.errors.ConfigError` for a bad parameter or pipeline.

>>> import numpy as np, pandas as pd
>>> idx = pd.date_range("2026-01-05", periods=288 * 4, freq="5min", tz="UTC")
>>> rng = np.random.default_rng(0)
>>> data = pd.DataFrame({"timestamp": idx, "series": "orders.DE",
...                      "value": rng.poisson(40, len(idx)).astype(float)})
>>> data.loc[1000:1011, "value"] = 0.0          # an hour with no orders
>>> scores = score(data, min_duration=3)
>>> scores.loc[scores.is_anomaly, "kind"].unique().tolist()
['dip']
>>> from detector.datasets.shop import Incident
>>> labels = Labels((Incident("orders.DE", idx[1000], idx[1012], "dip"),))
>>> report = evaluate(scores, labels)
>>> report.recall, report.n_false_alerts, round(report.nab.score, 1)
(1.0, 0, 100.0)
"""

from __future__ import annotations

from detector.api.evaluation import Evaluation, evaluate
from detector.api.events import Events, aggregate, load_events
from detector.api.exploration import Description, describe
from detector.api.grid_search import SEARCH_METRICS as SEARCH_METRICS
from detector.api.grid_search import best, search
from detector.api.inputs import as_labels, load_scores, load_series
from detector.api.labelled_data import LabelledData, shop_metrics
from detector.api.nab import NAB_RELATIVE as NAB_RELATIVE
from detector.api.nab import NABCorpus, NABReport, find_nab, load_nab, score_nab
from detector.api.scoring import score
from detector.datasets.shop import Incident
from detector.evaluation.incidents import Labels
from detector.plotting import plot

__all__ = [
    "Description",
    "Evaluation",
    "Events",
    "Incident",
    "LabelledData",
    "Labels",
    "NABCorpus",
    "NABReport",
    "aggregate",
    "as_labels",
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
]
