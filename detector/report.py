"""The HTML report of a backtest: one file a person opens from disk, mails or attaches to a ticket.

Why it is built this way:

- **Self-contained.** Reports get opened offline, from an archive or a mail client that blocks
  remote content, so the file references nothing outside itself: inline CSS, no scripts, no
  fonts (SVG text uses whatever sans-serif the browser has), plots as inline SVG. The only URLs
  in it are the SVG ``xmlns`` namespace names, which browsers never fetch; internal links are
  ``#anchors``.
- **Vector plots from** :class:`matplotlib.figure.Figure`, **never pyplot.** A Figure renders
  to SVG on its own, so the report neither selects a backend nor registers figures in pyplot's
  global list: importing or calling this module in a notebook or a server leaves the user's
  matplotlib setup as it was, and figures are freed as soon as their SVG is written.
  matplotlib is imported only when a plot is drawn, so loading the CLI stays fast. The drawing
  is :mod:`detector.plotting`'s, the same as :func:`detector.plot` in a notebook. Each figure
  gets its own fixed ``svg.hashsalt``: ids stay unique across the SVGs of one page, and the same
  input gives the same file byte for byte.
- **Zoomed plots.** A three-week series at 5-minute buckets squeezes an hour-long incident into
  a few pixels and the expected range into a smear. So a plot shows from 2 days before to 1 day
  after each alert; alerts whose windows overlap share a panel, alerts a week apart get a panel
  each (at most three, the highest-scoring), and series of up to 4 days are shown whole. The
  caption says which stretches are shown. Bands longer than the plot's pixels are drawn as
  their min/max envelope, to keep the SVG small without hiding an excursion.
- **The same alerts as the evaluation.** An alert is a run of flagged rows of one series, with
  one quiet bucket inside a run not splitting it: exactly :func:`detector.evaluation.incidents.
  evaluate`'s definition (it computes them), so the counts here and in an evaluation agree.
- **Escaped in one place.** Every piece of text goes through :func:`html.escape` (series names
  hold ``{``, ``=`` and ``"``; reasons may hold ``<``).
- **Written atomically** (temporary file in the same folder, then :func:`os.replace`), so a
  reader never sees half a report and a failed run leaves the previous one intact.

>>> import os, tempfile
>>> idx = pd.date_range("2026-01-01", periods=288 * 4, freq="5min", tz="UTC")
>>> rng = np.random.default_rng(0)
>>> data = pd.DataFrame({"timestamp": idx, "series": "orders{market=DE}",
...                      "value": rng.poisson(40, len(idx)).astype(float)})
>>> data.loc[1000:1011, "value"] = 0.0
>>> from detector.scoring import score_frame
>>> path = os.path.join(tempfile.mkdtemp(), "report.html")
>>> write_report(path, score_frame(data), summary={"events read": 1234567})
>>> from pathlib import Path
>>> text = Path(path).read_text(encoding="utf-8")
>>> text.count("<svg"), "orders{market=DE}" in text, "1,234,567" in text
(1, True, True)
"""

from __future__ import annotations

import html
import io
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from detector.errors import ConfigError
from detector.evaluation.incidents import Alert, EvaluationReport, Labels, evaluate
from detector.plotting import KIND_COLOURS, prepare_scores, stacked_figure
from detector.scoring.reasons import duration

__all__ = ["write_report"]

