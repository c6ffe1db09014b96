"""What stream-pinning predicts from its parameters alone.

- Pinned streams with an exponential lifetime tau (the client ends them) under round robin:
  a slot's stream at time t > t1 was opened after t1 with probability 1 - e^(-(t - t1)/tau),
  and then sits on a new backend with probability M/(N+M) (the rotation's share), so the new
  backends hold M/(N+M) (1 - e^(-(t - t1)/tau)) of the K streams; without a lifetime, none.
- Max connection age A with gRPC's jitter: a stream opened at ~0 ends at A U(0.9, 1.1) + G,
  so the first generation is replaced uniformly over [0.9 A + G, 1.1 A + G] and every stream
  opened before t1 is gone by t1 + 1.1 A + G: the new backends then hold M/(N+M).
- Reconnect peaks: K points uniform over a spread S, counted in a sliding window w: the peak
  has no closed form, so it is simulated (seeded, from the parameters) and the bound is its
  99.7th percentile; without jitter S is the opening spread K / open_rate < w, so all K
  reconnects fall in one window. The mean rate with jitter is K / (0.2 A) per second.
- Backend loss under round robin from the start: the dead backend held K/N streams.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Sequence
from functools import lru_cache

from .params import GRPC_JITTER, MAX_AGE, NO_JITTER, PINNED, UNARY, Params

PEAK_QUANTILE = 0.997
PEAK_TRIALS = 4000


def pinned_share(p: Params, since_t1: float) -> float:
    """The new backends' share of the K pinned streams, `since_t1` seconds after t1."""
    if since_t1 <= 0:
        return 0.0
    return p.new_share * (1 - math.exp(-since_t1 / p.lifetime_s))


def first_wave_done(p: Params, t: float, jitter: float) -> float:
    """The fraction of the streams opened at ~0 that max-age has ended by t: uniform over
    [A (1 - j) + G, A (1 + j) + G]; with no jitter a step at A + G."""
    lo, hi = p.age_s * (1 - jitter) + p.grace_s, p.age_s * (1 + jitter) + p.grace_s
    if hi <= lo:
        return 1.0 if t >= lo else 0.0
    return min(1.0, max(0.0, (t - lo) / (hi - lo)))


def max_age_share(p: Params, t: float, jitter: float = GRPC_JITTER) -> float:
    """The new backends' share at t under max-age (t1 before the first wave): the replaced
    fraction of the first generation, each replacement on a new backend with M/(N+M)."""
    return p.new_share * first_wave_done(p, t, jitter) if t > p.t1 else 0.0


def sliding_peak(times: Sequence[float], window_s: float) -> int:
    """The most instants in any window [x, x + window_s)."""
    ordered = sorted(times)
    best = 0
    for i, t in enumerate(ordered):
        best = max(best, bisect_left(ordered, t + window_s) - i)
    return best


@lru_cache(maxsize=64)
def peak_bound(n: int, spread_s: float, window_s: float, seed: int = 1,
               trials: int = PEAK_TRIALS, q: float = PEAK_QUANTILE) -> float:
    """The q-quantile of the sliding-window peak of n instants uniform over [0, spread_s]."""
    if n <= 0:
        return 0.0
    if spread_s <= window_s:
        return float(n)
    rng = random.Random(seed)
    peaks = sorted(sliding_peak([rng.uniform(0, spread_s) for _ in range(n)], window_s)
                   for _ in range(trials))
    return float(peaks[min(trials - 1, math.ceil(q * trials) - 1)])


def jitter_spread_s(p: Params) -> float:
    """Over how long gRPC's jitter spreads the first wave's reconnects: 0.2 A."""
    return 2 * GRPC_JITTER * p.age_s


def mean_reconnect_rate(p: Params) -> float:
    """The issue's K / (0.2 A) reconnects per second during the first wave, with jitter."""
    return p.streams / jitter_spread_s(p)


def lost_streams(p: Params) -> float:
    """Streams on the killed backend: round robin gave each of the N backends K/N."""
    return p.streams / p.backends


def rebalance_s(p: Params, variant: str) -> float | None:
    """When the new backends' share comes within 3 binomial standard errors (over K streams)
    of M/(N+M), after t1: pinned, when q e^(-x/tau) falls to that tolerance, x = tau
    ln(q / tol); unary at once (0); max-age when the first wave has replaced 1 - tol/q of the
    streams (A (1 - j) + G + 2 j A (1 - tol/q) - t1; no jitter: A + G - t1)."""
    from lblab.claims import binomial_tolerance

    q = p.new_share
    tol = binomial_tolerance(q, p.streams)
    if variant == UNARY:
        return 0.0
    if variant == PINNED:
        return p.lifetime_s * math.log(q / tol) if tol < q else 0.0
    if variant in (MAX_AGE, NO_JITTER):
        j = GRPC_JITTER if variant == MAX_AGE else 0.0
        done = max(0.0, 1 - tol / q)
        return p.age_s * (1 - j) + p.grace_s + 2 * j * p.age_s * done - p.t1
    return None
