"""Plain data shared across the package: the scored-output schema and anomaly kinds."""

from __future__ import annotations

from typing import Final, Literal

#: Columns of ``detector score`` output, in this order. Other parts (backtest, stream export,
#: evaluation) rely on these names exactly.
OUTPUT_COLUMNS: Final[tuple[str, ...]] = (
    "timestamp",
    "series",
    "value",
    "expected",
    "lower",
    "upper",
    "score",
    "is_anomaly",
    "kind",
    "reason",
)

Kind = Literal["spike", "dip", "level_shift", "stale", "missing", "variance", ""]

#: Every non-empty value the ``kind`` column may hold.
KINDS: Final[tuple[str, ...]] = ("spike", "dip", "level_shift", "stale", "missing", "variance")
