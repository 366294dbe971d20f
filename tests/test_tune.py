"""``detector tune``: a deliberately mis-set pipeline gets better on data the search never saw.

The data: the generated shop's orders of six markets (``detector.datasets.shop``, 30-minute
buckets, three weeks, no built-in incidents), with a drop to zero or a tripling injected every
15 hours on one market after the first five days, each labelled. The generator's own plan puts
only six incidents on orders, too few to tune on. The pipeline's sensitivity is 4: far too
jumpy, dozens of false alerts per series-week.
"""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from detector.aggregation.windows import Point
from detector.alerting.model import Alert
from detector.alerting.state import AlertState, episode_id
from detector.backtest import score_metrics, write_metrics
from detector.cli import main
from detector.datasets.shop import Incident, make_shop_metrics
from detector.evaluation.incidents import Labels, save_labels
from detector.pipeline.config import load_pipeline, parse_pipeline
from detector.store import open_store
from detector.tuning import feedback_labels, stored_history, tune

PIPELINE = """\
# Shop orders for tests/test_tune.py.
name: tuneshop

events:
  order_placed:
    fields:
      market: {type: string, required: true}
      amount: {type: number}

segments:
  market:
    values: [US, DE, GB, JP, BR, AU]   # the generator's first six markets

defaults:
  window: 30min

metrics:
  - name: orders
    event: order_placed
    aggregation: count
    group_by: [market]
    sensitivity: 4.0   # far too jumpy: pages all the time
  # Revenue has history but no labelled incident: tune must leave it alone.
  - name: revenue
    event: order_placed
    aggregation: sum
    field: amount
    group_by: [market]
"""
WARMUP = "4D"


def shop_history() -> tuple[pd.DataFrame, Labels]:
    """Orders and revenue per market as ``detector run`` stores them, and the incidents."""
    data, labels = _shop_history()
    return data.copy(), labels


@functools.cache
def _shop_history(seed: int = 3) -> tuple[pd.DataFrame, Labels]:
    shop = make_shop_metrics(
        seed=seed, weeks=3, freq="30min", incidents=False, gaps=False,
        n_markets=6, n_providers=0, n_pairs=0, n_shows=0,
    )  # fmt: skip
    data = shop.data.copy()
    parts = data["series"].astype(str).str.partition(".")
    data["metric"] = parts[0]
    data["series"] = parts[0] + "{market=" + parts[2] + "}"
    orders = sorted(data.loc[data["metric"] == "orders", "series"].unique())
    rng = np.random.default_rng(seed)
    incidents = []
    t = shop.start + pd.Timedelta("5D13h")
    for i in range(100):
        if t >= shop.end - pd.Timedelta("1D"):
            break
        series, kind = orders[i % len(orders)], ("dip", "spike")[i % 2]
        end = t + pd.Timedelta(hours=int(rng.integers(2, 5)))
        rows = (data["series"] == series) & (data["timestamp"] >= t) & (data["timestamp"] < end)
        data.loc[rows, "value"] = 0.0 if kind == "dip" else np.round(data.loc[rows, "value"] * 3)
        incidents.append(Incident(series, t, end, kind, f"{kind} of {series}"))
        t += pd.Timedelta("15h")
    data["missing"] = False
    return data.reset_index(drop=True), Labels(tuple(incidents))


def fill_store(url: str, data: pd.DataFrame) -> None:
    points = [
        Point(m, s, int(t.timestamp()), float(v), None, False)
        for m, s, t, v in data[["metric", "series", "timestamp", "value"]].itertuples(index=False)
    ]
    with open_store(url) as store:
        store.commit("tuneshop", "detector", offsets={}, state=None, points=points)


def add_alerts(url: str, windows: list[Incident]) -> list[str]:
    """Alert episodes as the router stores them (to be labelled through the CLI)."""
    alerts = [
        Alert({"alertname": "orders", "metric": "orders", "series": w.series, "kind": w.kind},
              w.start, {}, w.end)
        for w in windows
    ]  # fmt: skip
    with open_store(url) as store:
        state = AlertState(store, "tuneshop")
        with store.transaction(write=True) as cur:
            state.write_alerts(cur, alerts, now_us=0)
    return [episode_id(a.fingerprint, a.starts_at) for a in alerts]


