"""The library API gives the CLI's results: the same inputs through both, the frames compared.

The CLI runs in-process through click's runner on real files; the API reads the same files.
CSV outputs carry rounded numbers (``%.6g`` scores, ``%.10g`` metrics), so those comparisons
are to that precision; Parquet output is compared exactly.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from click.testing import CliRunner

import detector
from detector.cli import main
from detector.datasets.shop import Gap, Incident
from detector.errors import ConfigError, InputError
from detector.evaluation.incidents import Labels, save_labels
from detector.types import OUTPUT_COLUMNS
from tests.conftest import seasonal_counts

ROOT = Path(__file__).resolve().parents[1]

PIPELINE = """name: tiny
emitters:
  shop: {}
  payments: {}
  fx: {heartbeat: heartbeat, every: 1m}
events:
  heartbeat: {}
  order_placed:
    fields:
      market: {type: string, required: true, allowed: [DE, US]}
      amount: {type: number, required: true, min: 0}
  payment_attempted:
    fields:
      provider: {type: string, required: true}
      status: {type: string, required: true, allowed: [success, failed]}
  rate_updated:
    fields:
      pair: {type: string, required: true}
      rate: {type: number, required: true, min: 0}
segments:
  market:
    values: [DE, US]
    timezones: {DE: Europe/Berlin, US: America/New_York}
  provider: {values: [adyen, stripe]}
metrics:
  - {name: orders, event: order_placed, aggregation: count, group_by: [market]}
  - name: revenue
    event: order_placed
    aggregation: sum
    field: amount
    group_by: [market]
    params: {direction: down}
  - name: success_rate
    event: payment_attempted
    aggregation: ratio
    numerator: {status: success}
    group_by: [provider]
    sensitivity: 0.8
freshness:
  - {name: fx_age, event: rate_updated, group_by: [pair], max_age: 30m}
