"""Every registered model passes the shared contract checks (detector.testing)."""

from __future__ import annotations

import pytest

from detector.models import available_models
from detector.testing import check_model


@pytest.mark.parametrize("name", available_models())
def test_registered_model_passes_the_contract(name):
    check_model(name)


def test_the_check_catches_a_model_that_peeks_at_the_future():
    from detector.models.base import Forecast, register
    from detector.models.profile import SeasonalProfileModel

    @register("_peeking")
    class Peeking(SeasonalProfileModel):
        def predict(self, panel, start, stop):
            fc = super().predict(panel, start, stop)
            # Cheat: look one day ahead.
            ahead = panel.values[start + 288 : stop + 288]
            ahead = ahead if len(ahead) == stop - start else fc.expected
            return Forecast(fc.expected + 0 * ahead + ahead / 1e3, fc.variance, fc.level_shift)

    try:
        with pytest.raises(AssertionError, match="used later rows"):
            check_model("_peeking")
    finally:
        from detector.models import base

        base._REGISTRY.pop("_peeking", None)
