"""What az-failover predicts, from the run's own parameters only.

- Losing 1 of Z zones multiplies each survivor's load by Z/(Z-1); they stay unsaturated only
  while u <= (Z-1)/Z, so after the failure their workers are busy min(1, u Z/(Z-1)).
- Naive balancing answers (Z-1)/Z of the requests from another zone; zone-aware none.
- Under surge protection a surviving zone is an M/M/c/K queue (lblab/queueing.py): it refuses
  the model's blocking share and keeps the admitted requests' p99 at the model's sojourn p99.
"""

from __future__ import annotations

import math

from experiments.az_failover.params import Params, detect_bound_s, rate_for, sweep
from lblab.queueing import MMcK

PROXY_ALLOWANCE_MS = 50.0
"""What a success may add to the model's wait + service: connection set-up through the
fabric, two proxy hops and the backends' 1 ms event-loop ticks."""
POOLING_LOAD_ERROR = 0.02
"""The M/M/c/K pools a zone's B x W workers behind one FCFS queue. HAProxy's roundrobin skips
only *full* servers (maxconn W + 1), so a request can wait at a server whose workers are all
busy while another server has one idle: the pool is not quite work-conserving. A simulation
of that dispatch (tests/unit/test_az_failover.py) refuses what the M/M/c/K refuses at up to
1-2 % more load; 2 % is stated."""
HANDOVER_MS = 2.0
"""How long a server's freed slot goes unused before the next queued request reaches its
worker: the response's way back to HAProxy, then a new TCP connection (the client opens one
connection per request, and HAProxy's default `http-reuse safe` never gives a session's
first request another session's idle server connection) and the request's way out: two
round trips between LB node and backend through the userspace zone switch, with the
wake-ups of HAProxy and the backend's event loop on a loaded 2-core machine. The W + 1st
slot hides it only while no second worker of that server frees up meanwhile."""
TIMER_MS = 0.5
"""The backends' service is an asyncio sleep on uvloop, whose timers run on whole
milliseconds: each service overshoots its draw by 0.1 ms on average on an idle machine, up
to 1 ms under load."""


def threshold(z: int) -> float:
    """The highest pre-failure utilization that survives losing one of z zones."""
    return (z - 1) / z


def survivor_multiplier(z: int) -> float:
    return z / (z - 1)


def post_failure_load(p: Params, u: float) -> float:
    return u * survivor_multiplier(p.zones)


def post_failure_utilization(p: Params, u: float) -> float:
    return min(1.0, post_failure_load(p, u))


def naive_cross_zone(z: int) -> float:
    """Round robin over every zone's backends: (Z-1)/Z of them are in another zone."""
    return (z - 1) / z


def surviving_zone_queue(p: Params, u: float, load_error: float = 0.0) -> MMcK:
    """What a surviving zone under surge protection is after the failure: Poisson arrivals
    at 1/(Z-1) of the load (the anycast split thins a Poisson stream into Poisson streams),
    c = B W workers, K = B (W + 1) + surge_queue: what maxconn lets through to the backends
    plus the LB node's queue. `load_error` scales the arrival rate (the model-error band)."""
    c = p.backends * p.workers
    return MMcK(rate_for(p, u) / (p.zones - 1) * (1 + load_error), 1000 / p.service_ms, c,
                c + p.backends + p.surge_queue)


def model_load_error(p: Params) -> float:
    """The stated error of the M/M/c/K's load for what it leaves out (relative): imperfect
    pooling, plus the hand-over and the timer overshoot as a share of the mean service."""
    return POOLING_LOAD_ERROR + (HANDOVER_MS + TIMER_MS) / p.service_ms


def surge_model_band(p: Params, u: float) -> float:
    """How far the model's blocking moves when its load is off by the stated model error:
    the larger of the two sides (blocking is not linear in the load)."""
    b = surviving_zone_queue(p, u).blocking
    e = model_load_error(p)
    return max(abs(surviving_zone_queue(p, u, s * e).blocking - b) for s in (1, -1))


def surge_sampling_sd(p: Params, u: float, window_s: float) -> float:
    """Standard deviation of the refused share measured over `window_s`, pooled over the
    Z-1 surviving zones (independent queues, each of its own Poisson stream)."""
    return surviving_zone_queue(p, u).blocked_share_sd(window_s) / math.sqrt(p.zones - 1)


def surge_p99_ms(p: Params, u: float) -> float:
    return surviving_zone_queue(p, u).sojourn_quantile(0.99) * 1000


def predictions(p: Params, utilizations: list[float] | None = None) -> dict:
    """Every number the claims and plots use, for result.json's analysis summary."""
    us = sorted(set(utilizations if utilizations is not None
                    else [u for k in p.variants for u in sweep(p, k)]))
    rows = []
    for u in us:
        q = surviving_zone_queue(p, u)
        rows.append({
            "utilization": u, "rate": rate_for(p, u),
            "post_failure_load": post_failure_load(p, u),
            "post_failure_utilization": post_failure_utilization(p, u),
            "surge_queue": f"M/M/{q.servers}/{q.capacity}",
            "surge_zone_rate": q.arrival_rate, "surge_load": q.offered / q.servers,
            "surge_blocking": q.blocking, "surge_model_band": surge_model_band(p, u),
            "surge_utilization": q.throughput / (q.servers * q.service_rate),
            "surge_p99_model_ms": surge_p99_ms(p, u),
            "surge_p99_bound_ms": surge_p99_ms(p, u) + PROXY_ALLOWANCE_MS,
        })
    kink = threshold(p.zones)
    curve = sorted({*us, kink} if us and us[0] < kink < us[-1] else set(us))
    return {
        "zones": p.zones, "threshold": kink,
        "post_failure_curve": [[u, post_failure_utilization(p, u)] for u in curve],
        "survivor_multiplier": survivor_multiplier(p.zones),
        "naive_cross_zone": naive_cross_zone(p.zones),
        "detect_bound_s": detect_bound_s(p),
        "model_load_error": model_load_error(p),
        "by_utilization": rows,
    }
