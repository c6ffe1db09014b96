"""az-failover's claims (pure: predictions from the parameters, measurements from the
analysis) and its notes."""

from __future__ import annotations

import math

from experiments.az_failover import model
from experiments.az_failover.params import Params, detect_bound_s, sweep, variant_name
from lblab import claims as C
from lblab.driver import Analysis


def _survivor_load(p: Params, a: Analysis) -> C.Claim:
    z = p.zones
    mult = model.survivor_multiplier(z)
    statement = (f"Losing 1 of Z = {z} zones multiplies each survivor's load by Z/(Z-1) = "
                 f"{mult:.3g} (zone-aware; survivors' share of the offered requests, after / "
                 "before, pooled over the sweep)")
    names = [variant_name("zone-aware", u) for u in p.utilizations]
    run = [n for n in names if n in a.variants]
    if not run:
        return C.skipped("survivor-load", statement, C.missing_variants(a.variants, *names))
    pool = a.summary["pooled"]["zone-aware"]
    share = (z - 1) / z
    return C.within(
        "survivor-load", statement, mult, pool["survivor_load_multiplier"],
        rel=max(0.10, 3 * math.sqrt((1 - share) / (share * max(1, pool["offered_before"])))),
        note="tolerance: 10 %, or 3 standard errors of the survivors' share before the "
             "failure (a binomial share of the requests hashed to them) if larger")


def _post_failure_utilization(p: Params, a: Analysis, u: float) -> C.Claim:
    load = model.post_failure_load(p, u)
    state = "saturated" if load > 1 else "unsaturated"
    cid = f"post-failure-utilization-u{u:g}"
    statement = (f"At u = {u:.0%} before, survivors run at u Z/(Z-1) = {load:.2f} of capacity: "
                 f"{state} (threshold (Z-1)/Z = {model.threshold(p.zones):.0%}); their "
                 "workers' busy share after the failure")
    name = variant_name("zone-aware", u)
    if why := C.missing_variants(a.variants, name):
        return C.skipped(cid, statement, why)
    m = a.variants[name]
    return C.within(
        cid, statement, model.post_failure_utilization(p, u),
        m.get("survivor_utilization_after"),
        rel=max(0.10, 3 * math.sqrt(2 / max(1, m.get("offered_after", 0)))),
        note="tolerance: 10 %, or 3 standard errors of the work of N Poisson requests of "
             "exponential service (sqrt(2/N)) if larger")


def _cross_zone(p: Params, a: Analysis, kind: str) -> C.Claim:
    names = [variant_name(kind, u) for u in sweep(p, kind)]
    if kind == "naive":
        predicted = model.naive_cross_zone(p.zones)
        statement = (f"Naive balancing serves (Z-1)/Z = {predicted:.3g} of requests from "
                     "another zone (steady state)")
    else:
        statement = ("Zone-aware routing serves none from another zone in steady state: a "
                     "`backup` server takes requests only when every local one is down")
    cid = f"{kind}-cross-zone"
    if not any(n in a.variants for n in names):
        return C.skipped(cid, statement, C.missing_variants(a.variants, *names))
    pool = a.summary["pooled"][kind]
    measured = pool["cross_zone_share_steady"]
    if kind == "naive":
        return C.near(cid, statement, predicted, measured,
                      C.binomial_tolerance(predicted, pool["cross_zone_answered_steady"]),
                      note="tolerance: 3 binomial standard errors of the answered requests")
    return C.at_most(cid, statement, 0.0, measured,
                     note="share of answered requests whose backend's zone is not their LB "
                          "node's, before the failure")


