"""A labelled generator of a shop's *domain events*, with the mission's incidents injected.

Why events and not metrics (:mod:`detector.datasets.shop` makes metrics): decoding, validation,
deduplication, event-time windows, heartbeats and segments can only be exercised on what apps
really send. ``detector demo`` aggregates these events with ``pipelines/shop.yaml``, scores the
metrics and evaluates them against the labels, so the whole path runs on incidents whose truth
we know.

Events are plain dicts, as an app would serialise them::

    {"event_id": "evt_5e0f1c2a9b3d4e6f", "type": "order_placed",
     "ts": "2026-01-05T10:03:27.123Z", "source": "shop-api",
     "market": "DE", "category": "tv", "amount": 649.99, "currency": "EUR"}

=========================  ==========  =====================================================
type                       source      attributes
=========================  ==========  =====================================================
``order_placed``           shop-api    market DE/FR/UK/US, category tv/phone/laptop/other,
                                       amount in the market's currency (TVs ~400-900 EUR,
                                       the rest cheaper), currency EUR/GBP/USD by market
``payment_attempted``      payments    provider adyen/stripe/paypal, status success/failed,
                                       amount; one per order plus ~10 % retries
``currency_rate_updated``  fx-feed     pair EURUSD/EURGBP/GBPUSD, rate (a random walk quoted
                                       with 5 decimals, changing at nearly every update)
``ticket_sold``            box-office  show hamlet/cats/lion-king, price ~40-120
``heartbeat``              every app   none; every 30 s
=========================  ==========  =====================================================

Shape. Orders follow each market's *local* day (lunch and evening peaks, quiet nights, weekends a
little later and busier), 35-55 per 5 minutes per market at the evening peak and 6-9 at night,
overdispersed (negative binomial) with a mild day-to-day wobble. TVs are 8-10 % of a market's
orders (a little more in the evening) and ~50 % of its revenue. Payments follow the orders with
a success rate of 0.93-0.96 per provider. Currency rates update about every 60 s on UTC weekdays
and every 20-55 min at weekends: under an hour on purpose, because the ``fx_change_age`` check
(``max_age: 1h``) has no weekday schedule. Tickets sell in the London afternoon and evening.

Incidents, one of each per seed, at local times when the metric has volume, from day 14 on
(day 10 with two weeks of data: the scoring engine only reaches full confidence after about
two weeks of history). Labels name series as the pipeline does, ``metric{dim=value}``, over
``[start, end)`` rounded out to 5-minute buckets:

1. a bank charges 1 % of the price: one show sells 20-40x its tickets for 60-120 min in the
   evening, all at 1 % of the price: ``ticket_sales{show=..}``, ``spike``;
2. TVs stop selling in one market for 3-6 h in the afternoon and evening: no ``tv`` orders
   there. Orders barely move (``orders{market=..}`` is not labelled) but revenue loses its TV
   half: ``tv_orders{market=..}`` and, when the drop is >= 30 % (always, with this mix),
   ``revenue{market=..}``, both ``dip``;
3. a currency pair stops updating for 4-8 h on a weekday: ``fx_update_age{pair=..}`` from
   15 min after the stop (its ``max_age``) and ``fx_change_age{pair=..}`` from 1 h after, until
   updates resume, ``stale``;
4. a payment provider's success rate sinks by 12-20 points for 60-120 min at a busy time:
   ``payment_success_rate{provider=..}``, ``dip``.

Not an incident: a 40-90 min ingestion gap (whole minutes) in which every ``shop-api`` event,
heartbeats included, is missing, at least 12 h from the TV incident. It is labelled as
:class:`~detector.datasets.shop.Gap` rows for ``orders``, ``revenue`` and ``tv_orders`` of every
market over the 5-minute buckets it touches: those windows are missing, not zero or low.

Dirt, counted in :class:`ShopEvents`: 30 malformed events (a missing required field, amounts
like ``"12,5"``, negative amounts, status ``"maybe"``, type ``"order_cancelled_v0"``, unparsable
``ts``, no ``event_id``, lines that are not JSON), 200 exact duplicates re-sent up to a minute
later, and 20 events delivered 30-180 min late. Otherwise the stream is in event-time order up
to local shuffles of at most 20 s (the pipeline allows 2 minutes).

Everything is deterministic per ``seed``; each part draws from its own random stream. Three
weeks are about 1.5 million events and take a few seconds.

>>> _iso_ms(np.array([1767607407123]))
['2026-01-05T10:03:27.123Z']
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from scipy.signal import lfilter

from detector.datasets.shop import (
    Gap,
    Incident,
    _day_noise,
    _local_time,
    _neg_binomial,
    _rng,
    _week_factor,
    daily_shape,
    to_utc,
)
from detector.errors import ConfigError
from detector.evaluation.incidents import Labels

__all__ = ["ShopEvents", "make_shop_events", "write_events"]

_S = 1_000  # timestamps are integer milliseconds since the epoch
_MIN = 60 * _S
_HOUR = 60 * _MIN
_DAY = 24 * _HOUR
_BUCKET = 5 * _MIN
_WARMUP_DAYS = 7
_SEPARATION = 12 * _HOUR  # between the TV incident and the gap (same series)

N_MALFORMED = 30
N_DUPLICATES = 200
N_LATE = 20


# --------------------------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Market:
    code: str
    tz: str
    orders: float  # mean orders per 5 minutes on a weekday (evening peak ~2x, night ~0.3x)
    currency: str
    per_eur: float  # prices are set in EUR and converted
    tv_share: float  # of the orders, on average over the day
    saturday: float
    sunday: float
    providers: tuple[float, float, float]  # share of adyen, stripe, paypal


MARKETS: tuple[_Market, ...] = (
    _Market("DE", "Europe/Berlin", 24.0, "EUR", 1.00, 0.10, 0.95, 1.10, (0.35, 0.30, 0.35)),
    _Market("FR", "Europe/Paris", 19.0, "EUR", 1.00, 0.08, 0.90, 1.00, (0.45, 0.30, 0.25)),
    _Market("UK", "Europe/London", 21.0, "GBP", 0.86, 0.09, 1.00, 1.10, (0.40, 0.35, 0.25)),
    _Market("US", "America/New_York", 27.0, "USD", 1.09, 0.09, 1.05, 0.95, (0.30, 0.45, 0.25)),
)
_MARKET_CODES = tuple(m.code for m in MARKETS)
_CURRENCIES = tuple(m.currency for m in MARKETS)
CATEGORIES = ("tv", "phone", "laptop", "other")
# Shares of the non-TV orders, then price median (EUR) and lognormal spread per category: many
# cheap accessories, so TVs make about half the revenue from a tenth of the orders.
_OTHER_MIX = (0.25, 0.03, 0.72)
_PRICE = {"tv": (620.0, 0.18), "phone": (90.0, 0.3), "laptop": (330.0, 0.15), "other": (16.0, 0.6)}
_PRICE_RANGE = {"tv": (349.0, 1299.0), "phone": (29.0, 999.0), "laptop": (199.0, 999.0)}
_TV_LIFT = 0.2  # TV share ~ activity ** 0.2: considered purchases happen in the evening
PROVIDERS = ("adyen", "stripe", "paypal")
_STATUSES = ("success", "failed")
_SUCCESS = (0.955, 0.950, 0.935)
_RETRY = 0.10  # extra payment attempts per order
PAIRS = {"EURUSD": 1.0850, "EURGBP": 0.8610, "GBPUSD": 1.2600}
_FX_STEP_SD = 1e-4  # relative sd per minute (~0.4 % a day): the 5th decimal nearly always moves
SHOWS = {"hamlet": 0.9, "cats": 1.2, "lion-king": 1.5}  # mean tickets per 5 minutes
_SHOW_TZ = "Europe/London"
_TICKET_PRICES = {
    "hamlet": (42.0, 65.0, 89.0, 120.0),
    "cats": (39.5, 59.5, 79.5, 99.5),
    "lion-king": (55.0, 75.0, 95.0, 119.0),
}
SOURCES = {
    "order_placed": "shop-api",
    "payment_attempted": "payments",
    "currency_rate_updated": "fx-feed",
    "ticket_sold": "box-office",
}
_HEARTBEAT_EVERY = 30 * _S

# Regular on purpose: the demo must show every incident and no false alert, so the noise is
# realistic in kind (overdispersion, lumpy amounts, quiet nights) but modest in size.
_DAY_WOBBLE = 0.02  # day-to-day level noise (lognormal sd)
_ORDER_SIZE = 150.0  # negative-binomial size of orders per 5 minutes
_TICKET_SIZE = 10.0  # ... and of tickets
_NIGHT = 0.20  # night floor added to the shop's daily shape: online shops never quite sleep
_WEEKEND_SHAPE = 0.3  # weekends go this far towards the shop's later-starting weekend day


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShopEvents:
    """Generated events in stream order, with their ground truth.

    ``events`` holds dicts and, for the few lines that are not JSON at all, raw strings.
    ``end`` is exclusive; ``warmup_end`` (a week in) is where an evaluation should start.
    """

    events: list[dict | str]
    labels: Labels
    start: pd.Timestamp
    end: pd.Timestamp
    warmup_end: pd.Timestamp
    n_malformed: int
    n_duplicates: int
    n_late: int


@dataclass
class _Table:
    """Events of one type as columns: ``ts`` in ms, attributes as arrays (codes for names)."""

    type: str
    source: str
    ts: np.ndarray
    attrs: dict[str, np.ndarray]

    def keep(self, rows: np.ndarray) -> None:
        """Keep the rows selected by a mask or an index array, in that order."""
        self.ts = self.ts[rows]
        self.attrs = {k: v[rows] for k, v in self.attrs.items()}


@dataclass(frozen=True)
class _Window:
    """An incident or the gap in event time (ms), ``[start, stop)``."""

    target: str
    start: int
    stop: int
    size: float = 0.0

    def covers(self, ts: np.ndarray) -> np.ndarray:
        return (ts >= self.start) & (ts < self.stop)


# --------------------------------------------------------------------------------------------
# Expected volumes (also used to place incidents where the metric has volume)
# --------------------------------------------------------------------------------------------


def _day_shape(hour: np.ndarray, weekend: np.ndarray) -> np.ndarray:
    """The shop's daily shape (mean 1) with a night floor; weekends start a little later."""
    weekday = daily_shape(hour, np.zeros_like(weekend))
    later = daily_shape(hour, np.ones_like(weekend))
    shape = np.where(weekend, _WEEKEND_SHAPE * later + (1 - _WEEKEND_SHAPE) * weekday, weekday)
    return (1 - _NIGHT) * shape + _NIGHT


