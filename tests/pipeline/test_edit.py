"""Writing tuned parameters back to pipeline YAML: only the values change, nothing else."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from detector.errors import ConfigError
from detector.pipeline.config import PipelineError, parse_pipeline
from detector.pipeline.edit import diff, set_metric_params

SHOP = Path(__file__).resolve().parents[2] / "pipelines" / "shop.yaml"

BLOCK = """\
# a comment at the top
name: t   # the name
defaults:
  params: {direction: down}
metrics:
  - name: orders
    event: order_placed
    aggregation: count
    params:
      min_change: 0.2   # 20 % at least
      weeks: 2
  # between the metrics
  - {name: rate, event: paid, aggregation: mean, field: x, params: {}}
  - name: sales
    event: sold
    aggregation: count
    model: profile

store: {url: "sqlite:///x.db"}
"""


def _changed_lines(old: str, new: str) -> list[str]:
    return [
        line
        for line in diff(old, new, "p.yaml").splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_shop_pipeline_every_metric_keeps_the_rest_of_the_file() -> None:
    text = SHOP.read_text()
    for metric in parse_pipeline(text).metrics:
        new = set_metric_params(
            text,
            metric.name,
            {"model": "profile", "sensitivity": 0.7, "min_duration": 3, "min_change": 0.25},
            source=str(SHOP),
        )
        tuned = {m.name: m for m in parse_pipeline(new).metrics}[metric.name]
        assert tuned.model == "profile" and tuned.sensitivity == 0.7
        assert tuned.params["min_duration"] == 3 and tuned.params["min_change"] == 0.25
        assert tuned.params.get("direction") == metric.params.get("direction")
        # Every old line is still there, in order: nothing was re-indented or dropped.
        removed = [line for line in _changed_lines(text, new) if line.startswith("-")]
        assert len(removed) <= 1  # at most the metric's own `params: {...}` line
        others = {m.name: m for m in parse_pipeline(new).metrics if m.name != metric.name}
        assert others == {m.name: m for m in parse_pipeline(text).metrics if m.name != metric.name}
        assert [c for c in new.splitlines() if c.lstrip().startswith("#")] == [
            c for c in text.splitlines() if c.lstrip().startswith("#")
        ]


def test_values_replaced_in_place_keep_their_inline_comments() -> None:
    new = set_metric_params(BLOCK, "orders", {"min_change": 0.3, "weeks": 3})
    assert _changed_lines(BLOCK, new) == [
        "-      min_change: 0.2   # 20 % at least",
        "-      weeks: 2",
        "+      min_change: 0.3   # 20 % at least",
        "+      weeks: 3",
    ]


def test_new_keys_in_a_block_params_that_ends_the_metric() -> None:
    new = set_metric_params(BLOCK, "orders", {"model": "profile", "sensitivity": 0.5, "hold": 0.7})
    assert _changed_lines(BLOCK, new) == [
        "+      hold: 0.7",
        "+    model: profile",
        "+    sensitivity: 0.5",
    ]
    orders = parse_pipeline(new).metrics[0]
    assert (orders.model, orders.sensitivity, orders.params["hold"]) == ("profile", 0.5, 0.7)
    # After the metric's last line, before the comment that belongs to the next metric.
    assert (
        "      weeks: 2\n      hold: 0.7\n    model: profile\n    sensitivity: 0.5\n"
        "  # between the metrics\n"
    ) in new


def test_a_block_sequence_and_a_block_scalar_end_their_metric() -> None:
    text = (
        "name: t\nmetrics:\n  - name: a\n    event: e\n    aggregation: count\n"
        "    group_by:\n      - market\n\n    # trailing comment\n"
        "  - name: b\n    event: e\n    aggregation: count\n    description: |\n"
        "      two\n      lines\n"
    )
    new = set_metric_params(text, "a", {"sensitivity": 2})
    assert "      - market\n    sensitivity: 2\n\n    # trailing comment\n" in new
    new = set_metric_params(text, "b", {"sensitivity": 2})
    assert new.endswith("      two\n      lines\n    sensitivity: 2\n")
    assert parse_pipeline(new).metrics[1].description == "two\nlines\n"


def test_flow_mappings_stay_flow_mappings() -> None:
    new = set_metric_params(BLOCK, "rate", {"sensitivity": 2, "min_duration": 4})
    assert _changed_lines(BLOCK, new) == [
        "-  - {name: rate, event: paid, aggregation: mean, field: x, params: {}}",
        "+  - {name: rate, event: paid, aggregation: mean, field: x, params: {min_duration: 4}, "
        "sensitivity: 2}",
    ]


def test_a_replaced_model_and_values_from_numpy() -> None:
    new = set_metric_params(
        BLOCK, "sales", {"model": np.str_("auto"), "sensitivity": np.float64(0.8)}
    )
    assert _changed_lines(BLOCK, new) == [
        "-    model: profile",
        "+    model: auto",
        "+    sensitivity: 0.8",
    ]


def test_values_the_metric_already_has_change_nothing() -> None:
    # direction comes from defaults, sensitivity 1.0 and model profile from the metric/defaults
    params = {"direction": "down", "sensitivity": 1, "model": "profile"}
    assert set_metric_params(BLOCK, "sales", params) == BLOCK
    assert set_metric_params(BLOCK, "orders", {"weeks": 2.0}) == BLOCK
    assert diff(BLOCK, BLOCK, "p.yaml") == ""


def test_strings_that_need_quotes_and_small_floats_read_back_the_same() -> None:
    new = set_metric_params(BLOCK, "orders", {"refit": "1D", "min_change": 1e-05})
    orders = parse_pipeline(new).metrics[0]
    assert orders.params["refit"] == "1D" and orders.params["min_change"] == 1e-05
    assert yaml.safe_load(new)["metrics"][0]["params"]["min_change"] == 1e-05


def test_unknown_metric_names_the_closest_one() -> None:
    with pytest.raises(ConfigError, match=r"p.yaml: metrics: no metric named 'order'; did you "
                       r"mean 'orders'\?"):  # fmt: skip
        set_metric_params(BLOCK, "order", {"sensitivity": 2}, source="p.yaml")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sensitivity": -1}, r"p.yaml:\d+: metrics\[0\]\.sensitivity"),
        ({"treshold": 6}, "treshold"),
        ({"model": "profil"}, "profile"),
    ],
)
def test_a_result_that_does_not_validate_is_refused(params: dict, message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        set_metric_params(BLOCK, "orders", params, source="p.yaml")


@pytest.mark.parametrize("value", [None, float("nan"), {"a": 1}])
def test_values_yaml_cannot_hold_are_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="min_change"):
        set_metric_params(BLOCK, "orders", {"min_change": value})


def test_params_shared_through_an_alias_are_not_edited() -> None:
    text = (
        "name: t\nmetrics:\n"
        "  - {name: a, event: e, aggregation: count, params: &p {min_change: 0.2}}\n"
        "  - {name: b, event: e, aggregation: count, params: *p}\n"
    )
    with pytest.raises(ConfigError, match="alias"):
        set_metric_params(text, "b", {"min_change": 0.3})


def test_an_invalid_input_file_is_reported_before_editing() -> None:
    with pytest.raises(PipelineError, match="aggregation"):
        set_metric_params("name: t\nmetrics: [{name: a, event: e, aggregation: summ}]", "a", {})


def test_the_diff_applies_with_patch(tmp_path: Path) -> None:
    text = BLOCK.rstrip("\n")  # a file without a final newline, too
    new = set_metric_params(text, "sales", {"sensitivity": 0.5})
    assert new.endswith('store: {url: "sqlite:///x.db"}')
    (tmp_path / "p.yaml").write_text(text)
    patch = diff(text, new, "p.yaml")
    subprocess.run(["patch", "-s", "-p0"], input=patch, text=True, cwd=tmp_path, check=True)
    assert (tmp_path / "p.yaml").read_text() == new