def _surge(p: Params, a: Analysis, u: float) -> list[C.Claim]:
    q = model.surviving_zone_queue(p, u)
    c, k = q.servers, q.capacity
    p99 = model.surge_p99_ms(p, u)
    e = model.model_load_error(p)
    sheds = (f"At u = {u:.0%} each surviving zone gets {q.arrival_rate:.0f} req/s for {c} x "
             f"{1000 / q.service_rate:g} ms workers (load {q.offered / c:.2f}); admission "
             f"control with {k - c} queue places refuses the M/M/{c}/{k} blocking share of "
             "requests at once (503)")
    keeps = (f"... and keeps the admitted requests' p99 at the M/M/{c}/{k} sojourn p99 "
             f"({p99:.0f} ms) + {model.PROXY_ALLOWANCE_MS:g} ms of network and proxy")
    name = variant_name("surge", u)
    if why := C.missing_variants(a.variants, name):
        return [C.skipped(f"surge-sheds-u{u:g}", sheds, why),
                C.skipped(f"surge-p99-u{u:g}", keeps, why)]
    m = a.variants[name]
    lo, hi = m.get("after_window_s") or (0.0, 0.0)
    n = m.get("offered_after", 0)
    window = hi - lo
    sampling = max(C.binomial_tolerance(q.blocking, n),
                   3 * model.surge_sampling_sd(p, u, window) if window > 0 else 0.0)
    band = model.surge_model_band(p, u)
    return [
        C.near(f"surge-sheds-u{u:g}", sheds, q.blocking, m.get("shed_share_after"),
               sampling + band,
               note=f"tolerance {sampling:.3g} + {band:.3g}. Sampling: 3 standard errors of "
                    f"the refused share of {n} requests over {window:.2f} s, from the model's "
                    "own variance of refusals (they come in bursts, while a zone is full: "
                    "wider than the binomial's, which is the floor). Model error: the "
                    f"blocking moves by {band:.3g} when the M/M/{c}/{k}'s load is off by "
                    f"±{e:.1%}: {model.POOLING_LOAD_ERROR:.0%} for HAProxy's roundrobin "
                    "pooling B servers imperfectly (it skips only full ones), plus "
                    f"({model.HANDOVER_MS:g} ms hand-over of a freed slot + "
                    f"{model.TIMER_MS:g} ms timer overshoot) / S = {p.service_ms:g} ms"),
        C.at_most(f"surge-p99-u{u:g}", keeps, p99 + model.PROXY_ALLOWANCE_MS,
                  m.get("p99_ms_after")),
    ]


def _detect(p: Params, a: Analysis, u: float) -> C.Claim:
    name = variant_name("naive", u)
    cid = f"detect-{name.replace('@', '-u')}"
    bound = detect_bound_s(p)
    statement = ("Survivors' health checks mark the failed zone's servers down within inter "
                 f"+ fall x (inter + check timeout) + sampling = {bound:.2f} s")
    if why := C.missing_variants(a.variants, name):
        return C.skipped(cid, statement, why)
    return C.at_most(cid, statement, bound, a.variants[name].get("time_to_detect_s"))


def claims(p: Params, a: Analysis) -> list[C.Claim]:
    out: list[C.Claim] = []
    if "zone-aware" in p.variants:
        out.append(_survivor_load(p, a))
        out += [_post_failure_utilization(p, a, u) for u in p.utilizations]
    out += [_cross_zone(p, a, kind) for kind in ("naive", "zone-aware") if kind in p.variants]
    if "surge" in p.variants:
        for u in p.utilizations:
            out += _surge(p, a, u)
    if "naive" in p.variants:
        out += [_detect(p, a, u) for u in sweep(p, "naive")]
    return out


def notes(p: Params, a: Analysis) -> list[str]:
    table = ", ".join(f"Z={z}: {model.threshold(z):.0%}" for z in range(2, 6))
    return [f"Survivable pre-failure utilization (Z-1)/Z: {table}. A 20-30 % buffer "
            "(utilization 70-80 %) survives losing a zone only from Z = 4-5 up; this run has "
            f"Z = {p.zones}, threshold {model.threshold(p.zones):.0%}.",
            "Cross-zone bytes are the rx counters of core's ports (bytes that left a zone), "
            f"priced at {p.usd_per_gb:g} USD/GB."]
