"""retry-storm's claims (pure): predictions from the params, measured at the backends."""

from __future__ import annotations

import math

from lblab import claims as C
from lblab.driver import Analysis

from .params import BUDGETS, RECOVERING, Params, amplification_error, metastable_queue

AMPLIFICATION_TOLERANCE = 0.10
"""The stated model error of 1 + k and (1 + k)(1 + k_proxy): requests at the window's edges
whose retries fall outside it, and the proxy's 504 racing the client's timeout."""
QUIET_EVENTS = 15.0
"""The breaker's silence is told from the schedule's gaps only when rate x cooldown / 2 is
at least this (a Poisson gap that long then has probability e^-15 = 3e-7)."""


def claims(p: Params, a: Analysis) -> list[C.Claim]:
    v = a.variants
    return [*_amplification(p, v), *_budgets(p, v), *_breaker(p, v), *_recovery(p, v, a)]


def _amplification(p: Params, v: dict) -> list[C.Claim]:
    k, kp = p.retries, p.proxy_retries
    out = []
    for name, predicted, statement in (
            ("naive", 1 + k, f"{k} naive retr{'y' if k == 1 else 'ies'} multiplies backend "
             f"load by 1 + k = {1 + k} during the slowdown (the note: 10,000 QPS becomes "
             "20,000 with one retry)"),
            ("layered", (1 + k) * (1 + kp), f"Client ({k}) and proxy ({kp}) retries multiply: "
             f"(1 + {k}) x (1 + {kp}) = {(1 + k) * (1 + kp)}")):
        cid = f"{name}-amplification"
        if why := C.missing_variants(v, name):
            out.append(C.skipped(cid, statement, why))
            continue
        m = v[name]
        error = amplification_error(p, name, m.get("offered_slowdown") or 0,
                                    m.get("slowdown_window_s") or 0)
        out.append(C.within(
            cid, statement, predicted, m.get("amplification_slowdown"),
            max(AMPLIFICATION_TOLERANCE, 3 * error / predicted),
            note=f"backend arrivals / requests offered from t1 + 2 x timeout to t2 (measured "
                 f"fault times): {m.get('backend_arrivals_slowdown', 0):.0f} / "
                 f"{m.get('offered_slowdown', 0)}; tolerance: the larger of the stated model "
                 f"error (10 %) and 3 standard errors of the counts (1 SE = {error:.3f}: the "
                 "requests offered in the window against those in its copies shifted back "
                 "by the retries' lags)"))
    return out


def _budgets(p: Params, v: dict) -> list[C.Claim]:
    out = []
    window, floor = p.budget_window_s, p.budget_min_per_s * p.budget_window_s
    for name, ratio in BUDGETS.items():
        cid = f"{name}-every-window"
        statement = (f"A {ratio:.0%} retry budget admits, in every trailing {window:g} s "
                     f"window ending at a retry, at most {ratio:g} x the requests in it + "
                     f"{p.budget_min_per_s:g}/s x {window:g} s = {floor:g} retries, counted at "
                     "the backends (arrivals - first attempts): windows over the allowance")
        if why := C.missing_variants(v, name):
            out.append(C.skipped(cid, statement, why))
            continue
        m = v[name]
        windows = m.get("budget_windows")
        worst = m.get("budget_worst_window") or {}
        note = (f"{windows} windows; worst: {worst.get('backend_retries')} retries at the "
                f"backends vs allowance {worst.get('allowance')} (its tolerance "
                f"{worst.get('tolerance')}; at most {m.get('budget_max_tolerance')}: the "
                f"counter's increase over the samples (every "
                f"{m.get('sampling_interval_ms', 0):.0f} ms) bracketing each edge, plus the "
                "attempts in flight across each edge, from intended time to send + proxy "
                f"delay {m.get('proxy_delay_ms', 0):.1f} ms). The client's records: "
                f"{m.get('budget_client_windows_over')} windows over. Not claimed: the "
                "fixed-interval amplification over the slowdown's last window, "
                f"{_fmt(m.get('amplification_budget_window'))} (a sliding window does not "
                f"bound it by 1 + {ratio:g})")
        out.append(C.at_most(cid, statement, 0, None if not windows
                             else m.get("budget_windows_over"), note=note))
    return out


