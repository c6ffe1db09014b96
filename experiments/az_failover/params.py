"""az-failover's parameters, its variants' names, and the timing every part shares."""

from __future__ import annotations

from dataclasses import dataclass

from lblab.params import param

KINDS = ("naive", "zone-aware", "surge")
"""How each zone's HAProxy picks backends (see the package docstring)."""
FAILURE = "zone-failure"
"""The timeline event that fails the zone; analysis windows start from when it fired."""
BACKEND_PORT = 8080
SAMPLE_S = 0.2
BIN_S = 0.5
WARMUP_S = 1.0
AFTER_MIN_S = 1.0
FAULT_SLACK_S = 0.5
"""How late the failure may fire: windows follow its measured time, and `validate` leaves
AFTER_MIN_S of measurement after the detection bound even when it fires this late (and the
after window ends at the last sample before the schedule's end, up to SAMPLE_S earlier)."""


@dataclass(frozen=True)
class Params:
    zones: int = param(3, "availability zones (Z)", min=2, max=5)
    backends: int = param(2, "backends per zone (B)", min=1, max=4)
    workers: int = param(4, "workers per backend (W)", min=1, max=64)
    service_ms: float = param(50.0, "mean service time (exponential), S", min=5, max=1000)
    queue: int = param(256, "queue limit per backend (then 503): long, as thread pools are",
                       min=0, max=10_000)
    utilizations: tuple[float, ...] = param((0.5, 0.67, 0.8, 0.9), "per-zone utilization "
                                            "before the failure (the sweep)", min=0.05, max=0.98)
    variants: tuple[str, ...] = param(KINDS, "variants to run", choices=KINDS)
    naive_utilizations: tuple[float, ...] = param((), "utilizations for the naive variant "
                                                  "(empty: the whole sweep); its cross-zone "
                                                  "share and detection time do not depend on "
                                                  "u", min=0.05, max=0.98)
    failed_zone: int = param(1, "the zone that fails", min=1, max=5)
    response_kb: float = param(8.0, "response body size (KiB)", min=0, max=1024)
    timeout_s: float = param(2.0, "client timeout", min=0.1, max=30)
    t0: float = param(6.0, "seconds of load before the zone fails", min=2, max=600)
    end: float = param(16.0, "seconds of load in all", min=4, max=1200)
    check_inter_ms: int = param(500, "HAProxy health-check interval", min=50, max=10_000)
    check_fall: int = param(2, "failed checks that mark a server down", min=1, max=10)
    surge_queue: int = param(8, "surge: requests that may wait in an LB node's queue "
                             "(K - c of the M/M/c/K it makes)", min=1, max=1000)
    usd_per_gb: float = param(0.02, "price of a GB that crosses zones (AWS: 0.01 out + "
                              "0.01 in)", min=0, max=10)

    def validate(self) -> str | None:
        if self.failed_zone > self.zones:
            return f"failed_zone must be at most zones ({self.zones})"
        need = detect_bound_s(self) + AFTER_MIN_S + FAULT_SLACK_S + SAMPLE_S
        if self.end - self.t0 < need:
            return ("end - t0 must leave time to detect the failure and measure a second after "
                    f"it, even if the failure fires {FAULT_SLACK_S:g} s late: at least "
                    f"{need:g} s")
        if self.t0 < WARMUP_S + 1:
            return f"t0 must be at least {WARMUP_S + 1:g} s (warm-up plus a steady second)"
        return None


def quick() -> Params:
    """One unsaturated and one saturated utilization (naive only at the first), faster
    health checks and short phases, so the five variants fit in about a minute."""
    return Params(utilizations=(0.5, 0.9), naive_utilizations=(0.5,), t0=2.3, end=5.6,
                  check_inter_ms=200)


def sweep(p: Params, kind: str) -> tuple[float, ...]:
    """The utilizations variant `kind` runs at."""
    return (p.naive_utilizations or p.utilizations) if kind == "naive" else p.utilizations


def variant_name(kind: str, u: float) -> str:
    return f"{kind}@{u:g}"


def parse_variant(name: str) -> tuple[str, float]:
    """(kind, utilization) of a variant name made by `variant_name`."""
    kind, _, u = name.partition("@")
    return kind, float(u)


def planned(p: Params) -> list[tuple[str, float]]:
    """Every (kind, utilization) of a run with these parameters, in the order they run."""
    return [(kind, u) for kind in p.variants for u in sweep(p, kind)]


def rate_for(p: Params, u: float) -> float:
    """Offered requests/s that run every zone at utilization u."""
    return u * p.zones * p.backends * p.workers / (p.service_ms / 1000)


def check_timeout_ms(p: Params) -> int:
    """A check's connect timeout is min(timeout connect, inter); we set timeout check to
    inter as well, so a check to a dead server fails after at most `inter`."""
    return min(1000, p.check_inter_ms)


def detect_bound_s(p: Params) -> float:
    """The latest a survivor's HAProxy marks a dead server DOWN: up to one interval until the
    next check starts, then `fall` checks that each time out and wait an interval, plus
    our sampling period."""
    return (p.check_inter_ms + p.check_fall * (p.check_inter_ms + check_timeout_ms(p))) / 1000 \
        + SAMPLE_S
