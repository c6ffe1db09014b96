"""health-truthiness's claims (pure): each prediction from the run's parameters, measured on
HAProxy's stats (status, chkdown, hanafail), the client's records and the backends' check
counters. Eject-time bounds get one sampling gap of slack: the measured eject time is the
first stats sample that shows the server down, late by at most the largest gap between
samples around the fault (`resolution_s`, from this run)."""

from __future__ import annotations

import math

from lblab import claims as C
from lblab.driver import Analysis

from .params import (
    CHECK_TEXT,
    CHECKS,
    SINGLE,
    TAIL,
    Params,
    cart_rate_per_backend,
    eject_bound_s,
    error_memory_s,
    false_ejections_per_check,
    fleet_empty_range_s,
    passive_eject_range_s,
    passive_eject_s,
    poisson_slack,
    requests_to_run,
    requests_to_run_sd,
)

DEP_FAULT_TEXT = {"stop": "redis SHUTDOWN NOSAVE in b1, restarted when the fault ends",
                  "drop": "an nftables drop of the Redis port inside b1's namespace only"}
FLAPPING = ("shallow", "deep")
"""Check types whose checks the slow health answers fail (l4 only connects; a timed-out
agent check changes nothing in HAProxy; the passive node checks too rarely to count)."""


def claims(p: Params, a: Analysis) -> list[C.Claim]:
    v = a.variants
    out: list[C.Claim] = []
    for fault in SINGLE:
        out += _single(p, v, fault)
    return out + _blip(p, v) + _intermittent(p, v) + _flapping(p, v)


def _m(v: dict, fault: str, check: str, key: str):
    return v[fault]["checks"].get(check, {}).get(key) if fault in v else None


def _res(v: dict, fault: str) -> float:
    return v.get(fault, {}).get("resolution_s") or 0.0


def _single(p: Params, v: dict, fault: str) -> list[C.Claim]:
    what = {"gray": "answers 500 on /cart (port open, /healthz 200)",
            "dep-down": "loses its own Redis"}[fault]
    why = C.missing_variants(v, fault)
    d = p.duration(fault)
    r_b = cart_rate_per_backend(p, fault)
    lam = r_b * d
    out = []
    for check in ("l4", "shallow"):
        cid = f"{fault}-{check}-errors-served"
        stmt = (f"{fault}: b1 {what} for {d:g} s; {check} never ejects it, so it serves its "
                f"share: rate/N x D = {p.rate:g}/{p.backends} x {d:g} = {lam:.0f} errors")
        if why:
            out += [C.skipped(cid, stmt, why), C.skipped(f"{fault}-{check}-never-ejects",
                                                         stmt, why)]
            continue
        out.append(C.within(
            cid, stmt, lam, _m(v, fault, check, "b1_errors_fault"), poisson_slack(lam) / lam,
            note=f"5xx answered by b1 (X-Backend) to requests sent to the {check} node in the "
                 f"fault window (client records); tolerance 3 standard deviations of a "
                 f"Poisson count of mean {lam:.0f} (±{poisson_slack(lam):.0f})"))
        out.append(C.at_most(
            f"{fault}-{check}-never-ejects", f"{fault}: the {check} check never marks b1 down",
            0, _m(v, fault, check, "b1_ejections"),
            note="b1's chkdown (UP -> DOWN transitions) in HAProxy's stats over the fault"))
    res = _res(v, fault)
    bound = eject_bound_s(p, "deep", fault)
    signal = "the error-rate window's fill (threshold x W) + " if fault == "gray" else ""
    stmt = (f"{fault}: deep (/ready) ejects b1 within {signal}U(0, inter) + (fall - 1) x "
            f"(fastinter + timeout) + timeout = {bound:.2f} s")
    out.append(C.skipped(f"{fault}-deep-eject", stmt, why) if why else C.at_most(
        f"{fault}-deep-eject", stmt, bound, _m(v, fault, "deep", "eject_s"), slack=res,
        note=f"first stats sample with b1 down after the fault (slack: the largest sampling "
             f"gap, {res * 1000:.0f} ms)"))
    errors_bound = r_b * bound
    stmt = (f"{fault}: deep serves at most b1's rate x that bound = {r_b:.1f}/s x "
            f"{bound:.2f} s = {errors_bound:.1f} errors before it ejects")
    slack = poisson_slack(errors_bound) + r_b * res
    out.append(C.skipped(f"{fault}-deep-errors", stmt, why) if why else C.at_most(
        f"{fault}-deep-errors", stmt, errors_bound,
        _m(v, fault, "deep", "b1_errors_before_eject"), slack=slack,
        note=f"slack: 3 Poisson standard deviations + b1's requests in one sampling gap "
             f"({slack:.1f})"))
    mean, _sd = passive_eject_s(p, fault)
    lo, hi = passive_eject_range_s(p, fault)
    stmt = (f"{fault}: passive (observe layer7, error-limit {p.error_limit}) ejects b1 after "
            f"L consecutive errors: L / r_b = {p.error_limit} / {r_b:.1f} = {mean:.2f} s "
            f"(the L-th request's Gamma(L, r_b) time, in [{lo:.2f}, {hi:.2f}] s)")
    out.append(C.skipped(f"{fault}-passive-eject", stmt, why) if why else C.between(
        f"{fault}-passive-eject", stmt, max(0.0, lo - res), hi + res,
        _m(v, fault, "passive", "eject_s"),
        note=f"the range holds all but {TAIL:.2%} of Gamma(L, r_b) on each side (as 3 sd of "
             f"a normal), widened by one sampling gap each side. A passing active check "
             f"restarts the count; one falls in those {mean:.2f} s with probability "
             f"{min(1.0, mean / (p.passive_inter_ms / 1000)):.3f}"))
    bound = eject_bound_s(p, "multi", fault)
    stmt = (f"{fault}: multi-signal (agent says down at once) ejects b1 within "
            f"{signal}agent-inter + timeout = {bound:.2f} s")
    out.append(C.skipped(f"{fault}-multi-eject", stmt, why) if why else C.at_most(
        f"{fault}-multi-eject", stmt, bound, _m(v, fault, "multi", "eject_s"), slack=res,
        note="first stats sample with b1 down after the fault; slack one sampling gap"))
    return out


