"""OpsServer over real HTTP on 127.0.0.1: /metrics, /healthz, /readyz."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from detector.errors import ConfigError
from detector.ops.health import Check, lag_check
from detector.ops.metrics import StreamMetrics
from detector.ops.server import OpsServer


def get(url: str, timeout: float = 10.0) -> tuple[int, str, bytes]:
    """(status, content type, body), for error statuses too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers["Content-Type"], exc.read()


class Switch:
    """A check whose answer a test sets."""

    def __init__(self) -> None:
        self.ok, self.detail = True, "up"

    def __call__(self) -> tuple[bool, str]:
        return self.ok, self.detail


@pytest.fixture
def release() -> Iterator[threading.Event]:
    ev = threading.Event()
    yield ev
    ev.set()


@pytest.fixture
def metrics() -> StreamMetrics:
    return StreamMetrics()


@pytest.fixture
def switch() -> Switch:
    return Switch()


@pytest.fixture
def server(metrics: StreamMetrics, switch: Switch) -> Iterator[OpsServer]:
    ready = [Check("broker", switch), lag_check(metrics.lag_total, 100)]
    with OpsServer(0, metrics=metrics, ready=ready, timeout_per_check=0.3) as srv:
        yield srv


def test_binds_a_free_loopback_port(server: OpsServer) -> None:
    assert server.port != 0
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert server._httpd is not None and server._httpd.server_address[0] == "127.0.0.1"


def test_metrics_endpoint(server: OpsServer, metrics: StreamMetrics) -> None:
    metrics.consumed("orders", 42)
    metrics.rejected("orders", "not valid JSON: oops")
    metrics.lag("orders", 0, 7)
    metrics.breaker("slack", "half_open")
    status, ctype, body = get(f"{server.url}/metrics")
    assert (status, ctype) == (200, CONTENT_TYPE_LATEST)
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(body.decode())
        for s in fam.samples
    }
    assert got[("detector_events_consumed_total", (("topic", "orders"),))] == 42
    key = ("detector_events_rejected_total", (("reason", "invalid_json"), ("topic", "orders")))
    assert got[key] == 1
    assert got[("detector_consumer_lag", (("partition", "0"), ("topic", "orders")))] == 7
    assert got[("detector_breaker_state", (("receiver", "slack"),))] == 1

    metrics.consumed("orders", 8)  # every scrape sees the current values
    assert b'detector_events_consumed_total{topic="orders"} 50.0' in get(f"{server.url}/metrics")[2]


def test_healthz_without_live_checks_is_ok(server: OpsServer) -> None:
    status, ctype, body = get(f"{server.url}/healthz")
    assert (status, ctype) == (200, "application/json")
    assert json.loads(body) == {"status": "ok", "checks": []}


def test_readyz_flips_with_its_checks(
    server: OpsServer, switch: Switch, metrics: StreamMetrics
) -> None:
    status, _, body = get(f"{server.url}/readyz")
    assert status == 200
    assert [(c["name"], c["ok"]) for c in json.loads(body)["checks"]] == [
        ("broker", True),
        ("lag", True),
    ]

    switch.ok, switch.detail = False, "broker not reachable"
    status, ctype, body = get(f"{server.url}/readyz")
    assert (status, ctype) == (503, "application/json")
    data = json.loads(body)
    assert data["status"] == "failing"
    assert data["checks"][0] == {**data["checks"][0], "ok": False, "detail": "broker not reachable"}

    switch.ok = True
    assert get(f"{server.url}/readyz")[0] == 200
    metrics.lag("orders", 0, 101)  # past the lag bound
    assert get(f"{server.url}/readyz")[0] == 503
    metrics.assigned("orders", set())  # partition gone: its lag with it
    assert get(f"{server.url}/readyz")[0] == 200


def test_readyz_times_out_a_hanging_check_and_recovers(
    server: OpsServer, release: threading.Event
) -> None:
    hang = Check("store", lambda: (release.wait(10), "write committed"))
    server.ready.append(hang)  # type: ignore[attr-defined]
    t0 = time.monotonic()
    status, _, body = get(f"{server.url}/readyz")
    assert time.monotonic() - t0 < 2.0
    assert status == 503
    store = json.loads(body)["checks"][-1]
    assert (store["name"], store["ok"], store["detail"]) == ("store", False, "timed out after 0.3s")

    release.set()
    assert hang._running is not None
    hang._running.join(5)
    assert get(f"{server.url}/readyz")[0] == 200


def test_a_slow_probe_does_not_hold_up_a_scrape(
    metrics: StreamMetrics, release: threading.Event
) -> None:
    hang = Check("store", lambda: (release.wait(10), "x"), timeout=3.0)
    with OpsServer(0, metrics=metrics, ready=[hang]) as srv:
        probe = threading.Thread(target=get, args=(f"{srv.url}/readyz",))
        probe.start()
        time.sleep(0.1)
        t0 = time.monotonic()
        assert get(f"{srv.url}/metrics")[0] == 200
        assert time.monotonic() - t0 < 1.0
        release.set()
        probe.join(10)


def test_text_format_for_people(server: OpsServer, switch: Switch) -> None:
    switch.ok, switch.detail = False, "broker not reachable"
    status, ctype, body = get(f"{server.url}/readyz?format=text")
    assert (status, ctype) == (503, "text/plain; charset=utf-8")
    lines = body.decode().splitlines()
    assert lines[0] == "status: failing"
    assert lines[1].startswith("FAIL  broker") and lines[1].endswith("broker not reachable")


def test_unknown_paths_are_404(server: OpsServer) -> None:
    for path in ("/", "/metricz", "/readyz/extra"):
        status, _, body = get(f"{server.url}{path}")
        assert status == 404
        assert b"/metrics" in body


def test_without_metrics_only_health_is_served() -> None:
    with OpsServer(0) as srv:
        assert get(f"{srv.url}/metrics")[0] == 404
        assert get(f"{srv.url}/healthz")[0] == 200


def test_live_checks_decide_healthz() -> None:
    with OpsServer(0, live=[Check("loop", lambda: (False, "consumer loop stalled"))]) as srv:
        status, _, body = get(f"{srv.url}/healthz")
        assert status == 503
        assert json.loads(body)["checks"][0]["detail"] == "consumer loop stalled"


def test_stop_closes_the_socket() -> None:
    srv = OpsServer(0).start()
    url = f"{srv.url}/healthz"
    assert get(url)[0] == 200
    srv.stop()
    srv.stop()  # idempotent
    with pytest.raises(urllib.error.URLError):
        get(url, timeout=2.0)


def test_a_taken_port_is_a_config_error() -> None:
    with OpsServer(0) as first, pytest.raises(ConfigError, match=f"127.0.0.1:{first.port}"):
        OpsServer(first.port).start()


def test_a_failing_collector_is_a_500_and_the_server_lives_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(StreamMetrics):
        def render(self) -> bytes:
            raise RuntimeError("collector broke")

    with OpsServer(0, metrics=Broken()) as srv:
        status, _, body = get(f"{srv.url}/metrics")
        assert (status, body) == (500, b"RuntimeError\n")
        assert "ops request /metrics failed" in caplog.text
        assert get(f"{srv.url}/healthz")[0] == 200
