"""The predictions of metrics-blind-spots, as functions of the run's parameters (pure).

Mixture: a share f of requests takes base + delta, the rest base. Its quantile q is
base + delta when 1 - q < f (the slow requests fill the top), else base; its mean moves by
f x delta.

HAProxy's averages (qtime/ctime/rtime/ttime in 2.6) are `swrate_add(sum, 512, v)`: sum <-
sum - sum/512 + v, read as sum/512. An exponential moving average with weight 1/512 per
request: after k requests of mean m it has moved (1 - (1 - 1/512)^k) of the way to m. The
sum starts at 0 when HAProxy starts; the stats socket divides it by min(requests, 512), the
Prometheus exporter always by 512, so after a (re)start the exporter's average creeps up
from 0 over the first ~1,500 requests while the stats socket's reads about right.

Stall: every backend stops for S seconds of a T-second run. A closed-loop tool with C
connections has exactly one request outstanding per connection, so C requests take about S
and the rest are normal: its quantile q is S when 1 - q < C / N (N requests in all), else
base. An open-loop client at R req/s keeps sending: the requests due during the stall
wait until it ends, the one due x seconds in takes S - x, so a share S / T is affected and
P(latency > L) = (S - L) / T for L < S: its quantile q is S - (1 - q) T when that is above
base. HdrHistogram's corrected recording (record_corrected_value with the expected interval
between one connection's requests) adds, for each value v, the values v - i x interval
down to the interval: the closed loop's C stalls become S / interval each, S R requests in
all, so the corrected spectrum is the open loop's.
"""

from __future__ import annotations

import math

HAPROXY_SAMPLES = 512


def mixture_quantile(q: float, f: float, base_ms: float, delta_ms: float) -> float:
    """The q-quantile (q in (0, 1)) of base with a share f at base + delta."""
    return base_ms + delta_ms if 1 - q < f else base_ms


def mean_shift(f: float, delta_ms: float) -> float:
    return f * delta_ms


def ema_reached(k: float, n: int = HAPROXY_SAMPLES) -> float:
    """How far (0..1) an EMA of weight 1/n has moved toward a new mean after k samples."""
    return 1 - (1 - 1 / n) ** max(0.0, k)


def ema_at(t: float, rate: float, segments: list[tuple[float, float, float]],
           n: int = HAPROXY_SAMPLES, start: float = 0.0) -> float:
    """HAProxy's moving average at time t, from `start` at t = 0, for requests at `rate`
    whose mean is m over each segment (lo, hi, m) (segments in order, covering [0, t])."""
    value = start
    for lo, hi, m in segments:
        if t <= lo:
            break
        k = rate * (min(t, hi) - lo)
        value = m + (value - m) * (1 - ema_reached(k, n))
    return value


def ema_sd(f: float, delta_ms: float, n: int = HAPROXY_SAMPLES) -> float:
    """Standard deviation of a converged EMA (weight 1/n) of the mixture's values:
    sigma x sqrt(a / (2 - a)), a = 1/n, sigma = delta sqrt(f (1 - f))."""
    a = 1 / n
    return delta_ms * math.sqrt(f * (1 - f)) * math.sqrt(a / (2 - a))


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    total, term = 0.0, (1 - p) ** n
    for i in range(k + 1):
        total += term
        term *= (n - i) / (i + 1) * p / (1 - p) if p < 1 else 0.0
    return min(1.0, total)


def tail_rank(n: int, q: float) -> int:
    """How many of n values lie above the nearest-rank q-quantile: n - ceil(q n)."""
    return n - max(1, math.ceil(q * n - 1e-9))


def p_quantile_slow(n: int, f: float, q: float) -> float:
    """P(the q-quantile of n requests, each slow with probability f, is a slow one)."""
    return 1 - binom_cdf(tail_rank(n, q), n, f)


def p_sample_misses(n_requests: float, f: float, rate: float) -> float:
    """P(a tracer keeping each request with probability `rate` keeps none of the slow
    ones): (1 - f rate)^N. While the sample holds fewer than 1000 requests one slow request
    in it makes its p99.9 slow, so this is P(the sampled p99.9 misses the tail)."""
    return (1 - f * rate) ** n_requests


def quantile_sample_size(q: float, z: float = 1.96) -> int:
    """Requests a sample needs so that its q-quantile lies between the true quantiles
    q -/+ (1 - q)/2 with the confidence of z (normal approximation of the rank):
    n >= z^2 q (1 - q) / ((1 - q)/2)^2."""
    eps = (1 - q) / 2
    return math.ceil(z * z * q * (1 - q) / (eps * eps))


# -- the stall ----------------------------------------------------------------------------
def closed_loop_affected(connections: int) -> int:
    """Requests a closed-loop tool sees stalled: the one outstanding on each connection."""
    return connections


def closed_loop_requests(connections: int, latency_s: float, seconds: float) -> float:
    """N for a closed loop: each connection sends one request per latency."""
    return connections * seconds / latency_s


def closed_quantile(q: float, connections: int, n: float, stall_s: float,
                    base_s: float) -> float:
    return stall_s if 1 - q < connections / n else base_s


def open_fraction(stall_s: float, seconds: float, threshold_s: float = 0.0) -> float:
    """Share of an open loop's requests slower than threshold: (S - threshold) / T."""
    return max(0.0, stall_s - threshold_s) / seconds


def open_quantile(q: float, stall_s: float, seconds: float, base_s: float) -> float:
    return max(base_s, stall_s - (1 - q) * seconds)
