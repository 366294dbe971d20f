"""Stream tests that page a real webhook: the pipeline's alerting section, the runner they
start, and the alerts the webhook received."""

from __future__ import annotations

from typing import Any

from detector.pipeline.config import parse_pipeline
from detector.stream.runner import StreamRunner


def with_webhook(pipeline: str, url: str) -> str:
    """``pipeline`` with one webhook receiver, every alert its own group, sent at once."""
    return (
        pipeline
        + f"""
alerting:
  receivers: [{{name: hook, webhook: {{url: "{url}"}}}}]
  route: {{receiver: hook, group_by: ['...'], group_wait: 0s, group_interval: 1s}}
"""
    )


def stream_runner(text: str, store: Any, broker: Any, topic: str, group: str, **kw: Any) -> Any:
    """A runner on the test broker with a quick group join and frequent scoring."""
    options: dict[str, Any] = {"idle_close": 3600, "score_every": 0.5, **kw}
    return StreamRunner(
        parse_pipeline(text), store, topic=topic, group=group,
        bootstrap_servers=broker.bootstrap, session_timeout_ms=6000, **options,
    )  # fmt: skip


def received(hook: Any, status: str, **labels: str) -> list[dict]:
    """The alerts the webhook received with ``status`` and these labels."""
    return [
        a
        for body in hook.bodies
        for a in body["alerts"]
        if a["status"] == status and all(a["labels"].get(k) == v for k, v in labels.items())
    ]