def _breaker(p: Params, v: dict) -> list[C.Claim]:
    n, cd = p.breaker_threshold, p.breaker_cooldown_s
    opens = (f"The backends stop receiving the client's requests once it has received {n} "
             "consecutive failed responses (its breaker's threshold): failures counted from "
             "its records when the backends' arrivals stopped")
    probes = (f"While its breaker is open (from the {n}th consecutive failure to the next "
              f"success, in its records) at most one request per {cd:g} s cooldown reaches "
              "the backends: arrivals per cooldown, worst open interval")
    if why := C.missing_variants(v, "breaker"):
        return [C.skipped("breaker-opens-at-threshold", opens, why),
                C.skipped("breaker-probe-rate", probes, why)]
    m = v["breaker"]
    out = []
    if p.rate * cd / 2 < QUIET_EVENTS:
        out.append(C.skipped(
            "breaker-opens-at-threshold", opens,
            f"at {p.rate:g} req/s a {cd / 2:g} s gap in the schedule has probability "
            f"{math.exp(-p.rate * cd / 2):.1e}: the backends cannot tell the breaker's silence "
            "from the schedule's gaps"))
    else:
        low, high = m.get("failures_at_stop_range") or (None, None)
        out.append(C.near(
            "breaker-opens-at-threshold", opens, n,
            None if low is None else (low + high) / 2, 0 if low is None else (high - low) / 2,
            note=f"arrivals stopped (none for >= {cd / 2:g} s) at "
                 f"{_fmt(m.get('arrivals_stop_s'))} s, with {m.get('failures_at_stop')} "
                 f"failures received; the breaker opened between the sample before the last "
                 f"arrival (less the proxy delay {m.get('proxy_delay_ms', 0):.1f} ms) and the "
                 f"next request offered, after the {low}th to {high}th failure: measured is "
                 f"the middle of that range, the tolerance its half-width (samples every "
                 f"{m.get('sampling_interval_ms', 0):.0f} ms)"))
    out.append(C.at_most(
        "breaker-probe-rate", probes, 1.0, m.get("probes_per_cooldown"),
        note=f"{len(m.get('open_intervals', []))} open intervals, {m.get('open_s')} s in all: "
             f"{m.get('open_arrivals')} arrivals against {m.get('open_allowance')} probes "
             f"allowed (floor(length / cooldown)); counted between samples (every "
             f"{m.get('sampling_interval_ms', 0):.0f} ms) from one proxy delay after the "
             "opening to the closing success, so only arrivals certainly inside count"))
    return out


def _recovery(p: Params, v: dict, a: Analysis) -> list[C.Claim]:
    out = []
    for name in RECOVERING:
        cid = f"{name}-recovery"
        breaker = name == "breaker"
        rule = "ceil((W+Q)/W) x slow + " + ("cooldown + " if breaker else "") + "1 s"
        if why := C.missing_variants(v, name):
            out.append(C.skipped(cid, f"With {name}, load and latency are normal again "
                                      f"within {rule} after t2", why))
            continue
        bound = a.summary["drain_bound_s"][name]
        out.append(C.at_most(
            cid, f"With {name}, load and latency are normal again within the backends' "
                 f"drain time: {rule} = {bound:.3g} s after t2", bound,
            v[name].get("recovery_s"),
            note="recovery: goodput >= 95 % of offered and p99 <= 2 x the pre-slowdown p99 "
                 "+ 50 ms in every later second after the measured t2"))
    return out


def notes(p: Params, a: Analysis) -> list[str]:
    threshold = metastable_queue(p)
    return ["Metastability needs queueing delay above the timeout at normal speed, i.e. a "
            f"queue above W x timeout / service = {threshold:.0f} per backend, and a retried "
            f"load above capacity; this run's queue is {p.queue}, so naive retries recover "
            "once the slow work drains: measured, reported as it is."]


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"
