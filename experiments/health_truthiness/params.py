"""health-truthiness's parameters, the check types and faults, and the predictions computed
from them (check timings, Poisson counts, the consecutive-errors blind spot, the check
state machine under random timeouts)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lblab.params import param

CHECKS = ("l4", "shallow", "deep", "passive", "multi")
"""The check types; each is its own HAProxy node in front of the same backends."""
CHECK_TEXT = {
    "l4": "check (TCP connect: the port is open)",
    "shallow": "option httpchk GET /healthz (the process answers)",
    "deep": "option httpchk GET /ready (dependencies within a deadline, recent error rate)",
    "passive": "observe layer7 error-limit L on-error mark-down, with a rare /healthz check "
               "(passive_inter_ms) that brings a server back",
    "multi": "check + agent-check: the agent gates on its signals; a shared dependency's "
             "failure lowers the weight instead of ejecting (fail-open, as AWS ALB)",
}
FAULTS = ("gray", "shared-blip", "dep-down", "intermittent", "flapping")
SINGLE = ("gray", "dep-down")
"""Faults that break one backend (b1) for good during the fault window."""
FAULT_START, FAULT_END = "fault", "restore"
"""The timeline's two events in every variant."""
FAULTY = "b1"
"""The backend that gray, dep-down and intermittent break."""
AGENT_PORT = 8081
APP_PORT = 8080


@dataclass(frozen=True)
class Params:
    backends: int = param(3, "backends behind each HAProxy", min=2, max=6)
    rate: float = param(60.0, "requests/s offered to each of the five HAProxy nodes (Poisson)",
                        min=10, max=200)
    static_share: float = param(0.5, "share of requests to /static (needs no dependency) in "
                                "shared-blip; every other request is /cart", min=0.0, max=0.9)
    inter_ms: int = param(200, "check interval (HAProxy inter, also agent-inter)", min=50,
                          max=5000)
    fastinter_ms: int = param(100, "check interval while a server goes up or down", min=20,
                              max=5000)
    downinter_ms: int = param(200, "check interval while a server is down", min=20, max=5000)
    fall: int = param(3, "consecutive failed checks that mark a server down", min=1, max=10)
    rise: int = param(2, "consecutive passed checks that mark it up again", min=1, max=10)
    passive_inter_ms: int = param(30000, "the passive node's active check interval: HAProxy "
                                  "2.6 resets observe's consecutive-error count at every "
                                  "passing check, so L errors must fit between two checks",
                                  min=100, max=600000)
    timeout_check_ms: int = param(100, "a check's read timeout", min=20, max=5000)
    dep_deadline_ms: int = param(50, "the app's deadline for each dependency call", min=5,
                                 max=2000)
    error_window_s: float = param(1.0, "the deep check's and agent's error-rate window",
                                  min=0.2, max=30)
    error_threshold: float = param(0.2, "error rate at which /ready fails and the agent says "
                                   "down", min=0.01, max=1.0)
    error_limit: int = param(10, "L: consecutive errors that make the passive check eject "
                             "(HAProxy's default 10)", min=1, max=100)
    intermittent_p: float = param(0.8, "p: probability that b1's /cart errs (intermittent)",
                                  min=0.05, max=0.99)
    timeout_q: float = param(0.5, "q: probability that a health answer is too slow "
                             "(flapping)", min=0.01, max=0.99)
    fault_at_s: float = param(2.0, "when each fault starts", min=1.0, max=60)
    gray_s: float = param(4.0, "how long b1 answers 500 on /cart (gray)", min=1, max=300)
    blip_s: float = param(2.0, "D: how long the shared Redis is paused (shared-blip)", min=0.5,
                          max=300)
    down_s: float = param(4.0, "how long b1's own Redis is down (dep-down)", min=1, max=300)
    intermittent_s: float = param(30.0, "how long b1's /cart errs with probability p",
                                  min=2, max=600)
    flapping_s: float = param(30.0, "how long health answers are slow with probability q",
                              min=2, max=600)
    settle_s: float = param(2.5, "seconds of load after each fault ends", min=1.0, max=60)
    sample_s: float = param(0.05, "interval of the HAProxy stats samples (the resolution of "
                            "eject times)", min=0.01, max=1.0)
    dep_fault: str = param("stop", "dep-down: stop b1's Redis, or drop its port with nftables",
                           choices=("stop", "drop"))
    faults: tuple[str, ...] = param(FAULTS, "faults to run (one variant each)", choices=FAULTS)

    def validate(self) -> str | None:
        if self.timeout_check_ms >= self.inter_ms:
            return "timeout_check_ms must be below inter_ms (one check at a time)"
        if self.dep_deadline_ms >= self.timeout_check_ms:
            return ("dep_deadline_ms must be below timeout_check_ms: /ready must answer 503 "
                    "before the check times out")
        if "shared-blip" in self.faults and round(self.static_share * 10) == 0:
            return "static_share must be at least 0.05 (shared-blip measures /static)"
        if "intermittent" in self.faults and self.intermittent_p <= self.error_threshold:
            return ("intermittent_p must exceed error_threshold (else the deep check's error "
                    "rate never reaches it)")
        if self.settle_s < recovery_bound_s(self) + self.error_window_s:
            return (f"settle_s must be at least the recovery bound + error_window_s = "
                    f"{recovery_bound_s(self) + self.error_window_s:g} s")
        return None

    def duration(self, fault: str) -> float:
        return {"gray": self.gray_s, "shared-blip": self.blip_s, "dep-down": self.down_s,
                "intermittent": self.intermittent_s, "flapping": self.flapping_s}[fault]

    def end(self, fault: str) -> float:
        return self.fault_at_s + self.duration(fault) + self.settle_s


