"""Retry policies with a fake clock: each test named after the behaviour it proves."""

from __future__ import annotations

import random

from lblab.workloads.retry import Backoff, Breaker, Budget, Naive, Policy, TokenBucket, make_policy


def test_no_policy_never_retries():
    assert Policy().next_delay(0, "timeout", 0.0) is None


def test_naive_retries_k_times_immediately_on_retryable_outcomes_only():
    p = Naive(retries=2)
    assert [p.next_delay(a, "timeout", 0) for a in range(3)] == [0.0, 0.0, None]
    assert p.next_delay(0, "ok", 0) is None


def test_backoff_delays_stay_under_the_exponential_cap():
    p = Backoff(retries=5, base_s=0.1, cap_s=0.5, rng=random.Random(1))
    for attempt in range(5):
        assert 0 <= p.next_delay(attempt, "5xx", 0) <= min(0.5, 0.1 * 2 ** attempt)
    assert p.next_delay(5, "5xx", 0) is None


def test_budget_allows_retries_up_to_the_ratio_of_recent_requests():
    p = Budget(ratio=0.1, min_per_s=0, retries=1, window_s=10)
    for i in range(100):
        p.on_attempt(0, i * 0.01)
    granted = 0
    for _ in range(50):
        if p.next_delay(0, "timeout", 1.0) is not None:
            p.on_attempt(1, 1.0)
            granted += 1
    assert granted == 10


def test_budget_window_forgets_old_requests():
    p = Budget(ratio=0.5, retries=1, window_s=1)
    for _ in range(10):
        p.on_attempt(0, 0.0)
    assert p.next_delay(0, "timeout", 5.0) is None


def test_token_bucket_stops_retries_below_half_and_refills_on_success():
    p = TokenBucket(max_tokens=10, token_ratio=0.5)
    for _ in range(5):
        p.on_outcome(False, 0)
    assert p.next_delay(0, "timeout", 0) is None
    p.on_outcome(True, 0)
    assert p.next_delay(0, "timeout", 0) == 0.0


def test_breaker_opens_after_exactly_threshold_consecutive_failures():
    b = Breaker(threshold=5, cooldown_s=2.0)
    for i in range(4):
        b.on_outcome(False, i)
        assert b.state == "closed"
    b.on_outcome(False, 4)
    assert b.state == "open" and not b.allow(5.0)
    assert b.transitions == [(4, "open", 5)]


def test_breaker_half_opens_after_cooldown_and_closes_on_success():
    b = Breaker(threshold=1, cooldown_s=2.0)
    b.on_outcome(False, 10.0)
    assert not b.allow(11.9)
    assert b.allow(12.0) and b.state == "half_open"
    b.on_outcome(True, 12.1)
    assert b.state == "closed"
    assert [s for _, s, _ in b.transitions] == ["open", "half_open", "closed"]
    assert b.transitions[0][2] == 1


def test_breaker_reopens_when_the_probe_fails():
    b = Breaker(threshold=1, cooldown_s=1.0)
    b.on_outcome(False, 0.0)
    b.allow(1.0)
    b.on_outcome(False, 1.1)
    assert b.state == "open" and not b.allow(1.5)


def test_specs_build_policies():
    assert isinstance(make_policy({"kind": "breaker", "inner": {"kind": "naive"}}).inner, Naive)
    try:
        make_policy({"kind": "magic"})
    except ValueError as exc:
        assert "unknown retry policy 'magic'" in str(exc)
    else:
        raise AssertionError("unknown kind accepted")
