"""conntrack-exhaustion's parameters, its variants and the note's numbers."""

from __future__ import annotations

from dataclasses import dataclass

from lblab.params import param

CHURN = ("churn", "short-timeout", "keep-alive", "spread")
"""The NAT phases: churn through the nodes, the table flushed between them."""
SMALL_TABLE = "small-table"
FLOODS = ("syn-flood", "synproxy")
NOTE_RATE, NOTE_TIMEOUT_S, NOTE_BYTES = 100_000, 30, 500
NOTE_BUDGET = (200, 500)
"""The note's per-flow budget, in bytes."""
TOLERANCE = 0.15
"""Relative tolerance of the occupancy claims (the note's Little's-law model, unchanged)."""
BACKEND_PORT = 8080
CLIENT_TIMEOUT_S = 2.0
FLOOD_PACKETS = 5_000_000
"""hping3's packet bound (floods.MAX_FLOOD_PACKETS); its time bound is `flood_s`."""
FLOOD_SAMPLE_S = 0.25


@dataclass(frozen=True)
class Params:
    rate: float = param(200.0, "new connections (requests) per second", min=10, max=1000)
    time_wait_s: int = param(30, "conntrack TIME_WAIT timeout in the node (kernel default "
                             "120)", min=2, max=600)
    short_time_wait_s: int = param(8, "the aggressive TIME_WAIT timeout", min=1, max=600)
    keepalive_requests: int = param(20, "requests per connection in keep-alive (the reuse "
                                    "factor k)", min=2, max=10_000)
    measure_s: float = param(20.0, "steady-state seconds measured after the table fills",
                             min=2, max=3600)
    backends: int = param(3, "backends behind the node", min=1, max=20)
    service_ms: float = param(5.0, "mean backend service time", min=0, max=1000)
    sample_s: float = param(0.5, "seconds between occupancy samples", min=0.1, max=10)
    nodes: int = param(3, "NAT nodes the spread variant shares the churn over", min=2, max=8)
    flood_s: float = param(5.0, "seconds of SYN flood (hping3, spoofed sources)", min=1,
                           max=60)
    legit_rate: float = param(50.0, "legitimate connections/s during the flood", min=1,
                              max=500)
    small_table: int = param(4096, "nf_conntrack_max for the small-table variant (0: skip "
                             "it); global, restored afterwards", min=0, max=262144)
    client_addresses: int = param(8, "source addresses the churning client spreads over. "
                                  "One address at 200 conn/s wraps the kernel's source ports "
                                  "within TIME_WAIT, and a SYN that reuses a TIME_WAIT entry's "
                                  "5-tuple replaces it", min=1, max=64)

    def validate(self) -> str | None:
        if self.short_time_wait_s >= self.time_wait_s:
            return "short_time_wait_s must be below time_wait_s"
        if self.small_table and self.rate * self.time_wait_s < 1.2 * self.small_table:
            return (f"small_table {self.small_table} must be below rate x time_wait_s / 1.2 "
                    f"= {self.rate * self.time_wait_s / 1.2:.0f} for the table to fill")
        return None


def quick() -> Params:
    return Params(rate=150.0, time_wait_s=4, short_time_wait_s=1, keepalive_requests=10,
                  measure_s=2.5, flood_s=2.0, small_table=256)


def timeout_s(p: Params, variant: str) -> int:
    """The TIME_WAIT timeout a variant runs with."""
    return p.short_time_wait_s if variant == "short-timeout" else p.time_wait_s


def churn_duration_s(p: Params) -> float:
    """How long the client churns in a NAT phase: the table fills for one TIME_WAIT, then
    `measure_s` of steady state."""
    return p.time_wait_s + 1 + p.measure_s


def steady_window(p: Params, variant: str) -> tuple[float, float]:
    """The samples of the steady state: once the first TIME_WAIT entries expire, up to half
    a second before the client's schedule ends."""
    return timeout_s(p, variant) + 1, churn_duration_s(p) - 0.5


def targets(p: Params, variant: str) -> int:
    """How many NAT nodes a variant's client round-robins over."""
    return p.nodes if variant == "spread" else 1
