"""The M/M/c/K model against textbook closed forms and against a simulation of the queue."""

from __future__ import annotations

import heapq
import math
import random

import pytest

from lblab.queueing import MMcK


def test_without_a_queue_blocking_is_erlang_b():
    # a = 2 Erlangs on 2 servers: B = (a^2/2!) / (1 + a + a^2/2!) = 2/5
    assert MMcK(2.0, 1.0, 2, 2).blocking == pytest.approx(0.4)


def test_one_server_blocking_matches_mm1k():
    rho, k = 0.5, 3
    expected = (1 - rho) * rho ** k / (1 - rho ** (k + 1))
    assert MMcK(rho, 1.0, 1, k).blocking == pytest.approx(expected)


def test_long_mm1_queue_sojourn_is_exponential_in_mu_minus_lambda():
    q = MMcK(0.5, 1.0, 1, 400)
    assert q.sojourn_quantile(0.99) == pytest.approx(math.log(100) / 0.5, rel=1e-6)


def test_with_free_workers_only_service_time_remains():
    q = MMcK(0.01, 20.0, 8, 8)
    assert q.sojourn_quantile(0.99) == pytest.approx(math.log(100) / 20.0, rel=1e-3)


def test_overload_throughput_approaches_capacity():
    q = MMcK(300.0, 20.0, 8, 16)  # offered 1.875 x capacity (160/s)
    assert q.blocking > 1 - 160 / 300
    assert q.throughput == pytest.approx(160, rel=0.03)


def simulate(lam, mu, c, k, n=200_000, seed=4):
    """A discrete-event FCFS M/M/c/K queue: (blocked share, p99 sojourn of admitted)."""
    rng = random.Random(seed)
    t, busy_until, waiting, sojourns, blocked = 0.0, [], [], [], 0
    for _ in range(n):
        t += rng.expovariate(lam)
        while busy_until and busy_until[0] <= t:  # departures up to now free workers ...
            done = heapq.heappop(busy_until)
            if waiting:  # ... which the queue's head takes at the departure instant
                arrived = waiting.pop(0)
                finish = done + rng.expovariate(mu)
                sojourns.append(finish - arrived)
                heapq.heappush(busy_until, finish)
        if len(busy_until) + len(waiting) >= k:
            blocked += 1
        elif len(busy_until) < c:
            finish = t + rng.expovariate(mu)
            sojourns.append(finish - t)
            heapq.heappush(busy_until, finish)
        else:
            waiting.append(t)
    sojourns.sort()
    return blocked / n, sojourns[int(0.99 * len(sojourns))]


@pytest.mark.parametrize(("lam", "c", "k"), [(108.0, 8, 12), (60.0, 8, 16), (90.0, 4, 8)])
def test_model_matches_a_simulated_queue(lam, c, k):
    mu = 20.0
    blocked, p99 = simulate(lam, mu, c, k)
    q = MMcK(lam, mu, c, k)
    assert q.blocking == pytest.approx(blocked, abs=0.01)
    assert q.sojourn_quantile(0.99) == pytest.approx(p99, rel=0.05)
