"""Latency from an anomaly being scored to its notification reaching a local webhook.

The path is ``detector run``'s: the scored point goes through the router (alert tracker,
inhibition, routing, grouping with ``group_wait: 0s``, so the figure is what comes *after*
group_wait), the notification is written to the store's outbox in the consumer's commit
transaction, the sender is woken, claims it and POSTs it to a healthy webhook on loopback. The
clock stops when the webhook has read the request. Anomalies arrive at a steady rate, one new
series each, so every one makes its own notification.

    python benchmarks/alert_latency.py [--n 500] [--rate 50] [--store URL]

Prints p50/p95/p99/max in milliseconds. Target (issue 5): p99 < 500 ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pandas as pd

from detector.alerting.config import AlertingConfig
from detector.alerting.receivers.webhook import WebhookReceiver
from detector.alerting.router import Router
from detector.alerting.sender import Sender
from detector.alerting.state import AlertState
from detector.store import open_store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--rate", type=float, default=50.0, help="anomalies per second")
    ap.add_argument("--store", default=None, help="store URL (default: a temporary SQLite file)")
    args = ap.parse_args()

    received: dict[str, float] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received[self.headers["Idempotency-Key"]] = time.perf_counter()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"

    tmp = tempfile.TemporaryDirectory()
    store = open_store(args.store or f"sqlite:///{tmp.name}/store.db")
    cfg = AlertingConfig.model_validate(
        {
            "receivers": [{"name": "hook", "webhook": {"url": url}}],
            "route": {"receiver": "hook", "group_by": ["..."], "group_wait": "0s"},
        }
    )
    router = Router("bench", cfg)
    state = AlertState(store, "bench")
    receiver = WebhookReceiver("hook", url=url, timeout=5)
    sender = Sender(state, {"hook": receiver}, poll=1.0).start()
    started: dict[str, float] = {}
    t = pd.Timestamp("2026-01-01T00:00Z")
    gap = 1.0 / args.rate
    next_at = time.perf_counter()
    for i in range(args.n):
        next_at += gap
        time.sleep(max(0.0, next_at - time.perf_counter()))
        scored = pd.DataFrame(
            {
                "timestamp": [t], "series": [f"orders{{market=M{i}}}"], "metric": ["orders"],
                "value": [0.0], "expected": [50.0], "lower": [30.0], "upper": [70.0],
                "score": [0.8], "is_anomaly": [True], "kind": ["dip"],
                "reason": ["orders dropped to 0"],
            }
        )  # fmt: skip
        t0 = time.perf_counter()
        now = pd.Timestamp.now(tz="UTC")
        changed = router.observe(scored, now)
        notes = router.flush(now)

        def write(cur: Any, changed: Any = changed, notes: Any = notes) -> None:
            state.write_alerts(cur, changed, 0)
            state.enqueue(notes, 0, cur)

        store.commit("bench", "g", offsets={("t", 0): i + 1}, state=b"s", also=write)
        sender.wake()
        for n in notes:
            started[n.key] = t0
    deadline = time.monotonic() + 60
    while len(received) < len(started) and time.monotonic() < deadline:
        time.sleep(0.05)
    sender.stop(timeout=10)
    receiver.close()
    server.shutdown()
    server.server_close()
    store.close()
    lat = sorted((received[k] - t0) * 1000 for k, t0 in started.items() if k in received)
    if len(lat) < len(started):
        print(f"LOST: {len(started) - len(lat)} of {len(started)} notifications not received")
    q = statistics.quantiles(lat, n=100)
    print(
        f"scored -> webhook, {len(lat)} notifications at {args.rate:g}/s "
        f"({'SQLite' if not args.store else store.url}): p50 {q[49]:.1f} ms, "
        f"p95 {q[94]:.1f} ms, p99 {q[98]:.1f} ms, max {lat[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