def _order_mu(market: _Market, index: pd.DatetimeIndex, seed: int) -> np.ndarray:
    """Expected orders per 5-minute bucket, in the market's local day and week."""
    rng = _rng(seed, "order-mu", market.code)
    lt = _local_time(index, market.tz)
    shift = rng.uniform(-0.4, 0.4)  # each market's peaks sit a little differently
    shape = _day_shape(lt.hour - shift, lt.dow >= 5)
    week = _week_factor(lt.dow, market.saturday, market.sunday)
    return market.orders * shape * week * _day_noise(rng, lt.day, _DAY_WOBBLE)


def _ticket_mu(show: str, index: pd.DatetimeIndex) -> np.ndarray:
    """Expected tickets per 5 minutes: afternoon and evening in London, few at night."""
    lt = _local_time(index, _SHOW_TZ)
    weekend = lt.dow >= 5
    return SHOWS[show] * _day_shape(lt.hour, weekend) * np.where(weekend, 1.15, 1.0)


# --------------------------------------------------------------------------------------------
# Incident plan
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    tickets: _Window  # target = show, size = multiplier
    tv: _Window  # target = market
    fx: _Window  # target = pair
    payment: _Window  # target = provider, size = drop of the success rate (0-1)
    gap: _Window  # target = "shop-api"


