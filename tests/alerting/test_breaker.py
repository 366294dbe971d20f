"""Backoff, retry budget and circuit breaker, on a fake clock: exact and instant."""

from __future__ import annotations

import random
import threading

import pytest

from detector.alerting.breaker import Backoff, CircuitBreaker, RetryPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# Each step: (advance clock by, action, expected result of action, expected state after).
# Actions: "allow", "fail", "ok". Breaker: failures=3, cooldown=10.
SCENARIOS = {
    "opens after 3 consecutive failures": [
        (0, "fail", None, "closed"),
        (0, "fail", None, "closed"),
        (0, "allow", True, "closed"),
        (0, "fail", None, "open"),
        (0, "allow", False, "open"),
        (9.99, "allow", False, "open"),
    ],
    "success resets the count": [
        (0, "fail", None, "closed"),
        (0, "fail", None, "closed"),
        (0, "ok", None, "closed"),
        (0, "fail", None, "closed"),
        (0, "fail", None, "closed"),
        (0, "allow", True, "closed"),
    ],
    "half-open lets exactly one probe; success closes": [
        (0, "fail", None, "closed"),
        (0, "fail", None, "closed"),
        (0, "fail", None, "open"),
        (10, "allow", True, "half_open"),
        (0, "allow", False, "half_open"),
        (1, "allow", False, "half_open"),
        (0, "ok", None, "closed"),
        (0, "allow", True, "closed"),
        (0, "allow", True, "closed"),
    ],
    "failed probe re-opens for a fresh cooldown": [
        (0, "fail", None, "closed"),
        (0, "fail", None, "closed"),
        (0, "fail", None, "open"),
        (15, "allow", True, "half_open"),
        (1, "fail", None, "open"),
        (9.5, "allow", False, "open"),  # cooldown counts from the failed probe (t=16)
        (0.5, "allow", True, "half_open"),
        (0, "ok", None, "closed"),
    ],
    "late failures while open do not extend the cooldown": [
        (0, "fail", None, "closed"),
        (0, "fail", None, "closed"),
        (0, "fail", None, "open"),
        (5, "fail", None, "open"),
        (5, "allow", True, "half_open"),
    ],
    "a probe that never reports is given up after another cooldown": [
        (0, "fail", None, "closed"),
        (0, "fail", None, "closed"),
        (0, "fail", None, "open"),
        (10, "allow", True, "half_open"),
        (9, "allow", False, "half_open"),
        (1, "allow", True, "half_open"),
    ],
}


@pytest.mark.parametrize("steps", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_breaker_transitions(clock, steps):
    b = CircuitBreaker(failures=3, cooldown=10.0, clock=clock)
    for i, (advance, action, expected, state) in enumerate(steps):
        clock.now += advance
        if action == "allow":
            assert b.allow() is expected, f"step {i}"
        elif action == "fail":
            b.record_failure()
        else:
            b.record_success()
        assert b.state == state, f"step {i}"


def test_breaker_probe_is_single_under_threads(clock):
    b = CircuitBreaker(failures=1, cooldown=1.0, clock=clock)
    b.record_failure()
    clock.now = 1.0
    results: list[bool] = []
    barrier = threading.Barrier(16)

    def probe() -> None:
        barrier.wait()
        results.append(b.allow())

    threads = [threading.Thread(target=probe) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1


@pytest.mark.parametrize("jitter", ["full", "equal", "none"])
def test_backoff_bounds_over_many_draws(jitter):
    b = Backoff(initial=0.5, factor=3.0, max=60.0, jitter=jitter)
    rng = random.Random(42)
    for attempt in range(1, 30):
        cap = min(60.0, 0.5 * 3.0 ** (attempt - 1))
        assert b.cap(attempt) == cap
        draws = [b.delay(attempt, rng) for _ in range(500)]
        low = {"full": 0.0, "equal": cap / 2, "none": cap}[jitter]
        assert all(low <= d <= cap for d in draws)
        if jitter != "none":  # really jittered: spread over most of the range
            assert max(draws) - min(draws) > 0.8 * (cap - low)


def test_backoff_huge_attempt_does_not_overflow():
    assert Backoff(max=300.0, jitter="none").delay(10_000) == 300.0


def test_backoff_is_reproducible_with_a_seed():
    b = Backoff()
    assert [b.delay(3, random.Random(7)) for _ in range(3)] == [b.delay(3, random.Random(7))] * 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": 0}, "initial"),
        ({"factor": 0.5}, "factor"),
        ({"initial": 10, "max": 5}, "max"),
    ],
)
def test_backoff_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Backoff(**kwargs)


BUDGET_CASES = [
    # attempts, first, now, retry_after, expected delay (None = give up)
    (1, 0.0, 0.0, None, 1.0),
    (3, 0.0, 10.0, None, 4.0),
    (1, 0.0, 0.0, 30.0, 30.0),  # Retry-After is a floor
    (2, 0.0, 3590.0, None, 2.0),
    (5, 0.0, 3590.0, None, 10.0),  # 16 s clipped to the budget's end
    (2, 0.0, 3599.0, 120.0, 1.0),  # Retry-After clipped too
    (2, 0.0, 3600.0, None, None),  # budget spent
    (2, 100.0, 3700.5, None, None),
    (6, 0.0, 5.0, None, None),  # max_attempts spent
    (5, 0.0, 5.0, None, 16.0),
]


@pytest.mark.parametrize(("attempts", "first", "now", "retry_after", "expected"), BUDGET_CASES)
def test_retry_policy_budget(attempts, first, now, retry_after, expected):
    p = RetryPolicy(Backoff(initial=1, factor=2, max=300, jitter="none"), 3600.0, max_attempts=6)
    assert p.next_delay(attempts, first, now, retry_after=retry_after) == expected
    assert p.exhausted(attempts, first, now) is (expected is None)


def test_retry_policy_schedule_ends_within_budget():
    p = RetryPolicy(Backoff(initial=1, max=300), budget=3600.0)
    rng, now, attempts = random.Random(1), 0.0, 0
    while True:
        attempts += 1
        delay = p.next_delay(attempts, 0.0, now, rng)
        if delay is None:
            break
        now += delay
    assert now == pytest.approx(3600.0)
    assert 15 < attempts < 200