#: Plot window around a series' alerts: from this long before the first one ...
ZOOM_BEFORE = pd.Timedelta("2D")
#: ... to this long after the last one.
ZOOM_AFTER = pd.Timedelta("1D")
#: Series no longer than this are plotted whole.
SHORT_SERIES = pd.Timedelta("4D")
#: At most this many stretches of alerts (panels) per plot; the highest-scoring ones are shown.
MAX_PANELS = 3
#: Alerts listed under one plot, and false alerts listed in the evaluation (highest score first).
MAX_LISTED = 100

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:2em auto;
max-width:1100px;padding:0 1em;color:#222;line-height:1.4}
h1{margin-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.kind{display:inline-block;padding:0 .4em;border-radius:.3em;
color:#fff;font-size:.85em;margin-right:.2em}.found{color:#2a7d2a;font-weight:bold}
.missed{color:#c62828;font-weight:bold}.note{color:#555;font-size:.9em}
table.summary th{background:none;white-space:pre-wrap}
figure{margin:1em 0 .3em}figure svg{max-width:100%;height:auto}
figcaption{color:#555;font-size:.9em}section.series{margin-bottom:2.5em}
"""


def write_report(
    path: str | Path,
    scores: pd.DataFrame,
    *,
    title: str = "detector report",
    summary: Mapping[str, object] | None = None,
    evaluation: EvaluationReport | None = None,
    max_plots: int = 50,
) -> None:
    """Write the HTML report of ``scores`` (the output table, every bucket of every series).

    ``summary`` holds run facts shown at the top (pipeline, events read, rejected rows ...);
    ``evaluation``, when labels are known, adds the incidents found and missed and the false
    alerts. At most ``max_plots`` series with anomalies are plotted, most anomalous first.
    """
    if isinstance(max_plots, bool) or not isinstance(max_plots, int) or max_plots < 0:
        raise ConfigError(
            f"The 'max_plots' parameter of write_report must be an int >= 0. "
            f"Got {max_plots!r} instead."
        )
    frame = prepare_scores(scores)
    stats, alerts = _series_stats(frame)
    body = [f"<h1>{_e(title)}</h1>", _summary_html(summary, frame, stats, len(alerts))]
    body.append(_series_table_html(stats, max_plots))
    if evaluation is not None:
        body.append(_evaluation_html(evaluation))
    body.append(_plots_html(frame, stats, alerts, max_plots))
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
    _write_atomically(Path(path), page)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SeriesStats:
    series: str
    rows: slice  # the series' rows in the prepared frame
    points: int
    missing: int
    anomalous: int
    alerts: int
    first_anomaly: pd.Timestamp | None
    kinds: tuple[str, ...]


def _series_stats(frame: pd.DataFrame) -> tuple[list[_SeriesStats], dict[str, list[Alert]]]:
    """One entry per series, anomalous ones first (most anomalous points first), and alerts."""
    alerts: dict[str, list[Alert]] = {}
    if frame.empty:
        return [], alerts
    for alert in evaluate(frame, Labels()).alerts:
        alerts.setdefault(alert.series, []).append(alert)
    names = frame["series"].to_numpy()
    starts = np.flatnonzero(np.r_[True, names[1:] != names[:-1]])
    stops = np.r_[starts[1:], names.size]
    flag = frame["is_anomaly"].to_numpy()
    missing = (frame["kind"].to_numpy() == "missing").astype(np.int64)
    n_flag, n_missing = (
        np.add.reduceat(flag.astype(np.int64), starts),
        np.add.reduceat(missing, starts),
    )
    flagged = frame.loc[flag, ["series", "timestamp", "kind"]]
    first = flagged.groupby("series", sort=False)["timestamp"].min()
    kinds = flagged[flagged["kind"] != ""].groupby("series", sort=False)["kind"].unique()
    stats = [
        _SeriesStats(
            series=str(names[a]),
            rows=slice(int(a), int(b)),
            points=int(b - a),
            missing=int(m),
            anomalous=int(f),
            alerts=len(alerts.get(str(names[a]), ())),
            first_anomaly=first.get(names[a]),
            kinds=tuple(sorted(kinds.get(names[a], ()))),
        )
        for a, b, f, m in zip(starts, stops, n_flag, n_missing, strict=True)
    ]
    stats.sort(key=lambda s: (-s.anomalous, -s.alerts, s.series))
    return stats, alerts


# --------------------------------------------------------------------------------------------
# HTML pieces
# --------------------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt_ts(ts: pd.Timestamp | None) -> str:
    if ts is None or pd.isna(ts):
        return "-"
    ts = pd.Timestamp(ts)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%d %H:%M:%S" if ts.second else "%Y-%m-%d %H:%M")


def _fmt_value(value: object) -> str:
    """Summary values: thousands separators, 4 significant digits, UTC times, '-' for none."""
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)):
        return "-"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        return f"{int(v):,}" if v.is_integer() and abs(v) < 1e15 else f"{v:.4g}"
    if isinstance(value, pd.Timestamp):
        return _fmt_ts(value) + " UTC"
    if isinstance(value, pd.Timedelta):
        return "-" if pd.isna(value) else duration(value)
    return str(value)


def _kind_badges(kinds: Iterable[str]) -> str:
    return "".join(
        f'<span class="kind" style="background:{KIND_COLOURS.get(k, "#000000")}">{_e(k)}</span>'
        for k in kinds
        if k
    )


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[int]) -> str:
    """A table from already-escaped cell HTML; ``numeric`` columns are right-aligned."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    lines = [f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>"]
    for row in rows:
        cells = "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        lines.append(f"<tr>{cells}</tr>")
    lines.append("</tbody>\n</table>")
    return "\n".join(lines)


def _summary_html(
    summary: Mapping[str, object] | None,
    frame: pd.DataFrame,
    stats: list[_SeriesStats],
    n_alerts: int,
) -> str:
    parts = []
    if summary:
        rows = "\n".join(
            f'<tr><th scope="row">{_e(k)}</th><td>{_e(_fmt_value(v))}</td></tr>'
            for k, v in summary.items()
        )
        parts.append(f'<table class="summary">\n<tbody>\n{rows}\n</tbody>\n</table>')
    if frame.empty:
        parts.append('<p class="note">The scored table is empty: nothing to report.</p>')
        return "\n".join(parts)
    anomalous = sum(s.anomalous > 0 for s in stats)
    parts.append(
        f'<p class="note">Scored data: {len(stats):,} series, '
        f"{_e(_fmt_ts(frame['timestamp'].min()))} to {_e(_fmt_ts(frame['timestamp'].max()))} "
        f"UTC; {anomalous:,} series with anomalies, {int(frame['is_anomaly'].sum()):,} anomalous "
        f"points in {n_alerts:,} alerts. All times are UTC.</p>"
    )
    return "\n".join(parts)


def _series_table_html(stats: list[_SeriesStats], max_plots: int) -> str:
    if not stats:
        return ""
    header = (
        "series",
        "points",
        "missing points",
        "anomalous points",
        "alerts",
        "first anomaly",
        "kinds",
    )
    rows = []
    # Plotted series link to their plot (the plots come in this table's order).
    plotted = {s.series: i for i, s in enumerate(s for s in stats if s.anomalous)}
    plotted = {name: i for name, i in plotted.items() if i < max_plots}
    for s in stats:
        name = _e(s.series)
        if s.series in plotted:
            name = f'<a href="#plot-{plotted[s.series]}">{name}</a>'
        rows.append(
            (
                name,
                f"{s.points:,}",
                f"{s.missing:,}",
                f"{s.anomalous:,}",
                f"{s.alerts:,}",
                _e(_fmt_ts(s.first_anomaly)),
                _kind_badges(s.kinds),
            )
        )
    return "<h2>Series</h2>\n" + _table(header, rows, {1, 2, 3, 4})


def _evaluation_html(report: EvaluationReport) -> str:
    facts = {
        "incidents": report.n_incidents,
        "detected": report.n_detected,
        "recall": report.recall,
        "alerts": report.n_alerts,
        "false alerts": report.n_false_alerts,
        "precision": report.precision,
        "F1": report.f1,
        "false alerts per series-week": report.false_alerts_per_series_week,
        "median delay": report.median_delay,
        "p90 delay": report.p90_delay,
        "grace": report.grace,
    }
    parts = ["<h2>Incidents</h2>", _table(("metric", "value"), _facts(facts), {1})]
    rows = [
        (
            _e(r.series),
            _kind_badges([r.kind]),
            _e(_fmt_ts(r.start)),
            _e(_fmt_ts(r.end)),
            '<span class="found">found</span>'
            if r.detected
            else '<span class="missed">missed</span>',
            _e(_fmt_value(r.delay)),
            _e(r.description),
        )
        for r in report.incidents
    ]
    if rows:
        header = ("series", "kind", "start", "end", "found", "delay", "description")
        parts.append(_table(header, rows, {5}))
    else:
        parts.append('<p class="note">No labelled incidents in the scored range.</p>')
    false = sorted(report.false_alerts, key=lambda a: -np.nan_to_num(a.max_score, nan=-1.0))
    parts.append(f"<h3>False alerts: {len(false):,}</h3>")
    if false:
        rows = [
            (
                _e(a.series),
                _e(_fmt_ts(a.start)),
                _e(_fmt_ts(a.end)),
                _kind_badges([a.kind]),
                _e(_fmt_value(a.max_score)),
                "yes" if a.in_gap else "",
            )
            for a in false[:MAX_LISTED]
        ]
        header = ("series", "start", "end", "kind", "max score", "in gap")
        parts.append(_table(header, rows, {4}))
        parts.append(_more(len(false), "false alerts", "highest score first"))
    return "\n".join(parts)


def _facts(facts: Mapping[str, object]) -> list[tuple[str, str]]:
    return [(_e(k), _e(_fmt_value(v))) for k, v in facts.items()]


def _more(total: int, what: str, order: str) -> str:
    if total <= MAX_LISTED:
        return ""
    return (
        f'<p class="note">Showing {MAX_LISTED} of {total:,} {_e(what)} ({_e(order)}); '
        f"{total - MAX_LISTED:,} more not listed.</p>"
    )


def _plots_html(
    frame: pd.DataFrame, stats: list[_SeriesStats], alerts: dict[str, list[Alert]], max_plots: int
) -> str:
    anomalous = [s for s in stats if s.anomalous]
    if not anomalous:
        return '<h2>Plots</h2>\n<p class="note">No anomalies: nothing to plot.</p>'
    shown = anomalous[:max_plots]
    parts = [
        "<h2>Plots</h2>",
        f'<p class="note">{len(shown):,} of {len(anomalous):,} series with anomalies, most '
        "anomalous first: value, expected value and expected range; anomalies marked by kind, "
        "missing data shaded grey.</p>",
    ]
    if len(shown) < len(anomalous):
        parts.append(
            f'<p class="note">{len(anomalous) - len(shown):,} more series with anomalies are '
            f"not plotted (max_plots={max_plots}); the series table lists them all.</p>"
        )
    reasons = _first_reasons(frame)
    for i, s in enumerate(shown):
        parts.append(_series_plot_html(i, frame.iloc[s.rows], s, alerts.get(s.series, []), reasons))
    return "\n".join(parts)


def _first_reasons(frame: pd.DataFrame) -> dict[tuple[str, pd.Timestamp], str]:
    flagged = frame.loc[frame["is_anomaly"], ["series", "timestamp", "reason"]]
    return {(s, t): r for s, t, r in flagged.itertuples(index=False)}


def _series_plot_html(
    i: int,
    part: pd.DataFrame,
    stats: _SeriesStats,
    alerts: list[Alert],
    reasons: Mapping[tuple[str, pd.Timestamp], str],
) -> str:
    windows, where = _zoom(part["timestamp"].iloc[0], part["timestamp"].iloc[-1], alerts)
    stamps = part["timestamp"]
    panels = [part[(stamps >= lo) & (stamps <= hi)] for lo, hi in windows]
    caption = (
        f"{_e(stats.series)}: {_plural(stats.anomalous, 'anomalous point')} in "
        f"{_plural(len(alerts), 'alert')}; {_e(where)}."
    )
    rows = [
        (
            _e(_fmt_ts(a.start)),
            _e(_fmt_ts(a.end)),
            _kind_badges([a.kind]),
            _e(_fmt_value(a.max_score)),
            _e(reasons.get((a.series, a.start), "")),
        )
        for a in alerts[:MAX_LISTED]
    ]
    return "\n".join(
        [
            f'<section class="series" id="plot-{i}">',
            f"<h3>{_e(stats.series)}</h3>",
            f"<figure>\n{_plot_svg(panels, salt=f'detector-report-{i}')}\n"
            f"<figcaption>{caption}</figcaption>\n</figure>",
            _table(("start", "end", "kind", "max score", "reason of the first row"), rows, {3}),
            _more(len(alerts), "alerts", "in time order"),
            "</section>",
        ]
    )


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _zoom(
    t0: pd.Timestamp, t1: pd.Timestamp, alerts: list[Alert]
) -> tuple[list[tuple[pd.Timestamp, pd.Timestamp]], str]:
    """Time windows to plot (in time order) and the caption text saying what they are.

    Short series are shown whole. Otherwise each alert wants ``ZOOM_BEFORE`` before and
    ``ZOOM_AFTER`` after it, and overlapping wants merge into one stretch: alerts a week apart
    get two readable panels instead of one squeezed one. Beyond ``MAX_PANELS`` stretches, the
    highest-scoring ones are shown.
    """
    stretches: list[tuple[pd.Timestamp, pd.Timestamp, float]] = []  # lo, hi, best score
    for a in alerts:
        lo, hi = max(a.start - ZOOM_BEFORE, t0), min(a.end + ZOOM_AFTER, t1)
        score = -np.inf if np.isnan(a.max_score) else a.max_score
        if stretches and lo <= stretches[-1][1]:
            prev_lo, prev_hi, prev_score = stretches[-1]
            stretches[-1] = (prev_lo, max(prev_hi, hi), max(prev_score, score))
        else:
            stretches.append((lo, hi, score))
    whole = t1 - t0 <= SHORT_SERIES or (len(stretches) == 1 and stretches[0][:2] == (t0, t1))
    if not stretches or whole:
        return [(t0, t1)], f"whole series, {_fmt_ts(t0)} to {_fmt_ts(t1)} UTC"
    shown = sorted(sorted(stretches, key=lambda w: -w[2])[:MAX_PANELS])
    windows = [(lo, hi) for lo, hi, _ in shown]
    where = (
        f"zoomed to {duration(ZOOM_BEFORE)} before to {duration(ZOOM_AFTER)} after its alerts: "
        + ", ".join(f"{_fmt_ts(lo)} to {_fmt_ts(hi)}" for lo, hi in windows)
        + f" UTC (the series runs {_fmt_ts(t0)} to {_fmt_ts(t1)})"
    )
    if len(stretches) > len(shown):
        where += (
            f"; {len(stretches) - len(shown)} more stretches with alerts are not plotted (the "
            f"{len(shown)} with the highest scores are), the list below has every alert"
        )
    return windows, where


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def _plot_svg(panels: list[pd.DataFrame], *, salt: str) -> str:
    """Stacked panels of one series as an inline ``<svg>`` element (no prolog, no metadata).

    The figure is :func:`detector.plotting.stacked_figure`, the one notebooks get from
    :func:`detector.plot`; the rc settings make its text real SVG text and its ids unique.
    """
    from matplotlib import rc_context

    rc = {"svg.fonttype": "none", "svg.hashsalt": salt, "font.size": 9}
    with rc_context(rc):
        fig = stacked_figure(panels)
        buf = io.StringIO()
        fig.savefig(
            buf,
            format="svg",
            metadata={"Creator": None, "Date": None, "Format": None, "Type": None},
        )
    svg = buf.getvalue()
    return svg[svg.index("<svg") :].strip()


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file next to ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        # mkstemp makes the file private (0600); a report is meant to be read by others.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
