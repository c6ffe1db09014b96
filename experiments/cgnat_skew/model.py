"""What each balancing mechanism predicts for max/mean, the busiest unit's request count over
the mean count, for this run's request count and number of units.

- **Independent uniform picks** (ECMP select15 over the 5-tuple, nftables jhash of address and
  port): the counts are multinomial(n, 1/U). Predicted: the 99.7th percentile of its max/mean,
  from a seeded Monte Carlo of MULTINOMIAL_RUNS draws (numpy's exact multinomial sampler).
- **Rotation** (HAProxy roundrobin, nftables `numgen inc`): one shared counter, so no unit is
  more than one pick ahead of another: max <= ceil(n_picked / U). Exact, no percentile.
- **Load-dependent picks** (HAProxy leastconn, random(2), bounded-load consistent hashing):
  HAProxy's own rule, simulated over Poisson arrivals at `rate` with exponential service
  times of mean `service_ms` (the backends' model; a request counts against its server from
  assignment to completion), SIM_RUNS seeded runs of n requests; predicted: the 99.7th
  percentile of max/mean.
    leastconn  fewest active; ties go to the server whose count changed least recently (an
               ebtree keeps equal keys in insertion order and HAProxy requeues a server when
               its count changes, lb_fwlc.c)
    random2    two draws on HAProxy's consistent-hash ring (16 points per unit of weight,
               keys full_hash(puid * 4096 + i), so the ring shares are uneven, see
               `ring_shares`); the draw with fewer active requests wins, a tie the second
    bounded    hash-balance-factor f: a server is eligible while its active requests are
               below its share of ceil(f x (all active + 1)) (chash_server_is_eligible), else
               the ring walk goes on to the next. It bounds *concurrent* requests, not
               request counts: by Little's law, with one service-time distribution for every
               server, a server's request share is its share of the time-averaged
               concurrency, which the bound caps near ceil(f x mean) -- with few requests in
               flight the ceilings make that well above f. The simulation takes the worst
               case for the busiest server: every request prefers the server with the most
               slots (as if one CGNAT sent everything), so the real ring, which spreads the
               direct users, can only do better.

Runs past SIM_MAX_REQUESTS requests are simulated at that count: max/mean shrinks as n grows,
so the prediction is then conservative. Everything here is deterministic (seeded from the
arguments) and pure.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from lblab.metrics import quantile

QUANTILE = 0.997
MULTINOMIAL_RUNS = 20_000
SIM_RUNS = 2_000
SIM_MAX_REQUESTS = 20_000
SIM_POLICIES = ("leastconn", "random2", "bounded")
POINTS_PER_WEIGHT = 16
"""HAProxy's BE_WEIGHT_SCALE: ring points (and effective weight) per unit of weight."""
EWGHT_RANGE = 256 * POINTS_PER_WEIGHT
"""SRV_EWGHT_RANGE: the stride between two servers' ring keys."""
_M32 = 0xFFFFFFFF


def max_over_mean(max_count: int, total: int, units: int) -> float | None:
    """The busiest unit's count over the mean count (None without requests)."""
    return max_count / (total / units) if total else None


@functools.lru_cache(maxsize=256)
def multinomial_max_over_mean(n: int, units: int, q: float = QUANTILE,
                              runs: int = MULTINOMIAL_RUNS) -> float:
    """The q-quantile of max/mean when n requests pick one of `units` uniformly each."""
    if n <= 0:
        return 1.0
    rng = np.random.default_rng([1, n, units, runs])
    draws = rng.multinomial(n, [1 / units] * units, size=runs).max(axis=1)
    return quantile((draws / (n / units)).tolist(), q)


def rotation_max_over_mean(picked: int, counted: int, units: int) -> float:
    """Strict rotation over `picked` picks, of which `counted` were answered and counted:
    the busiest unit has at most ceil(picked / units) of them."""
    if counted <= 0:
        return 1.0
    return max_over_mean(math.ceil(picked / units), counted, units)


# -- HAProxy's consistent-hash ring and bounded loads ------------------------------------
def full_hash(a: int) -> int:
    """HAProxy's full_hash (Bob Jenkins' 32-bit avalanche, then x 3221225473 mod 2^32)."""
    a &= _M32
    a = ((a + 0x7ED55D16) + (a << 12)) & _M32
    a = ((a ^ 0xC761C23C) ^ (a >> 19)) & _M32
    a = ((a + 0x165667B1) + (a << 5)) & _M32
    a = ((a + 0xD3A2646C) ^ (a << 9)) & _M32
    a = ((a + 0xFD7046C5) + (a << 3)) & _M32
    a = ((a ^ 0xB55A4F09) ^ (a >> 16)) & _M32
    return (a * 3221225473) & _M32