"""

T0 = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp())
DAY = 86_400
DROP = (T0 + 3 * DAY + 12 * 3600, T0 + 3 * DAY + 13 * 3600 + 1800)  # DE orders stop, day 4
FX_STOP = (T0 + 2 * DAY + 10 * 3600, T0 + 2 * DAY + 12 * 3600)  # the rate feed stops, day 3


def _iso(t: np.ndarray) -> list[str]:
    ms = (np.asarray(t) * 1000).astype("int64").astype("datetime64[ms]")
    return [s + "Z" for s in np.datetime_as_string(ms, unit="ms")]


def _stamps(*seconds: int) -> list[pd.Timestamp]:
    return [pd.Timestamp(t, unit="s", tz="UTC") for t in seconds]


def _events(seed: int = 0) -> list[dict | str]:
    """Four days of orders (DE, US, with a DE outage), payments and rate updates, bad lines."""
    rng = np.random.default_rng(seed)
    minutes = np.arange(4 * 24 * 60)
    hour = (minutes % 1440) / 60
    events: list[tuple[float, dict | str]] = []
    n = 0
    for market, shift in (("DE", 0), ("US", 6)):
        away = (hour - 13 - shift + 12) % 24 - 12  # hours from the daily peak
        mu = 1.0 + 4.0 * np.exp(-(away**2) / 18)
        counts = rng.poisson(mu)
        t = np.repeat(T0 + 60 * minutes, counts) + rng.random(counts.sum()) * 60
        t = t[(market != "DE") | (t < DROP[0]) | (t >= DROP[1])]
        amount = np.round(rng.lognormal(3, 0.5, t.size), 2)
        for ts, iso, a in zip(t, _iso(t), amount, strict=True):
            n += 1
            ev = {"event_id": f"o{n}", "type": "order_placed", "ts": iso, "source": "shop"}
            events.append((ts, {**ev, "market": market, "amount": float(a)}))
    counts = rng.poisson(6.0, minutes.size)
    t = np.repeat(T0 + 60 * minutes, counts) + rng.random(counts.sum()) * 60
    provider = rng.choice(["adyen", "stripe"], t.size)
    ok = rng.random(t.size) < 0.95
    for ts, iso, p, good in zip(t, _iso(t), provider, ok, strict=True):
        n += 1
        ev = {"event_id": f"p{n}", "type": "payment_attempted", "ts": iso, "source": "payments"}
        events.append((ts, {**ev, "provider": p, "status": "success" if good else "failed"}))
    t = T0 + 300.0 * np.arange(4 * 288) + 7
    t = t[(t < FX_STOP[0]) | (t >= FX_STOP[1])]
    rate = 1.08 + np.cumsum(rng.normal(0, 1e-4, t.size))
    for ts, iso, r in zip(t, _iso(t), rate, strict=True):
        n += 1
        ev = {"event_id": f"f{n}", "type": "rate_updated", "ts": iso, "source": "fx"}
        events.append((ts, {**ev, "pair": "EURUSD", "rate": round(float(r), 5)}))
    t = T0 + 30.0 * np.arange(4 * 2880) + 3  # the rate feed stays alive while its rate stops
    for k, (ts, iso) in enumerate(zip(t, _iso(t), strict=True)):
        events.append((ts, {"event_id": f"h{k}", "type": "heartbeat", "ts": iso, "source": "fx"}))
    events.sort(key=lambda e: e[0])
    out = [e for _, e in events]
    out.insert(100, "{not json")
    ts = out[200]["ts"]  # type: ignore[index]
    bad = {"event_id": "bad1", "type": "order_placed", "ts": ts, "source": "shop"}
    out.insert(200, {**bad, "market": "XX", "amount": 1.0})
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("api")
    events = tmp / "events.jsonl"
    events.write_bytes(
        b"".join((e.encode() if isinstance(e, str) else orjson.dumps(e)) + b"\n" for e in _events())
    )
    pipeline = tmp / "tiny.yaml"
    pipeline.write_text(PIPELINE, encoding="utf-8")
    drop, fx = _stamps(*DROP), _stamps(FX_STOP[0] + 1800, FX_STOP[1])
    labels = Labels(
        (
            Incident("orders{market=DE}", *drop, "dip", "DE checkout down"),
            Incident("revenue{market=DE}", *drop, "dip"),
            Incident("fx_age{pair=EURUSD}", *fx, "stale"),
        )
    )
    save_labels(labels, tmp / "labels.json")
    out = tmp / "out"
    run = CliRunner().invoke(
        main, ["backtest", "--pipeline", str(pipeline), str(events), "-o", str(out), "--no-report"]
    )
    assert run.exit_code == 0, run.output
    return {
        "events": events,
        "pipeline": pipeline,
        "labels": tmp / "labels.json",
        "out": out,
        "dir": tmp,
        "log": tmp / "backtest.log",
        "stderr": run.stderr,  # type: ignore[dict-item]
    }


@pytest.fixture(scope="module")
def metrics(files: dict[str, Path]) -> pd.DataFrame:
    return detector.aggregate(detector.load_events(files["events"]), files["pipeline"])


@pytest.fixture(scope="module")
def scores(files: dict[str, Path], metrics: pd.DataFrame) -> pd.DataFrame:
    return detector.score(metrics, pipeline=files["pipeline"])


# --------------------------------------------------------------------------------------------
# Events and metrics: detector backtest
# --------------------------------------------------------------------------------------------


def test_load_events_reads_the_events_backtest_reads(files, metrics) -> None:
    events = detector.load_events(files["events"])
    lines = files["events"].read_bytes().count(b"\n")
    assert len(events) == lines == metrics.attrs["counters"]["events"]
    assert f"{lines:,} events read" in str(files["stderr"])
    assert events.origin(100).endswith("events.jsonl:101") and events[100].raw == "{not json"
    table = events.to_frame()
    assert len(table) == lines - 1 and table["origin"].iloc[0].endswith(":1")


def test_aggregate_equals_the_metrics_csv_of_backtest(files, metrics) -> None:
    cli = pd.read_csv(files["out"] / "metrics.csv")
    assert list(metrics.columns) == [
        "timestamp", "series", "value", "denominator", "metric", "missing",
    ]  # fmt: skip
    ours = metrics.assign(timestamp=metrics["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    pd.testing.assert_frame_equal(
        ours[["timestamp", "series"]].reset_index(drop=True), cli[["timestamp", "series"]]
    )
    np.testing.assert_allclose(ours["value"], cli["value"], rtol=1e-9, equal_nan=True)
    assert metrics.attrs["counters"]["rejected"] == 2
    assert {r["origin"].rsplit(":", 1)[1] for r in metrics.attrs["rejected"]} == {"101", "201"}
    assert metrics.attrs["timezones"]["orders{market=DE}"] == "Europe/Berlin"
    rejected = (files["out"] / "rejected.jsonl").read_bytes().splitlines()
    assert sorted(orjson.loads(r)["origin"] for r in rejected) == sorted(
        r["origin"] for r in metrics.attrs["rejected"]
    )


def test_aggregate_takes_paths_events_or_dicts_alike(files, metrics) -> None:
    from detector.pipeline.config import load_pipeline

    by_path = detector.aggregate(files["events"], load_pipeline(files["pipeline"]))
    in_memory = detector.aggregate(_events(), files["pipeline"], chunk=7_000)
    for other in (by_path, in_memory):
        pd.testing.assert_frame_equal(other, metrics)
    assert in_memory.attrs["rejected"][0]["origin"] == "<events>:101"


def test_score_with_the_pipeline_equals_the_scores_csv_of_backtest(files, metrics, scores) -> None:
    ours = scores
    cli = detector.load_scores(files["out"] / "scores.csv")
    assert list(ours.columns) == list(OUTPUT_COLUMNS) and len(ours) == len(cli)
    assert (ours["timestamp"].to_numpy() == cli["timestamp"].to_numpy()).all()
    for col in ("series", "is_anomaly", "kind", "reason"):
        assert ours[col].astype(str).tolist() == cli[col].astype(str).tolist(), col
    for col in ("value", "expected", "lower", "upper", "score"):
        np.testing.assert_allclose(ours[col], cli[col], rtol=2e-5, atol=1e-9, equal_nan=True)
    # The incidents are there, and the local-time scoring of DE and US (its reasons say so).
    flagged = ours[ours["is_anomaly"]]
    assert {"orders{market=DE}", "fx_age{pair=EURUSD}"} <= set(flagged["series"])
    de = flagged[flagged["series"] == "orders{market=DE}"]
    assert de["reason"].str.endswith("(times in Europe/Berlin)").all()
    # A metrics table without the aggregator's record of time zones: read from the names.
    bare = metrics.copy()
    bare.attrs = {}
    pd.testing.assert_frame_equal(detector.score(bare, pipeline=files["pipeline"]), ours)


def test_score_equals_detector_score(tmp_path: Path) -> None:
    data = pd.concat(
        [seasonal_counts(days=5, seed=1), seasonal_counts(days=5, seed=2, series="orders.FR")]
    )
    data.loc[(data["series"] == "orders.DE") & (data.index >= 4 * 288 + 140), "value"] = 0.0
    data = data[~data.index.isin(range(300, 320))]  # a gap: missing rows in both series
    src = tmp_path / "in.csv"
    data.assign(timestamp=data["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(
        src, index=False
    )
    out = tmp_path / "out.parquet"
    args = ["score", str(src), "-o", str(out), "--sensitivity", "1.3"]
    args += ["-p", "min_duration=3", "-p", "direction=down", "-p", "weeks=2"]
    run = CliRunner().invoke(main, args)
    assert run.exit_code == 0, run.output
    cli = pd.read_parquet(out)
    params = {"min_duration": 3, "direction": "down", "weeks": 2}
    for ours in (
        detector.score(detector.load_series(src), sensitivity=1.3, **params),
        detector.score(src, sensitivity=1.3, **params),
    ):
        pd.testing.assert_frame_equal(ours.reset_index(drop=True), cli, check_dtype=False)
    assert cli["is_anomaly"].any() and (cli["kind"] == "missing").sum() == 2 * 20


# --------------------------------------------------------------------------------------------
# Evaluation: detector evaluate
# --------------------------------------------------------------------------------------------


def test_evaluate_prints_what_detector_evaluate_prints(files) -> None:
    scores, labels = files["out"] / "scores.csv", files["labels"]
    start = "2026-01-06T00:00:00Z"
    cases = [
        ([], {}),
        (["--start", start], {"start": start}),
        (["--grace", "5min"], {"grace": "5min"}),
    ]
    for args, kwargs in cases:
        run = CliRunner().invoke(main, ["evaluate", "--labels", str(labels), str(scores), *args])
        assert run.exit_code == 0, run.output
        report = detector.evaluate(scores, labels, **kwargs)
        assert run.stdout == str(report) + "\n"
        assert report.nab is not None and "NAB score (standard profile" in run.stdout
    assert report.n_incidents == 3 and report.n_detected >= 2


def test_evaluate_anomalies_with_the_metrics_span_as_the_cli(files, scores) -> None:
    anomalies, labels = files["out"] / "anomalies.csv", files["labels"]
    span = files["out"] / "metrics.csv"
    run = CliRunner().invoke(
        main, ["evaluate", "--labels", str(labels), str(anomalies), "--metrics", str(span)]
    )
    assert run.exit_code == 0, run.output
    assert run.stdout == str(detector.evaluate(anomalies, labels, metrics=span)) + "\n"
    # In memory: scores from the API, labels as objects, the same numbers.
    in_memory = detector.evaluate(scores, detector.api.as_labels(labels))
    from_files = detector.evaluate(files["out"] / "scores.csv", labels)
    assert in_memory.metrics() == pytest.approx(from_files.metrics(), nan_ok=True)
    with pytest.warns(UserWarning, match=r"anomalous rows only"):
        detector.evaluate(anomalies, labels)


# --------------------------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------------------------


def test_plot_draws_value_band_anomalies_missing_and_labels(files, scores) -> None:
    labels = Labels(
        detector.api.as_labels(files["labels"]).incidents,
        (Gap("orders{market=US}", "2026-01-07T10:00Z", "2026-01-07T11:00Z"),),
    )
    fig = detector.plot(
        scores, series=["orders{market=DE}", "orders{market=US}"], labels=labels,
        start="2026-01-07", end="2026-01-08T20:00Z",
    )  # fmt: skip
    assert [ax.get_title(loc="left") for ax in fig.axes] == [
        "orders{market=DE}", "orders{market=US}",
    ]  # fmt: skip
    de, us = (set(ax.get_legend_handles_labels()[1]) for ax in fig.axes)
    assert {"value", "expected", "expected range", "dip", "labelled incident"} <= de
    assert "labelled gap" in us and "labelled incident" not in us
    lo, hi = fig.axes[0].get_xlim()
    import matplotlib.dates as mdates

    assert mdates.num2date(lo).isoformat() == "2026-01-07T00:00:00+00:00"
    assert mdates.num2date(hi).isoformat() == "2026-01-08T20:00:00+00:00"


def test_plot_leaves_pyplot_and_the_backend_alone(tmp_path: Path) -> None:
    code = f"""
