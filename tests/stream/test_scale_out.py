"""Several ``detector run`` instances in one consumer group over PostgreSQL: one is killed with
-9, another joins, and the stored metrics still equal the batch result exactly.

The instances split the partitions; they share one state in the store, each commit checking
its version, so a member that finds the state moved on reloads it and folds its uncommitted
records in again, and a partition handed over resumes from the offset committed with that
state: nothing lost, nothing counted twice.
"""

from __future__ import annotations

import signal
import subprocess
import time

import pandas as pd

from detector.store import open_store
from tests.stream.shop import PIPELINE, shop_events
from tests.stream.test_run import DETECTOR, backtest, common, export, produce


def test_three_instances_one_killed_one_added_equal_the_batch(
    kafka_broker, topic, pg_url, tmp_path
):
    events = shop_events(days=4, per_5min=20, seed=5)
    (tmp_path / "p.yaml").write_text(PIPELINE)
    cmd = [DETECTOR, "-v", "run", "--pipeline", str(tmp_path / "p.yaml"), "--bootstrap-servers",
           kafka_broker.bootstrap, "--topic", topic, "--group", "scale", "--store", pg_url,
           "--session-timeout", "4", "--idle-close", "3600"]  # fmt: skip
    logs = [open(tmp_path / f"run{i}.log", "w") for i in range(4)]  # noqa: SIM115
    procs: list[subprocess.Popen] = []
    store = open_store(pg_url)

    def done() -> int:
        return sum(store.load("streamshop", "scale").offsets.values())

    def wait(n: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while done() < n:
            assert time.monotonic() < deadline, f"stuck at {done()} of {n}"
            time.sleep(0.3)

    try:
        for i in range(3):
            procs.append(subprocess.Popen(cmd, stderr=logs[i]))
        thirds = [events[: len(events) // 3], events[len(events) // 3 : 2 * len(events) // 3],
                  events[2 * len(events) // 3 :]]  # fmt: skip
        produce(kafka_broker.bootstrap, topic, thirds[0])
        wait(len(thirds[0]) // 2)
        procs[0].send_signal(signal.SIGKILL)  # mid-stream, state uncommitted
        procs[0].wait()
        produce(kafka_broker.bootstrap, topic, thirds[1])
        procs.append(subprocess.Popen(cmd, stderr=logs[3]))  # a new member joins
        produce(kafka_broker.bootstrap, topic, thirds[2])
        wait(len(events), timeout=180)
        for i in (1, 2, 3):  # each has its signal handlers (it says so once they are set)
            deadline = time.monotonic() + 60
            while "detector run: pipeline" not in (tmp_path / f"run{i}.log").read_text():
                assert time.monotonic() < deadline and procs[i].poll() is None
                time.sleep(0.2)
        for p in procs[1:]:
            p.send_signal(signal.SIGTERM)
        for p in procs[1:]:
            assert p.wait(timeout=60) == 0
        assert done() == len(events)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for f in logs:
            f.close()
        store.close()
    batch_metrics, _ = backtest(tmp_path, events)
    metrics, _ = export(tmp_path, pg_url)
    b, s = common(batch_metrics, metrics)
    assert len(b) > 1000
    pd.testing.assert_frame_equal(s, b)
    rebases = sum("shared state moved on" in (tmp_path / f"run{i}.log").read_text()
                  for i in range(4))  # fmt: skip
    assert rebases >= 1, "the instances never met on the shared state"
