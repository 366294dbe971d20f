"""A labelled generator of 5-minute shop metrics with injected incidents.

Why synthetic: the detector's quality target (recall >= 0.9 of incidents with <= 0.2 false
alerts per series-week, causal mode) needs data whose incidents are *known*. Real labels are
scarce, private and incomplete, so we generate metrics that look like a real shop's and inject
incidents of realistic size ourselves. Realistic means: daily shape in each market's *local*
time, weekly shape, overdispersed counts, heavy-tailed order amounts, slow trends, quiet nights
with tiny counts, and incidents that a good detector should catch but that are not trivially
huge.

Series (names as in production):

- ``orders.<market>``: orders per bucket, negative-binomial counts (``count``);
- ``revenue.<market>``: sum of the lognormal amounts of those very orders, in EUR (``sum``);
- ``payment_success_rate.<provider>``: successes / attempts, with ``denominator`` = attempts
  (``ratio``); a bucket with no attempt has no rate and therefore no row;
- ``fx.<pair>``: a currency rate, a random walk updated every bucket and judged by its changes
  (``level``);
- ``tickets.<show>``: sparse ticket sales, mostly 0-3 per bucket (``count``).

Conventions the evaluation relies on:

- missing data is an *absent row*, never a 0; ingestion gaps (:class:`Gap`) remove rows and are
  **not** incidents: a detector must not alert on them;
- an :class:`Incident` covers the half-open interval ``[start, end)``: ``end`` is exclusive, the
  last affected bucket is ``end - freq``;
- incidents start at or after :attr:`ShopMetrics.warmup_end` (two weeks in, or half the data if
  shorter) so that a causal detector has history before the first one;
- the same ``seed`` gives the same data, incidents and gaps. Each series, the incident plan and
  the gaps draw from their own random stream, so ``incidents=False`` gives exactly the same
  data outside the incident windows (and after a level shift), which makes clean/dirty
  comparisons easy.

Injected incidents per seed, sized to be visible to a good detector but not trivially huge
(thresholds are expected values per 5 minutes at the incident's time; at most one level shift
per series; incidents on one series at least 12 h apart):

- 2 level shifts (``level_shift``): a market's orders x(1 +- 0.3..0.5) for good, on >= 20
  orders; the label covers the first 2 hours only, later alerts count as false;
- 2 drops to zero (``dip``): a market's orders are 0 for 1-6 h, on >= 8 orders;
- 2 partial drops (``dip``): -30..-60 % for 1-3 h, on >= 20 orders;
- 3 ticket explosions (``spike``): x10..50 for 30-120 min (>= 5 tickets expected in a bucket);
- 2 success-rate dips (``dip``): -5..-20 points for 30-120 min, with >= 40 attempts and at
  least 3 standard errors of one bucket's rate;
- 2 stale rates (``stale``): a currency rate repeats its value for 2-24 h, then jumps back to
  the live rate;
- 1 variance burst (``variance``): a rate's quotes are 8-15x noisier for 1-3 h.

Gaps: three single-series gaps (one during the warm-up) and one gap of all series, 30-120 min
each, at least 12 h away from incidents of the series they hit.

A market incident (a drop or a level shift of its orders) moves its revenue too, because
revenue is the sum of the orders' amounts; it is therefore labelled on both ``orders.<m>`` and
``revenue.<m>`` (two :class:`Incident` rows with the same window). Payment attempts follow the
shop's seasonality without the market incidents (a provider's *rate* is what is judged).

>>> shop = make_shop_metrics(seed=7, weeks=3)
>>> list(shop.data.columns)
['timestamp', 'series', 'value', 'denominator']
>>> shop.data["series"].nunique(), sorted({i.kind for i in shop.incidents})
(23, ['dip', 'level_shift', 'spike', 'stale', 'variance'])
>>> all(i.start >= shop.warmup_end for i in shop.incidents)
True
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.signal import lfilter

from detector.errors import ConfigError, InputError

#: Kinds an injected incident can have (a subset of :data:`detector.types.KINDS`).
INCIDENT_KINDS: tuple[str, ...] = ("spike", "dip", "level_shift", "stale", "variance")

_BASE_STEP = pd.Timedelta("5min")
_MINUTE = pd.Timedelta("1min")
_DAY = pd.Timedelta("1D")
_WEEK = pd.Timedelta("7D")
_NS_PER_DAY = 86_400 * 10**9


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------


def to_utc(value: object, *, what: str = "timestamp") -> pd.Timestamp:
    """Parse a timestamp as UTC (naive means UTC, like the input files); InputError if invalid.

    >>> to_utc("2026-01-20T14:05:00Z")
    Timestamp('2026-01-20 14:05:00+0000', tz='UTC')
    >>> to_utc("2026-01-20 15:05+01:00")
    Timestamp('2026-01-20 14:05:00+0000', tz='UTC')
    """
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise InputError(f"cannot read {value!r} as a timestamp", column=what) from exc
    if ts is pd.NaT:
        raise InputError("a timestamp is required, got an empty value", column=what)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.as_unit("ns")


@dataclass(frozen=True)
class Incident:
    """One labelled incident on one series, over ``[start, end)`` (``end`` exclusive).

    Timestamps are normalised to tz-aware UTC, so strings are accepted:

    >>> Incident("orders.DE", "2026-01-20T14:05Z", "2026-01-20T15:05Z", "dip").end
    Timestamp('2026-01-20 15:05:00+0000', tz='UTC')
    """

    series: str
    start: pd.Timestamp
    end: pd.Timestamp
    kind: str
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", to_utc(self.start, what="start"))
        object.__setattr__(self, "end", to_utc(self.end, what="end"))
        if not self.series:
            raise InputError("an incident needs a series name", column="series")
        if self.kind not in INCIDENT_KINDS:
            raise InputError(
                f"unknown incident kind {self.kind!r}; use one of {', '.join(INCIDENT_KINDS)}",
                column="kind",
            )
        if self.end <= self.start:
            raise InputError(
                f"incident on {self.series!r} ends ({self.end}) before it starts ({self.start})",
                column="end",
            )


@dataclass(frozen=True)
class Gap:
    """Rows absent for ``[start, end)`` in one series, or in all (``series == "*"``).

    Ingestion gaps are not incidents: the metric did not change, the data did not arrive.

    >>> Gap("*", "2026-01-21T03:00Z", "2026-01-21T04:00Z").start.hour
    3
    """

    series: str
    start: pd.Timestamp
    end: pd.Timestamp

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", to_utc(self.start, what="start"))
        object.__setattr__(self, "end", to_utc(self.end, what="end"))
        if not self.series:
            raise InputError("a gap needs a series name or '*'", column="series")
        if self.end <= self.start:
            raise InputError(f"gap on {self.series!r} ends before it starts", column="end")

    def covers(self, series: str) -> bool:
        """Whether the gap applies to ``series`` (``"*"`` applies to all)."""
        return self.series in ("*", series)


@dataclass(frozen=True)
class ShopMetrics:
    """Generated metrics with their ground truth.

    ``data`` is long: ``timestamp`` (datetime64[ns, UTC]), ``series`` (str), ``value`` (float)
    and ``denominator`` (float; attempts for ratio series, NaN elsewhere). ``series_kinds`` maps
    each series to ``count``, ``sum``, ``ratio`` or ``level`` (fx rates: judge their changes).
    ``end`` is exclusive (the last bucket is ``end - freq``).
    """

    data: pd.DataFrame
    incidents: list[Incident]
    gaps: list[Gap]
    series_kinds: dict[str, str]
    freq: pd.Timedelta
    start: pd.Timestamp
    end: pd.Timestamp
    warmup_end: pd.Timestamp
    seed: int


# --------------------------------------------------------------------------------------------
# Catalogues: what the shop looks like
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Market:
    """A sales market: mean orders per 5 minutes over a week, mean order amount (EUR)."""

    code: str
    tz: str
    orders: float
    amount: float
    saturday: float
    sunday: float


@dataclass(frozen=True)
class Provider:
    """A payment provider: share of payment attempts and typical success rate."""

    name: str
    share: float
    rate: float


@dataclass(frozen=True)
class Pair:
    """A currency pair: starting rate and the number of decimals it is quoted with."""

    name: str
    level: float
    decimals: int


@dataclass(frozen=True)
class Show:
    """A show selling tickets: mean tickets per 5 minutes, venue time zone."""

    name: str
    tz: str
    tickets: float


MARKETS: tuple[Market, ...] = (
    Market("US", "America/New_York", 150.0, 72.0, 1.00, 1.10),
    Market("DE", "Europe/Berlin", 90.0, 61.0, 0.90, 1.15),
    Market("GB", "Europe/London", 55.0, 58.0, 0.95, 1.10),
    Market("JP", "Asia/Tokyo", 30.0, 48.0, 1.10, 1.05),
    Market("BR", "America/Sao_Paulo", 10.0, 30.0, 0.85, 0.95),
    Market("AU", "Australia/Sydney", 3.0, 66.0, 0.90, 1.00),
    Market("FR", "Europe/Paris", 40.0, 57.0, 0.90, 1.10),
    Market("IN", "Asia/Kolkata", 18.0, 14.0, 1.05, 1.15),
)
PROVIDERS: tuple[Provider, ...] = (
    Provider("adyen", 0.42, 0.962),
    Provider("stripe", 0.30, 0.955),
    Provider("paypal", 0.18, 0.935),
    Provider("klarna", 0.10, 0.915),
    Provider("worldpay", 0.07, 0.945),
)
PAIRS: tuple[Pair, ...] = (
    Pair("EURUSD", 1.0850, 5),
    Pair("GBPUSD", 1.2700, 5),
    Pair("USDJPY", 148.20, 3),
    Pair("EURCHF", 0.9400, 5),
    Pair("AUDUSD", 0.6600, 5),
)
SHOWS: tuple[Show, ...] = (
    Show("show_12", "Europe/Berlin", 0.35),
    Show("show_7", "Europe/London", 0.50),
    Show("show_31", "America/New_York", 0.30),
    Show("show_4", "Asia/Tokyo", 0.25),
)

# Daily activity in local time: (peak hour, width in hours, height) bumps on a night floor.
_WEEKDAY_BUMPS = ((9.5, 1.5, 0.45), (12.75, 1.3, 0.9), (16.0, 2.5, 0.5), (20.75, 1.8, 1.2))
_WEEKEND_BUMPS = ((11.0, 2.0, 0.5), (13.5, 1.8, 0.7), (16.5, 2.5, 0.6), (20.5, 2.0, 1.4))
_NIGHT_FLOOR = 0.10
# Monday..Friday volume relative to the weekday mean (weekend factors are per market).
_WEEKDAY_FACTORS = (1.05, 1.0, 1.0, 0.97, 0.92)


def _bumps(hour: np.ndarray, bumps: Sequence[tuple[float, float, float]]) -> np.ndarray:
    out = np.full(np.shape(hour), _NIGHT_FLOOR)
    for peak, width, height in bumps:
        d = (np.asarray(hour) - peak + 12.0) % 24.0 - 12.0  # circular: 23:30 is near 00:30
        out = out + height * np.exp(-0.5 * (d / width) ** 2)
    return out


def _profile_mean(bumps: Sequence[tuple[float, float, float]]) -> float:
    return float(_bumps(np.arange(0.0, 24.0, 1 / 60), bumps).mean())


_WEEKDAY_MEAN = _profile_mean(_WEEKDAY_BUMPS)
_WEEKEND_MEAN = _profile_mean(_WEEKEND_BUMPS)


def daily_shape(hour: np.ndarray, weekend: np.ndarray) -> np.ndarray:
    """Relative activity at a local hour (0-24, fractional), mean 1 over a day.

    Low at night, a lunchtime and a larger evening peak; weekends start later.

    >>> s = daily_shape(np.array([4.0, 12.75, 20.75]), np.array([False] * 3))
    >>> bool(s[0] < 0.2 < 1 < s[1] < s[2])
    True
    """
    weekday = _bumps(hour, _WEEKDAY_BUMPS) / _WEEKDAY_MEAN
    weekend_shape = _bumps(hour, _WEEKEND_BUMPS) / _WEEKEND_MEAN
    return np.where(weekend, weekend_shape, weekday)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _rng(seed: int, *key: object) -> np.random.Generator:
    """An independent random stream per (seed, key), stable across catalogue sizes."""
    words = [zlib.crc32(str(k).encode()) for k in key]
    return np.random.default_rng([int(seed), *words])


def _parse_freq(freq: str | pd.Timedelta) -> pd.Timedelta:
    try:
        delta = pd.Timedelta(freq)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"freq must be a duration like '5min', got {freq!r}") from exc
    if delta <= pd.Timedelta(0) or delta > pd.Timedelta("1h"):
        raise ConfigError(f"freq must be between 1ns and 1h, got {freq!r}")
    return delta


def _check_count(name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer from {low} to {high}, got {value!r}")


def _grid(start: object, weeks: int, freq: pd.Timedelta) -> pd.DatetimeIndex:
    first = to_utc(start, what="start")
    periods = int(weeks * _WEEK / freq)
    return pd.date_range(first, periods=periods, freq=freq).as_unit("ns")


@dataclass(frozen=True)
class _LocalTime:
    hour: np.ndarray  # fractional local hour
    dow: np.ndarray  # 0 = Monday
    day: np.ndarray  # fractional local days since the epoch (for day-level noise)


def _local_time(index: pd.DatetimeIndex, tz: str) -> _LocalTime:
    local = index.tz_convert(tz)
    naive = local.tz_localize(None).as_unit("ns").asi8
    hour = local.hour.to_numpy() + local.minute.to_numpy() / 60.0
    return _LocalTime(hour, local.day_of_week.to_numpy(), naive / _NS_PER_DAY)


def _week_factor(dow: np.ndarray, saturday: float, sunday: float) -> np.ndarray:
    return np.asarray((*_WEEKDAY_FACTORS, saturday, sunday))[dow]


def _day_noise(rng: np.random.Generator, day: np.ndarray, sd: float) -> np.ndarray:
    """A smooth day-to-day level wobble (weather, news): lognormal per local day, interpolated."""
    first, last = int(np.floor(day[0])) - 1, int(np.ceil(day[-1])) + 1
    anchors = np.arange(first, last + 1) + 0.5
    levels = rng.lognormal(0.0, sd, anchors.size)
    return np.interp(day, anchors, levels)


def _neg_binomial(rng: np.random.Generator, mu: np.ndarray, size: float) -> np.ndarray:
    """Counts with mean ``mu`` and variance ``mu + mu**2 / size`` (gamma-Poisson mixture)."""
    lam = mu * rng.gamma(size, 1.0 / size, mu.shape)
    return rng.poisson(lam).astype(np.int64)


def _fmt_minutes(minutes: float) -> str:
    hours, mins = divmod(round(minutes), 60)
    return f"{hours}h{mins:02d}" if hours else f"{mins}min"


# --------------------------------------------------------------------------------------------
# Base series (no incidents)
# --------------------------------------------------------------------------------------------


@dataclass
class _Work:
    """A series being built: ``mu`` is the expected level used to place incidents."""

    name: str
    kind: str
    value: np.ndarray
    mu: np.ndarray
    denominator: np.ndarray | None = None
    extra: dict[str, object] | None = None


def _market_mu(
    market: Market, index: pd.DatetimeIndex, scale: float, rng: np.random.Generator
) -> np.ndarray:
    lt = _local_time(index, market.tz)
    shift = rng.uniform(-0.5, 0.5)  # each market's peaks sit a little differently
    shape = daily_shape(lt.hour - shift, lt.dow >= 5)
    weeks = (index.asi8 - index.asi8[0]) / (7 * _NS_PER_DAY)
    trend = np.exp(rng.normal(0.01, 0.015) * weeks)
    level = _week_factor(lt.dow, market.saturday, market.sunday) * trend
    return market.orders * scale * shape * level * _day_noise(rng, lt.day, 0.04)


def _orders(market: Market, index: pd.DatetimeIndex, scale: float, seed: int) -> _Work:
    rng = _rng(seed, "orders", market.code)
    mu = _market_mu(market, index, scale, rng)
    counts = _neg_binomial(rng, mu, size=60.0)
    extra = {"base": counts, "mu0": mu}
    return _Work(f"orders.{market.code}", "count", counts.astype(float), mu.copy(), extra=extra)


def _revenue(
    market: Market, base: np.ndarray, final: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Revenue = sum of lognormal amounts of the orders actually placed, in EUR (cents).

    Amounts are drawn for the *base* orders from one stream and for extra orders (spikes,
    upward shifts) from another, so dropping orders keeps every other bucket's revenue.
    """
    sigma = 0.9
    mu_log = np.log(market.amount) - sigma**2 / 2
    rng = _rng(seed, "revenue", market.code)
    amounts = rng.lognormal(mu_log, sigma, int(base.sum()))
    bucket = np.repeat(np.arange(base.size), base)
    position = np.arange(bucket.size) - np.repeat(np.cumsum(base) - base, base)
    keep = position < final[bucket]
    revenue = np.bincount(bucket[keep], weights=amounts[keep], minlength=base.size)
    extra = np.maximum(final - base, 0)
    if extra.any():
        more = _rng(seed, "revenue-extra", market.code).lognormal(mu_log, sigma, int(extra.sum()))
        revenue += np.bincount(np.repeat(np.arange(base.size), extra), more, minlength=base.size)
    mean_amount = np.exp(mu_log + sigma**2 / 2)
    return np.round(revenue, 2), np.asarray(final, float) * mean_amount


