"""az-failover's analysis: raw client records, samples and the timeline -> metrics. Pure.

Every window is placed on the variant's measured clock: t = 0 is the client's real start and
the failure time is when the timeline really fired it (lblab.timeline.event_time).
  steady   [WARMUP_S, t_fail): requests that were over before the cut
  before   [WARMUP_S, last sample before the cut): survivors' share and busy workers
  after    [t_fail + detection bound, last sample before the schedule's end): the survivors
           on their own, failure detected
Sampled counters are read by linear interpolation between samples (lblab.metrics), which is
exact within a steady phase but not across a change of rate: an interval that spans the cut
lends part of the survivors' new load to "before", and one that spans the schedule's end
spreads the last arrivals and the drained queues over time with no load. So the windows that
counters are read over end at a sample, never inside such an interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from experiments.az_failover import model
from experiments.az_failover.params import (
    BIN_S,
    FAILURE,
    WARMUP_S,
    Params,
    detect_bound_s,
    parse_variant,
    rate_for,
)
from lblab import metrics as M
from lblab.driver import Analysis
from lblab.raw import Raw, RawVariant
from lblab.timeline import event_time
from topologies.zones import zone_of_address, zone_of_backend


def done_s(r: Mapping[str, Any]) -> float:
    """When a request was over (answered, refused or given up), on the client's clock."""
    return r["done_s"] if r["done_s"] is not None else r["intended_s"]


def cross_zone(rows: list[Mapping[str, Any]]) -> tuple[int, int]:
    """(requests served by another zone than their LB node's, requests answered)."""
    ok = [r for r in rows if r["outcome"] == "ok" and r["peer"] and r["backend"]]
    cross = sum(zone_of_backend(r["backend"]) != zone_of_address(r["peer"]) for r in ok)
    return cross, len(ok)


def utilization(samples: list[Mapping[str, Any]], lo: float, hi: float,
                workers: int) -> float | None:
    """Worker-seconds served in [lo, hi) over the workers' seconds available; None when
    the samples do not reach hi."""
    if hi <= lo or not samples or samples[-1]["t"] < hi:
        return None
    return M.counter_delta(samples, "busy_s", lo, hi) / ((hi - lo) * workers)


def first_after(samples: list[Mapping[str, Any]], key: str, value: bool,
                t: float) -> float | None:
    """How long after t the sampled `key` first read `value`."""
    hit = [s for s in M.window(samples, t, float("inf"), key="t") if s[key] is value]
    return hit[0]["t"] - t if hit else None


def last_sample_by(samples: list[Mapping[str, Any]], t: float) -> float:
    """The time of the last sample at or before t (t itself when there is none)."""
    at = M.window(samples, float("-inf"), t + 1e-9, key="t")
    return at[-1]["t"] if at else t


def error_rate(rows: list[Mapping[str, Any]]) -> float | None:
    return M.share(rows, lambda r: r["outcome"] != "ok")


