"""The M/M/c/K queue: what admission control in front of c workers should do, in numbers.

An LB node that lets at most c requests reach its workers (HAProxy `maxconn` per server) and
holds at most K - c more in its queue, refusing the rest at once, is an M/M/c/K system when
arrivals are Poisson and service times exponential. Its stationary distribution gives the
share of requests refused (an arrival finds K in the system: PASTA) and the sojourn time of
those admitted (FCFS: one that finds n >= c waits for n - c + 1 departures at rate c mu, then
is served). Experiments predict their claims from this, so the prediction follows the run's
own workers, queue and load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class MMcK:
    arrival_rate: float
    service_rate: float
    """mu: one worker's completions per second (1 / mean service time)."""
    servers: int
    capacity: int
    """K: requests in the system at most (in service + queued)."""

    def __post_init__(self) -> None:
        if self.servers < 1 or self.capacity < self.servers:
            raise ValueError("need 1 <= servers <= capacity")
        if self.arrival_rate <= 0 or self.service_rate <= 0:
            raise ValueError("rates must be positive")

    @property
    def offered(self) -> float:
        """a = lambda / mu, in Erlangs; a / c is the load (above 1: overloaded)."""
        return self.arrival_rate / self.service_rate

    def state_probabilities(self) -> list[float]:
        """P(n in the system), n = 0..K. Built in logs: a^n / n! overflows for large n."""
        a, c = self.offered, self.servers
        logs = []
        for n in range(self.capacity + 1):
            if n <= c:
                logs.append(n * math.log(a) - math.lgamma(n + 1))
            else:
                logs.append(c * math.log(a) - math.lgamma(c + 1) + (n - c) * math.log(a / c))
        top = max(logs)
        weights = [math.exp(x - top) for x in logs]
        total = sum(weights)
        return [w / total for w in weights]

    @property
    def blocking(self) -> float:
        """The share of arrivals refused: they find the system full."""
        return self.state_probabilities()[-1]

    @property
    def throughput(self) -> float:
        return self.arrival_rate * (1 - self.blocking)

    def blocked_share_sd(self, window_s: float) -> float:
        """The standard deviation of the share of arrivals refused over `window_s` of steady
        state: the sampling error of a measured blocking probability.

        Refusals come in bursts (only while the system is full), so this is larger than the
        binomial sqrt(B (1 - B) / N) of N independent arrivals (2-3 x at the loads the
        experiments use). It is the asymptotic variance of X(t) = refused - B x arrivals, a
        Markov additive process on the birth-death chain: with h the solution of the Poisson
        equation Q h = -r (r_n = lambda (1{n = K} - B), the mean drift of X in state n), the
        variance rate is sum_n pi_n sum_jumps rate (reward + h_to - h_from)^2, and the share's
        standard deviation is sqrt(rate x T) / (lambda T).
        """
        if window_s <= 0:
            raise ValueError("the window must be positive")
        probs = self.state_probabilities()
        lam, mu, c, k = self.arrival_rate, self.service_rate, self.servers, self.capacity
        b = probs[-1]
        # Birth-death structure: pi_n lambda (h_{n+1} - h_n) = -sum_{m <= n} pi_m r_m.
        steps, acc = [], 0.0
        for n in range(k):
            acc += probs[n] * lam * -b
            steps.append(-acc / (probs[n] * lam) if probs[n] > 0 else 0.0)
        rate = probs[k] * lam * (1 - b) ** 2  # a refusal: reward 1 - B, no change of state
        for n in range(k + 1):
            if n < k:
                rate += probs[n] * lam * (steps[n] - b) ** 2
            if n > 0:
                rate += probs[n] * mu * min(n, c) * steps[n - 1] ** 2
        return math.sqrt(rate * window_s) / (lam * window_s)

    def sojourn_cdf(self, t: float) -> float:
        """P(an admitted request's wait + service <= t)."""
        if t <= 0:
            return 0.0
        probs = self.state_probabilities()
        admitted = 1 - probs[-1]
        mu, c = self.service_rate, self.servers
        total = 0.0
        for n, p in enumerate(probs[:-1]):
            k = n - c + 1  # departures to wait for; none when a worker is free
            total += p / admitted * _wait_plus_service_cdf(max(k, 0), c * mu, mu, t)
        return total

    def sojourn_quantile(self, q: float) -> float:
        """The q-quantile of an admitted request's time in the system (bisection)."""
        lo, hi = 0.0, 1.0 / self.service_rate
        while self.sojourn_cdf(hi) < q:
            hi *= 2
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.sojourn_cdf(mid) < q else (lo, mid)
        return hi


def _erlang_cdf(k: int, rate: float, t: float) -> float:
    """P(sum of k exponentials of `rate` <= t)."""
    x = rate * t
    term, acc = math.exp(-x), 0.0
    for i in range(k):
        acc += term
        term *= x / (i + 1)
    return 1.0 - acc


def _wait_plus_service_cdf(k: int, wait_rate: float, mu: float, t: float) -> float:
    """P(W + S <= t) for W ~ Erlang(k, wait_rate) (0 when k = 0) and S ~ Exp(mu).

    P(W + S <= t) = F_W(t) - e^(-mu t) E[e^(mu W); W <= t], and for wait_rate > mu that
    expectation is (wait_rate / (wait_rate - mu))^k F_Erlang(k, wait_rate - mu)(t).
    """
    if k == 0:
        return 1.0 - math.exp(-mu * t)
    slower = wait_rate - mu
    if slower <= 0:  # one worker: W's rate equals mu; the integral is (mu t)^k / k!
        log_tilt = k * math.log(mu * t) - math.lgamma(k + 1)
    else:
        f = _erlang_cdf(k, slower, t)
        if f <= 0:
            return _erlang_cdf(k, wait_rate, t)
        log_tilt = k * math.log(wait_rate / slower) + math.log(f)
    return _erlang_cdf(k, wait_rate, t) - math.exp(log_tilt - mu * t)  # in logs: no overflow
