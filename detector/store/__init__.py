"""Where ``detector run`` keeps its progress: offsets, aggregator state, points and anomalies.

:func:`open_store` picks the backend from the URL's scheme in :data:`BACKENDS`; a new backend
is one :class:`~detector.store.base.SqlStore` subclass whose ``schemes`` are added here.

>>> with open_store("sqlite:///:memory:") as store:
...     version = store.commit("shop", "detector", offsets={("events", 0): 7}, state=None)
...     store.load("shop", "detector").offsets
{('events', 0): 7}
"""

from __future__ import annotations

from urllib.parse import urlsplit

from detector.errors import ConfigError
from detector.store.base import Snapshot, SqlStore, StateConflict, Store, mask_password
from detector.store.forwarding import Forwarded, Lease, PartitionMoved
from detector.store.postgres import PostgresStore
from detector.store.sqlite import SqliteStore

__all__ = [
    "BACKENDS",
    "Forwarded",
    "Lease",
    "PartitionMoved",
    "PostgresStore",
    "Snapshot",
    "SqliteStore",
    "StateConflict",
    "Store",
    "open_store",
]

#: URL scheme -> backend class.
BACKENDS: dict[str, type[SqlStore]] = {
    scheme: cls for cls in (SqliteStore, PostgresStore) for scheme in cls.schemes
}


def open_store(url: str) -> Store:
    """Open (and create the tables of) the store at ``url``.

    Raises :class:`~detector.errors.ConfigError`, naming the URL with its password masked,
    for an unknown scheme, a server that cannot be reached or a file that cannot be written.

    >>> open_store("mysql://app:s3cret@db/metrics")
    Traceback (most recent call last):
    ...
    detector.errors.ConfigError: Store URL 'mysql://app:***@db/metrics': unknown scheme 'mysql'; ...
    """
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    backend = BACKENDS.get(scheme)
    if backend is None:
        known = ", ".join(f"{s}://" for s in BACKENDS)
        what = f"unknown scheme {scheme!r}" if scheme else "no scheme"
        raise ConfigError(
            f"Store URL {mask_password(url)!r}: {what}; use one of {known} "
            "(e.g. sqlite:///detector.db or postgresql://user@host:5432/db)."
        )
    return backend(url)
