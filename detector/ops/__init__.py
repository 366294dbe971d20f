"""Self-monitoring of ``detector run``: Prometheus metrics, liveness and readiness probes.

A detector that stops detecting is silent, which looks exactly like "no anomalies". These
modules make that silence visible: :mod:`~detector.ops.metrics` counts what the consumer does,
:mod:`~detector.ops.health` checks its dependencies with timeouts, and
:mod:`~detector.ops.server` serves both over HTTP (``/metrics``, ``/healthz``, ``/readyz``).
The dashboard and alert rules that read them live in ``deploy/``.
"""

from __future__ import annotations

from detector.ops.health import Check, CheckResult, HealthReport, run_checks
from detector.ops.metrics import StreamMetrics, reason_category
from detector.ops.server import OpsServer

__all__ = [
    "Check",
    "CheckResult",
    "HealthReport",
    "OpsServer",
    "StreamMetrics",
    "reason_category",
    "run_checks",
]