def _blip(p: Params, v: dict) -> list[C.Claim]:
    fault = "shared-blip"
    why = C.missing_variants(v, fault)
    lo, hi = fleet_empty_range_s(p)
    res = _res(v, fault)
    memory = error_memory_s(p, p.blip_s)
    stmt = (f"shared-blip: the shared Redis pauses D = {p.blip_s:g} s; deep marks every "
            f"server down, leaving no server for about D + rise x inter, plus the error "
            f"window's memory W (1 - threshold) = {memory:.2f} s: in [{lo:.2f}, {hi:.2f}] s "
            "(D + memory - detection + recovery, each bounded by the check timings)")
    if why:
        return [C.skipped(cid, stmt, why) for cid in (
            "blip-deep-fleet-empty", "blip-deep-all-fail", "blip-multi-serves-static",
            "blip-multi-keeps-fleet")]
    out = [C.between("blip-deep-fleet-empty", stmt, max(0.0, lo - res), hi + res,
                     _m(v, fault, "deep", "fleet_empty_s"),
                     note=f"from the first stats sample with no server up to the first with "
                          f"one again; the range widened by one sampling gap "
                          f"({res * 1000:.0f} ms) each side")]
    n = _m(v, fault, "deep", "fleet_empty_requests") or 0
    out.append(C.near(
        "blip-deep-all-fail", "shared-blip: meanwhile 100 % of deep's requests fail, /static "
        "(which needs no dependency) included", 1.0,
        _m(v, fault, "deep", "fleet_empty_failed_share"), C.binomial_tolerance(1.0, n),
        note=f"{n} requests sent to the deep node between the first and the last stats "
             f"sample showing no server up; tolerance 1/n"))
    n = _m(v, fault, "multi", "static_requests_fault") or 0
    out.append(C.near(
        "blip-multi-serves-static", "shared-blip: multi-signal keeps serving what does not "
        "need the dependency: every /static request succeeds during the blip", 1.0,
        _m(v, fault, "multi", "static_ok_share_fault"), C.binomial_tolerance(1.0, n),
        note=f"{n} /static requests to the multi node in the fault window; tolerance 1/n"))
    out.append(C.at_most(
        "blip-multi-keeps-fleet", "shared-blip: the agent reports the shared dependency's "
        "failure as a weight (up 50 %), not down: no server is ejected", 0,
        _m(v, fault, "multi", "ejections_all"),
        note="chkdown of every server in the multi node's stats over the fault"))
    return out


