"""``detector run --metrics-port``: Prometheus metrics and health of a real consumer."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import orjson
from click.testing import CliRunner
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from detector.cli import main
from tests.stream.shop import PIPELINE, shop_events
from tests.stream.test_run import BAD, DETECTOR, produce


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        body = e.read()
        e.close()
        return e.code, body


def samples(text: bytes) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def total(found: dict, name: str, **labels: str) -> float:
    return sum(
        v for (n, ls), v in found.items()
        if n == name and all((k, val) in ls for k, val in labels.items())
    )  # fmt: skip


def test_metrics_and_health_of_a_running_consumer(kafka_broker, topic, tmp_path):
    events = shop_events(days=1, per_5min=10, seed=3)
    produce(kafka_broker.bootstrap, topic, events, BAD)
    (tmp_path / "p.yaml").write_text(PIPELINE)
    store = f"sqlite:///{tmp_path / 's.db'}"
    cmd = [DETECTOR, "run", "--pipeline", str(tmp_path / "p.yaml"), "--bootstrap-servers",
           kafka_broker.bootstrap, "--topic", topic, "--group", "ops", "--store", store,
           "--session-timeout", "4", "--metrics-port", "0"]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")))
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not (m := [re.search(r"on (http://\S+)", x) for x in lines if "health on" in x]):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            time.sleep(0.1)
        url = m[0].group(1)
        n = len(events) + len(BAD)
        deadline = time.monotonic() + 60
        while total(samples(get(f"{url}/metrics")[1]), "detector_events_consumed_total") < n:
            assert time.monotonic() < deadline, "the consumer never caught up"
            time.sleep(0.3)
        # Windows close once every partition is read to its end and quiet (idle_partition):
        # with the whole backlog in one poll, that is a couple of seconds after the last record.
        while total(samples(get(f"{url}/metrics")[1]), "detector_windows_closed_total") < 400:
            assert time.monotonic() < deadline, "no window closed"
            time.sleep(0.3)
        time.sleep(2)  # a second for the lag gauges
        found = samples(get(f"{url}/metrics")[1])
        assert total(found, "detector_events_consumed_total", topic=topic) == n
        assert total(found, "detector_events_rejected_total", topic=topic) == len(BAD)
        assert total(found, "detector_events_rejected_total", reason="invalid_json") == 1
        assert total(found, "detector_dead_letters_total", topic=topic) == len(BAD)
        assert total(found, "detector_windows_closed_total", metric="orders") > 200
        assert total(found, "detector_consumer_lag") == 0
        assert total(found, "detector_partitions_assigned", topic=topic) == 3
        assert total(found, "detector_commits_total") >= 1

        status, body = get(f"{url}/readyz")
        assert status == 200, body
        checks = {c["name"]: c["ok"] for c in json.loads(body)["checks"]}
        assert checks == {"broker": True, "assignment": True, "store": True, "lag": True,
                          "windows": True}  # fmt: skip
        assert get(f"{url}/healthz")[0] == 200

        # New records behind the consumer's back show as lag only until it reads them.
        producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
        producer.send(topic, key=b"bad", value=orjson.dumps({"type": "nope"}))
        producer.flush()
        producer.close()
        deadline = time.monotonic() + 30
        while total(samples(get(f"{url}/metrics")[1]), "detector_events_consumed_total") <= n:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert proc.returncode == 0, "".join(lines[-20:])

        # The same checks for a person, from outside.
        args = ["health", "--pipeline", str(tmp_path / "p.yaml"), "--bootstrap-servers",
                kafka_broker.bootstrap, "--topic", topic, "--store", store]  # fmt: skip
        res = CliRunner().invoke(main, [*args, "--group", "ops"])
        assert res.exit_code == 0, res.output
        assert "has 3 partitions" in res.output and "0 records behind" in res.output
        res = CliRunner().invoke(main, [*args, "--group", "never-ran", "--max-lag", "100"])
        assert res.exit_code == 1 and f"{n + 1:,} records behind" in res.output, res.output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
        proc.stderr.close()