def _payment(provider: Provider, index: pd.DatetimeIndex, shop_mu: np.ndarray, seed: int) -> _Work:
    rng = _rng(seed, "payment", provider.name)
    attempts_mu = shop_mu * 1.08 * provider.share  # some orders need a retry
    attempts = _neg_binomial(rng, attempts_mu, size=40.0)
    steps = len(index)
    phi = np.exp(-(index[1] - index[0]) / pd.Timedelta("6h")) if steps > 1 else 0.0
    wobble = lfilter([1.0], [1.0, -phi], rng.normal(0.0, 0.12 * np.sqrt(1 - phi**2), steps))
    logit = np.log(provider.rate / (1 - provider.rate)) + wobble + rng.normal(0, 0.05, steps)
    p = 1.0 / (1.0 + np.exp(-logit))
    successes = rng.binomial(attempts, p)
    extra = {"attempts": attempts, "successes": successes, "p": p}
    return _Work(
        f"payment_success_rate.{provider.name}", "ratio", np.zeros(steps), attempts_mu, extra=extra
    )


def _fx(pair: Pair, index: pd.DatetimeIndex, scale: float, seed: int) -> _Work:
    """A log random walk with fat-tailed steps, busier in London/New York hours."""
    rng = _rng(seed, "fx", pair.name)
    hour = index.hour.to_numpy() + index.minute.to_numpy() / 60.0
    vol = 0.6 + 0.8 * np.exp(-0.5 * ((hour - 13.0) / 4.0) ** 2)
    sd = 2.5e-4 * np.sqrt(scale)
    steps = rng.standard_t(6, len(index)) / np.sqrt(1.5) * sd * vol
    steps[0] = 0.0
    level = pair.level * np.exp(np.cumsum(steps))
    extra = {"sd": sd}
    return _Work(f"fx.{pair.name}", "level", np.round(level, pair.decimals), level, extra=extra)


