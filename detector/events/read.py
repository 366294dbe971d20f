"""Reading domain events from files: JSONL, CSV or Parquet, gzip allowed, in chunks.

Files are read in chunks of ``chunk`` events (10,000 by default: the size of a stream batch, so
``backtest`` exercises exactly the code path of ``run``). A line that is not JSON is not an
error for the whole file: it becomes an :class:`~detector.events.schema.Undecodable` record in
its chunk and ends up in the dead letters with its line number, like any other bad event. A
file that cannot be opened or parsed at all is an :class:`~detector.errors.InputError`.

Formats, chosen by suffix (``.gz`` stripped first):

- ``.jsonl`` / ``.ndjson`` / ``.json``: one JSON object per line (decoded with orjson);
- ``.csv``: a header row; columns ``event_id, type, ts, source`` and attributes; an empty cell
  is an absent attribute (numbers are parsed as numbers);
- ``.parquet``: the same columns; null is absent.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "e.jsonl"
>>> _ = path.write_text('{"type": "a"}\\nnot json\\n')
>>> (chunk,) = read_events([path])
>>> chunk.events[0], chunk.events[1].raw, chunk.events[1].reason[:15], chunk.origin(1)[-7:]
({'type': 'a'}, 'not json', 'not valid JSON:', 'jsonl:2')
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from detector.errors import InputError
from detector.events.schema import Undecodable

__all__ = ["Chunk", "event_format", "read_events"]

FORMATS = ("jsonl", "csv", "parquet")


@dataclass
class Chunk:
    """A batch of decoded events and where each came from."""

    events: list[Any]
    source: str
    lines: Sequence[int]  # line number (JSONL, CSV) or row number (Parquet) of each event
    bytes_read: int  # bytes of the file consumed so far (for progress bars)

    def origin(self, i: int) -> str:
        return f"{self.source}:{self.lines[i]}"


def event_format(path: str | Path) -> str:
    """``jsonl``, ``csv`` or ``parquet`` from the file name; InputError otherwise."""
    name = str(path).lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise InputError(
        "unknown event file type; use .jsonl, .csv or .parquet (optionally .gz)", source=str(path)
    )


def read_events(paths: Sequence[str | Path], chunk: int = 10_000) -> Iterator[Chunk]:
    """Chunks of events from each file in turn (see the module docstring)."""
    for path in paths:
        fmt = event_format(path)
        if not Path(path).is_file():
            raise InputError("file not found", source=str(path))
        reader = {"jsonl": _jsonl, "csv": _csv, "parquet": _parquet}[fmt]
        yield from reader(str(path), chunk)


def _open(path: str) -> tuple[IO[bytes], IO[bytes]]:
    raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
    return (gzip.GzipFile(fileobj=raw) if path.lower().endswith(".gz") else raw), raw


def _jsonl(path: str, chunk: int) -> Iterator[Chunk]:
    """JSON lines, ``chunk`` at a time: a whole chunk is decoded with one ``map`` (C speed);
    only a chunk holding a bad or blank line is redone line by line to find it."""
    loads, JSONDecodeError = orjson.loads, orjson.JSONDecodeError
    try:
        fh, raw = _open(path)
        with raw, fh:
            number = 0  # line number of the last line read
            pending: list[bytes] = []
            for line in fh:
                pending.append(line)
                if len(pending) >= chunk:
                    yield _decode(pending, number + 1, path, raw.tell(), loads, JSONDecodeError)
                    number += len(pending)
                    pending = []
            if pending:
                yield _decode(pending, number + 1, path, raw.tell(), loads, JSONDecodeError)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"cannot read events: {exc}", source=path) from exc


def _decode(lines: list[bytes], first: int, path: str, done: int, loads: Any, error: Any) -> Chunk:
    try:
        return Chunk(list(map(loads, lines)), path, range(first, first + len(lines)), done)
    except error:
        pass
    events: list[Any] = []
    numbers: list[int] = []
    for n, line in enumerate(lines, first):
        if not line.strip():
            continue  # a blank line is no event
        try:
            events.append(loads(line))
        except error as exc:
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            events.append(Undecodable(text, f"not valid JSON: {exc}"))
        numbers.append(n)
    return Chunk(events, path, numbers, done)


def _clean(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop empty cells (None, NaN): an absent attribute, as in JSON."""
    out = []
    for rec in records:
        out.append(
            {
                k: v
                for k, v in rec.items()
                if v is not None and not (type(v) is float and math.isnan(v))
            }
        )
    return out


def _csv(path: str, chunk: int) -> Iterator[Chunk]:
    import pandas as pd

    try:
        with open(path, "rb") as raw:
            gz = "gzip" if path.lower().endswith(".gz") else None
            # Identifiers stay strings (an event_id "007" is not the number 7).
            dtype = {"event_id": str, "type": str, "ts": str, "source": str}
            line = 2
            with pd.read_csv(raw, chunksize=chunk, dtype=dtype, compression=gz) as frames:
                for frame in frames:
                    records = _clean(frame.to_dict("records"))
                    yield Chunk(records, path, range(line, line + len(records)), raw.tell())
                    line += len(records)
    except (OSError, EOFError, gzip.BadGzipFile, ValueError) as exc:
        raise InputError(f"cannot read events: {exc}", source=path) from exc
    except pd.errors.ParserError as exc:
        raise InputError(f"not valid CSV: {exc}", source=path) from exc


def _parquet(path: str, chunk: int) -> Iterator[Chunk]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        row = 1
        size = Path(path).stat().st_size
        total = max(pf.metadata.num_rows, 1)
        for batch in pf.iter_batches(batch_size=chunk):
            if "ts" in batch.schema.names and pa.types.is_timestamp(batch.schema.field("ts").type):
                ts = batch.column("ts").cast(pa.timestamp("ms", tz="UTC"))
                iso = [None if t is None else t.isoformat() for t in ts.to_pylist()]
                batch = batch.set_column(batch.schema.get_field_index("ts"), "ts", pa.array(iso))
            records = _clean(batch.to_pylist())
            yield Chunk(records, path, range(row, row + len(records)),
                        int(size * min(1.0, (row + len(records)) / total)))  # fmt: skip
            row += len(records)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read events: {exc}", source=path) from exc