def quick() -> Params:
    """Five faults on one lab in about a minute: shorter windows, the same check timings."""
    return Params(gray_s=3.0, down_s=3.0, blip_s=2.0, intermittent_s=8.0, flapping_s=6.0,
                  fault_at_s=1.5, settle_s=2.0)


# -- what each check's node sees --------------------------------------------------------------
def routes(p: Params, fault: str) -> list[tuple[str, float]]:
    """(path, share) of each node's requests in a variant: /static only in shared-blip,
    its share rounded to tenths."""
    tenths = round(p.static_share * 10)  # the client draws from ten equally likely URLs
    if fault == "shared-blip" and tenths:
        return [("/cart", (10 - tenths) / 10), ("/static", tenths / 10)]
    return [("/cart", 1.0)]


def cart_rate_per_backend(p: Params, fault: str) -> float:
    """/cart requests/s one node sends one backend while all are up (round robin)."""
    return p.rate * dict(routes(p, fault))["/cart"] / p.backends


# -- check timings ------------------------------------------------------------------------
def s(ms: float) -> float:
    return ms / 1000


def detect_bound_s(p: Params) -> float:
    """A failing check-visible signal marks a server down within U(0, inter) + (fall - 1) x
    fastinter + the check timeout (the issue's bound); each of the fall - 1 further checks
    may itself take up to the timeout before it fails, which the bound adds too."""
    return (s(p.inter_ms) + (p.fall - 1) * (s(p.fastinter_ms) + s(p.timeout_check_ms))
            + s(p.timeout_check_ms))


def detect_min_s(p: Params) -> float:
    return (p.fall - 1) * s(p.fastinter_ms)


def window_fill_s(p: Params, error_p: float) -> float:
    """Time for the error-rate signal to reach the threshold once a share error_p of the
    backend's /cart answers fail: the window's error share grows as error_p x t / W."""
    return p.error_threshold * p.error_window_s / error_p


def recovery_bound_s(p: Params) -> float:
    """A server that passes again is up within downinter (+ timeout) + (rise - 1) x
    (fastinter + timeout)."""
    return (s(p.downinter_ms) + s(p.timeout_check_ms)
            + (p.rise - 1) * (s(p.fastinter_ms) + s(p.timeout_check_ms)))


def recovery_min_s(p: Params) -> float:
    return (p.rise - 1) * s(p.fastinter_ms)


def eject_bound_s(p: Params, check: str, fault: str) -> float:
    """Upper bound on the time from the fault to the node marking b1 down (deep, multi)."""
    signal = 0.0
    if fault == "gray":
        signal = window_fill_s(p, 1.0)
    elif fault == "intermittent":
        signal = window_fill_s(p, p.intermittent_p)
    if check == "multi":
        # The agent's "down" acts at once: the next agent check, within agent-inter.
        return signal + s(p.inter_ms) + s(p.timeout_check_ms)
    return signal + detect_bound_s(p)


def error_memory_s(p: Params, failing_s: float) -> float:
    """How long /ready keeps failing on its error-rate signal after every /cart answer
    failed for failing_s and then none: the window's error share is below the threshold
    once the failures fill less than threshold x W of it, W (1 - threshold) after they
    stop (0 when they never filled that much)."""
    w, e = p.error_window_s, p.error_threshold
    return w * (1 - e) if failing_s >= e * w else 0.0