def _tickets(show: Show, index: pd.DatetimeIndex, scale: float, seed: int) -> _Work:
    rng = _rng(seed, "tickets", show.name)
    lt = _local_time(index, show.tz)
    weeks = (index.asi8 - index.asi8[0]) / (7 * _NS_PER_DAY)
    trend = np.exp(rng.uniform(0.03, 0.12) * weeks)  # sales pick up as the show approaches
    mu = show.tickets * scale * daily_shape(lt.hour, lt.dow >= 5) * trend
    counts = _neg_binomial(rng, mu, size=2.0)  # tickets come in small groups
    return _Work(f"tickets.{show.name}", "count", counts.astype(float), mu)


# --------------------------------------------------------------------------------------------
# Incidents: plan (where, when, how big) then apply
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Recipe:
    name: str
    kind: str
    family: str  # orders / payment / fx / tickets
    count: int
    minutes: tuple[int, int]


_RECIPES: tuple[_Recipe, ...] = (
    _Recipe("level_shift", "level_shift", "orders", 2, (120, 120)),
    _Recipe("drop_to_zero", "dip", "orders", 2, (60, 360)),
    _Recipe("partial_drop", "dip", "orders", 2, (60, 180)),
    _Recipe("spike", "spike", "tickets", 3, (30, 120)),
    _Recipe("rate_dip", "dip", "payment", 2, (30, 120)),
    _Recipe("stale", "stale", "fx", 2, (120, 1440)),
    _Recipe("variance", "variance", "fx", 1, (60, 180)),
)
_MIN_SEPARATION = pd.Timedelta("12h")  # between two incidents (or a gap) on the same series


