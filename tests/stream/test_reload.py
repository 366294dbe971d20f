"""SIGHUP: ``detector run`` reloads its pipeline; a bad file is refused and the old one runs on."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

from detector.store import open_store
from tests.stream.shop import PIPELINE, shop_events
from tests.stream.test_run import DETECTOR, produce


def wait_for_line(lines: list[str], text: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in lines):
        assert proc.poll() is None, "detector run exited:\n" + "".join(lines[-30:])
        assert time.monotonic() < deadline, f"no {text!r} in:\n" + "".join(lines[-30:])
        time.sleep(0.1)


def test_sighup_applies_a_good_file_and_refuses_bad_ones(kafka_broker, topic, tmp_path):
    events = shop_events(days=1, per_5min=10, seed=2)
    produce(kafka_broker.bootstrap, topic, events)
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE)
    store_url = f"sqlite:///{tmp_path / 's.db'}"
    cmd = [DETECTOR, "-v", "run", "--pipeline", str(path), "--bootstrap-servers",
           kafka_broker.bootstrap, "--topic", topic, "--group", "hup", "--store", store_url,
           "--session-timeout", "4"]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")))
    reader.start()
    store = open_store(store_url)
    try:
        deadline = time.monotonic() + 60
        while sum(store.load("streamshop", "hup").offsets.values()) < len(events):
            assert time.monotonic() < deadline, "the consumer never caught up"
            time.sleep(0.3)

        path.write_text(PIPELINE + "metrics: [oops\n")  # broken YAML
        proc.send_signal(signal.SIGHUP)
        wait_for_line(lines, "reload refused, the running pipeline goes on", proc)
        assert any("not valid YAML" in line for line in lines)

        path.write_text(PIPELINE.replace("group_by: [market]}", "}", 1))  # what is aggregated
        proc.send_signal(signal.SIGHUP)
        wait_for_line(lines, "change(s) what is aggregated (metrics)", proc)

        path.write_text(PIPELINE.replace("model: auto}", "model: auto, sensitivity: 2}"))
        proc.send_signal(signal.SIGHUP)
        wait_for_line(lines, "scoring and alerting settings applied", proc)

        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert proc.returncode == 0, "".join(lines[-30:])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
        proc.stderr.close()
        store.close()