def _first_incident_day(weeks: int) -> int:
    """Day 14 when there is room: before it the scoring engine still ramps up its confidence
    (``confidence_ramp="14D"``), shrinking scores, so a demo would show a cold start, not the
    incidents. Two weeks of data only leave room from day 10 on."""
    return 14 if weeks >= 3 else 10


def _draw(
    rng: np.random.Generator,
    bounds: tuple[int, int],
    minutes: tuple[int, int],
    ok: Callable[[int, int], bool],
) -> _Window:
    """Draw a window of whole minutes inside ``bounds`` until ``ok(start, stop)`` accepts it."""
    lo, hi = bounds
    for _ in range(5000):
        length = int(rng.integers(minutes[0], minutes[1] + 1)) * _MIN
        if hi - length <= lo:
            break
        start = lo + int(rng.integers(0, (hi - length - lo) // _MIN)) * _MIN
        if ok(start, start + length):
            return _Window("", start, start + length)
    raise ConfigError(f"no room for a {minutes[0]}-{minutes[1]} min incident; use more weeks")


def _local_hour(ms: int, tz: str) -> float:
    local = pd.Timestamp(ms, unit="ms", tz="UTC").tz_convert(tz)
    return local.hour + local.minute / 60.0


def _mean_mu(mu: np.ndarray, t0: int, start: int, stop: int) -> float:
    return float(mu[(start - t0) // _BUCKET : -(-(stop - t0) // _BUCKET)].mean())


def _plan(seed: int, t0: int, t1: int, order_mu: dict[str, np.ndarray], ticket_mu: dict) -> _Plan:
    """Place the incidents and the gap: realistic local times, on volume, 12 h apart."""
    rng = _rng(seed, "event-plan")
    weeks = (t1 - t0) // (7 * _DAY)
    bounds = (t0 + _first_incident_day(weeks) * _DAY, t1 - 2 * _HOUR)

    show = str(rng.choice(list(SHOWS)))
    peak = float(ticket_mu[show].max())

    def evening(a: int, b: int) -> bool:
        hour = _local_hour(a, _SHOW_TZ)
        return 17.0 <= hour <= 20.5 and _mean_mu(ticket_mu[show], t0, a, b) >= 0.6 * peak

    w = _draw(rng, bounds, (60, 120), evening)
    tickets = _Window(show, w.start, w.stop, float(rng.uniform(20, 40)))

    market = MARKETS[int(rng.integers(len(MARKETS)))]
    usual = float(order_mu[market.code].mean())

    def afternoon(a: int, b: int) -> bool:
        hour = _local_hour(a, market.tz)
        busy = _mean_mu(order_mu[market.code], t0, a, b) >= 1.5 * usual
        return hour >= 12.0 and hour + (b - a) / _HOUR <= 23.0 and busy

    w = _draw(rng, bounds, (180, 360), afternoon)
    tv = _Window(market.code, w.start, w.stop)

    pair = str(rng.choice(list(PAIRS)))

    def weekday(a: int, b: int) -> bool:
        first, last = (pd.Timestamp(t, unit="ms", tz="UTC") for t in (a, b))
        return first.day_of_week < 5 and last.day_of_week < 5 and 6 <= first.hour <= 14

    w = _draw(rng, bounds, (240, 480), weekday)
    fx = _Window(pair, w.start, w.stop)

    provider = int(rng.integers(len(PROVIDERS)))
    attempts = sum(order_mu[m.code] * m.providers[provider] * (1 + _RETRY) for m in MARKETS)
    busiest = float(np.quantile(attempts, 0.95))

    def busy(a: int, b: int) -> bool:
        return _mean_mu(attempts, t0, a, b) >= 0.7 * busiest

    w = _draw(rng, bounds, (60, 120), busy)
    payment = _Window(PROVIDERS[provider], w.start, w.stop, float(rng.uniform(0.12, 0.20)))

    def apart(a: int, b: int) -> bool:
        return b + _SEPARATION <= tv.start or tv.stop + _SEPARATION <= a

    w = _draw(rng, (t0 + _WARMUP_DAYS * _DAY, bounds[1]), (40, 90), apart)
    return _Plan(tickets, tv, fx, payment, _Window("shop-api", w.start, w.stop))


# --------------------------------------------------------------------------------------------
# Event tables
# --------------------------------------------------------------------------------------------


def _bucket_times(rng: np.random.Generator, t0: int, counts: np.ndarray) -> np.ndarray:
    """Uniform event times (ms) inside each bucket, ``counts[i]`` in bucket ``i``."""
    bucket = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    return t0 + bucket * _BUCKET + rng.integers(0, _BUCKET, bucket.size)


def _categories(
    rng: np.random.Generator, market: _Market, mu: np.ndarray, bucket: np.ndarray
) -> np.ndarray:
    """Category codes per order; the TV share is a little higher in busy hours.

    It follows activity to the power :data:`_TV_LIFT`, normalised so that it averages the
    market's ``tv_share`` over its orders (~0.85x at night, ~1.13x at the evening peak).
    """
    lift = (mu / mu.mean()) ** _TV_LIFT
    tv = market.tv_share * lift / (np.sum(mu * lift) / np.sum(mu))
    other = 1 + rng.choice(len(_OTHER_MIX), bucket.size, p=_OTHER_MIX)
    return np.where(rng.random(bucket.size) < tv[bucket], 0, other)


def _prices(rng: np.random.Generator, category: np.ndarray, per_eur: float) -> np.ndarray:
    """Shop prices: lognormal per category, converted, as price points (649.99, 18.49)."""
    eur = np.empty(category.size)
    for code, name in enumerate(CATEGORIES):
        sel = category == code
        median, sigma = _PRICE[name]
        draw = median * np.exp(sigma * rng.standard_normal(int(sel.sum())))
        eur[sel] = np.clip(draw, *_PRICE_RANGE[name]) if name in _PRICE_RANGE else draw
    local = eur * per_eur
    big = np.round(local / 10.0) * 10.0 - 0.01
    small = np.round(local) - 0.01 * rng.choice([1, 5, 51], local.size)
    return np.round(np.where(local >= 50, big, np.maximum(small, 0.99)), 2)


def _orders(seed: int, t0: int, order_mu: dict[str, np.ndarray]) -> _Table:
    parts: list[tuple[np.ndarray, ...]] = []
    for code, market in enumerate(MARKETS):
        rng = _rng(seed, "orders", market.code)
        mu = order_mu[market.code]
        ts = _bucket_times(rng, t0, _neg_binomial(rng, mu, size=_ORDER_SIZE))
        category = _categories(rng, market, mu, (ts - t0) // _BUCKET)
        amount = _prices(rng, category, market.per_eur)
        parts.append((ts, np.full(ts.size, code), category, amount))
    ts, market, category, amount = (np.concatenate(c) for c in zip(*parts, strict=True))
    return _Table("order_placed", "shop-api", ts, {
        "market": market, "category": category, "amount": amount,
    })  # fmt: skip


def _drop_tvs(orders: _Table, tv: _Window) -> None:
    """The TV incident: no TV order in the market during the window."""
    market = [m.code for m in MARKETS].index(tv.target)
    is_tv = orders.attrs["category"] == CATEGORIES.index("tv")
    orders.keep(~(tv.covers(orders.ts) & is_tv & (orders.attrs["market"] == market)))


def _payments(seed: int, t0: int, n_buckets: int, orders: _Table, incident: _Window) -> _Table:
    """One attempt a few seconds before each order, plus a retry before ~10 % of them.

    The success probability wobbles slowly (an AR(1) on the logit, time constant 6 h) per
    provider; in the incident window it is ``incident.size`` lower for the provider hit.
    """
    rng = _rng(seed, "payments")
    n = orders.ts.size
    shares = np.asarray([m.providers for m in MARKETS])[orders.attrs["market"]]
    provider = (rng.random(n)[:, None] > np.cumsum(shares, axis=1)).sum(axis=1)
    first = orders.ts - rng.integers(1 * _S, 20 * _S, n)
    retry = rng.random(n) < _RETRY
    again = first[retry] - rng.integers(10 * _S, 90 * _S, int(retry.sum()))
    ts = np.concatenate([first, again])
    provider = np.concatenate([provider, provider[retry]])
    amount = np.concatenate([orders.attrs["amount"], orders.attrs["amount"][retry]])
    phi = np.exp(-5 / 360)
    noise = rng.normal(0.0, 0.05 * np.sqrt(1 - phi**2), (n_buckets + 1, len(PROVIDERS)))
    base = np.log(np.asarray(_SUCCESS) / (1 - np.asarray(_SUCCESS)))
    p_bucket = 1 / (1 + np.exp(-(base + lfilter([1.0], [1.0, -phi], noise, axis=0))))
    p = p_bucket[np.clip((ts - t0) // _BUCKET, 0, n_buckets), provider]
    p[incident.covers(ts) & (provider == PROVIDERS.index(incident.target))] -= incident.size
    status = (rng.random(ts.size) >= p).astype(np.int64)  # 0 success, 1 failed
    return _Table("payment_attempted", "payments", ts, {
        "provider": provider, "status": status, "amount": amount,
    })  # fmt: skip


def _fx(seed: int, t0: int, days: int, incident: _Window) -> _Table:
    """Quotes every ~60 s on UTC weekdays and every 20-55 min at weekends, per pair; the
    incident's pair sends nothing during its window."""
    parts: list[tuple[np.ndarray, ...]] = []
    for code, (pair, level) in enumerate(PAIRS.items()):
        rng = _rng(seed, "fx", pair)
        stamps = []
        for day in range(days):
            lo = t0 + day * _DAY
            if pd.Timestamp(lo, unit="ms", tz="UTC").day_of_week >= 5:
                steps = rng.integers(20 * _MIN, 55 * _MIN, 80)
            else:
                steps = np.round(rng.gamma(30.0, 2 * _S, 1600)).astype(np.int64)
            ts = lo + rng.integers(0, steps[0]) + np.cumsum(steps) - steps[0]
            stamps.append(ts[ts < lo + _DAY])
        ts = np.concatenate(stamps)
        minutes = np.diff(ts, prepend=ts[0] - _MIN) / _MIN
        walk = np.cumsum(rng.standard_normal(ts.size) * _FX_STEP_SD * np.sqrt(minutes))
        rate = np.round(level * np.exp(walk), 5)
        keep = ~incident.covers(ts) if pair == incident.target else np.ones(ts.size, bool)
        parts.append((ts[keep], np.full(int(keep.sum()), code), rate[keep]))
    ts, pair_code, rate = (np.concatenate(c) for c in zip(*parts, strict=True))
    return _Table("currency_rate_updated", "fx-feed", ts, {"pair": pair_code, "rate": rate})


def _tickets(seed: int, t0: int, ticket_mu: dict, incident: _Window) -> _Table:
    """Ticket sales; during the incident the show sells x``size``, all at 1 % of the price."""
    parts: list[tuple[np.ndarray, ...]] = []
    for code, show in enumerate(SHOWS):
        rng = _rng(seed, "tickets", show)
        mu = ticket_mu[show]
        ts = _bucket_times(rng, t0, _neg_binomial(rng, mu, size=_TICKET_SIZE))
        if show == incident.target:
            first = (incident.start - t0) // _BUCKET
            last = -(-(incident.stop - t0) // _BUCKET)
            extra = np.zeros(mu.size, np.int64)
            extra[first:last] = rng.poisson(mu[first:last] * (incident.size - 1))
            more = _bucket_times(rng, t0, extra)
            ts = np.concatenate([ts, more[incident.covers(more)]])
        prices = np.asarray(_TICKET_PRICES[show])
        price = prices[rng.choice(prices.size, ts.size, p=[0.2, 0.35, 0.3, 0.15])]
        if show == incident.target:
            bug = incident.covers(ts)
            price[bug] = np.round(price[bug] * 0.01, 2)
        parts.append((ts, np.full(ts.size, code), price))
    ts, show_code, price = (np.concatenate(c) for c in zip(*parts, strict=True))
    return _Table("ticket_sold", "box-office", ts, {"show": show_code, "price": price})


def _heartbeats(seed: int, t0: int, t1: int) -> list[_Table]:
    rng = _rng(seed, "heartbeats")
    tables = []
    for source in SOURCES.values():
        phase = int(rng.integers(0, _HEARTBEAT_EVERY))
        ts = np.arange(t0 + phase, t1, _HEARTBEAT_EVERY, dtype=np.int64)
        ts = ts + rng.integers(0, 250, ts.size)  # the app's timer is not exact
        tables.append(_Table("heartbeat", source, ts, {}))
    return tables


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------


def _stamp(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def _floor(ms: int) -> pd.Timestamp:
    return _stamp(ms - ms % _BUCKET)


def _ceil(ms: int) -> pd.Timestamp:
    return _stamp(-(-ms // _BUCKET) * _BUCKET)


def _duration(w: _Window) -> str:
    hours, mins = divmod((w.stop - w.start) // _MIN, 60)
    return f"{hours}h{mins:02d}" if hours else f"{mins}min"


def _revenue_drop(orders: _Table, tv: _Window) -> float:
    """Share of the market's revenue in the window that its TVs make (before they vanish)."""
    market = [m.code for m in MARKETS].index(tv.target)
    sel = tv.covers(orders.ts) & (orders.attrs["market"] == market)
    amount = orders.attrs["amount"][sel]
    is_tv = orders.attrs["category"][sel] == CATEGORIES.index("tv")
    return float(amount[is_tv].sum() / max(amount.sum(), 1e-9))


def _labels(plan: _Plan, revenue_drop: float) -> Labels:
    """Incidents and gaps named as the pipeline names series; revenue only if >= 30 % down."""
    t, tv, fx, pay, gap = plan.tickets, plan.tv, plan.fx, plan.payment, plan.gap
    incidents = [
        Incident(
            f"ticket_sales{{show={t.target}}}", _floor(t.start), _ceil(t.stop), "spike",
            f"{t.target} sells x{t.size:.0f} tickets for {_duration(t)}: "
            "a bank charges customers 1% of the price",
        ),
        Incident(
            f"tv_orders{{market={tv.target}}}", _floor(tv.start), _ceil(tv.stop), "dip",
            f"no TV orders in {tv.target} for {_duration(tv)}: the TV listings are broken",
        ),
        Incident(
            f"fx_update_age{{pair={fx.target}}}", _floor(fx.start + 15 * _MIN), _ceil(fx.stop),
            "stale", f"{fx.target} stops updating for {_duration(fx)}: the rate feed is stuck",
        ),
        Incident(
            f"fx_change_age{{pair={fx.target}}}", _floor(fx.start + _HOUR), _ceil(fx.stop),
            "stale", f"{fx.target} stops changing for {_duration(fx)}: the rate feed is stuck",
        ),
        Incident(
            f"payment_success_rate{{provider={pay.target}}}", _floor(pay.start),
            _ceil(pay.stop), "dip",
            f"{pay.target} success rate -{pay.size * 100:.0f} points for {_duration(pay)}: "
            "an issuer declines cards",
        ),
    ]  # fmt: skip
    if revenue_drop >= 0.30:
        incidents.append(
            Incident(
                f"revenue{{market={tv.target}}}", _floor(tv.start), _ceil(tv.stop), "dip",
                f"revenue in {tv.target} -{revenue_drop:.0%} for {_duration(tv)}: "
                "TVs stop selling",
            )
        )  # fmt: skip
    gaps = [
        Gap(f"{metric}{{market={m.code}}}", _floor(gap.start), _ceil(gap.stop))
        for metric in ("orders", "revenue", "tv_orders")
        for m in MARKETS
    ]
    return Labels(
        tuple(sorted(incidents, key=lambda i: (i.start, i.series))),
        tuple(sorted(gaps, key=lambda g: g.series)),
    )


# --------------------------------------------------------------------------------------------
# Dicts and the stream
# --------------------------------------------------------------------------------------------


def _iso_ms(ms: np.ndarray) -> list[str]:
    """ISO 8601 UTC with milliseconds and ``Z``, vectorised."""
    text = np.datetime_as_string(np.asarray(ms, dtype=np.int64).astype("M8[ms]"), unit="ms")
    return [t + "Z" for t in text.tolist()]


def _event_ids(seed: int, first: int, n: int) -> list[str]:
    """Unique, random-looking ids: splitmix64 (a bijection) of (seed, position in the pool)."""
    x = (np.uint64(seed % 2**31) << np.uint64(32)) + np.arange(first, first + n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    text = x.byteswap().tobytes().hex()  # big-endian hex, 16 digits per id
    return ["evt_" + text[k : k + 16] for k in range(0, len(text), 16)]


def _names(codes: np.ndarray, names: Iterable[str]) -> list[str]:
    return np.asarray(list(names), dtype=object)[codes].tolist()


def _records(table: _Table, ids: list[str]) -> list[dict]:
    """The table's events as dicts (a literal per type: twice as fast as ``dict(zip())``)."""
    ts, src, a = _iso_ms(table.ts), table.source, table.attrs
    if table.type == "order_placed":
        market = a["market"]
        return [
            {"event_id": i, "type": "order_placed", "ts": t, "source": src, "market": m,
             "category": c, "amount": x, "currency": cur}
            for i, t, m, c, x, cur in zip(
                ids, ts, _names(market, _MARKET_CODES), _names(a["category"], CATEGORIES),
                a["amount"].tolist(), _names(market, _CURRENCIES), strict=True,
            )
        ]  # fmt: skip
    if table.type == "payment_attempted":
        return [
            {"event_id": i, "type": "payment_attempted", "ts": t, "source": src,
             "provider": p, "status": s, "amount": x}
            for i, t, p, s, x in zip(
                ids, ts, _names(a["provider"], PROVIDERS), _names(a["status"], _STATUSES),
                a["amount"].tolist(), strict=True,
            )
        ]  # fmt: skip
    if table.type == "currency_rate_updated":
        return [
            {"event_id": i, "type": "currency_rate_updated", "ts": t, "source": src,
             "pair": p, "rate": r}
            for i, t, p, r in zip(ids, ts, _names(a["pair"], PAIRS), a["rate"].tolist(),
                                  strict=True)
        ]  # fmt: skip
    if table.type == "ticket_sold":
        return [
            {"event_id": i, "type": "ticket_sold", "ts": t, "source": src, "show": s,
             "price": x}
            for i, t, s, x in zip(ids, ts, _names(a["show"], SHOWS), a["price"].tolist(),
                                  strict=True)
        ]  # fmt: skip
    return [
        {"event_id": i, "type": table.type, "ts": t, "source": src}
        for i, t in zip(ids, ts, strict=True)
    ]


def _malformed(ts: np.ndarray, ids: list[str]) -> list[dict | str]:
    """One event per recipe, each something a validator must reject (with a reason)."""
    out: list[dict | str] = []
    for k, (i, s) in enumerate(zip(ids, _iso_ms(ts), strict=True)):
        order = {
            "event_id": i,
            "type": "order_placed",
            "ts": s,
            "source": "shop-api",
            "market": "DE",
            "category": "phone",
            "amount": 119.99,
            "currency": "EUR",
        }
        pay = {
            "event_id": i,
            "type": "payment_attempted",
            "ts": s,
            "source": "payments",
            "provider": "stripe",
            "status": "success",
            "amount": 59.99,
        }
        ticket = {
            "event_id": i,
            "type": "ticket_sold",
            "ts": s,
            "source": "box-office",
            "show": "cats",
            "price": 59.5,
        }
        fx = {"event_id": i, "type": "currency_rate_updated", "ts": s, "source": "fx-feed",
              "pair": "EURUSD", "rate": 1.0851}  # fmt: skip

        def without(event: dict, key: str) -> dict:
            return {k: v for k, v in event.items() if k != key}

        recipes: list[dict | str] = [
            # a required field is missing
            without(order, "market"), without(order, "category"), without(pay, "status"),
            without(ticket, "price"), without(fx, "rate"),
            # a field has the wrong type
            {**order, "amount": "12,5"}, {**ticket, "price": "49,00"},
            {**fx, "rate": "1,0842"}, {**order, "market": 49}, {**pay, "amount": "59.99 EUR"},
            # below the minimum
            {**order, "amount": -19.99}, {**pay, "amount": -5.0}, {**ticket, "price": -45.0},
            {**fx, "rate": -1.0851},
            # outside the allowed values
            {**pay, "status": "maybe"}, {**pay, "status": "maybe", "provider": "adyen"},
            {**pay, "status": "MAYBE"}, {**pay, "status": "maybe", "provider": "paypal"},
            # an event type nobody declared
            {**order, "type": "order_cancelled_v0"},
            {**order, "type": "order_cancelled_v0", "market": "FR"},
            {**order, "type": "order_cancelled_v0", "market": "US"},
            {**order, "type": "order_cancelled_v0", "market": "UK"},
            # a timestamp nobody can read
            {**order, "ts": "2026-13-45T25:61:00Z"}, {**pay, "ts": "yesterday"},
            {**ticket, "ts": "16/01/2026 19:30"},
            # no event id
            without(order, "event_id"), without(pay, "event_id"), without(ticket, "event_id"),
            # not JSON at all: a truncated line, a CSV line
            orjson.dumps(order).decode()[:57], f"order_placed,{s},DE,tv,649.99,EUR",
        ]  # fmt: skip
        out.append(recipes[k % len(recipes)])
    return out


def _pick(rng: np.random.Generator, allowed: np.ndarray, n: int) -> np.ndarray:
    """``n`` distinct positions among the ``allowed`` rows, sorted."""
    candidates = np.flatnonzero(allowed)
    return np.sort(rng.choice(candidates, size=min(n, candidates.size), replace=False))


def _assemble(
    seed: int, tables: list[_Table], plan: _Plan, labels: Labels, t0: int, t1: int
) -> ShopEvents:
    """Dicts in stream order: delivery jitter, plus late, duplicate and malformed events."""
    rng = _rng(seed, "stream")
    ts = np.concatenate([t.ts for t in tables])
    kind = np.concatenate([np.full(t.ts.size, t.type, dtype=object) for t in tables])
    # Delivery takes a few seconds, never more than 20 s: windows are not disturbed.
    arrival = ts + np.minimum(rng.exponential(3 * _S, ts.size).astype(np.int64), 20 * _S)
    records: list[dict | str] = []
    for table in tables:
        records += _records(table, _event_ids(seed, len(records), table.ts.size))

    # Nothing may arrive from or about the ingestion gap: its events are missing.
    gap = plan.gap
    clear = (ts < gap.start - 4 * _HOUR) | (ts >= gap.stop + 10 * _MIN)
    clear &= (ts >= t0 + _HOUR) & (ts < t1 - 4 * _HOUR)
    sales = np.isin(kind, ["order_placed", "payment_attempted", "ticket_sold"])
    late = _pick(rng, sales & clear, N_LATE)
    arrival[late] = ts[late] + rng.integers(30 * _MIN, 180 * _MIN, late.size)

    allowed = (kind != "heartbeat") & clear
    allowed[late] = False
    dup = _pick(rng, allowed, N_DUPLICATES)
    duplicates: list[dict | str] = [dict(records[i]) for i in dup]  # type: ignore[arg-type]
    dup_arrival = arrival[dup] + rng.integers(500, 60 * _S, dup.size)

    bad_ts = rng.integers(t0 + _HOUR, t1 - _HOUR, 4 * N_MALFORMED)
    bad_ts = bad_ts[(bad_ts < gap.start - 10 * _MIN) | (bad_ts >= gap.stop + 10 * _MIN)]
    bad_ts = rng.choice(bad_ts, N_MALFORMED, replace=False)
    malformed = _malformed(bad_ts, _event_ids(seed, len(records) + dup.size, N_MALFORMED))
    bad_arrival = bad_ts + rng.integers(0, 5 * _S, N_MALFORMED)

    pool = records + duplicates + malformed
    order = np.argsort(np.concatenate([arrival, dup_arrival, bad_arrival]), kind="stable")
    first = _stamp(t0)
    return ShopEvents(
        events=[pool[i] for i in order.tolist()],
        labels=labels,
        start=first,
        end=_stamp(t1),
        warmup_end=first + pd.Timedelta(days=_WARMUP_DAYS),
        n_malformed=len(malformed),
        n_duplicates=len(duplicates),
        n_late=int(late.size),
    )


def make_shop_events(seed: int = 0, weeks: int = 3, start: str = "2026-01-05") -> ShopEvents:
    """Generate the shop's event stream and its labels; see the module docstring.

    Timestamps and attributes are drawn as numpy arrays; only the final dicts are built one
    by one, which is most of the few seconds three weeks take.
    """
    if not isinstance(weeks, int) or isinstance(weeks, bool) or weeks < 2:
        raise ConfigError(
            "The 'weeks' parameter of make_shop_events must be an int >= 2 (a week of warm-up, "
            f"incidents from day 10 on). Got {weeks!r} instead."
        )
    first = to_utc(start, what="start").floor("5min")
    index = pd.date_range(first, periods=weeks * 7 * 288, freq="5min")
    t0 = int(first.value // 10**6)
    t1 = t0 + weeks * 7 * _DAY
    order_mu = {m.code: _order_mu(m, index, seed) for m in MARKETS}
    ticket_mu = {s: _ticket_mu(s, index) for s in SHOWS}
    plan = _plan(seed, t0, t1, order_mu, ticket_mu)

    orders = _orders(seed, t0, order_mu)
    labels = _labels(plan, _revenue_drop(orders, plan.tv))
    _drop_tvs(orders, plan.tv)
    tables = [
        orders,
        _payments(seed, t0, len(index), orders, plan.payment),
        _fx(seed, t0, weeks * 7, plan.fx),
        _tickets(seed, t0, ticket_mu, plan.tickets),
        *_heartbeats(seed, t0, t1),
    ]
    for table in tables:
        if table.source == "shop-api":
            table.keep(~plan.gap.covers(table.ts))
        table.keep((table.ts >= t0) & (table.ts < t1))
        table.keep(np.argsort(table.ts, kind="stable"))
    return _assemble(seed, tables, plan, labels, t0, t1)


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def write_events(events: Iterable[dict | str], path: str | Path) -> int:
    """Write events as JSON lines (gzip when the name ends in ``.gz``); return the line count.

    Raw strings are written as they are: they are the malformed lines a real topic carries.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "events.jsonl.gz")
    >>> write_events([{"event_id": "a", "type": "heartbeat"}, "not json"], path)
    2
    >>> gzip.open(path, "rt").read().splitlines()
    ['{"event_id":"a","type":"heartbeat"}', 'not json']
    """
    target = Path(path)
    gz = target.suffix == ".gz"
    n = 0
    with gzip.open(target, "wb", compresslevel=5) if gz else target.open("wb") as out:
        chunk: list[bytes] = []
        for event in events:
            chunk.append(event.encode() if isinstance(event, str) else orjson.dumps(event))
            if len(chunk) == 50_000:
                out.write(b"\n".join(chunk) + b"\n")
                n += len(chunk)
                chunk = []
        if chunk:
            out.write(b"\n".join(chunk) + b"\n")
            n += len(chunk)
    return n