@dataclass(frozen=True)
class _Planned:
    recipe: _Recipe
    target: str  # the series (for market events: the orders series)
    start: int  # bucket index, inclusive
    stop: int  # bucket index, exclusive
    size: float  # multiplier, drop fraction, points, ... depending on the recipe
    description: str


def _busy(planned: list[_Planned], series: str, start: int, stop: int, margin: int) -> bool:
    return any(
        p.target == series and start < p.stop + margin and p.start < stop + margin for p in planned
    )


def _try_place(
    recipe: _Recipe,
    work: dict[str, _Work],
    planned: list[_Planned],
    rng: np.random.Generator,
    bounds: tuple[int, int],
    freq: pd.Timedelta,
) -> _Planned | None:
    """Draw targets, times and sizes until an eligible one is found (or give up).

    The first half of the attempts only considers series without an incident yet, to spread
    incidents over series; a series never gets two level shifts (they would compound).
    """
    family = [w for w in work.values() if w.name.startswith(f"{recipe.family}.")]
    if recipe.family == "payment":
        family = [w for w in work.values() if w.kind == "ratio"]
    used = {p.target for p in planned}
    shifted = {p.target for p in planned if p.recipe.name == "level_shift"}
    if recipe.name == "level_shift":
        family = [w for w in family if w.name not in shifted]
    fresh = [w for w in family if w.name not in used]
    margin = int(_MIN_SEPARATION / freq)
    first, last = bounds
    for attempt in range(400):
        candidates = fresh if fresh and attempt < 200 else family
        if not candidates:
            return None
        target = candidates[rng.integers(len(candidates))]
        lo, hi = recipe.minutes
        minutes = float(rng.uniform(lo, hi))
        length = max(1, round(pd.Timedelta(minutes=minutes) / freq))
        if last - length <= first:
            return None
        start = int(rng.integers(first, last - length))
        stop = start + length
        if _busy(planned, target.name, start, stop, margin):
            continue
        text = _fmt_minutes(length * freq / _MINUTE)
        found = _size(recipe, target, start, stop, rng, text, freq / _BASE_STEP)
        if found is None:
            continue
        size, text = found
        return _Planned(recipe, target.name, start, stop, size, text)
    return None


