"""Delivery through the outbox against real local HTTP servers: outages, hangs, crashes.

The webhook server here can be stopped and started again on the same port (refused
connections), answer 500s, or hang past the client's timeout. It records every request with
its ``Idempotency-Key`` header, which is how "delivered exactly once" is checked: every key
arrives, and a key that arrives twice is a retry the receiver dedupes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pandas as pd
import pytest

from detector.alerting.breaker import Backoff, CircuitBreaker, RetryPolicy
from detector.alerting.model import Alert, Notification
from detector.alerting.receivers.webhook import WebhookReceiver
from detector.alerting.sender import Sender
from detector.alerting.state import AlertState
from detector.store import open_store

T0 = pd.Timestamp("2026-03-02T10:00Z")


class Hook:
    """A webhook endpoint on a fixed loopback port that can fail, hang, go down and come back."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.mode = "ok"  # ok | fail | hang
        self.keys: list[str] = []  # Idempotency-Key of every request answered 2xx
        self.bodies: list[dict] = []  # and its JSON body
        self.attempts = 0
        self.release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def up(self) -> None:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.attempts += 1
                if hook.mode == "hang":
                    hook.release.wait(10)
                    return
                status = 500 if hook.mode == "fail" else 200
                if status == 200:
                    hook.keys.append(self.headers["Idempotency-Key"])
                    hook.bodies.append(json.loads(body) if body else {})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = False
            block_on_close = True

            def handle_error(self, *args: Any) -> None:
                pass

        self._server = Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}
        )
        self._thread.start()

    def down(self) -> None:
        """Stop listening: connections are refused until :meth:`up`."""
        assert self._server is not None and self._thread is not None
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = None
        self.release = threading.Event()


@pytest.fixture()
def hooks() -> Iterator[list[Hook]]:
    made: list[Hook] = []
    yield made
    for h in made:
        if h._server is not None:
            h.down()


def notes(n: int, receiver: str) -> list[Notification]:
    return [
        Notification.build(receiver, f"g{i}", {}, [Alert({"alertname": "orders", "n": str(i)}, T0)])
        for i in range(n)
    ]


