"""From scored points to alerts: which series fire, which resolve, how bad it is.

:class:`AlertTracker` reads scored output (the columns of ``detector score``, plus ``metric``
and, for ratios, ``denominator``) in time order and keeps one open alert per series. An
anomalous point opens an alert (or updates the open one's annotations: the latest value, the
running impact); the first normal, scored point after it resolves it at that point's time. A
change of *kind* while it lasts (a dip that turns out a level shift, then a variance change)
is the same incident: the alert keeps the kind it opened with as its label (routes may depend
on it, and a label change would make it a new alert) and says the latest in the ``kind_now``
annotation. One incident, one alert, one page.

Labels: ``alertname`` (the metric), ``pipeline``, ``metric``, ``series``, ``kind``,
``severity`` and the series' dimensions (``market=DE``). Severity is ``critical`` when the
score or the business impact crosses the configured bounds, else ``warning``; it is decided when
the alert opens, so that it stays one alert (the fingerprint hashes the labels).

Impact is what the incident cost so far, in the metric's own unit: the sum over the episode of
value minus expected (for a ratio, times the denominator: the payments that failed beyond the
usual). A revenue drop says how much revenue is missing, not only that it is low.

>>> import pandas as pd
>>> t = pd.date_range("2026-01-01", periods=3, freq="5min", tz="UTC")
>>> scored = pd.DataFrame({"timestamp": t, "series": "revenue{market=DE}", "metric": "revenue",
...     "value": [10.0, 0.0, 100.0], "expected": 100.0, "lower": 50.0, "upper": 150.0,
...     "score": [0.1, 0.97, 0.1], "is_anomaly": [False, True, False],
...     "kind": ["", "dip", ""], "reason": ["", "revenue dropped to 0", ""]})
>>> tracker = AlertTracker("shop", units={"revenue": "EUR"})
>>> [(a.status, a.labels["severity"], a.annotations["impact"]) for a in tracker.update(scored)]
[('firing', 'critical', '-100 EUR'), ('resolved', 'critical', '-100 EUR')]
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from detector.alerting.model import Alert

log = logging.getLogger(__name__)

__all__ = ["AlertTracker", "SeverityRules", "series_labels"]

_LABELS = re.compile(r"^([^{]*)(?:\{(.*)\})?$")


def series_labels(series: str) -> dict[str, str]:
    """The dimensions of ``orders{market=DE,category=tv}`` as labels.

    >>> series_labels("orders{market=DE,category=tv}")
    {'market': 'DE', 'category': 'tv'}
    """
    m = _LABELS.match(series)
    if not m or not m.group(2):
        return {}
    return dict(p.split("=", 1) for p in m.group(2).split(",") if "=" in p)


@dataclass(frozen=True)
class SeverityRules:
    """When an alert is ``critical`` rather than ``warning``.

    ``score``: the detector's score (0..1; 0.5 is the threshold, 0.9 about three times it).
    ``impact``: absolute impact per window in the metric's unit, per metric name.
    ``kinds``: kinds that are always critical (a stale currency feed prices everything wrong).
    """

    score: float = 0.9
    impact: Mapping[str, float] = field(default_factory=dict)
    kinds: tuple[str, ...] = ("stale",)

    def of(self, metric: str, kind: str, score: float, impact: float) -> str:
        if kind in self.kinds or (math.isfinite(score) and score >= self.score):
            return "critical"
        bound = self.impact.get(metric)
        if bound is not None and math.isfinite(impact) and abs(impact) >= bound:
            return "critical"
        return "warning"


def _num(x: Any) -> float:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return math.nan
    return f


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:,.0f}" if abs(x) >= 100 or x == int(x) else f"{x:,.4g}"


@dataclass
class _Open:
    alert: Alert
    impact: float
    last: pd.Timestamp
    # The episode's anomalous points (time in ns -> their impact), so that a window scored
    # again (late data) can be taken back out of the alert, and the alert resolved when none
    # is left.
    points: dict[int, float] = field(default_factory=dict)


class AlertTracker:
    """Turns scored points into alert transitions, one open alert per series."""

    def __init__(
        self,
        pipeline: str,
        *,
        severity: SeverityRules | None = None,
        units: Mapping[str, str] | None = None,
        link: str | None = None,
        ratios: frozenset[str] | set[str] = frozenset(),
    ) -> None:
        self.pipeline = pipeline
        self.ratios = frozenset(ratios)  # ratio metrics: impact counts denominator units
        self.severity = severity or SeverityRules()
        self.units = dict(units or {})  # metric -> unit of its impact ("EUR", "orders")
        self.link = link  # a URL template with {series}, {metric}, {start}
        self.open: dict[str, _Open] = {}
        self.seen: dict[str, pd.Timestamp] = {}  # series -> last point processed

    # -- state, for the consumer's snapshot -------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "open": {
                s: (o.alert.to_dict(), o.impact, o.last.value, list(o.points.items()))
                for s, o in self.open.items()
            },
            "seen": {s: t.value for s, t in self.seen.items()},
        }

    def restore(self, snap: Mapping[str, Any]) -> None:
        self.open = {
            s: _Open(
                Alert.from_dict(a), o[0], pd.Timestamp(o[1], tz="UTC"), dict(o[2] if o[2:] else ())
            )
            for s, (a, *o) in snap.get("open", {}).items()
        }
        self.seen = {s: pd.Timestamp(t, tz="UTC") for s, t in snap.get("seen", {}).items()}

    # -- transitions ------------------------------------------------------------------------

    def update(self, scored: pd.DataFrame) -> list[Alert]:
        """Alert transitions (opened, changed, resolved) with these points, in time order."""
        return [a for _, a in self.transitions(scored)]

    def transitions(self, scored: pd.DataFrame) -> list[tuple[pd.Timestamp, Alert]]:
        """:meth:`update` with the time of the point that caused each transition.

        A point at or before the last one processed for its series is a window scored again
        (late data within the lateness, a repair): it does not replay transitions, it corrects
        them (:meth:`_rescored`).
        """
        if scored.empty:
            return []
        frame = scored.sort_values(["timestamp", "series"], kind="stable")
        ts = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], utc=True))
        series = frame["series"].astype(str).to_numpy()
        metric = (
            frame["metric"].astype(str).to_numpy()
            if "metric" in frame
            else np.array([s.partition("{")[0] for s in series], dtype=object)
        )
        anomalous = frame["is_anomaly"].fillna(False).astype(bool).to_numpy()
        scored_ok = frame["score"].notna().to_numpy()
        den = frame["denominator"].to_numpy(float) if "denominator" in frame else None
        cols = {c: frame[c].to_numpy() for c in ("value", "expected", "lower", "upper", "score")}
        kinds, reasons = frame["kind"].fillna("").to_numpy(), frame["reason"].fillna("").to_numpy()
        # The window's exemplar event (a stream's aggregator keeps the last of each window).
        exemplar = {
            c: frame[c].astype(object).where(frame[c].notna(), "").to_numpy()
            for c in ("event_id", "trace_id")
            if c in frame
        }
        changed: list[tuple[pd.Timestamp, Alert]] = []
        for i in range(len(frame)):
            s, t = series[i], ts[i]
            last = self.seen.get(s)
            cur = self.open.get(s)
            delta = 0.0
            if anomalous[i]:
                value, expected = _num(cols["value"][i]), _num(cols["expected"][i])
                delta = value - expected
                if den is not None and metric[i] in self.ratios and math.isfinite(_num(den[i])):
                    delta *= _num(den[i])
                delta = delta if math.isfinite(delta) else 0.0
            if last is not None and t <= last:
                if anomalous[i] or scored_ok[i]:
                    changed += self._rescored(s, t, last, bool(anomalous[i]), delta, i, metric,
                                              cols, kinds, reasons)  # fmt: skip
                continue
            self.seen[s] = t
            if anomalous[i]:
                kind = str(kinds[i])
                impact = delta + (cur.impact if cur else 0.0)
                annotations = self._annotations(s, str(metric[i]), cols, i, str(reasons[i]), impact)
                annotations["kind_now"] = kind
                for c, values in exemplar.items():
                    if values[i]:
                        annotations[c] = str(values[i])
                if cur is None:
                    labels = {
                        **series_labels(s),
                        "alertname": str(metric[i]),
                        "pipeline": self.pipeline,
                        "metric": str(metric[i]),
                        "series": s,
                        "kind": kind,
                        "severity": self.severity.of(
                            str(metric[i]), kind, _num(cols["score"][i]), delta
                        ),
                    }
                    annotations["started"] = t.isoformat()
                    alert = Alert(labels, t, annotations)
                else:
                    annotations["started"] = cur.alert.annotations.get("started", "")
                    for c in ("event_id", "trace_id"):  # the opening window's event stays
                        if c in cur.alert.annotations:
                            annotations[c] = cur.alert.annotations[c]
                    alert = Alert(cur.alert.labels, cur.alert.starts_at, annotations)
                points = cur.points if cur else {}
                points[t.value] = delta
                self.open[s] = _Open(alert, impact, t, points)
                changed.append((t, alert))
            elif cur is not None and scored_ok[i]:
                alert = cur.alert.resolved(t)
                changed.append((t, alert))
                del self.open[s]
        return changed

    def _rescored(
        self,
        s: str,
        t: pd.Timestamp,
        last: pd.Timestamp,
        anomalous: bool,
        delta: float,
        i: int,
        metric: np.ndarray,
        cols: Mapping[str, np.ndarray],
        kinds: np.ndarray,
        reasons: np.ndarray,
    ) -> list[tuple[pd.Timestamp, Alert]]:
        """Correct the alerts for a window of ``s`` at ``t`` scored again after ``last``.

        - An anomalous point of the open alert that is normal now leaves it; when none is left
          the alert is resolved, annotated ``retracted``: a page about a drop that late events
          filled in gets its resolved notice.
        - A point anomalous now, inside the open alert's span, joins it (impact updated).
        - A point anomalous now with no open alert around it is an episode nobody saw: it is
          opened and resolved at once (at the latest point seen, which was normal), so it is
          notified once, as resolved, annotated ``found_late``.
        """
        cur = self.open.get(s)
        key = t.value
        if cur is not None and key in cur.points:
            cur.impact -= cur.points.pop(key)
            if anomalous:
                cur.points[key] = delta
                cur.impact += delta
                return []
            if cur.points:
                return []
            annotations = {
                **cur.alert.annotations,
                "retracted": f"window {t.isoformat()} scored again (late events or a repair): "
                "normal",
                "impact": f"+0 {self.units.get(str(metric[i]), str(metric[i]))}",
            }
            del self.open[s]
            alert = Alert(cur.alert.labels, cur.alert.starts_at, annotations).resolved(last)
            return [(t, alert)]
        if not anomalous:
            return []
        if cur is not None:
            if t >= cur.alert.starts_at:
                cur.points[key] = delta
                cur.impact += delta
            else:  # before the open alert: it would share its fingerprint; noted, not paged
                log.info("late data: %s at %s anomalous after the fact (an alert is open)", s, t)
            return []
        m, kind = str(metric[i]), str(kinds[i])
        annotations = self._annotations(s, m, cols, i, str(reasons[i]), delta)
        annotations.update(kind_now=kind, started=t.isoformat(), found_late=last.isoformat())
        labels = {
            **series_labels(s),
            "alertname": m,
            "pipeline": self.pipeline,
            "metric": m,
            "series": s,
            "kind": kind,
            "severity": self.severity.of(m, kind, _num(cols["score"][i]), delta),
        }
        alert = Alert(labels, t, annotations)
        return [(t, alert), (t, alert.resolved(last))]

    def _annotations(
        self,
        series: str,
        metric: str,
        cols: Mapping[str, np.ndarray],
        i: int,
        reason: str,
        impact: float,
    ) -> dict[str, str]:
        unit = self.units.get(metric, metric)
        out = {
            "reason": reason,
            "value": _fmt(_num(cols["value"][i])),
            "expected": _fmt(_num(cols["expected"][i])),
            "lower": _fmt(_num(cols["lower"][i])),
            "upper": _fmt(_num(cols["upper"][i])),
            "score": f"{_num(cols['score'][i]):.3f}",
            "impact": f"{'+' if impact > 0 else ''}{_fmt(impact)} {unit}",
            "summary": f"{series}: {reason}" if reason else series,
        }
        if self.link:
            out["link"] = self.link.format(series=series, metric=metric)
        return out