def _size(
    recipe: _Recipe,
    target: _Work,
    start: int,
    stop: int,
    rng: np.random.Generator,
    minutes: str,
    scale: float,
) -> tuple[float, str] | None:
    """Pick the incident's size; None if the target is too small there to make it visible.

    Size thresholds are per 5 minutes (``scale`` = bucket / 5 minutes), whatever the bucket.
    """
    mu = float(np.mean(target.mu[start:stop])) / scale
    market = target.name.split(".", 1)[1]
    if recipe.name == "level_shift":
        if mu < 20:
            return None
        size = float(rng.uniform(0.3, 0.5)) * (1 if rng.random() < 0.5 else -1)
        why = "a marketing campaign starts" if size > 0 else "a large reseller stops selling"
        return 1 + size, f"orders in {market} {size:+.0%} from here on: {why}"
    if recipe.name == "drop_to_zero":
        if mu < 8:
            return None
        return 0.0, f"orders in {market} drop to zero for {minutes}: checkout broken"
    if recipe.name == "partial_drop":
        if mu < 20:
            return None
        drop = float(rng.uniform(0.3, 0.6))
        return 1 - drop, f"orders in {market} {-drop:.0%} for {minutes}: a payment method fails"
    if recipe.name == "spike":
        factor = float(rng.uniform(10, 50))
        if mu < 0.25 or mu * factor < 5:
            return None
        text = f"ticket sales x{factor:.0f} for {minutes}: a bank charges 1% of the price"
        return factor, text
    if recipe.name == "rate_dip":
        p = target.extra["p"][start:stop]  # type: ignore[index]
        points = float(rng.uniform(0.05, 0.20))
        noise = np.sqrt(np.mean(p * (1 - p)) / max(mu * scale, 1e-9))  # one bucket's noise
        if mu < 40 or points < 3 * noise or points > float(p.min()) - 0.05:
            return None
        return points, f"success rate down {points * 100:.0f} points for {minutes}: issuer outage"
    if recipe.name == "stale":
        return 0.0, f"rate stops updating for {minutes}: the rate feed is stuck"
    if recipe.name == "variance":
        factor = float(rng.uniform(8, 15))
        return factor, f"quotes flap for {minutes} (noise x{factor:.0f}): two feeds alternate"
    raise AssertionError(recipe.name)  # pragma: no cover