def first_false_alerts(data: pd.DataFrame, labels: Labels, n: int) -> list[Incident]:
    """The first ``n`` alerts of the mis-set pipeline that match no incident."""
    pipeline = parse_pipeline(PIPELINE)
    orders = data.loc[data["metric"] == "orders"]
    scored = score_metrics(pipeline.model_copy(update={"metrics": pipeline.metrics[:1]}), orders)
    flagged = scored.loc[scored["is_anomaly"]].sort_values(["timestamp", "series"])
    start = flagged["timestamp"].min() + pd.Timedelta(WARMUP)
    out: list[Incident] = []
    for series, ts in flagged[["series", "timestamp"]].itertuples(index=False):
        near = any(
            i.series == series and i.start - pd.Timedelta("1h") <= ts < i.end + pd.Timedelta("2h")
            for i in labels.incidents
        )
        if ts >= start and not near and not any(w.series == series for w in out):
            out.append(Incident(series, ts, ts + pd.Timedelta("30min"), "spike"))
        if len(out) == n:
            break
    return out


def label(url: str, pipeline_file: Path, alert_id: str, verdict: str) -> None:
    args = ["alerts", "--store", url, "--pipeline", str(pipeline_file), "label", alert_id]
    result = CliRunner().invoke(main, [*args, "--as", verdict])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A SQLite store with the history and people's feedback, a labels file, a pipeline."""
    root = tmp_path_factory.mktemp("tune")
    data, labels = shop_history()
    url = f"sqlite:///{root / 'store.db'}"
    fill_store(url, data)
    pipeline_file = root / "pipeline.yaml"
    pipeline_file.write_text(PIPELINE)
    # Half the incidents come from a labels file, the other half from alerts people marked
    # true; three false alerts of the mis-set pipeline were marked false-positive.
    from_file, from_people = labels.incidents[::2], labels.incidents[1::2]
    save_labels(Labels(from_file), root / "labels.json")
    false = first_false_alerts(data, labels, 3)
    ids = add_alerts(url, [*from_people, *false])
    for i, alert_id in enumerate(ids):
        label(url, pipeline_file, alert_id, "true" if i < len(from_people) else "false-positive")
    return {"root": root, "url": url, "data": data, "labels": labels, "false": false}


@pytest.fixture(scope="module")
def tuned(shop: dict):
    """The whole search (every stage; the statsmodels model that is fast here) via the API."""
    pipeline = load_pipeline(shop["root"] / "pipeline.yaml")
    with open_store(shop["url"]) as store:
        history = stored_history(store, pipeline)
        true, false, counts = feedback_labels(store, pipeline, history["timestamp"].max())
    file_labels = Labels(shop["labels"].incidents[::2])
    labels = Labels(file_labels.incidents + tuple(true))
    assert counts == {"true": len(true), "false-positive": 3}
    lines: list[str] = []
    result = tune(
        pipeline, history, labels, false_alerts=false, warmup=WARMUP, models=["stl"],
        progress=lines.append,
    )  # fmt: skip
    return result, lines


def test_feedback_becomes_label_windows(shop: dict, tuned) -> None:
    result, _ = tuned
    assert result.labels_used == len(shop["labels"].incidents)
    orders = result.metrics[0]
    assert orders.known_false == 3 and orders.known_false_before == 3


def test_tune_improves_the_held_out_part_of_a_mis_set_pipeline(tuned) -> None:
    result, lines = tuned
    orders, revenue = result.metrics
    assert orders.metric == "orders" and orders.changes["sensitivity"] < 4.0
    tuning_before, tuning_after = orders.tuning_before, orders.tuning_after
    before, after = orders.held_out_before, orders.held_out_after
    assert tuning_after.objective > tuning_before.objective
    assert before.incidents >= 5 and tuning_before.incidents >= 10
    # Held out: never seen by the search, and still much better.
    assert after.objective > before.objective + 0.3
    assert after.false_per_week < before.false_per_week / 3
    assert after.precision > 2 * before.precision
    assert after.recall >= before.recall - 0.15
    assert orders.known_false_after < orders.known_false_before
    assert "not tuned: no labelled incident" in revenue.note and not revenue.changes
    # Every stage ran, and each candidate was reported as it was scored.
    tried = {c.settings.model for c in orders.candidates}
    assert tried == {"auto", "stl"}
    assert {c.settings.min_change for c in orders.candidates} != {0.1}
    assert sum("orders #" in line for line in lines) == len(orders.candidates)


