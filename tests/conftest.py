"""Shared fixtures: small synthetic seasonal series with known incidents."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


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
