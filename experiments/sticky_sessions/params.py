"""sticky-sessions' parameters and its variants' settings."""

from __future__ import annotations

from dataclasses import dataclass

from lblab.errors import UsageError
from lblab.params import param

VARIANTS = ("cookie-local", "recovery", "drain", "hot-backends", "cookie-redis",
            "hot-roundrobin", "stick-no-peers", "stick-peers")
"""In run order: the in-memory variants first, then those with carts in Redis (the
backends restart once, when the store changes), then the two-node anycast lab's."""
STICK = ("stick-no-peers", "stick-peers")
FAIL, BACK, DRAIN, STOP, WITHDRAW = "fail", "back", "drain", "stop", "withdraw"
"""Timeline events: a backend's process dies; it starts again; it is set to drain; the
drained backend is stopped for maintenance; an LB node's link to the fabric goes down."""
FAILED_LB = 1
"""In the stick-* variants lb1 fails (the fabric withdraws it)."""
PEERS_PORT = 10000
BACKEND_PORT = 8080
L7_VIP = "10.0.0.1"
"""HAProxy's front address (TwoTierTopo's lb_front_ip(1))."""


@dataclass(frozen=True)
class Setting:
    """What a variant runs: carts in the backends' memory or in Redis, HAProxy's balancing
    (cookie affinity or plain round robin), the users' lifetime and activity, the faults."""

    store: str
    cookie: bool
    tau_s: float
    alpha: float
    seconds: float
    faults: tuple[str, ...]
    tier: str = "l7"
    """`l7`: one HAProxy (l7) with cookie affinity; `anycast`: two (lb1, lb2) behind the
    fabric's anycast VIP, affinity in a stick table on the backends' `sid` cookie."""
    peers: bool = False


@dataclass(frozen=True)
class Params:
    backends: int = param(10, "N: backends behind HAProxy", min=3, max=16)
    users: int = param(300, "U: concurrent users (each a session at a time, with its own "
                       "cookie jar)", min=20, max=2000)
    think_s: float = param(1.0, "mean think time between a user's requests (s)", min=0.05,
                           max=30)
    tau_s: float = param(12.0, "tau: mean session lifetime (exponential, s)", min=1, max=600)
    alpha: float = param(1.3, "Pareto shape of the users' activity in the hot-* variants "
                         "(smaller: heavier tail)", min=1.05, max=5)
    seconds: float = param(16.0, "length of cookie-local, cookie-redis and stick-* (s)", min=4,
                           max=600)
    hot_seconds: float = param(15.0, "length of the hot-* variants (s)", min=2, max=600)
    t_fail: float = param(8.0, "when the backend fails (or is set to drain) (s)", min=1,
                          max=300)
    t_back: float = param(12.0, "recovery: when the failed backend starts again (s)", min=2,
                          max=300)
    recovery_taus: float = param(2.0, "recovery: how long it is watched after it is back, "
                                 "in units of tau", min=0.5, max=10)
    drain_s: float = param(12.0, "drain: the window between `drain` and the backend's stop "
                           "(s)", min=0.5, max=300)
    failed: int = param(1, "which backend fails (b1..bN)", min=1, max=16)
    check_inter_ms: int = param(500, "HAProxy health check interval (ms)", min=50,
                                max=10_000)
    check_fall: int = param(2, "failed checks before a server is DOWN", min=1, max=10)
    check_rise: int = param(2, "passed checks before a server is UP again", min=1, max=10)
    retries: int = param(3, "HAProxy retries (retry-on conn-failure empty-response, the "
                         "last one redispatched)", min=1, max=10)
    service_ms: float = param(2.0, "backend service time (exponential mean, ms)", min=0,
                              max=1000)
    timeout_s: float = param(2.0, "the users' request timeout (s)", min=0.1, max=30)
    sample_s: float = param(0.1, "interval of HAProxy `show stat` samples (s)", min=0.02,
                            max=2)
    variants: tuple[str, ...] = param(VARIANTS, "variants to run", choices=VARIANTS)

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem:
            name, text = problem
            raise UsageError(f"sticky-sessions: {name}: {text}")

    def problem(self) -> tuple[str, str] | None:
        detect = self.detection_bound_s
        if self.failed > self.backends:
            return "failed", f"must be at most backends = {self.backends}"
        if self.t_fail + detect + 2 > self.seconds:
            return "seconds", (f"must leave detection ({detect:g} s) + 2 s after t_fail = "
                               f"{self.t_fail:g} s")
        if self.t_back < self.t_fail + detect:
            return "t_back", (f"must be at least t_fail + the detection bound = "
                              f"{self.t_fail + detect:g} s")
        return None

    @property
    def detection_bound_s(self) -> float:
        """The failed server is DOWN after at most `fall` checks `inter` apart, the first at
        most `inter` after the failure, plus one sample to see it."""
        return self.check_fall * self.check_inter_ms / 1000 + self.sample_s

    @property
    def rate(self) -> float:
        """The users' request rate (U / think), every variant."""
        return self.users / self.think_s

    def setting(self, name: str) -> Setting:
        tau, t0 = self.tau_s, self.t_fail
        return {
            "cookie-local": Setting("memory", True, tau, 0.0, self.seconds, (FAIL,)),
            "cookie-redis": Setting("redis", True, tau, 0.0, self.seconds, (FAIL,)),
            "recovery": Setting("memory", True, tau, 0.0,
                                self.t_back + self.recovery_taus * tau, (FAIL, BACK)),
            "drain": Setting("memory", True, tau, 0.0, t0 + self.drain_s + 2, (DRAIN, STOP)),
            "hot-backends": Setting("memory", True, 0.0, self.alpha, self.hot_seconds, ()),
            "hot-roundrobin": Setting("redis", False, 0.0, self.alpha, self.hot_seconds, ()),
            "stick-no-peers": Setting("memory", False, tau, 0.0, self.seconds, (WITHDRAW,),
                                      "anycast", peers=False),
            "stick-peers": Setting("memory", False, tau, 0.0, self.seconds, (WITHDRAW,),
                                   "anycast", peers=True),
        }[name]


def quick() -> Params:
    """300 users, short sessions (tau 4 s), 200 ms checks: eight variants on two labs in
    under 90 s."""
    return Params(tau_s=4.0, seconds=6.0, hot_seconds=5.0, t_fail=2.5, t_back=4.0,
                  recovery_taus=2.0, drain_s=3.0, check_inter_ms=200)


