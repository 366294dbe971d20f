"""Alert routing throughput: alerts/s through inhibition, routing, grouping and flushing.

Usage::

    python benchmarks/alert_routing.py [--alerts 100000] [--series 2000] [--repeat 3]

``--series`` series (alertname x market x product, 5 alertnames, 20 markets) alert on a
simulated clock ticking a minute at a time. At every tick each firing series sends its alert
again (as Prometheus re-sends firing alerts), a few per cent start or stop firing, and the
resolved ones are sent once. Each tick's batch goes through what ``detector run`` does:

- :class:`~detector.alerting.inhibit.Inhibitor` ``update`` (two rules: a market-wide payment
  outage mutes the market's other alerts; critical mutes warning of the same alertname and
  market);
- :class:`~detector.alerting.grouping.Dispatcher` ``add``: routing through an 8-route tree
  (continue, nesting, regexes, ``group_by: [market, alertname]`` and ``[...]``);
- ``flush`` at the tick, with the inhibitor as the muting callable (evaluated per alert of
  every due group).

The alerts are built before timing (the detector builds them anyway); the figure is the best
of ``--repeat`` runs, each with a fresh inhibitor and dispatcher. Target: >= 10,000 alerts/s.
"""

from __future__ import annotations

import argparse
import random
import time

import pandas as pd

from detector.alerting.grouping import Dispatcher
from detector.alerting.inhibit import Inhibitor, InhibitRule
from detector.alerting.model import Alert, ts
from detector.alerting.routing import Route, compile_route

ALERTNAMES = ["orders", "payment_success_rate", "signups", "basket_value", "missing_events"]
MARKETS = ["DE", "AT", "CH", "FR", "IT", "ES", "NL", "BE", "PL", "SE"]
MARKETS += ["DK", "NO", "FI", "PT", "IE", "US", "CA", "MX", "BR", "JP"]

TREE = {
    "receiver": "chat",
    "group_by": ["market", "alertname"],
    "group_wait": "30s",
    "group_interval": "5m",
    "repeat_interval": "4h",
    "routes": [
        {"matchers": ["team=audit"], "receiver": "audit", "continue": True},
        {
            "matchers": ['alertname="payment_success_rate"', "severity=critical"],
            "receiver": "payments",
            "continue": True,
        },
        {
            "matchers": ['market=~"DE|AT|CH"'],
            "receiver": "dach",
            "routes": [
                {"matchers": ["severity=critical"], "receiver": "dach-oncall"},
                {
                    "matchers": ['alertname=~"missing_.*"'],
                    "receiver": "data-eng",
                    "group_by": ["..."],
                },
            ],
        },
        {"matchers": ['market=~"US|CA|MX|BR"'], "receiver": "americas"},
        {"matchers": ["severity=critical"], "receiver": "oncall", "group_by": ["market"]},
    ],
}
RULES = [
    InhibitRule.model_validate(
        {
            "source_matchers": ["alertname=payment_success_rate", "severity=critical"],
            "target_matchers": ["alertname!=payment_success_rate"],
            "equal": ["market"],
        }
    ),
    InhibitRule.model_validate(
        {
            "source_matchers": ["severity=critical"],
            "target_matchers": ["severity=warning"],
            "equal": ["alertname", "market"],
        }
    ),
]


def make_batches(
    n_alerts: int, n_series: int, seed: int = 0
) -> list[tuple[pd.Timestamp, list[Alert]]]:
    """Per minute tick, the alerts sent: every firing series again, plus the just resolved."""
    rng = random.Random(seed)
    products = max(1, n_series // (len(ALERTNAMES) * len(MARKETS)))
    series = [
        {
            "alertname": name,
            "market": market,
            "product": f"p{p:02d}",
            "severity": "critical" if rng.random() < 0.2 else "warning",
            "team": "audit" if rng.random() < 0.05 else "shop",
        }
        for name in ALERTNAMES
        for market in MARKETS
        for p in range(products)
    ][:n_series]
    start = ts("2026-01-05T00:00Z")
    firing: dict[int, Alert] = {}
    batches: list[tuple[pd.Timestamp, list[Alert]]] = []
    total, tick = 0, 0
    while total < n_alerts:
        now = start + pd.Timedelta(minutes=tick)
        batch: list[Alert] = []
        for i, labels in enumerate(series):
            alert = firing.get(i)
            if alert is None and rng.random() < 0.03:
                firing[i] = Alert(labels, now, {"summary": f"{labels['alertname']} is off"})
            elif alert is not None and rng.random() < 0.03:
                batch.append(alert.resolved(now))
                del firing[i]
        batch.extend(firing.values())
        batches.append((now, batch))
        total += len(batch)
        tick += 1
    return batches


def run(route: Route, batches: list[tuple[pd.Timestamp, list[Alert]]]) -> tuple[float, int]:
    inhibitor = Inhibitor(RULES)
    dispatcher = Dispatcher(route, muted=lambda a, r, now: inhibitor.inhibited(a) is not None)
    sent = 0
    begin = time.perf_counter()
    for now, batch in batches:
        inhibitor.update(batch)
        dispatcher.add(batch, now)
        sent += len(dispatcher.flush(now))
    return time.perf_counter() - begin, sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--series", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    route = compile_route(
        TREE,
        {"chat", "audit", "payments", "dach", "dach-oncall", "data-eng", "americas", "oncall"},
    )
    batches = make_batches(args.alerts, args.series)
    n = sum(len(b) for _, b in batches)
    best, sent = min(run(route, batches) for _ in range(args.repeat))
    print(
        f"alerts: {n:,} over {args.series:,} series in {len(batches)} ticks, "
        f"{sum(1 for _ in route.walk())} routes, {len(RULES)} inhibit rules"
    )
    print(f"notifications: {sent:,}")
    print(f"routing + inhibition + grouping: {n / best:,.0f} alerts/s (best of {args.repeat})")


if __name__ == "__main__":
    main()
