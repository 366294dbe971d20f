"""Several ``detector run`` instances in one consumer group over PostgreSQL: one is killed with
-9, another joins, and the stored metrics still equal the batch result exactly.

The instances split the partitions. The first holds the group's lease and merges; the others
forward what they read through the store. The killed one is the merger: another instance takes
its lease over once it expires, loads the group's state and folds the forwarded records in.
A partition handed over resumes from the offset committed with what it built: nothing lost,
nothing counted twice.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pandas as pd

from detector.store import open_store
from tests.stream.shop import PIPELINE, shop_events
from tests.stream.test_run import DETECTOR, backtest, common, export
from tests.stream.test_sharing import produce_spread as produce


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
        """Records read and folded into the group's state (none left forwarded)."""
        if any(k.next > k.first for k in store.forwarded_keys("streamshop", "scale")):
            return -1  # (an idle mark holds no record)
        return sum(store.load("streamshop", "scale").offsets.values())

    def wait(n: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while done() < n:
            assert time.monotonic() < deadline, f"stuck at {done()} of {n}"
            time.sleep(0.3)

    try:
        procs.append(subprocess.Popen(cmd, stderr=logs[0]))
        deadline = time.monotonic() + 60
        while "merges for streamshop/scale" not in (tmp_path / "run0.log").read_text():
            assert time.monotonic() < deadline and procs[0].poll() is None
            time.sleep(0.1)
        for i in (1, 2):  # members
            procs.append(subprocess.Popen(cmd, stderr=logs[i]))
        thirds = [events[: len(events) // 3], events[len(events) // 3 : 2 * len(events) // 3],
                  events[2 * len(events) // 3 :]]  # fmt: skip
        produce(kafka_broker.bootstrap, topic, thirds[0])
        wait(len(thirds[0]) // 2)
        procs[0].send_signal(signal.SIGKILL)  # the merger, mid-stream, state uncommitted
        procs[0].wait()
        produce(kafka_broker.bootstrap, topic, thirds[1])
        procs.append(subprocess.Popen(cmd, stderr=logs[3]))  # a new member joins
        produce(kafka_broker.bootstrap, topic, thirds[2])
        wait(len(events), timeout=180)
        # ... and the windows closed (a partition with no events holds them until it is
        # marked idle, ~2 s after its reader found it at its end)
        last = pd.Timestamp(events[-1]["ts"]) - pd.Timedelta("15min")
        deadline = time.monotonic() + 60
        while (store.newest_point("streamshop") or last - pd.Timedelta("1D")) < last:
            assert time.monotonic() < deadline, store.newest_point("streamshop")
            time.sleep(0.2)
        for i in (1, 2, 3):  # each has its signal handlers (it says so once they are set)
            deadline = time.monotonic() + 60
            while "detector run: pipeline" not in (tmp_path / f"run{i}.log").read_text():
                assert time.monotonic() < deadline and procs[i].poll() is None
                time.sleep(0.2)
        for p in procs[1:]:
            p.send_signal(signal.SIGTERM)
        for i, p in enumerate(procs[1:], 1):
            assert p.wait(timeout=60) == 0, (tmp_path / f"run{i}.log").read_text()[-3000:]
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
    # the work was shared: members forwarded what they read, and a merger folded it in
    logs = "".join((tmp_path / f"run{i}.log").read_text() for i in range(4))
    forwarded = [int(n.replace(",", "")) for n in re.findall(r"([\d,]+) forwarded to", logs)]
    merged = [int(n.replace(",", "")) for n in re.findall(r"([\d,]+) merged from", logs)]
    assert sum(forwarded) > 0 and sum(merged) > 0, logs[-3000:]
    assert logs.count("merges for streamshop/scale") >= 2, "the killed merger was not replaced"
