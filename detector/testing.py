"""Public check suites: what every registered model must satisfy.

A new model passes :func:`check_model` before it lands; the test suite runs it over the whole
registry. The checks are about the contract, not accuracy (accuracy has its own tests):

- the forecast has the right shapes, and a positive, finite variance where the expected value
  is finite;
- causality: what ``predict`` returns for a period does not change when later rows change;
- the input panel is not modified;
- the same parameters give the same results (no hidden randomness);
- odd inputs (a constant series, a gap, a series that starts late) do not crash.

>>> check_model("profile")
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from detector.models.base import create_model
from detector.panel import Panel, to_panel


def _panel(days: int = 5, seed: int = 0) -> Panel:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2026-01-05", periods=288 * days, freq="5min", tz="UTC")
    hours = idx.hour.to_numpy() + idx.minute.to_numpy() / 60
    mean = 20 + 15 * np.sin(2 * np.pi * (hours - 9) / 24)
    walk = 1 + rng.normal(0, 1e-3, len(idx)).cumsum()
    frames = [
        pd.DataFrame({"timestamp": idx, "series": "counts", "value": rng.poisson(mean)}),
        pd.DataFrame({"timestamp": idx, "series": "constant", "value": 3.0}),
        pd.DataFrame({"timestamp": idx, "series": "levels", "value": walk}),
    ]
    late = pd.DataFrame(
        {"timestamp": idx[600:], "series": "late", "value": rng.poisson(5, len(idx) - 600)}
    )
    data = pd.concat([*frames, late])
    data = data[~data["timestamp"].between(idx[700], idx[760])]  # a gap in every series
    return to_panel(data.assign(value=data["value"].astype(float)))


def _run(name: str, params: dict[str, Any], panel: Panel, cut: int) -> np.ndarray:
    model = create_model(name, **params)
    day = 288
    out = []
    for start in range(0, cut, day):
        model.fit(panel, start)
        out.append(model.predict(panel, start, min(start + day, cut)).expected)
    return np.concatenate(out)


def check_model(name: str, **params: Any) -> None:
    """Raise AssertionError if the registered model ``name`` breaks the Model contract."""
    panel = _panel()
    before = panel.values.copy()
    model = create_model(name, **params)
    model.fit(panel, 3 * 288)
    fc = model.predict(panel, 3 * 288, 4 * 288)
    n = len(panel.series)
    assert fc.expected.shape == (288, n), f"{name}: expected has shape {fc.expected.shape}"
    assert fc.variance.shape == (288, n), f"{name}: variance has shape {fc.variance.shape}"
    finite = np.isfinite(fc.expected)
    assert finite[:, panel.series.index("counts")].all(), f"{name}: no forecast for a plain series"
    assert (fc.variance[finite] > 0).all(), f"{name}: variance must be > 0 where expected is finite"
    assert np.isfinite(fc.variance[finite]).all(), f"{name}: variance must be finite"
    assert np.array_equal(panel.values, before, equal_nan=True), f"{name}: modified its input"
    info = model.info()
    assert len(info.family) == n and len(info.baseline) == n, f"{name}: info() per series"

    # Causality: change everything from row `cut` on; earlier forecasts must not move.
    cut = 4 * 288
    changed = _panel()
    changed.values = changed.values.copy()
    changed.values[cut:] = changed.values[cut:] * 7 + 100
    a = _run(name, params, panel, cut)
    b = _run(name, params, changed, cut)
    assert np.allclose(a, b, equal_nan=True), f"{name}: forecasts before row {cut} used later rows"
    # Determinism.
    c = _run(name, params, panel, cut)
    assert np.allclose(a, c, equal_nan=True), f"{name}: two runs with the same input differ"