def wait_for(cond: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


FAST = RetryPolicy(Backoff(initial=0.05, max=0.2), budget=120.0)


def test_outage_then_recovery_delivers_everything_once_and_spares_the_other_receiver(
    store_url, hooks
):
    flaky, healthy = Hook(), Hook()
    hooks += [flaky, healthy]
    store = open_store(store_url)
    state = AlertState(store, "shop")
    breaker = CircuitBreaker(failures=3, cooldown=0.5)
    receivers = {
        "flaky": WebhookReceiver("flaky", url=flaky.url, timeout=1.0),
        "healthy": WebhookReceiver("healthy", url=healthy.url, timeout=1.0),
    }
    sender = Sender(
        state,
        receivers,
        policies={"flaky": FAST, "healthy": FAST},
        breakers={"flaky": breaker},
        poll=0.05,
    )
    try:
        flaky.mode = "fail"
        state.enqueue(notes(20, "flaky") + notes(20, "healthy"), now_us=0)
        sender.start()
        wait_for(lambda: len(healthy.keys) == 20)  # not held up by the failing one
        wait_for(lambda: breaker.state in ("open", "half_open"))
        flaky.down()  # then refused connections
        attempts = flaky.attempts
        time.sleep(1.5)
        assert flaky.attempts == attempts  # nothing reaches a dead server
        assert sender.workers["flaky"].counts["delivered"] == 0
        flaky.mode = "ok"
        flaky.up()
        wait_for(lambda: state.outbox_counts() == {"delivered": 40})
        assert breaker.state == "closed"
        # Every notification arrived; none twice (a success is never retried).
        assert Counter(flaky.keys) == Counter(n.key for n in notes(20, "flaky"))
        assert Counter(healthy.keys) == Counter(n.key for n in notes(20, "healthy"))
        # While open, the breaker let through at most one probe per cool-down.
        assert sender.workers["flaky"].counts["retried"] < 20
    finally:
        sender.stop(timeout=10)
        for r in receivers.values():
            r.close()
        store.close()


def test_a_hanging_receiver_times_out_and_retries_without_blocking_others(store_url, hooks):
    stuck, fine = Hook(), Hook()
    hooks += [stuck, fine]
    stuck.mode = "hang"
    store = open_store(store_url)
    state = AlertState(store, "shop")
    receivers = {
        "stuck": WebhookReceiver("stuck", url=stuck.url, timeout=0.3),
        "fine": WebhookReceiver("fine", url=fine.url, timeout=0.3),
    }
    sender = Sender(state, receivers, policies={"stuck": FAST}, poll=0.05)
    try:
        state.enqueue(notes(2, "stuck") + notes(5, "fine"), now_us=0)
        sender.start()
        wait_for(lambda: len(fine.keys) == 5, timeout=5)
        wait_for(lambda: sender.workers["stuck"].counts["retried"] >= 2)
        stuck.mode = "ok"
        stuck.release.set()
        wait_for(lambda: state.outbox_counts() == {"delivered": 7})
        assert set(stuck.keys) == {n.key for n in notes(2, "stuck")}
    finally:
        sender.stop(timeout=10)
        for r in receivers.values():
            r.close()
        store.close()


class Status(BaseHTTPRequestHandler):
    status = 400

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("status", "policy", "why"),
    [
        (400, FAST, "HTTP 400"),
        (503, RetryPolicy(Backoff(initial=0.01, max=0.02), budget=0.3), "retries spent"),
        (503, RetryPolicy(Backoff(initial=0.01, max=0.02), max_attempts=3), "retries spent"),
    ],
    ids=["not retryable", "budget spent", "attempts spent"],
)
def test_giving_up_marks_the_notification_failed_with_the_reason(store_url, status, policy, why):
    handler = type("H", (Status,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    store = open_store(store_url)
    state = AlertState(store, "shop")
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    receiver = WebhookReceiver("hook", url=url, timeout=1.0)
    sender = Sender(
        state,
        {"hook": receiver},
        policies={"hook": policy},
        breakers={"hook": CircuitBreaker(failures=100)},
        poll=0.02,
    )
    try:
        state.enqueue(notes(1, "hook"), now_us=0)
        sender.start()
        wait_for(lambda: state.outbox_counts() == {"failed": 1}, timeout=10)
        (row,) = state.outbox(state="failed")
        assert why in row["last_error"]
        assert (row["attempts"] == 1) == (status == 400)
        if policy.max_attempts:
            assert row["attempts"] == 3
    finally:
        sender.stop(timeout=10)
        receiver.close()
        store.close()
        server.shutdown()
        server.server_close()
        thread.join()


CHILD = textwrap.dedent(
    """
    import sys, time
    from detector.alerting.receivers.webhook import WebhookReceiver
    from detector.alerting.sender import Sender
    from detector.alerting.state import AlertState
    from detector.store import open_store

    state = AlertState(open_store(sys.argv[1]), "shop")
    sender = Sender(state, {"hook": WebhookReceiver("hook", url=sys.argv[2], timeout=30)},
                    lease=1.0, poll=0.05).start()
    print("started", flush=True)
    time.sleep(60)
    """
)


def test_kill_9_during_delivery_loses_nothing(tmp_path, hooks):
    hook = Hook()
    hooks.append(hook)
    hook.mode = "hang"  # the child's delivery is in flight when it dies
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    state = AlertState(store, "shop")
    batch = notes(5, "hook")
    state.enqueue(batch, now_us=0)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, hook.url],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"started"
        wait_for(lambda: hook.attempts >= 1, timeout=20)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    assert state.outbox_counts() == {"pending": 5}  # the hung one was never marked
    hook.mode = "ok"
    hook.release.set()
    receiver = WebhookReceiver("hook", url=hook.url, timeout=5)
    sender = Sender(state, {"hook": receiver}, poll=0.05).start()
    try:
        wait_for(lambda: state.outbox_counts() == {"delivered": 5}, timeout=20)
    finally:
        sender.stop(timeout=10)
        receiver.close()
        store.close()
    assert set(hook.keys) == {n.key for n in batch}