import io, sys
import matplotlib
matplotlib.use = lambda *a, **k: (_ for _ in ()).throw(AssertionError("matplotlib.use"))
import detector
from tests.test_report import handmade
fig = detector.plot(handmade("a", 2, [100, 101]), labels={str(tmp_path / "labels.json")!r})
fig.savefig(io.BytesIO(), format="png")
assert "matplotlib.pyplot" not in sys.modules, "pyplot imported"
"""
    save_labels(Labels((Incident("a", "2026-01-05T08:00Z", "2026-01-05T09:00Z", "spike"),)),
                tmp_path / "labels.json")  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


# --------------------------------------------------------------------------------------------
# Exploring and tuning
# --------------------------------------------------------------------------------------------


def test_describe_names_family_baseline_and_missing_data() -> None:
    shop = detector.shop_metrics(
        seeds=3, weeks=2, series=["orders.DE", "fx.EURUSD", "payment_success_rate.adyen"]
    )
    d = detector.describe(shop.data)
    s = d.summary
    assert s.loc["orders.DE", "family"] == "count"
    assert s.loc["fx.EURUSD", "family"] == "level" and s.loc["fx.EURUSD", "baseline"] == "naive"
    assert s.loc["payment_success_rate.adyen", "family"] == "ratio"
    assert s.loc["orders.DE", "baseline"] in ("daily", "weekly")
    assert s.loc["orders.DE", "acf_daily"] > 0.5 > abs(s.loc["fx.EURUSD", "acf_weekly"]) - 0.5
    # Missing buckets: the generated gaps, counted independently from the rows present.
    for name, part in shop.data.groupby("series"):
        span = (part["timestamp"].max() - part["timestamp"].min()) / pd.Timedelta("5min") + 1
        assert s.loc[name, "missing"] == span - part["value"].notna().sum()
    # The cold-start ladder: a flat baseline first, the seasonal one once there is history.
    orders = d.choices[d.choices["series"] == "orders.DE"]
    assert orders["baseline"].iloc[0] in ("level", "naive")
    assert orders["baseline"].iloc[-1] == s.loc["orders.DE", "baseline"]
    pd.testing.assert_frame_equal(d.scores, detector.score(shop.data))


def _small_labelled() -> tuple[pd.DataFrame, Labels]:
    frames, incidents = [], []
    for k, name in enumerate(("orders.DE", "orders.FR")):
        df = seasonal_counts(days=7, seed=10 + k, series=name)
        day = 5 + k
        a, b = day * 288 + 150, day * 288 + 150 + 12 * (k + 1)
        df.loc[a:b, "value"] = np.round(df.loc[a:b, "value"] * (0.2 if k else 0.0))
        frames.append(df)
        incidents.append(
            Incident(name, df["timestamp"].iloc[a], df["timestamp"].iloc[b + 1], "dip")
        )
    return pd.concat(frames, ignore_index=True), Labels(tuple(incidents))


def test_search_gives_the_numbers_of_fresh_scoring() -> None:
    data, labels = _small_labelled()
    grid = {"sensitivity": [0.6, 1.5], "min_duration": [1, 4]}
    found = detector.search(data, labels, grid, start="2026-01-08", min_change=0.2)
    assert list(found.columns[:2]) == ["sensitivity", "min_duration"] and len(found) == 4
    for _, row in found.iterrows():
        fresh = detector.evaluate(detector.score(data, **row["params"]), labels, start="2026-01-08")
        metrics = fresh.metrics()
        for col in ("recall", "precision", "false_alerts_per_series_week", "nab_score"):
            assert row[col] == pytest.approx(metrics[col], nan_ok=True), (row["params"], col)
    assert found["params"].iloc[0] == {
        "model": "auto", "min_change": 0.2, "sensitivity": 0.6, "min_duration": 1,
    }  # fmt: skip
    # More sensitive, shorter: never fewer alerts.
    assert found["alerts"].iloc[2] >= found["alerts"].iloc[1]


def test_search_over_models_and_best_within_the_budget() -> None:
    data, labels = _small_labelled()
    found = detector.search(
        data, labels, {"model": ["auto", "holt_winters"], "sensitivity": [1.0]}, start="2026-01-08"
    )
    assert found["model"].tolist() == ["auto", "holt_winters"]
    budget = float(found["false_alerts_per_series_week"].max())
    chosen = detector.best(found, max_false_alerts_per_series_week=budget)
    assert chosen["recall"] == found["recall"].max()
    with pytest.raises(InputError, match=r"false alerts per series-week"):
        detector.best(found, max_false_alerts_per_series_week=-1)


def test_recorded_forecasts_refuse_other_data() -> None:
    from detector.api.recording import Replay as _Replay
    from detector.api.recording import record as _record

    data, _ = _small_labelled()
    recording, _scores = _record(data, "auto", True, None, {})
    other = data.assign(value=data["value"] + 1)
    with pytest.raises(ConfigError, match=r"other data"):
        detector.score(other, model=_Replay(recording))
    with pytest.raises(ConfigError, match=r"cannot be applied to a model object"):
        detector.score(data, model=_Replay(recording), weeks=2)


def test_shop_metrics_stacks_seeds_with_renamed_labels() -> None:
    one = detector.shop_metrics(seeds=4, series="orders.")
    two = detector.shop_metrics(seeds=[4, 5], series="orders.")
    assert set(two.data["series"]) == {f"seed{s}/{n}" for s in (4, 5) for n in one.data["series"]}
    first = two.data[two.data["series"].str.startswith("seed4/")]
    assert (first["value"].to_numpy() == one.data["value"].to_numpy()).all()
    assert {i.series for i in one.labels.incidents} <= set(one.data["series"])
    assert all(i.series.startswith(("seed4/", "seed5/")) for i in two.labels.incidents)
    assert "*" not in {g.series for g in two.labels.gaps}
    assert len(two.labels.incidents) > len(one.labels.incidents) > 0


def test_nab_data_that_is_not_there(tmp_path: Path) -> None:
    assert detector.find_nab(tmp_path) is None
    with pytest.raises(InputError, match=r"no NAB data"):
        detector.load_nab(tmp_path)
    path = detector.find_nab()
    if path is not None:
        with pytest.raises(InputError, match=r"no NAB file 'nyc_taxi.csv'.*did you mean"):
            detector.load_nab(path, files=["nyc_taxi.csv"])


def test_the_nab_benchmark_script_runs_on_the_api() -> None:
    """benchmarks/nab.py scores through detector.api: its run gives the API's figures."""
    path = detector.find_nab()
    if path is None:
        pytest.skip("NAB data not found (shared/data/nab beside the repository)")
    names = [
        "artificialWithAnomaly/art_daily_jumpsup.csv",
        "realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv",
    ]
    corpus = detector.load_nab(path, files=names)
    report = detector.score_nab(corpus)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import nab as bench  # benchmarks/nab.py
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    results = bench.run_detector(path, names, bench.engine_detector("auto", 1.0))
    from detector.evaluation.nab import nab_score, nab_score_decisions

    assert report.optimised.score == pytest.approx(
        nab_score(results, corpus.windows, column="onset_score").score
    )
    assert report.score == pytest.approx(
        nab_score_decisions(results, corpus.windows, column="onset").score
    )
    assert report.files["windows"].sum() == 3
    assert report.files["detected"].sum() == report.decisions.tp
    assert 0 <= report.recall <= 1 and report.false_alerts_per_series_week >= 0


