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


def test_refused_share_sd_of_a_one_place_queue_matches_renewal_reward():
    # M/M/1/1, lambda = mu = 1: B = 1/2. A cycle is an idle Exp(1) then a busy Exp(1) that
    # refuses N ~ Poisson(busy) arrivals; reward R = -B + (1 - B) N has E[R] = 0 and
    # Var(R) = Var(N) / 4 = (1 + 1) / 4, the cycle lasts 2 on average: rate 0.25 per second.
    q = MMcK(1.0, 1.0, 1, 1)
    assert q.blocked_share_sd(100.0) == pytest.approx(math.sqrt(0.25 * 100) / 100)


def refused_shares(lam, mu, c, k, window, n, seed=5):
    """Refused share in each of n windows of a simulated M/M/c/K in steady state."""
    rng = random.Random(seed)
    shares, state = [], 0
    for _ in range(n):
        t, arrived, refused = 0.0, 0, 0
        while True:
            rate = lam + mu * min(state, c)
            t += rng.expovariate(rate)
            if t >= window:
                break
            if rng.random() < lam / rate:
                arrived += 1
                if state == k:
                    refused += 1
                else:
                    state += 1
            else:
                state -= 1
        shares.append(refused / arrived)
    return shares


@pytest.mark.parametrize(("lam", "window"), [(120.0, 2.0), (216.0, 2.0)])
def test_refused_share_sd_matches_a_simulated_queue_and_exceeds_the_binomial(lam, window):
    import statistics

    q = MMcK(lam, 20.0, 8, 18)
    shares = refused_shares(lam, 20.0, 8, 18, window, 1500)
    sd = q.blocked_share_sd(window)
    assert statistics.stdev(shares) == pytest.approx(sd, rel=0.1)
    # refusals come in bursts while the queue is full: far wider than independent trials
    assert sd > 2 * math.sqrt(q.blocking * (1 - q.blocking) / (lam * window))