def ring_shares(servers: int) -> list[float]:
    """The share of the 32-bit hash space each of `servers` weight-1 servers (puid 1..N) owns
    on HAProxy's ring: a hash goes to the nearest point on either side, so a point owns half
    of the gap to each neighbour."""
    points = sorted((full_hash(puid * EWGHT_RANGE + i), puid - 1)
                    for puid in range(1, servers + 1) for i in range(POINTS_PER_WEIGHT))
    owned = [0.0] * servers
    for i, (key, server) in enumerate(points):
        before = (key - points[i - 1][0]) & _M32
        after = (points[(i + 1) % len(points)][0] - key) & _M32
        owned[server] += (before + after) / 2
    return [x / 2**32 for x in owned]


def bounded_slots(served: np.ndarray | int, factor: int, servers: int) -> np.ndarray:
    """HAProxy's chash_server_is_eligible for equal weights: the requests each server may
    hold (a server is eligible while its active requests are below this), given `served`
    requests active in the backend. Vectorised over `served`; shape (..., servers)."""
    served = np.asarray(served)[..., None]
    eweight = POINTS_PER_WEIGHT
    total_weight = eweight * servers
    cumulative = eweight * np.arange(servers)
    tot_slots = ((served + 1) * factor + 99) // 100
    per_weight, remainder = tot_slots // total_weight, tot_slots % total_weight
    slots = (eweight * per_weight + ((cumulative + eweight) * remainder) // total_weight
             - (cumulative * remainder) // total_weight)
    return np.maximum(slots, 1)


def simulate(policy: str, n: int, *, rate: float, service_ms: float, servers: int,
             factor: int = 125, runs: int = SIM_RUNS) -> list[float]:
    """max/mean of each of `runs` simulated runs of n requests under HAProxy's `policy`
    (leastconn, random2, bounded; see the module docstring)."""
    if policy not in SIM_POLICIES:
        raise ValueError(f"no simulation of {policy!r}")
    rng = np.random.default_rng([2, SIM_POLICIES.index(policy), n, servers, runs,
                                 round(rate * 1000), round(service_ms * 1000), factor])
    rows = np.arange(runs)
    slots_cap = 8
    ends = np.full((runs, servers, slots_cap), -np.inf)
    """When each request a server holds completes (-inf: a free place)."""
    counts = np.zeros((runs, servers), dtype=np.int64)
    changed = np.zeros((runs, servers))
    """leastconn's tie order: when a server's active count last changed."""
    ring = np.array(ring_shares(servers))
    prefer = np.array([servers - 1, *range(servers - 1)])
    """bounded: the server with the most slots first, then the ring walk."""
    now = np.zeros(runs)
    for _ in range(n):
        now = now + rng.exponential(1 / rate, runs)
        busy = ends > now[:, None, None]
        active = busy.sum(axis=2)
        if policy == "leastconn":
            last_done = np.where(busy, -np.inf, ends).max(axis=2)
            order = np.maximum(changed, last_done)
            least = active == active.min(axis=1, keepdims=True)
            pick = np.where(least, order, np.inf).argmin(axis=1)
        elif policy == "random2":
            first, second = (rng.choice(servers, size=runs, p=ring) for _ in range(2))
            fewer = (first != second) & (active[rows, second] > active[rows, first])
            pick = np.where(fewer, first, second)
        else:
            eligible = active < bounded_slots(active.sum(axis=1), factor, servers)
            pick = prefer[eligible[:, prefer].argmax(axis=1)]
        free = ~busy[rows, pick]
        if not free.any(axis=1).all():
            ends = np.concatenate([ends, np.full((runs, servers, slots_cap), -np.inf)], axis=2)
            free = np.concatenate([free, np.ones((runs, slots_cap), dtype=bool)], axis=1)
            slots_cap *= 2
        place = free.argmax(axis=1)
        ends[rows, pick, place] = now + rng.exponential(service_ms / 1000, runs)
        counts[rows, pick] += 1
        changed[rows, pick] = now
    return (counts.max(axis=1) / (n / servers)).tolist()


@functools.lru_cache(maxsize=256)
def simulated_max_over_mean(policy: str, n: int, *, rate: float, service_ms: float,
                            servers: int, factor: int = 125, q: float = QUANTILE) -> float:
    """The q-quantile of `simulate`, with n capped at SIM_MAX_REQUESTS (conservative) and
    the runs scaled so that a long run stays fast."""
    if n <= 0:
        return 1.0
    n = min(n, SIM_MAX_REQUESTS)
    runs = max(400, min(SIM_RUNS, SIM_RUNS * 2000 // n))
    return quantile(simulate(policy, n, rate=rate, service_ms=service_ms, servers=servers,
                             factor=factor, runs=runs), q)