# --------------------------------------------------------------------------------------------
# Bad input: the project's errors, with the place named
# --------------------------------------------------------------------------------------------


def test_bad_events_and_pipelines(files, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"at least one file"):
        detector.load_events()
    with pytest.raises(InputError, match=r"unknown event file type"):
        detector.load_events(tmp_path / "events.txt")
    with pytest.raises(InputError, match=r"nope.jsonl: file not found"):
        detector.load_events(tmp_path / "nope.jsonl")
    with pytest.raises(ConfigError, match=r"nope.yaml: file not found"):
        detector.aggregate(files["events"], tmp_path / "nope.yaml")
    with pytest.raises(InputError, match=r"not a table"):
        detector.aggregate(pd.DataFrame({"a": [1]}), files["pipeline"])
    with pytest.raises(InputError, match=r"no valid event.*<events>:1: not valid JSON"):
        detector.aggregate(["{not json"], files["pipeline"])
    broken = tmp_path / "broken.yaml"
    broken.write_text(PIPELINE.replace("aggregation: ratio", "aggregation: ration"))
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+: metrics\[2\].aggregation: .*'ratio'"):
        detector.aggregate(files["events"], broken)


def test_bad_series_and_parameters(files, metrics, tmp_path: Path) -> None:
    src = tmp_path / "s.csv"
    src.write_text("when,value\n2026-01-05T00:00Z,1\n")
    with pytest.raises(InputError, match=r"s.csv, column 'timestamp': missing column"):
        detector.load_series(src)
    data = seasonal_counts(days=2)
    with pytest.raises(ConfigError, match=r"Unknown model 'holtwinters'. Did you mean"):
        detector.score(data, model="holtwinters")
    with pytest.raises(ConfigError, match=r"treshold"):
        detector.score(data, treshold=3)
    with pytest.raises(ConfigError, match=r"'direction' parameter must be"):
        detector.score(data, direction="sideways")
    text = data.assign(timestamp=data["timestamp"].astype(str))
    text.loc[5, "timestamp"] = "yesterday"
    with pytest.raises(InputError, match=r"row 6, column 'timestamp'.*'yesterday'"):
        detector.score(text)
    with pytest.raises(InputError, match=r"column 'value': missing column"):
        detector.score(data.drop(columns="value"))
    with pytest.raises(ConfigError, match=r"do not pass model, min_duration"):
        detector.score(metrics, "stl", pipeline=files["pipeline"], min_duration=3)
    with pytest.raises(InputError, match=r"does not define: \['orders.DE'\]"):
        detector.score(data, pipeline=files["pipeline"])


