"""The one exception tree of the detector.

Every error a user can cause or meet derives from :class:`DetectorError`, so callers (the CLI,
a stream consumer, a notebook) can catch one class. Third-party errors are wrapped at the
boundary (``raise InputError(...) from exc``) so the message always says what to do::

    DetectorError
    ├── InputError        bad input data: unreadable file, missing column, unparsable value
    ├── ConfigError       bad parameters or configuration (a usage error: exit code 2)
    └── ModelError        a model could not fit or score (a runtime failure: exit code 1)

The CLI maps ``InputError`` and ``ConfigError`` to exit code 2 and everything else to 1.
"""

from __future__ import annotations


class DetectorError(Exception):
    """Root of all errors raised on purpose by the detector."""

    exit_code = 1


class InputError(DetectorError):
    """Input data the detector cannot use; the message names file, row (or line) and column.

    ``row`` counts data rows from 1; ``line`` is the physical line of a text file (the header
    is line 1), which is what an editor shows, so readers of CSV files pass ``line``.

    >>> str(InputError("bad value 'x'", source="a.csv", row=3, column="value"))
    "a.csv, row 3, column 'value': bad value 'x'"
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        row: int | None = None,
        column: str | None = None,
        line: int | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.row = row
        self.column = column
        self.line = line
        where = []
        if source:
            where.append(str(source))
        if line is not None:
            where.append(f"line {line}")
        elif row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ConfigError(DetectorError):
    """A parameter or configuration value is invalid (a usage error)."""

    exit_code = 2


class ModelError(DetectorError):
    """A model failed to fit or score a series."""
