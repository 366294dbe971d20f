"""The notebooks run top to bottom on a fresh clone, so they cannot rot; they are stored clean.

Each notebook is executed in a real Python kernel (nbclient + ipykernel, the kernel of this
environment), from the ``notebooks/`` folder, with a time limit per cell and for the whole
notebook. Any error fails the test with the cell and its traceback; a warning printed by a
cell fails it too (a deprecation today is an error in a release or two). The target is under
two minutes per notebook on an idle machine; the limit allows twice that for a busy one.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

import detector

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 180  # seconds, per cell
NOTEBOOK_LIMIT = 240  # seconds, the whole notebook


def _ids(path: Path) -> str:
    return path.stem


def test_there_are_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01_explore_metric.ipynb",
        "02_tune_on_incidents.ipynb",
        "03_compare_models.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {i} has stored outputs: clear them"
            assert cell.execution_count is None, f"cell {i} has an execution count"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_runs_top_to_bottom(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    started = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{exc}", pytrace=False)
    took = time.perf_counter() - started
    assert took < NOTEBOOK_LIMIT, f"{path.name} took {took:.0f} s (limit {NOTEBOOK_LIMIT} s)"
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            text = out.get("text", "") if out.get("output_type") == "stream" else ""
            assert "Warning" not in text, f"{path.name}, cell {i} printed a warning:\n{text}"
        # a plot must show, but for the NAB cells of a clone without NAB data (they say so)
        skipped = "nab" in cell.source and detector.find_nab() is None
        if cell.cell_type == "code" and "detector.plot(" in cell.source and not skipped:
            kinds = {k for out in cell.outputs for k in out.get("data", {})}
            assert "image/png" in kinds, f"{path.name}, cell {i}: the figure was not displayed"


def test_the_nab_part_is_skipped_with_a_note_without_nab_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clone without NAB beside it: the NAB cells of notebook 3 say so and do nothing."""
    nb = nbformat.read(ROOT / "notebooks" / "03_compare_models.ipynb", as_version=4)
    first = next(i for i, c in enumerate(nb.cells) if c.source.startswith("## NAB"))
    setup = [c for c in nb.cells[:first] if c.cell_type == "code"][:1]  # the imports
    nb.cells = setup + [c for c in nb.cells[first:] if c.cell_type == "code"]
    monkeypatch.setenv("DETECTOR_NAB_DATA", str(tmp_path))  # an empty folder: no NAB there
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3").execute()
    printed = "".join(
        out.get("text", "") for cell in nb.cells for out in cell.outputs if "text" in out
    )
    assert "NAB data not found" in printed and "skipping the NAB comparison" in printed
    shown = [out for cell in nb.cells[2:] for out in cell.outputs]
    assert shown == [], "NAB cells showed something without NAB data"
