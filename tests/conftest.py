"""Shared fixtures: synthetic seasonal series, a Kafka broker, PostgreSQL schemas, store URLs.

PostgreSQL is expected at ``DETECTOR_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``); each test gets its own schema, dropped
afterwards. If the server is not reachable the PostgreSQL tests fail, they do not skip: CI
starts it, and a silently skipped backend is an untested one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import numpy as np
import pandas as pd
import psycopg
import pytest
from psycopg import sql

PG_URL = os.environ.get("DETECTOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def seasonal_counts(
    days: int = 21,
    level: float = 60.0,
    freq: str = "5min",
    seed: int = 0,
    series: str = "orders.DE",
    start: str = "2026-01-05",
) -> pd.DataFrame:
    """Daily + weekly shaped, overdispersed counts: what orders per market look like."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range(
        start, periods=int(days * pd.Timedelta("1D") / pd.Timedelta(freq)), freq=freq, tz="UTC"
    )
    hours = idx.hour.to_numpy() + idx.minute.to_numpy() / 60
    daily = 0.25 + np.exp(-((hours - 13) ** 2) / 18) + 0.6 * np.exp(-((hours - 20) ** 2) / 6)
    weekly = np.where(idx.day_of_week.to_numpy() >= 5, 0.7, 1.0)
    mean = level * daily * weekly
    values = rng.negative_binomial(20, 20 / (20 + mean)).astype(float)
    return pd.DataFrame({"timestamp": idx, "series": series, "value": values})


@pytest.fixture
def counts() -> pd.DataFrame:
    return seasonal_counts()


@pytest.fixture(scope="session")
def kafka_broker():
    """A real Kafka-compatible broker (Tansu) on a free loopback port, for the whole session.

    Tests create their own topics (unique names), so they do not see each other's events.
    """
    from detector.testing_kafka import Broker

    broker = Broker().start()
    yield broker
    broker.stop()


@pytest.fixture()
def topic(kafka_broker, request) -> str:
    """A fresh topic with 3 partitions, named after the test."""
    import re
    import uuid

    name = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name)[:60] + "-" + uuid.uuid4().hex[:6]
    kafka_broker.create_topic(name, partitions=3)
    return name


def _pg_admin() -> psycopg.Connection:
    try:
        return psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip()
    pytest.fail(  # outside the except block: the message alone, without the chained traceback
        f"PostgreSQL is not reachable at {PG_URL}: {reason}\nStart it (CI does) or point "
        "DETECTOR_TEST_POSTGRES_URL at a server where the user may create schemas.",
        pytrace=False,
    )


@pytest.fixture()
def pg_url() -> Iterator[str]:
    """``PG_URL`` with a fresh ``schema=t_<uuid>``, dropped (with its tables) afterwards."""
    schema = f"t_{uuid.uuid4().hex}"
    _pg_admin().close()  # fail here, with the message above, if there is no server
    yield f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"
    with _pg_admin() as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh store URL on each backend: a SQLite file, a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'store.db'}"
    return request.getfixturevalue("pg_url")
