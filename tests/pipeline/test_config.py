"""Pipeline files: the shipped ones load, and every mistake is named with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.pipeline.config import PipelineError, load_pipeline, parse_pipeline

ROOT = Path(__file__).resolve().parents[2]

GOOD = """name: t
events:
  order_placed:
    fields:
      market: {type: string, required: true}
      amount: {type: number}
metrics:
  - name: orders
    event: order_placed
    aggregation: count
    group_by: [market]
"""


@pytest.mark.parametrize("path", sorted((ROOT / "pipelines").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_pipelines_are_valid(path: Path) -> None:
    p = load_pipeline(path)
    assert p.metrics or p.freshness


def test_shop_pipeline_covers_the_mission() -> None:
    p = load_pipeline(ROOT / "pipelines" / "shop.yaml")
    names = set(p.metric_names())
    assert {"orders", "revenue", "tv_orders", "payment_success_rate", "ticket_sales"} <= names
    assert {"fx_update_age", "fx_change_age"} <= names
    assert p.timezone_of("market", "US") == "America/New_York"
    assert all(m.window is not None and m.lateness is not None for m in p.metrics)


def issues_of(text: str) -> list[str]:
    with pytest.raises(PipelineError) as info:
        parse_pipeline(text, source="p.yaml")
    return [str(i) for i in info.value.issues]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("aggregation: count", "aggregation: cnt"),
            "p.yaml:10: metrics[0].aggregation: unknown aggregation 'cnt'; did you mean 'count'?",
        ),
        (
            ("    group_by: [market]", "    group_by: [markt]"),
            "p.yaml:11: metrics[0].group_by[0]: group_by field 'markt' is not a field of "
            "order_placed; did you mean 'market'?",
        ),
        (
            ("event: order_placed\n", "event: order_placd\n"),
            "p.yaml:9: metrics[0].event: unknown event type 'order_placd'; did you mean "
            "'order_placed'?",
        ),
        (
            ("    group_by", "    windw: 5m\n    group_by"),
            "p.yaml:11: metrics[0].windw: unknown key 'windw'; did you mean 'window'?",
        ),
        (
            ("{type: number}", "{type: numbr}"),
            "p.yaml:6: events.order_placed.fields.amount.type: 'numbr' is not allowed; did you "
            "mean 'number'?",
        ),
        (
            ("aggregation: count", "aggregation: sum"),
            "p.yaml:8: metrics[0]: aggregation 'sum' needs 'field'",
        ),
        (
            ("    group_by", "    model: profil\n    group_by"),
            "p.yaml:11: metrics[0].model: Unknown model 'profil'. Did you mean 'profile'?",
        ),
        (
            ("    group_by", "    window: 7m\n    group_by"),
            "p.yaml:11: metrics[0].window: window 7m must divide a day",
        ),
        (
            ("    group_by", "    lateness: soon\n    group_by"),
            "p.yaml:11: metrics[0].lateness: expected a duration such as 30s, 5m, 1h or 1d",
        ),
        (
            ("    group_by", "    params: {treshold: 4}\n    group_by"),
            "p.yaml:11: metrics[0].params:",
        ),
        (("name: t\n", "nam: t\n"), "p.yaml:1: nam: unknown key 'nam'; did you mean 'name'?"),
        (
            ("      amount: {type: number}", "      amount: {type: number, requird: true}"),
            "p.yaml:6: events.order_placed.fields.amount.requird: unknown key 'requird'; did you "
            "mean 'required'?",
        ),
        (
            ("name: t\n", "name: t\nemitters:\n  shop: {hearbeat: hb}\n"),
            "p.yaml:3: emitters.shop.hearbeat: unknown key 'hearbeat'; did you mean 'heartbeat'?",
        ),
        (
            ("    aggregation: count\n", "    aggregation: count\n    aggregation: sum\n"),
            "p.yaml:11: metrics[0].aggregation: duplicate key",
        ),
    ],
)
def test_mistakes_are_named_with_line_key_path_and_a_suggestion(
    edit: tuple[str, str], expected: str
) -> None:
    old, new = edit
    assert old in GOOD
    issues = issues_of(GOOD.replace(old, new, 1))
    assert any(i.startswith(expected) for i in issues), issues


def test_all_problems_are_reported_at_once() -> None:
    text = (
        GOOD.replace("aggregation: count", "aggregation: cnt").replace(
            "name: t\n", "name: t\ncolour: red\n"
        )
        + "  - name: orders\n    event: nope\n    aggregation: sum\n"
    )
    issues = issues_of(text)
    assert len(issues) >= 5, issues
    assert any("colour" in i for i in issues) and any("used twice" in i for i in issues)
    assert any("'nope'" in i for i in issues) and any("needs 'field'" in i for i in issues)
    lines = [int(i.split(":")[1]) for i in issues]
    assert lines == sorted(lines)


def test_broken_yaml_and_unreadable_files_are_clear_errors(tmp_path: Path) -> None:
    assert issues_of("name: t\nmetrics: [\n")[0].startswith("p.yaml:3: not valid YAML")
    assert "expected a mapping" in issues_of("- a\n- b\n")[0]
    with pytest.raises(PipelineError, match="file not found"):
        load_pipeline(tmp_path / "none.yaml")
    bad = tmp_path / "b.yaml"
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PipelineError, match="cannot read"):
        load_pipeline(bad)


def test_defaults_fill_each_metric() -> None:
    p = parse_pipeline(
        GOOD + "defaults: {window: 1h, lateness: 0s, sensitivity: 0.5, params: {min_duration: 3}}\n"
    )
    m = p.metrics[0]
    assert str(m.window) == "0 days 01:00:00" and m.lateness.total_seconds() == 0
    assert m.sensitivity == 0.5 and m.params == {"min_duration": 3}


def test_time_zones_and_conditions_are_checked() -> None:
    text = GOOD + (
        "segments:\n  market:\n    values: [DE]\n    timezones: {DE: Europe/Berln, FR: UTC}\n"
    )
    issues = issues_of(text)
    assert any("unknown time zone 'Europe/Berln'" in i for i in issues)
    assert any("'FR' is not one of the segment's values" in i for i in issues)
    cond = GOOD.replace("    group_by", "    where: {market: {nin: [DE]}}\n    group_by")
    assert any("unknown condition 'nin'; did you mean 'in'?" in i for i in issues_of(cond))


def test_the_kafka_client_is_chosen_in_the_pipeline_and_checked() -> None:
    base = "name: x\nsources: [{name: s, kafka: {topic: t, client: %s}}]\n"
    metrics = "metrics: [{name: n, event: o, aggregation: count}]\n"
    p = parse_pipeline(base % "confluent" + metrics)
    assert p.sources[0].kafka is not None and p.sources[0].kafka.client == "confluent"
    assert (
        parse_pipeline("name: x\nsources: [{name: s, kafka: {topic: t}}]\n" + metrics)
        .sources[0]
        .kafka.client
        == "kafka-python"
    )
    with pytest.raises(PipelineError) as err:
        parse_pipeline(base % "librdkafka" + metrics)
    assert "sources[0].kafka.client" in str(err.value) and ":2:" in str(err.value)
