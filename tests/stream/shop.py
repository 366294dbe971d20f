"""A small shop stream for the streaming tests: orders in two markets, one spike, bad records."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

PIPELINE = """
name: streamshop
events:
  order_placed:
    fields:
      market: {type: string, required: true}
      amount: {type: number, required: true, min: 0}
segments:
  market: {values: [DE, FR]}
defaults: {window: 5m, lateness: 2m, model: auto}
metrics:
  - {name: orders, event: order_placed, aggregation: count, group_by: [market]}
  - {name: revenue, event: order_placed, aggregation: sum, field: amount, group_by: [market]}
"""

START = 1767571200  # 2026-01-05 00:00 UTC


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def shop_events(days: int = 4, per_5min: float = 20.0, seed: int = 0) -> list[dict]:
    """Orders with a daily shape; DE sells x6 on the last day 12:00-13:00 (the incident)."""
    rng = np.random.default_rng(seed)
    out = []
    n_win = days * 288
    for k in range(n_win):
        hour = (k % 288) / 12
        shape = 0.3 + np.exp(-((hour - 14) ** 2) / 18)
        for market, scale in (("DE", 1.0), ("FR", 0.6)):
            mu = per_5min * scale * shape
            if market == "DE" and k // 288 == days - 1 and 12 <= hour < 13:
                mu *= 6
            for t in np.sort(rng.uniform(0, 300, rng.poisson(mu))):
                out.append(
                    {
                        "event_id": f"e{len(out)}",
                        "type": "order_placed",
                        "ts": iso(START + k * 300 + t),
                        "source": "shop-api",
                        "market": market,
                        "amount": round(float(rng.gamma(2.0, 30.0)), 2),
                    }
                )
    out.sort(key=lambda e: e["ts"])
    return out
