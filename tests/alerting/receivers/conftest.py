"""Real local servers for receiver tests: an HTTP server and an SMTP server on loopback.

No mocks: receivers speak to sockets, so what is asserted is what a service would receive,
and timeouts, refused connections and odd answers are the real thing.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from detector.alerting.model import Alert, Notification

SECRET = "s3cr3t-T0K3N-do-not-leak"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpServer:
    """Records requests; answers ``status`` (with ``headers``/``body``), or hangs, or echoes."""

    server: ThreadingHTTPServer
    requests: list[Request] = field(default_factory=list)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    hang: bool = False
    echo: bool = False  # answer with the request's body (a service quoting what it got)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.status, self.body = status, body
        self.headers = {k.replace("_", "-"): v for k, v in headers.items()}


def _handler(state: HttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append(Request("POST", self.path, dict(self.headers), body))
            if state.hang:
                state.release.wait(30)  # until the test ends; the client has given up
                return
            payload = body if state.echo else state.body
            self.send_response(state.status)
            for k, v in state.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins handler threads: no socket outlives a test
    block_on_close = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left: expected here


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    server = _Server(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = HttpServer(server)
    server.RequestHandlerClass = _handler(state)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def down_url() -> str:
    """A loopback URL where nothing listens: connections are refused."""
    return f"http://127.0.0.1:{free_port()}"


@dataclass
class SmtpServer:
    """Records messages; answers DATA with ``data_reply``; accepts ``user``/``password``."""

    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    data_reply: str = "250 Message accepted"
    user: str = "detector"
    password: str = SECRET

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply.startswith("250"):
            msg = message_from_bytes(envelope.original_content, policy=policy.default)
            self.messages.append(msg)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return self.data_reply

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any):
        if isinstance(data, LoginPassword):
            login, password = data.login.decode(), data.password.decode()
            self.logins.append((login, password))
            ok = (login, password) == (self.user, self.password)
            return AuthResult(success=ok, handled=False)  # handled=False: server answers 535
        return AuthResult(success=False, handled=False)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    state = SmtpServer("127.0.0.1", free_port())
    controller = Controller(
        state,
        hostname=state.host,
        port=state.port,
        authenticator=state.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    yield state
    controller.stop()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel does) but never says a word."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


def alert(market: str = "DE", resolved: bool = False, **annotations: str) -> Alert:
    a = Alert(
        {"alertname": "orders", "pipeline": "shop", "severity": "critical", "market": market},
        "2026-01-05T10:00:00Z",
        {"reason": "orders dropped 60%", "value": "120", "expected": "300", **annotations},
    )
    return a.resolved("2026-01-05T11:00:00Z") if resolved else a


def notification(*alerts: Alert, receiver: str = "r") -> Notification:
    alerts = alerts or (alert(),)
    return Notification.build(
        receiver,
        '{}:{alertname="orders"}',
        {"alertname": "orders"},
        alerts,
        created_at="2026-01-05T10:05:00Z",
    )
