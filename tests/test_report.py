"""The HTML report: self-contained, escaped, one plot per anomalous series, written atomically."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from detector.datasets.shop import Incident
from detector.errors import ConfigError, InputError
from detector.evaluation.incidents import Labels, evaluate
from detector.report import write_report
from detector.scoring import score_frame
from detector.types import OUTPUT_COLUMNS
from tests.conftest import seasonal_counts

# Names with the characters that break naive HTML: quotes, angle brackets, braces, equals.
DROP = 'orders{market="DE",note="<b>x</b>"}'
DROP_GAPS = 'orders{market="FR"} & more'
CLEAN = 'orders{market="NL"}'
STEP = pd.Timedelta("5min")
# The only URLs allowed: SVG namespace names, which a browser never fetches.
NAMESPACES = ('xmlns="http://www.w3.org/2000/svg"', 'xmlns:xlink="http://www.w3.org/1999/xlink"')


@pytest.fixture(scope="module")
def scores() -> pd.DataFrame:
    """Three 5-day series scored by the engine: two with an injected drop (one also with a
    stretch of missing buckets), one clean."""
    drop = seasonal_counts(days=5, seed=0, series=DROP)
    drop.loc[1000:1011, "value"] = 0.0
    gaps = seasonal_counts(days=5, seed=0, series=DROP_GAPS)
    gaps.loc[1000:1011, "value"] = 0.0
    gaps = gaps.drop(index=range(1100, 1110))
    clean = seasonal_counts(days=5, seed=1, series=CLEAN)
    out = score_frame(pd.concat([drop, gaps, clean], ignore_index=True))
    flagged = out.groupby("series")["is_anomaly"].sum()
    assert flagged[DROP] > 0 and flagged[DROP_GAPS] > 0 and flagged[CLEAN] == 0
    assert (out.loc[out["series"] == DROP_GAPS, "kind"] == "missing").sum() == 10
    return out


def write(tmp_path: Path, scores: pd.DataFrame, **kwargs: object) -> str:
    path = tmp_path / "report.html"
    write_report(path, scores, **kwargs)  # type: ignore[arg-type]
    return path.read_text(encoding="utf-8")


def sections(text: str) -> list[str]:
    """The plotted series' sections, in order."""
    return re.findall(r'<section class="series".*?</section>', text, flags=re.S)


def plotted(text: str) -> list[str]:
    """The (escaped) names of the plotted series, in order."""
    return re.findall(r'<section class="series" id="plot-\d+">\n<h3>(.*?)</h3>', text)


def handmade(
    series: str, days: float, flagged: list[int], start: str = "2026-01-05"
) -> pd.DataFrame:
    """A scored table without the engine: flat band 8-12 around 10, ``flagged`` rows spike."""
    n = int(pd.Timedelta(days=days) / STEP)
    ts = pd.date_range(start, periods=n, freq=STEP, tz="UTC")
    flag = np.zeros(n, bool)
    flag[flagged] = True
    value = np.where(flag, 30.0, 10.0 + np.sin(np.arange(n) / 20))
    return pd.DataFrame(
        {
            "timestamp": ts,
            "series": series,
            "value": value,
            "expected": 10.0,
            "lower": 8.0,
            "upper": 12.0,
            "score": np.where(flag, 9.0, 0.5),
            "is_anomaly": flag,
            "kind": np.where(flag, "spike", ""),
            "reason": np.where(flag, f"{series} is high <check>", ""),
        }
    ).loc[:, list(OUTPUT_COLUMNS)]


def test_report_is_self_contained_html(tmp_path: Path, scores: pd.DataFrame) -> None:
    text = write(tmp_path, scores)
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert '<meta charset="utf-8">' in text
    for outside in ("<script", "<link", "<img", "<iframe", "@import", "<?xml"):
        assert outside not in text.lower()
    links = re.findall(r"""\b(?:href|src)\s*=\s*["']([^"']*)["']""", text)
    links += re.findall(r"url\(([^)]*)\)", text)
    assert links, "the plots reference their own markers and clip paths"
    assert all(link.startswith("#") for link in links), [x for x in links if x[:1] != "#"]
    rest = text
    for namespace in NAMESPACES:
        rest = rest.replace(namespace, "")
    assert "http://" not in rest and "https://" not in rest


def test_one_plot_per_anomalous_series_and_none_for_clean_ones(
    tmp_path: Path, scores: pd.DataFrame
) -> None:
    text = write(tmp_path, scores)
    assert text.count("<svg") == 2
    names = plotted(text)
    assert sorted(names) == sorted([html.escape(DROP), html.escape(DROP_GAPS)])
    # The clean series is in the table, after the anomalous ones.
    order = [text.index(html.escape(name)) for name in (DROP, DROP_GAPS, CLEAN)]
    assert order[2] > max(order[:2])
    # Missing buckets are counted and shaded in the plot (a legend entry of their own).
    assert ">10</td>" in text
    assert "missing data" in sections(text)[names.index(html.escape(DROP_GAPS))]


def test_every_text_is_escaped(tmp_path: Path, scores: pd.DataFrame) -> None:
    text = write(tmp_path, scores, title='<b>"shop" & co</b>')
    assert DROP not in text and "<b>" not in text
    assert html.escape(DROP) in text and html.escape(DROP_GAPS) in text
    assert "<title>&lt;b&gt;&quot;shop&quot; &amp; co&lt;/b&gt;</title>" in text
    # The alert list shows the reason of each alert's first row, escaped too.
    first = scores[scores["is_anomaly"] & (scores["series"] == DROP)].iloc[0]
    assert html.escape(first["reason"]) in text