def fleet_empty_range_s(p: Params) -> tuple[float, float]:
    """Shared blip of D s: how long deep's node has no server up. Every server fails its
    next checks from the pause on and is down within [detect_min, detect_bound]; /ready
    passes again once the pings answer and the error window has forgotten the blip's
    failed /cart answers (error_memory_s), and the first server to pass is up within
    [recovery_min, recovery_bound] of that: about D + rise x inter, plus the memory."""
    d = p.blip_s + error_memory_s(p, p.blip_s)
    return (max(0.0, d - detect_bound_s(p) + recovery_min_s(p)),
            d - detect_min_s(p) + recovery_bound_s(p))


def passive_eject_s(p: Params, fault: str) -> tuple[float, float]:
    """Passive check, every b1 answer an error: ejected at the L-th request to b1, a
    Gamma(L, r_b) time: (mean, standard deviation)."""
    r = cart_rate_per_backend(p, fault)
    return p.error_limit / r, math.sqrt(p.error_limit) / r


TAIL = 0.00135
"""The probability outside 3 standard deviations on each side of a normal: the tails left
outside a range stated from a skewed distribution's quantiles."""


def erlang_quantile(k: int, rate: float, q: float) -> float:
    """The q-quantile of the time of the k-th event of a Poisson process of `rate`
    (Gamma(k, rate), CDF 1 - sum_{j<k} e^-x x^j / j! at x = rate t), by bisection."""
    def cdf(t: float) -> float:
        x = rate * t
        term, total = 1.0, 1.0
        for j in range(1, k):
            term *= x / j
            total += term
        return 1 - math.exp(-x) * total

    lo, hi = 0.0, (k + 10 * math.sqrt(k) + 10) / rate
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < q else (lo, mid)
    return (lo + hi) / 2


def passive_eject_range_s(p: Params, fault: str) -> tuple[float, float]:
    """Where the L-th request to b1 falls, from TAIL to 1 - TAIL of Gamma(L, r_b)."""
    r = cart_rate_per_backend(p, fault)
    return (erlang_quantile(p.error_limit, r, TAIL),
            erlang_quantile(p.error_limit, r, 1 - TAIL))


# -- the blind spot and flapping -------------------------------------------------------------
def requests_to_run(p_err: float, length: int) -> float:
    """Expected requests until `length` consecutive errors when each errs with probability
    p_err: (1 - p^L) / ((1 - p) p^L)."""
    return (1 - p_err ** length) / ((1 - p_err) * p_err ** length)


def requests_to_run_sd(p_err: float, length: int) -> float:
    """Its standard deviation: sqrt(1 - (2L + 1)(1 - p) p^L - p^(2L + 1)) / ((1 - p) p^L)."""
    q, L = p_err, length
    var = (1 - (2 * L + 1) * (1 - q) * q ** L - q ** (2 * L + 1)) / ((1 - q) ** 2 * q ** (2 * L))
    return math.sqrt(max(var, 0.0))


def false_ejections_per_check(q: float, fall: int, rise: int) -> float:
    """Each check fails independently with probability q. HAProxy's check state machine:
    up with c consecutive failures (c < fall; a pass resets c), down with k consecutive
    passes (k < rise; a failure resets k). Ejections per check = the stationary probability
    of up with fall - 1 failures, times q (the chain solved exactly, by power iteration).
    Roughly q^fall (1 - q) when q^fall is small."""
    n = fall + rise
    pi = [1.0 / n] * n
    for _ in range(20000):
        nxt = [0.0] * n
        for c in range(fall):  # state c: up, c consecutive failures
            nxt[0] += pi[c] * (1 - q)
            nxt[c + 1 if c + 1 < fall else fall] += pi[c] * q
        for k in range(rise):  # state fall + k: down, k consecutive passes
            i = fall + k
            nxt[fall] += pi[i] * q
            nxt[fall + k + 1 if k + 1 < rise else 0] += pi[i] * (1 - q)
        done = max(abs(a - b) for a, b in zip(nxt, pi, strict=True)) < 1e-15
        pi = nxt
        if done:
            break
    return pi[fall - 1] * q


def poisson_slack(expected: float, sigmas: float = 3.0) -> float:
    """sigmas standard deviations of a Poisson count with this mean (at least 1)."""
    return max(1.0, sigmas * math.sqrt(max(expected, 0.0)))
