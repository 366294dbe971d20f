"""The router over a backtest: which notifications would have gone out, and when.

``detector backtest --notifications`` replays the scored windows through the same
:class:`~detector.alerting.router.Router` that ``detector run`` uses, on a simulated clock: a
window is taken as scored when the watermark passes its end (window end plus the allowed
lateness), and the router's timers (group_wait, group_interval, repeat_interval, escalation)
run on that clock. Nothing is sent; every notification is written as one JSON line to
``OUTDIR/notifications.jsonl`` with its timings, so alert fatigue can be judged (how many
pages a week, how long after the anomaly) before a pipeline goes live.

Silences and acks are people's actions at run time; a dry run has none.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from detector.alerting.model import Alert, Notification
from detector.alerting.router import Router
from detector.alerting.staleness import STALE_ALERTNAME

__all__ = ["dry_run"]


def _delays(pipeline: Any) -> dict[str, pd.Timedelta]:
    """Per metric: from a window's start to the moment it is scored (end plus lateness)."""
    out = {}
    for m in pipeline.metrics:
        out[m.name] = m.window + m.lateness
    for f in pipeline.freshness:
        out[f.name] = f.window + pipeline.lateness
    return out


def dry_run(
    pipeline: Any,
    scores: pd.DataFrame,
    path: str | Path,
    metrics: pd.DataFrame | None = None,
    *,
    silence: list[tuple[str, int, int, bool]] | None = None,
) -> dict[str, Any]:
    """Write the notifications ``scores`` would have caused to ``path``; a summary back.

    ``metrics`` (the aggregated points) adds the denominators of ratio metrics, so that their
    impact counts payments, not percentage points. ``silence`` (the aggregator's
    ``drain_silence()``) adds the "pipeline stale" alerts of apps that went silent; each is
    decided when its window closes (its end plus the lateness).
    """
    router = Router.for_pipeline(pipeline)
    if metrics is not None and "denominator" in metrics and "denominator" not in scores:
        den = metrics[["timestamp", "series", "denominator"]]
        scores = scores.merge(den, on=["timestamp", "series"], how="left")
    delays = _delays(pipeline)
    default = pipeline.defaults.window + pipeline.defaults.lateness

    def scored_at(t: pd.Timestamp, alert: Alert) -> pd.Timestamp:
        return t + delays.get(alert.labels.get("metric", ""), default)

    found = [(scored_at(t, a), a) for t, a in router.tracker.transitions(scores)]
    if silence:
        found += [
            (t + pd.Timedelta(seconds=_width(silence, a)) + pipeline.lateness, a)
            for t, a in router.sources.transitions(silence)
        ]
    events = sorted(((t, i, a) for i, (t, a) in enumerate(found)), key=lambda e: (e[0], e[1]))
    end = max((e[0] for e in events), default=None)
    if len(scores):
        last = pd.Timestamp(pd.to_datetime(scores["timestamp"], utc=True).max())
        end = max(end or last, last + default)
    first_seen: dict[tuple[str, pd.Timestamp], pd.Timestamp] = {}
    counts: Counter[str] = Counter()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as f:

        def emit(notes: list[Notification], now: pd.Timestamp) -> None:
            for n in notes:
                counts[f"{n.receiver} {n.status}"] += 1
                f.write(orjson.dumps(_line(n, now, first_seen)) + b"\n")

        i = 0
        while i < len(events):
            now = events[i][0]
            while (wake := router.next_wakeup()) is not None and wake < now:
                emit(router.flush(wake), wake)
            batch = []
            while i < len(events) and events[i][0] == now:
                alert = events[i][2]
                key = (alert.fingerprint, alert.ends_at or alert.starts_at)
                first_seen.setdefault(key, now)
                batch.append(alert)
                i += 1
            router.add(batch, now)
            emit(router.flush(now), now)
        while end is not None and (wake := router.next_wakeup()) is not None and wake <= end:
            emit(router.flush(wake), wake)
    return {
        "notifications": sum(counts.values()),
        "by receiver": dict(sorted(counts.items())),
        "alerts fired": router.counts["alerts_opened"],
        "pipeline stale": sum(
            1 for _, a in found if a.status == "firing" and a.labels["alertname"] == STALE_ALERTNAME
        ),
        "path": str(out),
    }


def _width(silence: list[tuple[str, int, int, bool]], alert: Alert) -> int:
    """The narrowest window of the app's silence records (the one its alert was judged on)."""
    src = alert.labels.get("source")
    return min((b - a for s, a, b, _ in silence if s == src), default=0)


def _line(
    n: Notification, now: pd.Timestamp, first_seen: dict[tuple[str, pd.Timestamp], pd.Timestamp]
) -> dict[str, Any]:
    alerts = []
    for a in n.alerts:
        seen = first_seen.get((a.fingerprint, a.ends_at or a.starts_at))
        alerts.append(
            {
                "alertname": a.labels.get("alertname", ""),
                "series": a.labels.get("series", a.labels.get("source", "")),
                "kind": a.labels.get("kind", ""),
                "severity": a.labels.get("severity", ""),
                "status": a.status,
                "starts_at": a.starts_at.isoformat(),
                "ends_at": None if a.ends_at is None else a.ends_at.isoformat(),
                "scored_at": None if seen is None else seen.isoformat(),
                "wait_s": None if seen is None else (now - seen).total_seconds(),
                "reason": a.annotations.get("reason", ""),
                "impact": a.annotations.get("impact", ""),
            }
        )
    return {
        "sent_at": now.isoformat(),
        "receiver": n.receiver,
        "status": n.status,
        "level": n.level,
        "group_key": n.group_key,
        "group_labels": dict(n.group_labels),
        "key": n.key,
        "alerts": alerts,
    }
