"""retry-storm's parameters, its variants' retry policies, and the bounds predicted from them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lblab.params import param

VARIANTS = ("none", "naive", "layered", "backoff", "budget-10", "budget-20", "token-bucket",
            "breaker")
BUDGETS = {"budget-10": 0.1, "budget-20": 0.2}
"""Budget variants and their retry ratio."""
RECOVERING = ("budget-10", "budget-20", "token-bucket", "breaker")
"""Variants claimed to recover within the drain bound."""
BIN_S = 1.0
"""Width of the per-second series and of the recovery test's bins."""
SLOW, RESTORE = "slow", "restore"
"""The timeline's two faults: every backend slow at t1, back to normal at t2."""


@dataclass(frozen=True)
class Params:
    rate: float = param(60.0, "offered requests per second (open loop)", min=5, max=500)
    backends: int = param(3, "backends behind the proxy", min=1, max=8)
    workers: int = param(8, "workers per backend", min=1, max=256)
    queue: int = param(16, "queue limit per backend (then 503)", min=0, max=10_000)
    normal_ms: float = param(100.0, "service time before t1 and after t2", min=1, max=10_000)
    slow_ms: float = param(2000.0, "service time between t1 and t2", min=1, max=60_000)
    timeout_s: float = param(1.0, "client timeout", min=0.05, max=30)
    retries: int = param(1, "k: client retries (naive, layered, backoff, budgets)", min=1,
                         max=5)
    proxy_retries: int = param(1, "HAProxy retries in the layered variant", min=1, max=5)
    budget_min_per_s: float = param(0.0, "retry budget floor (retries/s on top of the ratio)",
                                    min=0, max=100)
    budget_window_s: float = param(10.0, "the budget's sliding window (Finagle's TTL: 10 s)",
                                   min=0.5, max=120)
    breaker_threshold: int = param(5, "consecutive failures that open the breaker", min=1,
                                   max=100)
    breaker_cooldown_s: float = param(1.0, "seconds before the breaker half-opens", min=0.1,
                                      max=60)
    t1: float = param(5.0, "seconds until the slowdown", min=1, max=600)
    t2: float = param(17.0, "seconds until service time is back to normal", min=2, max=600)
    end: float = param(30.0, "seconds of load in all", min=3, max=1200)
    sample_s: float = param(0.02, "interval of the backends' arrival-counter samples (the "
                            "resolution of the breaker and budget claims)", min=0.005, max=1)
    variants: tuple[str, ...] = param(VARIANTS, "variants to run", choices=VARIANTS)

    def validate(self) -> str | None:
        if not self.t1 < self.t2 < self.end:
            return "need t1 < t2 < end"
        if self.t2 - self.t1 < 2 * self.timeout_s + max(BIN_S, self.budget_window_s):
            return ("the slowdown (t2 - t1) must last at least 2 x timeout_s + the budget "
                    f"window = {2 * self.timeout_s + max(BIN_S, self.budget_window_s):g} s")
        need = self.t2 + max(drain_bound_s(self, v) for v in self.variants) + self.timeout_s
        if self.end < need:
            return (f"end must be at least t2 + drain bound + timeout = {need:g} s to see "
                    "recovery")
        if self.breaker_cooldown_s < 4 * self.sample_s:
            return ("breaker_cooldown_s must be at least 4 x sample_s: the backends' samples "
                    "must resolve the breaker's silence")
        return None


def quick() -> Params:
    """Every time constant halved or less (service 50 ms -> 1 s, timeout 0.5 s, budget window
    2 s, cooldown 0.5 s) so four variants fit in a minute; predictions follow the params."""
    return Params(normal_ms=50.0, slow_ms=1000.0, timeout_s=0.5, budget_window_s=2.0,
                  breaker_cooldown_s=0.5, queue=8, t1=1.5, t2=5.0, end=9.0,
                  variants=("naive", "layered", "budget-10", "breaker"))


def policy_for(p: Params, variant: str) -> dict:
    """The client's retry policy (lblab.workloads.retry spec) in a variant."""
    k = p.retries
    budget = {"kind": "budget", "retries": k, "min_per_s": p.budget_min_per_s,
              "window_s": p.budget_window_s}
    return {
        "none": {"kind": "none"},
        "naive": {"kind": "naive", "retries": k},
        "layered": {"kind": "naive", "retries": k},
        "backoff": {"kind": "backoff", "retries": k, "base_s": 0.1, "cap_s": 2.0},
        "budget-10": {**budget, "ratio": BUDGETS["budget-10"]},
        "budget-20": {**budget, "ratio": BUDGETS["budget-20"]},
        "token-bucket": {"kind": "token_bucket", "max_tokens": 10, "token_ratio": 0.1,
                         "retries": k},
        "breaker": {"kind": "breaker", "threshold": p.breaker_threshold,
                    "cooldown_s": p.breaker_cooldown_s},
    }[variant]


def proxy_timeout_ms(p: Params) -> int:
    """The retrying proxy gives up on a server early enough that all its attempts fit in
    the client's timeout (90 % of it), so its 504 reaches the client in time to be retried."""
    return int(p.timeout_s * 900 / (1 + p.proxy_retries))


def drain_bound_s(p: Params, variant: str) -> float:
    """When load and latency are normal again after t2: a backend holds at most W busy and Q
    queued requests at t2, each with the slow service time it drew on arrival, so it drains
    in ceil((W+Q)/W) x slow_ms; a breaker adds its cooldown (its probe waits for it); plus
    one bin of the recovery test."""
    drain = math.ceil((p.workers + p.queue) / p.workers) * p.slow_ms / 1000
    cooldown = p.breaker_cooldown_s if policy_for(p, variant)["kind"] == "breaker" else 0.0
    return drain + cooldown + BIN_S


def metastable_queue(p: Params) -> float:
    """The queue above which waiting alone exceeds the timeout at normal speed
    (W x timeout / service): past it, retried load can keep the backends saturated."""
    return p.workers * p.timeout_s * 1000 / p.normal_ms


def attempt_lags_s(p: Params, variant: str) -> list[float]:
    """When a request's attempts reach the backends after it is offered, while every attempt
    fails by timing out: naive, each retry one client timeout after the last; layered, the
    proxy's 1 + k_proxy attempts, one per server timeout, inside each client attempt (the
    proxy's 504 ends it before the client's own timeout)."""
    if variant == "layered":
        proxy = proxy_timeout_ms(p) / 1000
        return [j * (1 + p.proxy_retries) * proxy + i * proxy
                for j in range(1 + p.retries) for i in range(1 + p.proxy_retries)]
    return [j * p.timeout_s for j in range(1 + p.retries)]


def amplification_error(p: Params, variant: str, offered: int, window_s: float) -> float:
    """One standard error of arrivals / offered over a window of `window_s` holding `offered`
    Poisson requests: the arrivals count the requests offered in the window shifted back by
    each lag, and each shift trades the requests of min(lag, window) at one end for as many
    at the other (variance 2 x rate x min(lag, window) per lag)."""
    if offered <= 0 or window_s <= 0:
        return math.inf
    rate = offered / window_s
    return math.sqrt(sum(2 * rate * min(lag, window_s)
                         for lag in attempt_lags_s(p, variant))) / offered
