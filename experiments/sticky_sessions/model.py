"""sticky-sessions' predictions, from the run's parameters only.

- A backend fails under cookie affinity: the sessions whose cart it held, 1/N of the active
  ones, lose their carts; each active session is on it with probability 1/N (binomial).
- Draining first: a session on the drained backend keeps its cart if it ends within the
  window W, which an exponential lifetime of mean tau does with probability 1 - e^(-W/tau)
  (memoryless), so (1/N) e^(-W/tau) of the active sessions still lose theirs.
- Recovery: only new sessions reach the returned backend, 1/N of them; sessions are
  replaced at rate 1/tau, so its share of the active sessions is (1/N)(1 - e^(-t/tau)).
- Hot backends: with affinity a backend's load is the summed rates of the users pinned to
  it; `affinity_imbalance` simulates that assignment with the run's users (their activity
  weights from the seed) and Poisson counts; round robin with carts in Redis spreads
  requests one by one: `multinomial_imbalance`.
"""

from __future__ import annotations

import math

import numpy as np

from lblab.workloads.users import activity

from .params import Params

TRIALS = 4000
"""Monte Carlo trials of a max/mean distribution (its 0.15 % tail holds 6 trials)."""
CENTRAL = 0.997
"""The central share of a simulated distribution a measurement is expected in (3 sigma)."""


def lost_share(p: Params) -> float:
    return 1 / p.backends


def drain_lost_share(p: Params) -> float:
    return math.exp(-p.drain_s / p.tau_s) / p.backends


def recovery_share(p: Params, t: float) -> float:
    """The returned backend's share of active sessions t seconds after it is UP."""
    return (1 - math.exp(-max(t, 0.0) / p.tau_s)) / p.backends


def affinity_lost_share(p: Params, peers: bool) -> float:
    """stick-*: the withdrawn node served half the sessions (two equal buckets of the
    fabric's select group); without peers the survivor has no entry for them and balances
    each afresh, onto another backend with probability 1 - 1/N; with peers it has them."""
    return 0.0 if peers else 0.5 * (1 - 1 / p.backends)


def failed_requests_bound(p: Params) -> float:
    """Requests the users send to the failed backend while HAProxy still holds it UP: its
    request rate (U / think / N) x the detection bound. With retries on conn-failure and
    redispatch, HAProxy hides them, so the measurement is expected well under it."""
    return p.rate / p.backends * p.detection_bound_s


def expected_requests(p: Params, weights: list[float]) -> np.ndarray:
    """Each hot-* user's expected requests: rate w_i / think over the variant, plus the
    first (due within a think) and the final checkout."""
    seconds = p.setting("hot-backends").seconds
    return np.array([w * seconds / p.think_s + 1 for w in weights])


def affinity_imbalance(p: Params, seed: int, trials: int = TRIALS) -> np.ndarray:
    """Simulated max/mean of per-backend requests when each user is pinned to the backend
    round robin gave its first request: users arrive in random order (their first requests
    are uniform within a think), so each backend gets an equal share of a random
    permutation; each user's count is Poisson around its expected requests."""
    weights = activity(p.users, p.alpha, seed)
    lam = expected_requests(p, weights)
    rng = np.random.default_rng(seed)
    n = p.backends
    out = np.empty(trials)
    for k in range(trials):
        counts = rng.poisson(lam)
        order = rng.permutation(p.users)
        loads = np.bincount(np.arange(p.users) % n, weights=counts[order], minlength=n)
        out[k] = loads.max() / loads.mean()
    return out


def multinomial_imbalance(p: Params, seed: int, trials: int = TRIALS) -> np.ndarray:
    """Simulated max/mean when every request picks a backend on its own (multinomial):
    an upper bound for round robin, whose rotation spreads them evenly."""
    weights = activity(p.users, p.alpha, seed)
    total = int(round(expected_requests(p, weights).sum()))
    rng = np.random.default_rng(seed + 1)
    loads = rng.multinomial(total, [1 / p.backends] * p.backends, size=trials)
    return loads.max(axis=1) / loads.mean(axis=1)


def central_interval(samples: np.ndarray, share: float = CENTRAL) -> tuple[float, float]:
    tail = (1 - share) / 2
    return float(np.quantile(samples, tail)), float(np.quantile(samples, 1 - tail))
