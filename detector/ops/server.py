"""A small HTTP server for ``/metrics``, ``/healthz`` and ``/readyz``, beside the consumer.

The standard library's :class:`~http.server.ThreadingHTTPServer` in a daemon thread: a scrape
or a probe never waits for the consumer's loop, and the loop never waits for them. Each
request gets its own thread, so a readiness probe held up by a slow check (bounded by the
checks' timeouts) does not delay a scrape.

- ``GET /metrics``: the Prometheus text exposition of :class:`~detector.ops.metrics.StreamMetrics`.
- ``GET /healthz``: liveness, the ``live`` checks; 200 if they pass, else 503. With no checks it
  is 200 whenever the process answers, which is the point of a liveness probe: restart only a
  process that is stuck, not one whose database is down.
- ``GET /readyz``: readiness, the ``ready`` checks (broker, assignment, store, lag...), 200/503.

Health bodies are JSON (see :meth:`~detector.ops.health.HealthReport.to_json`), or text for
people with ``?format=text``. The server listens on 127.0.0.1 unless told otherwise: metrics
name topics, receivers and series, which need not be public.

>>> import urllib.request
>>> from detector.ops.metrics import StreamMetrics
>>> with OpsServer(0, metrics=StreamMetrics()) as server:
...     with urllib.request.urlopen(f"{server.url}/healthz") as resp:
...         print(resp.status, resp.read().decode())
200 {"status": "ok", "checks": []}
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST

from detector.errors import ConfigError
from detector.ops.health import Check, run_checks
from detector.ops.metrics import StreamMetrics

__all__ = ["OpsServer"]

log = logging.getLogger(__name__)


class OpsServer:
    """Serves ``metrics`` and the ``live`` and ``ready`` checks on ``host:port``.

    ``port=0`` picks a free port; :attr:`port` tells which once started. ``live`` and
    ``ready`` are kept as given (not copied), so checks appended later are served too.
    ``timeout_per_check`` bounds each check that sets no timeout of its own.
    """

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        metrics: StreamMetrics | None = None,
        live: Sequence[Check] = (),
        ready: Sequence[Check] = (),
        timeout_per_check: float = 2.0,
    ) -> None:
        self.host = host
        self.metrics = metrics
        self.live = live
        self.ready = ready
        self.timeout_per_check = timeout_per_check
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started (the one asked for before)."""
        return self._httpd.server_address[1] if self._httpd is not None else self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> OpsServer:
        """Listen and serve in a daemon thread; ConfigError if the address is taken."""
        if self._httpd is not None:
            return self
        try:
            httpd = _Server((self.host, self._port), _handler(self))
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics and health on {self.host}:{self._port} "
                f"({exc.strerror or exc}); choose another port, or 0 for any free one"
            ) from exc
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="ops-http", daemon=True
        )
        self._thread.start()
        log.info("serving /metrics, /healthz and /readyz on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> OpsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a request stuck in a hung check must not block stop()


def _handler(ops: OpsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "detector-ops"

        def do_GET(self) -> None:
            try:
                status, content_type, body = _respond(ops, self.path)
            except Exception as exc:  # a broken collector or check: 500, the server lives on
                log.exception("ops request %s failed", self.path)
                status, content_type = 500, _TEXT
                body = f"{type(exc).__name__}\n".encode()
            try:
                self._send(status, content_type, body)
            except (BrokenPipeError, ConnectionResetError):  # the prober gave up: its choice
                log.debug("ops client went away before the response to %s", self.path)

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


_TEXT = "text/plain; charset=utf-8"


def _respond(ops: OpsServer, path: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET of ``path``."""
    url = urlsplit(path)
    if url.path == "/metrics" and ops.metrics is not None:
        return 200, CONTENT_TYPE_LATEST, ops.metrics.render()
    if url.path in ("/healthz", "/readyz"):
        checks = ops.live if url.path == "/healthz" else ops.ready
        report = run_checks(list(checks), ops.timeout_per_check)
        status = 200 if report.ok else 503
        if parse_qs(url.query).get("format") == ["text"]:
            return status, _TEXT, (report.to_text() + "\n").encode()
        return status, "application/json", report.to_json().encode()
    paths = "/metrics, /healthz, /readyz" if ops.metrics is not None else "/healthz, /readyz"
    return 404, _TEXT, f"not found; try {paths}\n".encode()
