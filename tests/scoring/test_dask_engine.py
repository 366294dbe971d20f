"""Scoring on a real dask LocalCluster gives exactly what scoring in this process gives.

One cluster of two single-threaded worker processes (loopback only) serves the whole module;
the commands are pointed at it with ``--scheduler``, as a user points them at a cluster of
their own. Only loopback addresses are used.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dask
import distributed
import pandas as pd
import pytest
from click.testing import CliRunner

import detector.api as api
from detector.backtest import score_metrics
from detector.calendars.calendar import Calendar
from detector.calendars.events import Event, LevelChange
from detector.cli import main
from detector.datasets.shop import make_shop_metrics
from detector.errors import ConfigError
from detector.models import create_model
from detector.panel import to_panel
from detector.pipeline.config import parse_pipeline
from detector.scoring import engines as engines_module
from detector.scoring import score_frame, score_panel
from detector.scoring.engines import DaskEngine, EngineError, chunk_slices, open_engine
from detector.store import open_store
from tests.stream.shop import PIPELINE, shop_events
from tests.stream.test_repair import T1, T2, damaged_store, write


@pytest.fixture(scope="module")
def cluster() -> Iterator[DaskEngine]:
    """Two workers, started once: what ``--engine dask`` starts on a 2-core machine."""
    with open_engine("dask", n_workers=2) as engine:
        assert isinstance(engine, DaskEngine) and engine.slots == 2
        yield engine


@pytest.fixture(scope="module")
def shop() -> pd.DataFrame:
    """A week of shop metrics with incidents, gaps and success rates (denominators): 8 series."""
    data = make_shop_metrics(seed=3, weeks=1).data
    keep = data["series"].unique()[::3]
    return data[data["series"].isin(keep)].reset_index(drop=True)


@pytest.fixture
def closed_port() -> Iterator[str]:
    """A loopback address that refuses connections: bound (so nothing else takes the port
    while the test runs) but not listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"tcp://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def silent_port() -> Iterator[str]:
    """A loopback address that accepts connections and never answers (another service)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        yield f"tcp://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "retrospective"])
def test_the_cluster_scores_row_for_row_what_this_process_scores(cluster, shop, causal):
    # Several chunks in this process (chunk=3: 3, 3, 2 series), other chunks on the cluster
    # (two workers: 4 x 2 series): the split changes where the work runs, never a number.
    assert [len(range(8)[s]) for s in chunk_slices(8, 3)] == [3, 3, 2]
    assert [len(range(8)[s]) for s in chunk_slices(8, 3, cluster.slots)] == [2, 2, 2, 2]
    local = score_frame(shop, causal=causal, chunk=3)
    with distributed.get_task_stream(client=cluster.client) as tasks:
        remote = score_frame(shop, causal=causal, chunk=3, engine=cluster)
    pd.testing.assert_frame_equal(remote, local, check_exact=True)
    ran = [t for t in tasks.data if t["key"].startswith("_apply")]
    assert len(ran) == 4 and len({t["worker"] for t in ran}) == 2  # both workers scored
    assert local["is_anomaly"].any() and (local["kind"] == "missing").any()


def test_a_calendar_scores_the_same_on_the_cluster(cluster, shop):
    names = shop["series"].unique()
    t0 = shop["timestamp"].min()
    calendar = Calendar(
        events=[
            Event("Sale", t0 + pd.Timedelta("3D8h"), t0 + pd.Timedelta("3D20h"), expect="higher",
                  factor=1.5, series=(names[0], names[1])),
            Event("Deploy", t0 + pd.Timedelta("4D2h"), t0 + pd.Timedelta("4D3h")),
        ],
        changes=[LevelChange(names[2], t0 + pd.Timedelta("5D"))],
    )  # fmt: skip
    panel = to_panel(shop)
    local = score_panel(panel, chunk=3, calendar=calendar).to_frame()
    remote = score_panel(panel, chunk=3, calendar=calendar, engine=cluster).to_frame()
    pd.testing.assert_frame_equal(remote, local, check_exact=True)
    assert local["reason"].str.contains("Sale").any()
    assert local["reason"].str.contains("not scored: Deploy").any()


def test_a_model_object_is_cloned_for_each_task_and_left_unfitted(cluster, shop):
    model = create_model("profile", weeks=1)
    local = score_frame(shop, model=model)
    remote = score_frame(shop, model=model, engine=cluster)
    pd.testing.assert_frame_equal(remote, local, check_exact=True)
    assert not hasattr(model, "stack_")


def test_the_api_takes_an_engine_a_scheduler_or_a_client(cluster, shop):
    local = api.score(shop, min_duration=3)
    by_address = api.score(shop, min_duration=3, engine="dask", scheduler=cluster.address)
    pd.testing.assert_frame_equal(by_address, local, check_exact=True)
    with distributed.Client(cluster.address, set_as_default=False) as client:
        by_client = api.score(shop, min_duration=3, engine=client)
        assert client.status == "running"  # the caller's client is left open
    pd.testing.assert_frame_equal(by_client, local, check_exact=True)


def test_a_pipeline_s_metrics_score_the_same_on_the_cluster(cluster):
    pipeline = parse_pipeline(PIPELINE)
    events = shop_events(days=3, per_5min=20, seed=4)
    metrics = api.aggregate(events, pipeline)
    # orders: 2 series, more than a worker's share (1.5), so spread over both workers by
    # score_panel's chunks; revenue (1 series) goes to a worker whole.
    metrics = metrics[metrics["series"] != "revenue{market=FR}"]
    local = score_metrics(pipeline, metrics)
    remote = score_metrics(pipeline, metrics, engine=cluster)
    pd.testing.assert_frame_equal(remote, local, check_exact=True)
    both = api.score(metrics, pipeline=pipeline, engine=cluster)
    pd.testing.assert_frame_equal(both, local, check_exact=True)


def test_an_error_raised_on_a_worker_is_the_detector_s_own(cluster):
    with pytest.raises(ConfigError, match="Unknown model 'nope'"):
        cluster.map(create_model, [{"name": "profile"}, {"name": "nope"}])


@pytest.fixture
def series_csv(tmp_path: Path, shop: pd.DataFrame) -> Path:
    path = tmp_path / "shop.csv"
    shop.to_csv(path, index=False)
    return path


def test_detector_score_on_a_cluster_writes_the_same_file(cluster, series_csv, tmp_path):
    outputs = {}
    for engine in (["--engine", "local"], ["--engine", "dask", "--scheduler", cluster.address]):
        out = tmp_path / f"{engine[1]}.csv"
        args = ["score", str(series_csv), "-o", str(out), *engine]
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, res.output
        outputs[engine[1]] = out.read_bytes()
    assert outputs["dask"] == outputs["local"]


def test_detector_score_starts_a_local_cluster_without_a_scheduler(shop, tmp_path):
    two = tmp_path / "two.csv"
    shop[shop["series"].isin(shop["series"].unique()[:2])].to_csv(two, index=False)
    res = CliRunner().invoke(main, ["score", str(two), "-o", str(tmp_path / "a.csv")])
    assert res.exit_code == 0, res.output
    args = ["score", str(two), "-o", str(tmp_path / "b.csv"), "--engine", "dask"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "b.csv").read_bytes() == (tmp_path / "a.csv").read_bytes()


def test_backtest_on_a_cluster_writes_the_same_scores(cluster, tmp_path):
    (tmp_path / "p.yaml").write_text(PIPELINE)
    events = write(tmp_path / "events.jsonl", shop_events(days=3, per_5min=20, seed=4))
    for name, engine in [("local", []), ("dask", ["--engine", "dask", "--scheduler",
                                                  cluster.address])]:  # fmt: skip
        args = ["backtest", "--pipeline", str(tmp_path / "p.yaml"), str(events), "-o",
                str(tmp_path / name), "--no-report", *engine]  # fmt: skip
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, res.output
    for name in ("scores.csv", "anomalies.csv"):
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def test_repair_on_a_cluster_finds_and_writes_the_same_verdicts(cluster, tmp_path):
    events = shop_events(days=4, per_5min=20, seed=4)
    texts, found = {}, {}
    for name, engine in [("local", []), ("dask", ["--engine", "dask", "--scheduler",
                                                  cluster.address])]:  # fmt: skip
        tmp = tmp_path / name
        tmp.mkdir()
        (tmp / "p.yaml").write_text(PIPELINE)
        url = damaged_store(tmp, events)
        full = write(tmp / "events.jsonl", events)
        args = ["repair", "--pipeline", str(tmp / "p.yaml"), "--from", T1, "--to", T2,
                "--store", url, str(full), *engine]  # fmt: skip
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, res.output
        texts[name] = res.output
        with open_store(url) as store:
            found[name] = store.anomalies("streamshop").drop(columns=["scored_at"], errors="ignore")
    assert texts["dask"] == texts["local"] and "48 windows changed" in texts["local"]
    pd.testing.assert_frame_equal(found["dask"], found["local"], check_exact=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scheduler", "tcp://127.0.0.1:8786"], "only used with engine 'dask'"),
        (["--engine", "spark"], "'spark' is not one of 'local', 'dask'"),
        (["--engine", "dask", "--scheduler", "tcp://[::1"], "must be a dask scheduler address"),
    ],
)
def test_bad_engine_options_are_usage_errors(series_csv, tmp_path, args, message):
    out = tmp_path / "out.csv"
    res = CliRunner().invoke(main, ["score", str(series_csv), "-o", str(out), *args])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert not out.exists()


def test_without_dask_the_message_says_what_to_install(series_csv, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` fails
    res = CliRunner().invoke(main, ["score", str(series_csv), "-o", "-", "--engine", "dask"])
    assert res.exit_code == 2
    assert "pip install 'detector[dask]'" in res.output
    with pytest.raises(ConfigError, match=r"pip install 'detector\[dask\]'"):
        api.score(pd.DataFrame({"timestamp": ["2026-01-05"], "value": [1.0]}), engine="dask")


def test_a_scheduler_that_does_not_answer_fails_in_time_naming_it(
    series_csv, closed_port, monkeypatch
):
    monkeypatch.setattr(engines_module, "CONNECT_TIMEOUT", 1.0)
    started = time.monotonic()
    args = ["score", str(series_csv), "-o", "-", "--engine", "dask", "--scheduler", closed_port]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output
    assert f"cannot reach the dask scheduler at {closed_port} within 1 s" in res.output
    assert time.monotonic() - started < 10
    assert "Traceback" not in res.output


def test_a_port_that_accepts_and_never_answers_does_not_hang(silent_port):
    # distributed.Client alone would wait for this handshake forever.
    started = time.monotonic()
    with (
        pytest.raises(EngineError, match=f"{silent_port} accepted the connection but did not"),
        open_engine("dask", scheduler=silent_port, timeout=1.0),
    ):
        pass
    assert time.monotonic() - started < 5


def test_a_worker_s_address_is_not_taken_for_the_scheduler_s(cluster):
    worker = next(iter(cluster.client.nthreads()))
    with (
        pytest.raises(EngineError, match=f"{worker} answers as a dask Worker, not a scheduler"),
        open_engine("dask", scheduler=worker, timeout=2.0),
    ):
        pass


def test_a_scheduler_without_workers_fails_in_time_naming_it():
    empty = distributed.LocalCluster(
        n_workers=0, host="127.0.0.1", dashboard_address=None,
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
    )  # fmt: skip
    try:
        address = empty.scheduler_address
        with (
            pytest.raises(EngineError, match=f"scheduler at {address} has no worker after 1 s"),
            open_engine("dask", scheduler=address, timeout=1.0),
        ):
            pass
    finally:
        empty.close()


def test_a_cluster_that_loses_the_work_is_a_runtime_error_naming_it():
    # A task that kills its worker (as the OOM killer would), on a cluster that gives up at
    # the first loss rather than retrying on the next worker.
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        open_engine("dask", n_workers=1) as engine,
    ):
        assert isinstance(engine, DaskEngine)
        with pytest.raises(EngineError, match=f"dask cluster at {engine.address} lost") as err:
            engine.map(functools.partial(os._exit, 1), [{}])
        assert "KilledWorker" in str(err.value)