def test_bad_evaluation_and_plot_input(files, metrics, tmp_path: Path) -> None:
    scores = files["out"] / "scores.csv"
    with pytest.raises(InputError, match=r"labels.json: file not found"):
        detector.evaluate(scores, tmp_path / "labels.json")
    with pytest.raises(InputError, match=r"expected labels"):
        detector.evaluate(scores, {"incidents": []})
    with pytest.raises(InputError, match=r"metrics.csv.*no 'is_anomaly' column"):
        detector.evaluate(files["out"] / "metrics.csv", files["labels"])
    scored = detector.load_scores(scores)
    with pytest.raises(InputError, match=r"no series 'orders\{market=D\}'.*did you mean"):
        detector.plot(scored, series="orders{market=D}")
    with pytest.raises(ConfigError, match=r"7 series to plot, more than max_series=3"):
        detector.plot(scored, max_series=3)
    with pytest.raises(InputError, match=r"lacks columns"):
        detector.plot(metrics)
    with pytest.raises(InputError, match=r"no rows between"):
        detector.plot(scored, series="orders{market=DE}", start="2030-01-01")
    data, labels = _small_labelled()
    with pytest.raises(ConfigError, match=r"unknown search parameter 'min_durration'"):
        detector.search(data, labels, {"min_durration": [2]})
    with pytest.raises(ConfigError, match=r"no value for 'sensitivity'"):
        detector.search(data, labels, {"sensitivity": []})