def variant_metrics(p: Params, u: float, data: RawVariant) -> dict[str, Any]:
    records = M.requests(data.table("client-records"))
    samples = data.table("samples")
    t_fail = event_time(data.doc("timeline", {}), FAILURE)
    workers = (p.zones - 1) * p.backends * p.workers
    cross_gb = M.counter_delta(samples, "cross_bytes", 0, p.end) / 1e9 if samples else 0.0
    out: dict[str, Any] = {
        "utilization": u, "rate": rate_for(p, u), "requests": len(records),
        "predicted_post_failure_load": model.post_failure_load(p, u),
        "fault_at_s": t_fail, "fault_planned_s": p.t0,
        "cross_zone_gb": cross_gb, "cross_zone_cost_usd": cross_gb * p.usd_per_gb,
        "outcomes": {o: sum(r["outcome"] == o for r in records)
                     for o in sorted({r["outcome"] for r in records})},
    }
    if t_fail is None:  # the failure never fired: nothing before or after it to measure
        return out
    before_hi = last_sample_by(samples, t_fail)
    after_lo, after_hi = t_fail + detect_bound_s(p), last_sample_by(samples, p.end)
    # Steady state: requests that were over before the cut. Those still in flight at the
    # cut and then lost are the failure's immediate toll, counted apart.
    in_steady = M.window(records, WARMUP_S, t_fail)
    steady = [r for r in in_steady if done_s(r) <= t_fail]
    before = M.window(records, WARMUP_S, before_hi)
    after = M.window(records, after_lo, after_hi)
    cross, answered = cross_zone(steady)
    # The survivors' share of the offered requests, before and after: its ratio is their
    # load multiplier with the schedule's own Poisson wobble divided out.
    arrived_before = M.counter_delta(samples, "arrived", WARMUP_S, before_hi)
    arrived_after = M.counter_delta(samples, "arrived", after_lo, after_hi)
    share_before = arrived_before / len(before) if before else None
    share_after = arrived_after / len(after) if after else None
    steady_bytes = M.counter_delta(samples, "cross_bytes", WARMUP_S, before_hi)
    per_request = steady_bytes / len(before) if before else None
    lat_steady = M.latency_percentiles(M.ok_latencies(steady), (50, 99))
    lat_after = M.latency_percentiles(M.ok_latencies(after), (50, 99))
    out.update({
        "steady_window_s": [WARMUP_S, t_fail], "before_window_s": [WARMUP_S, before_hi],
        "after_window_s": [after_lo, after_hi],
        "survivor_load_multiplier": (share_after / share_before
                                     if share_before and share_after is not None else None),
        "survivor_arrivals_before": arrived_before, "offered_before": len(before),
        "survivor_arrivals_after": arrived_after, "offered_after": len(after),
        "survivor_utilization_before": utilization(samples, WARMUP_S, before_hi, workers),
        "survivor_utilization_after": utilization(samples, after_lo, after_hi, workers),
        "error_rate_steady": error_rate(steady), "error_rate_after": error_rate(after),
        "shed_share_after": M.share(after, lambda r: r["outcome"] == "5xx"),
        "p50_ms_steady": lat_steady.get("p50"), "p99_ms_steady": lat_steady.get("p99"),
        "p50_ms_after": lat_after.get("p50"), "p99_ms_after": lat_after.get("p99"),
        "cross_zone_share_steady": cross / answered if answered else None,
        "cross_zone_answered_steady": answered,
        "cross_zone_bytes_per_request": per_request,
        "cross_zone_usd_per_million_requests": (per_request * 1e6 / 1e9 * p.usd_per_gb
                                                if per_request is not None else None),
        "time_to_detect_s": first_after(samples, "failed_down", True, t_fail),
        "time_to_withdraw_s": first_after(samples, "failed_live", False, t_fail),
        "lost_in_flight": sum(r["outcome"] != "ok" for r in in_steady
                              if done_s(r) > t_fail),
    })
    return out


def timeline_rows(p: Params, name: str, u: float, data: RawVariant) -> list[dict[str, Any]]:
    """Per BIN_S of the variant's clock: requests, error rate, p50/p99, the survivors' busy
    workers and the cross-zone bytes per second."""
    kind, _ = parse_variant(name)
    records = M.requests(data.table("client-records"))
    samples = data.table("samples")
    workers = (p.zones - 1) * p.backends * p.workers
    rows = []
    for (lo, hi), got in zip(M.bins(p.end, BIN_S), M.per_bin(records, p.end, BIN_S),
                             strict=True):
        lat = M.latency_percentiles(M.ok_latencies(got), (50, 99))
        rows.append({
            "variant": kind, "utilization": u, "t": lo, "requests": len(got),
            "error_rate": error_rate(got), "p50_ms": lat.get("p50"), "p99_ms": lat.get("p99"),
            "survivor_utilization": utilization(samples, lo, hi, workers),
            "cross_zone_mb_per_s": (M.counter_delta(samples, "cross_bytes", lo, hi)
                                    / (hi - lo) / 1e6 if samples else None),
        })
    return rows


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Pooled over runs of one kind: the survivors' load multiplier (share after / share
    before, each summed over the runs) and the steady cross-zone share."""
    n_before = sum(m.get("offered_before", 0) for m in runs)
    n_after = sum(m.get("offered_after", 0) for m in runs)
    a_before = sum(m.get("survivor_arrivals_before", 0) for m in runs)
    a_after = sum(m.get("survivor_arrivals_after", 0) for m in runs)
    answered = sum(m.get("cross_zone_answered_steady", 0) for m in runs)
    cross = sum(m["cross_zone_share_steady"] * m["cross_zone_answered_steady"] for m in runs
                if m.get("cross_zone_share_steady") is not None)
    return {
        "runs": len(runs),
        "survivor_load_multiplier": ((a_after / n_after) / (a_before / n_before)
                                     if n_before and n_after and a_before else None),
        "offered_before": n_before, "offered_after": n_after,
        "cross_zone_share_steady": cross / answered if answered else None,
        "cross_zone_answered_steady": answered,
    }


def analyse(p: Params, raw: Raw) -> Analysis:
    variants: dict[str, dict[str, Any]] = {}
    series: list[dict[str, Any]] = []
    for name, data in raw.items():
        _, u = parse_variant(name)
        variants[name] = variant_metrics(p, u, data)
        series += timeline_rows(p, name, u, data)
    kinds = {parse_variant(n)[0] for n in variants}
    summary = model.predictions(p, [parse_variant(n)[1] for n in variants] or None)
    summary["pooled"] = {k: pooled([m for n, m in variants.items()
                                    if parse_variant(n)[0] == k]) for k in sorted(kinds)}
    return Analysis(variants, {"timeline": series}, summary)