def test_summary_and_data_facts(tmp_path: Path, scores: pd.DataFrame) -> None:
    summary = {
        "pipeline": "pipelines/shop.yaml",
        "events read": 1234567,
        "late": 20,
        "rate": 0.123456,
        "<key>": None,
    }
    text = write(tmp_path, scores, summary=summary)
    for cell in ("pipelines/shop.yaml", "1,234,567", ">20<", "0.1235", "&lt;key&gt;"):
        assert cell in text
    assert "3 series" in text and "2 series with anomalies" in text


def test_evaluation_section_only_when_given(tmp_path: Path, scores: pd.DataFrame) -> None:
    assert "<h2>Incidents</h2>" not in write(tmp_path, scores)
    t0 = scores["timestamp"].min()
    labels = Labels(
        (
            Incident(DROP, t0 + 1000 * STEP, t0 + 1012 * STEP, "dip", "checkout <broken>"),
            Incident(CLEAN, t0 + 800 * STEP, t0 + 812 * STEP, "spike", "never seen"),
        )
    )
    report = evaluate(scores, labels)
    text = write(tmp_path, scores, evaluation=report)
    assert "<h2>Incidents</h2>" in text
    assert 'class="found">found<' in text and 'class="missed">missed<' in text
    assert "checkout &lt;broken&gt;" in text
    assert f"False alerts: {report.n_false_alerts}" in text


def test_max_plots_is_respected(tmp_path: Path, scores: pd.DataFrame) -> None:
    text = write(tmp_path, scores, max_plots=1)
    assert text.count("<svg") == 1
    assert "1 more series with anomalies are not plotted (max_plots=1)" in text
    # The table links only to plots that exist.
    anchors = set(re.findall(r'href="#(plot-\d+)"', text))
    assert anchors == set(re.findall(r'id="(plot-\d+)"', text)) == {"plot-0"}
    assert write(tmp_path, scores, max_plots=0).count("<svg") == 0


def test_most_anomalous_series_is_plotted_first(tmp_path: Path) -> None:
    frame = pd.concat(
        [handmade("few", 2, [100]), handmade("many", 2, [200, 201, 202]), handmade("none", 2, [])]
    )
    text = write(tmp_path, frame)
    assert plotted(text) == ["many", "few"]


def test_long_series_are_zoomed_to_their_alerts(tmp_path: Path) -> None:
    per_day = int(pd.Timedelta("1D") / STEP)
    # 20 days, alerts on day 5 and day 15: two panels of about three days each.
    text = write(tmp_path, handmade("long", 20, [5 * per_day, 15 * per_day + 3]))
    (section,) = sections(text)
    assert section.count('id="axes_') == 2
    assert "zoomed to 2 d before to 1 d after its alerts: 2026-01-08 00:00 to 2026-01-11" in section
    assert "2026-01-18 00:15 to 2026-01-21 00:15" in section
    # A short series is shown whole.
    (section,) = sections(write(tmp_path, handmade("short", 3, [100])))
    assert section.count('id="axes_') == 1 and "whole series" in section


def test_at_most_three_panels_the_highest_scoring(tmp_path: Path) -> None:
    per_day = int(pd.Timedelta("1D") / STEP)
    frame = handmade("busy", 30, [d * per_day for d in (4, 10, 16, 22)])
    frame.loc[frame.index[10 * per_day], "score"] = 2.0  # the weakest stretch is left out
    (section,) = sections(write(tmp_path, frame))
    assert section.count('id="axes_') == 3
    assert "1 more stretches with alerts are not plotted" in section
    assert "2026-01-13 00:00" not in section.split("<figcaption>")[1].split("</figcaption>")[0]
    assert section.count("<tr><td>") == 4  # the list below still has every alert


def test_write_is_atomic_and_deterministic(tmp_path: Path, scores: pd.DataFrame) -> None:
    path = tmp_path / "out" / "report.html"
    path.parent.mkdir()
    path.write_text("old", encoding="utf-8")
    write_report(path, scores)
    first = path.read_bytes()
    write_report(path, scores)
    assert path.read_bytes() == first  # same input, same bytes (fixed SVG ids, no dates)
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # no temporary left


def test_empty_table(tmp_path: Path) -> None:
    text = write(tmp_path, pd.DataFrame({c: [] for c in OUTPUT_COLUMNS}))
    assert "nothing to report" in text and "<svg" not in text


def test_bad_input_is_reported(tmp_path: Path, scores: pd.DataFrame) -> None:
    with pytest.raises(InputError, match="lacks columns \\['reason'\\]"):
        write_report(tmp_path / "r.html", scores.drop(columns="reason"))
    with pytest.raises(ConfigError, match="'max_plots' parameter of write_report must be an int"):
        write_report(tmp_path / "r.html", scores, max_plots=-1)
    assert not (tmp_path / "r.html").exists()


def test_pyplot_and_backend_are_left_alone(tmp_path: Path) -> None:
    """Importing the module loads no matplotlib; a report neither sets a backend nor uses pyplot."""
    code = f"""
import sys
import detector.report
assert "matplotlib" not in sys.modules, "imported at module load"
import matplotlib
def use(*args, **kwargs):
    raise AssertionError("matplotlib.use called")
matplotlib.use = use
from tests.test_report import handmade
detector.report.write_report({str(tmp_path / "r.html")!r}, handmade("a", 1, [100]))
assert "matplotlib.pyplot" not in sys.modules, "pyplot imported"
"""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], cwd=root, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r.html").read_text(encoding="utf-8").count("<svg") == 1