def _intermittent(p: Params, v: dict) -> list[C.Claim]:
    fault = "intermittent"
    why = C.missing_variants(v, fault)
    q, L = p.intermittent_p, p.error_limit
    mean, sd = requests_to_run(q, L), requests_to_run_sd(q, L)
    stmt = (f"intermittent: b1 errs with p = {q:g}; passive needs L = {L} consecutive errors: "
            f"(1 - p^L) / ((1 - p) p^L) = {mean:.1f} requests to b1 per ejection (2,046 at "
            f"p = 0.5, L = 10: the blind spot)")
    out = []
    if why:
        out.append(C.skipped("intermittent-passive-blind-spot", stmt, why))
    else:
        k = _m(v, fault, "passive", "passive_ejections") or 0
        served = _m(v, fault, "passive", "b1_requests_to_last_passive_ejection")
        measured = served / k if k and served is not None else None
        tol = 3 * sd / math.sqrt(k) if k else sd
        out.append(C.near(
            "intermittent-passive-blind-spot", stmt, mean, measured, tol,
            note=f"requests b1 answered to the passive node from the fault to its last "
                 f"ejection ({served}) / ejections (HAProxy's hanafail: {k}); tolerance 3 "
                 f"standard errors of a mean of {k} runs (sd of one {sd:.1f})"))
    bound = eject_bound_s(p, "deep", fault)
    res = _res(v, fault)
    stmt = (f"intermittent: deep (error rate >= {p.error_threshold:g} over "
            f"{p.error_window_s:g} s) ejects b1 within threshold x W / p + the check timings "
            f"= {bound:.2f} s")
    out.append(C.skipped("intermittent-deep-eject", stmt, why) if why else C.at_most(
        "intermittent-deep-eject", stmt, bound, _m(v, fault, "deep", "eject_s"), slack=res,
        note="first stats sample with b1 down after the fault; slack one sampling gap"))
    return out


def _flapping(p: Params, v: dict) -> list[C.Claim]:
    fault = "flapping"
    why = C.missing_variants(v, fault)
    q = p.timeout_q
    rate = false_ejections_per_check(q, p.fall, p.rise)
    out = []
    for check in FLAPPING:
        cid = f"flapping-{check}-false-ejections"
        stmt = (f"flapping: health answers too slow with q = {q:g}; {check}'s false "
                f"ejections per check from the fall = {p.fall} / rise = {p.rise} state "
                f"machine: {rate:.4f} (~ q^fall (1 - q) = {q ** p.fall * (1 - q):.4f})")
        if why:
            out.append(C.skipped(cid, stmt, why))
            continue
        n = _m(v, fault, check, "checks_counted") or 0
        ejections = _m(v, fault, check, "ejections_all")
        tol = poisson_slack(rate * n) / n if n else 1.0
        out.append(C.near(
            cid, stmt, rate, ejections / n if n and ejections is not None else None, tol,
            note=f"chkdown of every server in HAProxy's stats ({ejections}) / checks the "
                 f"backends counted from that node ({n}); tolerance 3 Poisson standard "
                 f"deviations of {rate * n:.1f} expected ejections"))
    stmt = ("flapping: l4 (TCP connect) and multi (a timed-out agent check changes nothing) "
            "eject nobody")
    if why:
        out.append(C.skipped("flapping-l4-multi-none", stmt, why))
    else:
        counts = [_m(v, fault, c, "ejections_all") for c in ("l4", "multi")]
        out.append(C.at_most("flapping-l4-multi-none", stmt, 0,
                             None if None in counts else sum(counts),
                             note="chkdown of every server on the l4 and multi nodes"))
    return out


def notes(p: Params, a: Analysis) -> list[str]:
    r_b = cart_rate_per_backend(p, "intermittent")
    return [
        "Check types: " + "; ".join(f"{c}: {CHECK_TEXT[c]}" for c in CHECKS),
        "multi-signal emulates AWS ALB's fail-open for a fleet-wide dependency failure (every "
        "backend lowers its weight alike, so the split is unchanged); HAProxy 2.6 has no panic "
        "threshold (Envoy's is 50 %) and this variant does not emulate one.",
        f"The passive blind spot at p = 0.5, L = 10: {requests_to_run(0.5, 10):,.0f} requests "
        f"per ejection, {requests_to_run(0.5, 10) / r_b:.0f} s of errors at this run's "
        f"{r_b:.0f} requests/s per backend; at p = {p.intermittent_p:g}, L = {p.error_limit}: "
        f"{requests_to_run(p.intermittent_p, p.error_limit):.1f}.",
        f"Dependency-down fault: {DEP_FAULT_TEXT[p.dep_fault]}. No global sysctl is changed.",
    ]
