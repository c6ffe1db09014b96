"""metrics-blind-spots' parameters and the windows and thresholds derived from them."""

from __future__ import annotations

from dataclasses import dataclass

from lblab.params import param

VARIANTS = ("l4-view", "tail-regression", "sampling", "coordinated-omission")
FAULT_ON, FAULT_OFF = "fault-on", "fault-off"
"""The timeline's events: the backends' fault knob set at t1, cleared at t2."""
STALL, RESUME = "stall", "resume"
"""coordinated-omission: every backend SIGSTOPped at the stall, SIGCONTed S seconds later."""
BIN_S = 1.0
"""Width of the per-second series."""
RTIME_SAMPLES = 512
"""HAProxy's moving averages (qtime/ctime/rtime/ttime) weigh about the last 512 requests
(TIME_STATS_SAMPLES in its source; the manual says 1024)."""
PATHS = ("l4", "l7t", "l7h")
"""l4-view's three ways from the client to the same backends: the nftables L4 node, HAProxy
in mode tcp, HAProxy in mode http (the client spreads its requests over them)."""


@dataclass(frozen=True)
class Params:
    rate: float = param(200.0, "open-loop requests per second", min=20, max=1000)
    backends: int = param(2, "backends behind every LB node", min=1, max=4)
    workers: int = param(256, "workers per backend (enough that nothing queues, even the "
                         "requests a stall piles up)", min=8, max=2048)
    service_ms: float = param(10.0, "constant service time of a request", min=1, max=200)
    end: float = param(30.0, "seconds of load per variant", min=6, max=600)
    t1: float = param(8.0, "when the fault starts (l4-view, tail-regression)", min=1,
                      max=600)
    t2: float = param(22.0, "when the fault ends", min=2, max=600)
    error_fraction: float = param(0.1, "l4-view: f, the share of requests answered 500 "
                                  "between t1 and t2", min=0.01, max=0.5)
    slow_fraction: float = param(0.05, "tail-regression: f, the share of requests that get "
                                 "+delta between t1 and t2", min=0.011, max=0.5)
    delta_ms: float = param(100.0, "tail-regression and sampling: the added latency",
                            min=20, max=5000)
    slo_ms: float = param(60.0, "the SLO judged: p99 < slo_ms (between the normal p99 and "
                          "service + delta)", min=1, max=10_000)
    tail_fraction: float = param(0.004, "sampling: the share of requests with +delta for "
                                 "the whole run (between 0.1 % and 1 %: p99.9 sees it, p99 "
                                 "does not)", min=0.0011, max=0.0099)
    sample_rate: float = param(0.01, "sampling: the share of requests a tracer keeps",
                               min=0.0001, max=0.5)
    sample_draws: int = param(400, "sampling: independent 1 % samples drawn from the full "
                              "record set", min=20, max=10_000)
    stall_s: float = param(2.0, "coordinated-omission: S, how long every backend is stopped",
                           min=0.2, max=10)
    connections: int = param(4, "coordinated-omission: C, wrk's connections (closed loop, "
                             "one thread)", min=1, max=64)
    co_rate: float = param(100.0, "coordinated-omission: R, the open-loop client's rate",
                           min=20, max=1000)
    sample_s: float = param(0.25, "interval of the HAProxy and L4 counter samples", min=0.05,
                            max=2)
    variants: tuple[str, ...] = param(VARIANTS, "variants to run", choices=VARIANTS)

    def validate(self) -> str | None:
        if not self.t1 < self.t2 < self.end:
            return "need t1 < t2 < end"
        if self.t2 - self.t1 < 2 * BIN_S:
            return "the fault window t2 - t1 must last at least 2 s"
        if not self.service_ms * 2 < self.slo_ms < self.service_ms + self.delta_ms:
            return (f"slo_ms must lie between 2 x service_ms and service_ms + delta_ms "
                    f"({2 * self.service_ms:g}..{self.service_ms + self.delta_ms:g})")
        if self.stall_s > self.end / 3:
            return "stall_s must be at most end / 3 (the stall sits in the run's middle)"
        if self.workers * self.backends < self.connections + 2 * self.co_rate * self.stall_s:
            return ("workers x backends must hold wrk's connections and twice the requests "
                    "the open-loop client sends during the stall (C + 2 R S)")
        return None

    # -- what the variants derive -------------------------------------------------------
    @property
    def stall_at(self) -> float:
        """The stall starts in the middle of the run."""
        return round(self.end / 2 - self.stall_s / 2, 3)


def quick() -> Params:
    """Every variant shortened to 12 s (fault 3-9 s), the stall to 1.5 s; predictions follow
    the params."""
    return Params(end=12.0, t1=3.0, t2=9.0, stall_s=1.5, sample_draws=200)