def _plan(
    work: dict[str, _Work], seed: int, bounds: tuple[int, int], freq: pd.Timedelta
) -> list[_Planned]:
    """Place every recipe's incidents, level shifts first (later ones see the shifted level)."""
    rng = _rng(seed, "incident-plan")
    planned: list[_Planned] = []
    for recipe in _RECIPES:
        for _ in range(recipe.count):
            found = _try_place(recipe, work, planned, rng, bounds, freq)
            if found is None:
                continue
            planned.append(found)
            if recipe.name == "level_shift":  # later incidents must see the new level
                work[found.target].mu = work[found.target].mu.copy()
                work[found.target].mu[found.start :] *= found.size
    return planned


def _apply_orders(w: _Work, events: list[_Planned], seed: int) -> None:
    base = w.extra["base"]  # type: ignore[index]
    factor = np.ones(base.size)
    for e in events:
        if e.recipe.name == "level_shift":
            factor[e.start :] *= e.size
        else:
            factor[e.start : e.stop] *= e.size
    rng = _rng(seed, "apply", w.name)
    final = base.copy()
    down, up = factor < 1, factor > 1
    final[down] = rng.binomial(base[down], factor[down])
    mu0 = w.extra["mu0"][up]  # type: ignore[index]
    final[up] = base[up] + _neg_binomial(rng, mu0 * (factor[up] - 1), size=60.0)
    w.value = final.astype(float)
    w.extra["final"] = final  # type: ignore[index]


def _apply_tickets(w: _Work, events: list[_Planned], seed: int) -> None:
    rng = _rng(seed, "apply", w.name)
    for e in events:
        mu = w.mu[e.start : e.stop] * (e.size - 1)
        w.value[e.start : e.stop] += _neg_binomial(rng, mu, size=5.0)


def _apply_payment(w: _Work, events: list[_Planned], seed: int) -> None:
    rng = _rng(seed, "apply", w.name)
    successes = w.extra["successes"]  # type: ignore[index]
    p = w.extra["p"]  # type: ignore[index]
    for e in events:
        sl = slice(e.start, e.stop)
        successes[sl] = rng.binomial(successes[sl], (p[sl] - e.size) / p[sl])


def _apply_fx(w: _Work, events: list[_Planned], seed: int, decimals: int) -> None:
    rng = _rng(seed, "apply", w.name)
    for e in events:
        sl = slice(e.start, e.stop)
        if e.recipe.name == "stale":
            w.value[sl] = w.value[e.start - 1]
        else:
            noise = rng.normal(0.0, e.size * w.extra["sd"], e.stop - e.start)  # type: ignore[index]
            w.value[sl] = np.round(w.mu[sl] * np.exp(noise), decimals)


def _labels(planned: list[_Planned], index: pd.DatetimeIndex, freq: pd.Timedelta) -> list[Incident]:
    out = []
    for p in planned:
        start = index[p.start]
        end = start + (p.stop - p.start) * freq
        targets = [p.target]
        if p.recipe.family == "orders":
            targets.append(p.target.replace("orders.", "revenue.", 1))
        for series in targets:
            text = p.description if series == p.target else f"{p.description} (revenue follows)"
            out.append(Incident(series, start, end, p.recipe.kind, text))
    return sorted(out, key=lambda i: (i.start, i.series))


# --------------------------------------------------------------------------------------------
# Gaps
# --------------------------------------------------------------------------------------------


