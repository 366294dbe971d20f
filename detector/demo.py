"""``detector demo``: a generated shop with the mission's incidents, end to end, offline.

Writes a few weeks of domain events (orders in four markets and time zones, payments,
currency rates, ticket sales, heartbeats) with five stories injected: a bank charging 1% of the
price makes ticket sales explode, TVs stop selling in one market, a currency rate stops
updating, a payment provider's success rate sinks, and an ingestion gap that must *not* be
reported as a sales drop. Then it runs the same backtest as ``detector backtest`` with the
shipped ``pipelines/shop.yaml``, evaluates the anomalies against the injected labels, and says
what was found, what was missed, what was a false alert, and how the gap was reported.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from detector.backtest import BacktestResult, run_backtest
from detector.datasets.events import ShopEvents, make_shop_events, write_events
from detector.evaluation.incidents import EvaluationReport, evaluate, save_labels
from detector.pipeline.config import Pipeline, load_pipeline

__all__ = ["DemoResult", "demo_pipeline_path", "run_demo"]


def demo_pipeline_path() -> Path:
    """The shop pipeline shipped with the package (the same file as ``pipelines/shop.yaml``)."""
    return Path(str(importlib.resources.files("detector") / "data" / "shop.yaml"))


@dataclass
class GapReport:
    """How an ingestion gap came out: windows marked missing, and alerts inside it."""

    start: pd.Timestamp
    end: pd.Timestamp
    series: int
    windows: int
    missing: int
    alerts: int

    @property
    def ok(self) -> bool:
        return self.windows > 0 and self.missing == self.windows and self.alerts == 0


@dataclass
class DemoResult:
    shop: ShopEvents
    result: BacktestResult
    report: EvaluationReport
    gaps: list[GapReport]
    outdir: Path
    events_path: Path
    labels_path: Path

    @property
    def success(self) -> bool:
        """Every incident found, no false alert, every gap reported as missing data."""
        return (
            self.report.n_detected == self.report.n_incidents
            and self.report.n_false_alerts == 0
            and all(g.ok for g in self.gaps)
        )


def _gap_reports(shop: ShopEvents, scores: pd.DataFrame) -> list[GapReport]:
    out = []
    spans: dict[tuple[pd.Timestamp, pd.Timestamp], list[str]] = {}
    for g in shop.labels.gaps:
        spans.setdefault((g.start, g.end), []).append(g.series)
    for (start, end), series in spans.items():
        rows = scores[
            scores["series"].isin(series)
            & (scores["timestamp"] >= start)
            & (scores["timestamp"] < end)
        ]
        out.append(
            GapReport(
                start,
                end,
                len(series),
                len(rows),
                int((rows["kind"] == "missing").sum()),
                int(rows["is_anomaly"].sum()),
            )
        )
    return out


def run_demo(
    outdir: str | Path,
    *,
    seed: int = 0,
    weeks: int = 3,
    pipeline: Pipeline | None = None,
    progress: Any = None,
) -> DemoResult:
    """Generate, backtest, evaluate (see the module docstring)."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    pipeline = pipeline or load_pipeline(demo_pipeline_path())
    shop = make_shop_events(seed=seed, weeks=weeks)
    events_path = out / "events.jsonl"
    labels_path = out / "labels.json"
    write_events(shop.events, events_path)
    save_labels(shop.labels, labels_path)
    result = run_backtest(
        pipeline, [events_path], out, report=False, progress=progress, notifications=True
    )
    report = evaluate(result.scores, shop.labels, start=shop.warmup_end)
    gaps = _gap_reports(shop, result.scores)
    from detector.backtest import write_html_report

    result.files["report"] = out / "report.html"
    write_html_report(
        result, pipeline, result.files["report"], report,
        {"demo seed": seed, "labels": str(labels_path), "evaluated from": shop.warmup_end},
    )  # fmt: skip
    return DemoResult(shop, result, report, gaps, out, events_path, labels_path)


def format_demo(demo: DemoResult) -> str:
    """The table the demo prints: incidents found or missed, false alerts, gaps."""
    rep = demo.report
    lines = ["", f"Injected incidents (evaluated from {demo.shop.warmup_end:%Y-%m-%d}, a week in):"]
    lines.append(f"  {'':2} {'series':<36} {'kind':<12} {'delay':>7}  what happened")
    for r in rep.incidents:
        mark = "ok" if r.detected else "--"
        delay = "-" if pd.isna(r.delay) else f"{r.delay / pd.Timedelta('1min'):.0f} min"
        lines.append(f"  {mark:2} {r.series:<36} {r.kind:<12} {delay:>7}  {r.description}")
    lines.append(
        f"  found {rep.n_detected} of {rep.n_incidents}; false alerts: {rep.n_false_alerts} "
        f"({rep.false_alerts_per_series_week:.2f} per series-week)"
    )
    for a in rep.alerts:
        if not a.matched:
            lines.append(f"  false alert: {a.series} {a.start:%Y-%m-%d %H:%M} {a.kind}")
    for g in demo.gaps:
        verdict = "reported as missing data, no drop alert" if g.ok else "NOT reported as missing"
        lines.append(
            f"Ingestion gap {g.start:%Y-%m-%d %H:%M}-{g.end:%H:%M} UTC on {g.series} series: "
            f"{g.missing} of {g.windows} windows missing, {g.alerts} alerts: {verdict}"
        )
    c = demo.result.counters
    lines.append(
        f"Events: {c.get('events', 0):,} read, {c.get('rejected', 0):,} rejected with a reason "
        f"({c.get('late', 0)} late), {c.get('duplicate', 0)} duplicates counted once."
    )
    n = demo.result.notifications
    if n is not None:
        per: dict[str, int] = {}
        for key, count in n["by receiver"].items():
            receiver = key.rsplit(" ", 1)[0]
            per[receiver] = per.get(receiver, 0) + count
        lines.append(
            f"Alert router (dry run, nothing sent): {n['alerts fired']} alerts "
            f"({n['pipeline stale']} pipeline_stale), "
            f"{n['notifications']} notifications ("
            + ", ".join(f"{r} {c}" for r, c in per.items())
            + ")."
        )
    lines.append("")
    lines.append(f"Report:    {demo.result.files['report']}")
    if "notifications" in demo.result.files:
        lines.append(f"Notified:  {demo.result.files['notifications']}")
    lines.append(f"Anomalies: {demo.result.files['anomalies']}")
    lines.append(f"Rejected:  {demo.result.files['rejected']}")
    lines.append(
        f"Replay it: detector backtest --pipeline pipelines/shop.yaml {demo.events_path} "
        f"-o {demo.outdir / 'backtest'}"
    )
    lines.append(
        f"Score it:  detector evaluate --labels {demo.labels_path} {demo.result.files['scores']}"
    )
    return "\n".join(lines)