def test_a_change_that_loses_tuning_recall_is_never_taken(tuned) -> None:
    result, _ = tuned
    orders = result.metrics[0]
    base = orders.candidates[0].tuning.detected
    assert all(c.tuning.detected >= base for c in orders.candidates if c.accepted)
    assert orders.tuning_after.detected >= orders.tuning_before.detected
    refused = [c for c in orders.candidates if c.note == "loses recall"]
    assert all(c.tuning.detected < base for c in refused)
    summary = result.summary()
    if refused:
        assert f"{len(refused)} settings had a better objective but detected fewer" in summary
    assert "held out" in summary and "never used to choose" in summary


def test_cli_without_write_shows_the_diff_and_leaves_the_file(shop: dict) -> None:
    pipeline_file = shop["root"] / "pipeline.yaml"
    before = pipeline_file.read_bytes()
    result = CliRunner().invoke(
        main,
        ["tune", "--pipeline", str(pipeline_file), "--labels", str(shop["root"] / "labels.json"),
         "--store", shop["url"], "--warmup", WARMUP, "--search", "sensitivity"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert pipeline_file.read_bytes() == before
    out = result.stdout
    assert f"--- {pipeline_file}\n+++ {pipeline_file}\n" in out
    assert "-    sensitivity: 4.0   # far too jumpy: pages all the time" in out
    assert "Not written. To apply: run the same command with --write" in out
    assert "held out" in out and "orders (6 series" in out
    assert "Feedback in sqlite:///" in result.stderr and "3 false-positive" in result.stderr
    assert "orders #1 " in result.stderr  # progress


def test_cli_write_writes_exactly_the_shown_diff(shop: dict, tmp_path: Path) -> None:
    """On a backtest's metrics.csv (no store): the file becomes what the diff says."""
    pipeline_file = tmp_path / "pipeline.yaml"
    pipeline_file.write_text(PIPELINE)
    write_metrics(shop["data"], tmp_path / "metrics.csv")
    save_labels(shop["labels"], tmp_path / "labels.json")
    result = CliRunner().invoke(
        main,
        ["tune", "--pipeline", str(pipeline_file), "--labels", str(tmp_path / "labels.json"),
         "--metrics", str(tmp_path / "metrics.csv"), "--metric", "orders", "--warmup", WARMUP,
         "--search", "sensitivity", "--write"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"Wrote {pipeline_file}." in out and "Feedback" not in result.stderr
    shown = out[out.index(f"--- {pipeline_file}") : out.index("Wrote ")]
    # The shown diff applied to the old file gives the written file, byte for byte.
    (tmp_path / "old").mkdir()
    old = tmp_path / "old" / "pipeline.yaml"
    old.write_text(PIPELINE)
    patch = shown.replace(str(pipeline_file), "pipeline.yaml")
    subprocess.run(["patch", "-s", "-p0"], input=patch, text=True, cwd=old.parent, check=True)
    assert old.read_text() == pipeline_file.read_text() != PIPELINE
    tuned = load_pipeline(pipeline_file)
    assert tuned.metrics[0].sensitivity < 4.0
    new = pipeline_file.read_text()
    assert "# far too jumpy: pages all the time" in new  # comments stay
    assert "  # Revenue has history but no labelled incident: tune must leave it alone." in new
    assert new.count("\n") == PIPELINE.count("\n")  # only the sensitivity line changed


def _tune(tmp_path: Path, *args: str, labels: object = None) -> object:
    pipeline_file = tmp_path / "pipeline.yaml"
    pipeline_file.write_text(PIPELINE)
    data, found = shop_history()
    write_metrics(data.loc[data["timestamp"] < data["timestamp"].min() + pd.Timedelta("12D")],
                  tmp_path / "metrics.csv")  # fmt: skip
    labels_file = tmp_path / "labels.json"
    if labels is None:
        save_labels(found, labels_file)
    else:
        labels_file.write_text(labels if isinstance(labels, str) else json.dumps(labels))
    result = CliRunner().invoke(
        main,
        ["tune", "--pipeline", str(pipeline_file), "--metrics", str(tmp_path / "metrics.csv"),
         "--labels", str(labels_file), "--warmup", WARMUP, *args],
    )  # fmt: skip
    assert pipeline_file.read_text() == PIPELINE
    return result


@pytest.mark.parametrize(
    ("args", "labels", "message"),
    [
        (["--metric", "order"], None, "no metric named 'order' in pipeline 'tuneshop'; did you "
         "mean 'orders'?"),
        ([], "{not json", "labels.json: not valid JSON"),
        ([], {"incidents": [{"series": "orders{market=DE}", "start": "2026-01-10T10:00Z"}]},
         "incidents[0] has no 'end'"),
        ([], {"incidents": [{"series": "orders.DE", "start": "2026-01-10T10:00Z",
                             "end": "2026-01-10T12:00Z", "kind": "dip"}]},
         "no labelled incident is on a series of the history: the labels name 'orders.DE', "
         "the history has series like 'orders{market=AU}'"),
        ([], {"incidents": []}, "no labelled incident to tune on"),
        (["--search", "sensitivty"], None, "cannot search 'sensitivty'; did you mean "
         "'sensitivity'?"),
        (["--models", "stll"], None, "Unknown model 'stll'; did you mean 'stl'?"),
        (["--warmup", "20D"], None, "too short for a warm-up"),
        (["--holdout", "1.5"], None, "Invalid value for '--holdout'"),
    ],
)  # fmt: skip
def test_bad_input_is_a_usage_error(
    tmp_path: Path, args: list[str], labels: object, message: str
) -> None:
    result = _tune(tmp_path, *args, labels=labels)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_missing_store_history_is_explained(tmp_path: Path) -> None:
    pipeline_file = tmp_path / "pipeline.yaml"
    pipeline_file.write_text(PIPELINE)
    save_labels(Labels(), tmp_path / "labels.json")
    result = CliRunner().invoke(
        main,
        ["tune", "--pipeline", str(pipeline_file), "--labels", str(tmp_path / "labels.json"),
         "--store", f"sqlite:///{tmp_path / 'empty.db'}"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "no stored points of pipeline 'tuneshop'" in result.stderr
    assert "--metrics metrics.csv" in result.stderr


def test_history_and_feedback_read_the_same_from_every_store(store_url: str) -> None:
    data, _ = shop_history()
    data = data.loc[data["timestamp"] < data["timestamp"].min() + pd.Timedelta("2D")]
    fill_store(store_url, data)
    windows = [
        Incident("orders{market=DE}", "2026-01-06T10:00Z", "2026-01-06T11:30Z", "dip"),
        Incident("orders{market=US}", "2026-01-06T20:00Z", "2026-01-06T20:30Z", "spike"),
        Incident("orders{market=GB}", "2026-01-06T22:00Z", "2026-01-06T22:30Z", "variance"),
    ]
    ids = add_alerts(store_url, windows)
    pipeline = parse_pipeline(PIPELINE)
    with open_store(store_url) as store:
        state = AlertState(store, "tuneshop")
        state.label(ids[0], "true", "")
        state.label(ids[1], "false-positive", "")
        state.label(ids[2], "expected", "a promotion")
        history = stored_history(store, pipeline)
        true, false, counts = feedback_labels(store, pipeline, history["timestamp"].max())
    assert len(history) == len(data)
    got = history.sort_values(["series", "timestamp"])["value"].to_numpy()
    assert np.array_equal(got, data.sort_values(["series", "timestamp"])["value"].to_numpy())
    assert [(i.series, i.start, i.end, i.kind) for i in true] == [
        (w.series, w.start, w.end, w.kind) for w in windows[:1]
    ]
    assert [(i.series, i.start) for i in false] == [(windows[1].series, windows[1].start)]
    assert counts == {"true": 1, "false-positive": 1, "expected": 1}