def _plan_gaps(
    names: list[str],
    incidents: list[Incident],
    index: pd.DatetimeIndex,
    freq: pd.Timedelta,
    seed: int,
    warmup: int,
) -> list[Gap]:
    """Three single-series gaps (one during warm-up) and one gap of all series at once.

    Gaps keep ``_MIN_SEPARATION`` away from incidents on the same series, so a detector's
    alert can be attributed to one or the other.
    """
    rng = _rng(seed, "gaps")
    steps = len(index)
    day = int(_DAY / freq)
    plan = [("one", max(1, day // 2), warmup), ("one", warmup, steps), ("one", warmup, steps)]
    plan.append(("all", warmup, steps))
    gaps: list[Gap] = []
    for scope, first, last in plan:
        for _ in range(400):
            series = "*" if scope == "all" else names[rng.integers(len(names))]
            length = max(1, round(pd.Timedelta(minutes=float(rng.uniform(30, 120))) / freq))
            if last - length - 1 <= first:
                break
            start = int(rng.integers(first, last - length - 1))
            gap = Gap(series, index[start], index[start] + length * freq)
            if not _gap_conflicts(gap, incidents, gaps):
                gaps.append(gap)
                break
    return sorted(gaps, key=lambda g: (g.start, g.series))


def _gap_conflicts(gap: Gap, incidents: list[Incident], gaps: list[Gap]) -> bool:
    others = [(i.series, i.start, i.end) for i in incidents]
    others += [(g.series, g.start, g.end) for g in gaps]
    for series, start, end in others:
        same = gap.series == "*" or series in ("*", gap.series)
        near = gap.start < end + _MIN_SEPARATION and start < gap.end + _MIN_SEPARATION
        if same and near:
            return True
    return False


# --------------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------------


def _string_column(codes: np.ndarray, names: Sequence[str]) -> pd.Series:
    """A ``str`` column from integer codes, fast even for millions of rows."""
    decoded = pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(np.int32)), pa.array(list(names), pa.string())
    ).dictionary_decode()
    return pd.Series(decoded, dtype=pd.Series(["x"]).dtype)


def _long_frame(
    index: pd.DatetimeIndex,
    names: list[str],
    values: list[np.ndarray],
    keep: list[np.ndarray],
    denominators: list[np.ndarray] | None,
) -> pd.DataFrame:
    stamps = index.asi8
    ts = np.concatenate([stamps[k] for k in keep])
    codes = np.concatenate([np.full(int(k.sum()), j) for j, k in enumerate(keep)])
    frame = {
        "timestamp": pd.DatetimeIndex(ts.view("M8[ns]")).tz_localize("UTC"),
        "series": _string_column(codes, names),
        "value": np.concatenate([v[k] for v, k in zip(values, keep, strict=True)]),
    }
    if denominators is not None:
        frame["denominator"] = np.concatenate(
            [d[k] for d, k in zip(denominators, keep, strict=True)]
        )
    return pd.DataFrame(frame)


def _finish(work: dict[str, _Work], seed: int, markets: Sequence[Market]) -> None:
    """Turn raw draws into published values (revenue from orders, rates from counts)."""
    for market in markets:
        orders = work[f"orders.{market.code}"]
        final = orders.extra.get("final", orders.extra["base"])  # type: ignore[union-attr]
        revenue, mu = _revenue(market, orders.extra["base"], final, seed)  # type: ignore[index]
        work[f"revenue.{market.code}"] = _Work(f"revenue.{market.code}", "sum", revenue, mu)
    for w in work.values():
        if w.kind == "ratio":
            attempts = w.extra["attempts"]  # type: ignore[index]
            successes = w.extra["successes"]  # type: ignore[index]
            w.denominator = attempts.astype(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                w.value = np.where(attempts > 0, successes / np.maximum(attempts, 1), np.nan)


def make_shop_metrics(
    seed: int = 0,
    weeks: int = 4,
    freq: str | pd.Timedelta = "5min",
    start: str | pd.Timestamp = "2026-01-05",
    incidents: bool = True,
    gaps: bool = True,
    n_markets: int = 6,
    n_providers: int = 4,
    n_pairs: int = 4,
    n_shows: int = 3,
) -> ShopMetrics:
    """Generate labelled shop metrics: see the module docstring for the series and rules.

    Markets, providers, pairs and shows are taken in catalogue order (:data:`MARKETS`, ...).
    The default 4 weeks x 23 series take about a tenth of a second.

    >>> shop = make_shop_metrics(seed=3, weeks=2, incidents=False, gaps=False)
    >>> shop.incidents, shop.gaps, len(shop.data) == 23 * 2 * 7 * 288
    ([], [], True)
    >>> str(shop.data["timestamp"].dtype)
    'datetime64[ns, UTC]'
    """
    step = _parse_freq(freq)
    _check_count("weeks", weeks, 1, 520)
    _check_count("n_markets", n_markets, 1, len(MARKETS))
    _check_count("n_providers", n_providers, 0, len(PROVIDERS))
    _check_count("n_pairs", n_pairs, 0, len(PAIRS))
    _check_count("n_shows", n_shows, 0, len(SHOWS))
    index = _grid(start, weeks, step)
    scale = step / _BASE_STEP
    markets = MARKETS[:n_markets]

    work: dict[str, _Work] = {}
    for market in markets:
        work[f"orders.{market.code}"] = _orders(market, index, scale, seed)
    shop_mu = sum(w.mu for w in work.values())
    for provider in PROVIDERS[:n_providers]:
        w = _payment(provider, index, np.asarray(shop_mu), seed)
        work[w.name] = w
    for pair in PAIRS[:n_pairs]:
        w = _fx(pair, index, scale, seed)
        work[w.name] = w
    for show in SHOWS[:n_shows]:
        w = _tickets(show, index, scale, seed)
        work[w.name] = w

    warmup = int(min(2 * _WEEK, weeks * _WEEK / 2) / step)
    tail = int(pd.Timedelta("26h") / step)  # room for the longest incident plus grace
    planned = _plan(work, seed, (warmup, max(warmup + 1, len(index) - tail)), step)
    if incidents:
        _apply(work, planned, seed)
    _finish(work, seed, markets)

    names = _series_order(markets, work)
    labels = _labels(planned, index, step)
    gap_list = _plan_gaps(names, labels, index, step, seed, warmup) if gaps else []
    keep = [_present(work[n], index, gap_list) for n in names]
    data = _long_frame(
        index,
        names,
        [work[n].value for n in names],
        keep,
        [work[n].denominator if work[n].denominator is not None else _nan(index) for n in names],
    )
    return ShopMetrics(
        data=data,
        incidents=labels if incidents else [],
        gaps=gap_list,
        series_kinds={n: work[n].kind for n in names},
        freq=step,
        start=index[0],
        end=index[-1] + step,
        warmup_end=index[min(warmup, len(index) - 1)],
        seed=seed,
    )


def _nan(index: pd.DatetimeIndex) -> np.ndarray:
    return np.full(len(index), np.nan)


def _series_order(markets: Sequence[Market], work: dict[str, _Work]) -> list[str]:
    first = [f"{p}.{m.code}" for p in ("orders", "revenue") for m in markets]
    return first + [n for n in work if n not in first]


def _apply(work: dict[str, _Work], planned: list[_Planned], seed: int) -> None:
    decimals = {f"fx.{p.name}": p.decimals for p in PAIRS}
    for name, w in work.items():
        events = [p for p in planned if p.target == name]
        if w.name.startswith("orders."):
            _apply_orders(w, events, seed)
        elif not events:
            continue
        elif w.kind == "ratio":
            _apply_payment(w, events, seed)
        elif w.kind == "level":
            _apply_fx(w, events, seed, decimals[name])
        else:
            _apply_tickets(w, events, seed)


def _present(w: _Work, index: pd.DatetimeIndex, gaps: list[Gap]) -> np.ndarray:
    keep = np.isfinite(w.value)
    for g in gaps:
        if g.covers(w.name):
            keep &= ~((index >= g.start) & (index < g.end))
    return keep


# --------------------------------------------------------------------------------------------
# Many generic series, for speed benchmarks
# --------------------------------------------------------------------------------------------


def make_panel(
    n_series: int = 1000,
    weeks: int = 4,
    seed: int = 0,
    freq: str | pd.Timedelta = "5min",
    start: str | pd.Timestamp = "2026-01-05",
) -> pd.DataFrame:
    """Many generic seasonal series without incidents or gaps, for speed benchmarks.

    Even-numbered series are order-like counts, odd-numbered ones revenue-like sums; each has
    its own size (about 1 to 300 per 5 minutes), time zone offset and weekend level. Returns a
    long frame (``timestamp``, ``series``, ``value``), series by series.

    >>> df = make_panel(n_series=3, weeks=1, seed=0)
    >>> df.shape, df["series"].unique().tolist()
    ((6048, 3), ['panel_0000', 'panel_0001', 'panel_0002'])
    """
    step = _parse_freq(freq)
    _check_count("n_series", n_series, 1, 1_000_000)
    _check_count("weeks", weeks, 1, 520)
    index = _grid(start, weeks, step)
    rng = _rng(seed, "panel")
    steps = len(index)
    size = np.exp(rng.uniform(np.log(1.0), np.log(300.0), n_series)) * (step / _BASE_STEP)
    offset = rng.integers(-10, 11, n_series)
    weekend = rng.uniform(0.8, 1.2, n_series)

    shape, is_weekend = _offset_profiles(index, offset)  # (series, time)
    mu = shape * np.where(is_weekend, weekend[:, None], 1.0)
    mu *= size[:, None]
    mu *= rng.standard_gamma(20.0, mu.shape) / 20.0  # overdispersion, as in the shop
    values = rng.poisson(mu).astype(float)
    odd = values[1::2]  # revenue-like: a gamma sum of ``count`` amounts (CV^2 0.8 each)
    amount = rng.uniform(10, 100, odd.shape[0])[:, None]
    sums = rng.standard_gamma(np.maximum(odd, 1e-9) / 0.8) * (amount * 0.8) * (odd > 0)
    values[1::2] = np.round(sums, 2)

    names = [f"panel_{j:04d}" for j in range(n_series)]
    codes = np.repeat(np.arange(n_series), steps)
    ts = np.tile(index.asi8, n_series)
    return pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex(ts.view("M8[ns]")).tz_localize("UTC"),
            "series": _string_column(codes, names),
            "value": values.ravel(),
        }
    )


def _offset_profiles(index: pd.DatetimeIndex, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Daily shape and weekend flag, (series, time), for series ``offset`` hours from UTC.

    Computed once per distinct offset and then gathered, to keep memory at a few arrays.
    """
    hours = np.unique(offset)
    utc = index.tz_localize(None).to_numpy()
    local = utc[:, None] + hours[None, :] * np.timedelta64(1, "h")
    hour = (local - local.astype("M8[D]")).astype("m8[m]").astype(float) / 60.0
    dow = (local.astype("M8[D]").astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    row = np.searchsorted(hours, offset)
    return daily_shape(hour, dow >= 5).T[row], (dow >= 5).T[row]
