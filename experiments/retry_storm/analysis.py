"""retry-storm's analysis (pure): the client's records, the backends' sampled counters and the
timeline's measured fault times -> metrics per variant and the series the plots draw.

Everything at the backends is read from one cumulative counter, `arrived` (requests that
reached any backend's capacity model, 503s included), sampled every `sample_s` while the
client runs. A sample's value was read at some instant of its reads, [t, t + read_ms]; so the
counter between two samples is only known to lie between their values, and every claim that
uses it states how far that uncertainty reaches (`edge_error`) or counts only arrivals that
certainly fell inside its window (`inner_arrivals`).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from typing import Any

from lblab import metrics as M
from lblab.driver import Analysis
from lblab.raw import Raw, RawVariant
from lblab.timeline import event_time

from .params import BIN_S, BUDGETS, RESTORE, SLOW, Params, drain_bound_s, policy_for

BREAKER_BIN_S = 0.1
"""Bins of the breaker figure's backend arrival rate."""


# -- the backends' counters ---------------------------------------------------------------
def backend_counters(data: RawVariant) -> list[dict[str, float]]:
    """The sampled counters from t = 0 on, relative to their values before the client started
    (no request reaches a backend before t = 0): `start`/`end` bound the sample's reads, `t`
    is their middle (what lblab.metrics.counter_at interpolates on)."""
    base = data.doc("backends-before")
    rows = []
    for s in data.table("samples"):
        read = (s.get("read_ms") or 0.0) / 1000
        if s["t"] < 0:
            continue
        rows.append({"t": s["t"] + read / 2, "start": s["t"], "end": s["t"] + read,
                     "arrived": s["arrived"] - base["arrived"],
                     "rejected": s["rejected"] - base["rejected"]})
    return rows


def arrivals(counters: list[dict], lo: float, hi: float) -> float:
    """Backend arrivals over [lo, hi] (interpolated; nothing arrives before t = 0)."""
    return M.counter_delta(counters, "arrived", max(0.0, lo), max(0.0, hi))


def edge_error(counters: list[dict], e: float) -> float:
    """How far the interpolated counter at instant e can be from the true one: the increase
    over the samples bracketing e (one interval between two reads; two when e falls inside
    a sample's reads). Exact (0) at or before t = 0."""
    if e <= 0 or not counters:
        return 0.0
    values = [0.0] + [c["arrived"] for c in counters]
    starts = [0.0] + [c["start"] for c in counters]
    ends = [0.0] + [c["end"] for c in counters]
    k = bisect_right(starts, e) - 1          # the last sample whose reads began by e
    if k + 1 >= len(values):
        return 0.0
    below = values[k - 1] if e < ends[k] and k > 0 else values[k]
    return values[k + 1] - below


def inner_arrivals(counters: list[dict], lo: float, hi: float) -> tuple[float, float, float]:
    """Arrivals that certainly fell inside [lo, hi]: between the first sample whose reads
    start at or after lo and the last whose reads end by hi (no interpolation). Returns
    (arrivals, first sample's start, last sample's end); (0, lo, lo) when no two samples fit."""
    inside = [c for c in counters if c["start"] >= lo and c["end"] <= hi]
    if len(inside) < 2:
        return 0.0, lo, lo
    return inside[-1]["arrived"] - inside[0]["arrived"], inside[0]["start"], inside[-1]["end"]


def proxy_delay_s(p: Params, records: list[dict], t1: float) -> float:
    """An upper estimate of an attempt's send-to-backend delay: the 99th percentile of the
    successful requests' latency beyond their service time before the slowdown (a round trip
    through the proxy plus the client's lag, so more than the one-way delay)."""
    over = [r["latency_ms"] - p.normal_ms for r in M.window(M.requests(records), 0, t1)
            if r["outcome"] == "ok"]
    return max(0.0, M.quantile(over, 0.99) or 0.0) / 1000


def _count(sorted_values: list[float], lo: float, hi: float) -> int:
    return bisect_right(sorted_values, hi) - bisect_left(sorted_values, lo)


# -- per-second series, amplification, recovery -------------------------------------------
def per_second(p: Params, name: str, records: list[dict], counters: list[dict]) -> list[dict]:
    """Per bin of BIN_S: offered requests, backend arrivals, goodput, p99 of successes and
    amplification (arrivals / offered)."""
    firsts = [r for r in records if r["attempt"] == 0]
    reqs = M.requests(records)
    rows = []
    for (lo, hi), offered, done in zip(M.bins(p.end, BIN_S), M.per_bin(firsts, p.end, BIN_S),
                                       M.per_bin(reqs, p.end, BIN_S), strict=True):
        arrived = arrivals(counters, lo, hi)
        rows.append({"variant": name, "t": lo, "offered": len(offered),
                     "backend_arrivals": round(arrived, 3),
                     "goodput": sum(r["outcome"] == "ok" for r in done),
                     "p99_ms": M.latency_p(M.ok_latencies(done), 99),
                     "amplification": round(arrived / len(offered), 4) if offered else None})
    return rows


def amplification(records: list[dict], counters: list[dict], lo: float,
                  hi: float) -> tuple[float | None, int, float]:
    """Backend arrivals over [lo, hi) / requests offered (intended) in it."""
    offered = len(M.window([r for r in records if r["attempt"] == 0], lo, hi))
    arrived = arrivals(counters, lo, hi)
    return (arrived / offered if offered else None), offered, arrived


def recovery_s(p: Params, records: list[dict], t1: float, t2: float) -> tuple[float | None,
                                                                              float | None]:
    """Seconds after the measured t2 from which every later bin is normal: goodput >= 95 %
    of the requests offered in it and p99 <= 2 x the pre-slowdown p99 + 50 ms; bins are
    BIN_S wide from t2 on, up to the last one whose requests had their timeout to finish.
    Returns (recovery, the pre-slowdown p99 used)."""
    reqs = M.requests(records)
    before = [M.latency_p(M.ok_latencies(rows), 99)
              for (lo, hi), rows in zip(M.bins(t1, BIN_S), M.per_bin(reqs, t1, BIN_S),
                                        strict=True) if hi - lo >= BIN_S - 1e-9]
    normal = M.quantile([x for x in before if x is not None], 0.5)
    if normal is None:
        return None, None
    after = [{**r, "since_t2": r["intended_s"] - t2} for r in reqs if r["intended_s"] >= t2]
    span = math.floor((p.end - p.timeout_s - t2) / BIN_S) * BIN_S
    ok_bins = []
    for rows in M.per_bin(after, span, BIN_S, key="since_t2"):
        good = sum(r["outcome"] == "ok" for r in rows)
        p99 = M.latency_p(M.ok_latencies(rows), 99)
        ok_bins.append(bool(rows) and good >= 0.95 * len(rows) and p99 is not None
                       and p99 <= 2 * normal + 50)
    for i in range(len(ok_bins)):
        if all(ok_bins[i:]):
            return i * BIN_S, normal
    return None, normal


# -- the retry budget, seen from the backends ---------------------------------------------
def budget_windows(p: Params, name: str, ratio: float, records: list[dict],
                   counters: list[dict], delay_s: float) -> list[dict]:
    """One row per trailing window [s - W, s] ending at a retry's send s (the instants the
    budget admits retries: lblab.workloads.retry.Budget lets a retry leave when the retries
    sent in the last W, this one included, are at most ratio x the requests whose first
    attempt was sent in the last W, this one's included, plus min_per_s x W).

    At the backends: retries = arrivals - first attempts intended in the window. Its
    tolerance: the counter's uncertainty at both edges (`edge_error`) plus the attempts in
    flight across each edge (from a first attempt's intended time, or a retry's send, to its
    send + the proxy delay), which the backends and the client place on different sides.
    The client's own view (its records' send times) is beside it."""
    window, floor = p.budget_window_s, p.budget_min_per_s * p.budget_window_s
    sent = [r for r in records if r["sent_s"] is not None]
    firsts = sorted(r["intended_s"] for r in sent if r["attempt"] == 0)
    firsts_sent = sorted(r["sent_s"] for r in sent if r["attempt"] == 0)
    retries = sorted(r["sent_s"] for r in sent if r["attempt"] > 0)
    spans = sorted((r["intended_s"] if r["attempt"] == 0 else r["sent_s"],
                    r["sent_s"] + delay_s) for r in sent)
    starts = [a for a, _ in spans]
    longest = max((b - a for a, b in spans), default=0.0)

    def in_flight(e: float) -> int:
        lo = bisect_left(starts, e - longest)
        return sum(1 for a, b in spans[lo:bisect_right(starts, e)] if b >= e)

    rows = []
    for s in retries:
        lo = max(0.0, s - window)
        requests = _count(firsts, lo, s)
        rows.append({
            "variant": name, "t": round(s, 4), "requests": requests,
            "backend_retries": round(arrivals(counters, lo, s) - requests, 3),
            "client_retries": _count(retries, lo, s),
            "client_requests": _count(firsts_sent, lo, s),
            "allowance": round(ratio * requests + floor, 3),
            "tolerance": round(edge_error(counters, lo) + edge_error(counters, s)
                               + in_flight(lo) + in_flight(s), 3)})
    return rows


def budget_metrics(p: Params, ratio: float, rows: list[dict]) -> dict[str, Any]:
    floor = p.budget_min_per_s * p.budget_window_s
    over = [r for r in rows if r["backend_retries"] > r["allowance"] + r["tolerance"] + 1e-9]
    worst = max(rows, key=lambda r: r["backend_retries"] - r["allowance"], default=None)
    return {
        "budget_windows": len(rows), "budget_windows_over": len(over),
        "budget_client_windows_over": sum(
            r["client_retries"] > ratio * r["client_requests"] + floor + 1e-9 for r in rows),
        "budget_worst_window": worst,
        "budget_max_tolerance": max((r["tolerance"] for r in rows), default=None),
    }


# -- the breaker, seen from the backends --------------------------------------------------
def responses(records: list[dict]) -> list[dict]:
    """The attempts that got a response (or timed out), in the order the client received
    them: the order its breaker counts them in."""
    return sorted((r for r in records if r["done_s"] is not None),
                  key=lambda r: (r["done_s"], r["id"], r["attempt"]))


def failure_streaks(resp: list[dict]) -> tuple[list[float], list[int]]:
    """(done times, length of the run of consecutive failed responses after each one)."""
    times, runs, run = [], [], 0
    for r in resp:
        run = 0 if r["outcome"] == "ok" else run + 1
        times.append(r["done_s"])
        runs.append(run)
    return times, runs


def streak_at(streaks: tuple[list[float], list[int]], t: float) -> int:
    """Consecutive failed responses the client had received by t."""
    times, runs = streaks
    k = bisect_right(times, t)
    return runs[k - 1] if k else 0


def open_intervals(resp: list[dict], threshold: int) -> list[tuple[float, float | None]]:
    """Where a breaker of `threshold` must be open, located from the responses alone: from
    the threshold-th consecutive failure to the next success (None: still open at the end)."""
    out: list[tuple[float, float | None]] = []
    run, opened = 0, None
    for r in resp:
        if r["outcome"] == "ok":
            if opened is not None:
                out.append((opened, r["done_s"]))
                opened = None
            run = 0
            continue
        run += 1
        if opened is None and run >= threshold:
            opened = r["done_s"]
    if opened is not None:
        out.append((opened, None))
    return out


def arrivals_stop(counters: list[dict], quiet_s: float) -> tuple[float, float] | None:
    """The first time the backends' arrivals stop for at least `quiet_s`: (start of the reads
    of the sample before the last arrival, end of the reads of the sample that saw it): the
    last arrival lies between the two."""
    for k in range(1, len(counters)):
        if counters[k]["arrived"] <= counters[k - 1]["arrived"]:
            continue
        j = next((j for j in range(k + 1, len(counters))
                  if counters[j]["arrived"] > counters[k]["arrived"]), len(counters))
        if counters[j - 1]["start"] - counters[k]["end"] >= quiet_s:
            return counters[k - 1]["start"], counters[k]["end"]
    return None


def breaker_metrics(p: Params, records: list[dict], counters: list[dict],
                    delay_s: float) -> dict[str, Any]:
    """The breaker from outside. (1) Its opening: the failures the client had received when
    the backends stopped getting its requests, with the resolution of the samples: the
    breaker opened after the last arrival's send (no sooner than the sample before it, less
    the proxy delay) and before the next request the schedule offered. (2) Its open
    intervals (from the responses): arrivals certainly inside each (from one proxy delay
    after the opening to the success that closed it) per cooldown."""
    cooldown = p.breaker_cooldown_s
    resp = responses(records)
    streaks = failure_streaks(resp)
    out: dict[str, Any] = {"quiet_s": cooldown / 2}
    stop = arrivals_stop(counters, cooldown / 2)
    if stop is None:
        out.update(arrivals_stop_s=None, failures_at_stop=None, failures_at_stop_range=None)
    else:
        before, seen = stop
        later = [r["intended_s"] for r in records if r["attempt"] == 0 and r["intended_s"] > seen]
        at = streak_at(streaks, seen)
        low = streak_at(streaks, before - delay_s)
        high = streak_at(streaks, min(later)) if later else at
        out.update(arrivals_stop_s=round(seen, 4), failures_at_stop=at,
                   failures_at_stop_range=[low, high])
    end = counters[-1]["end"] if counters else 0.0
    intervals = []
    for opened, closed in open_intervals(resp, p.breaker_threshold):
        close = end if closed is None else closed
        n, lo, hi = inner_arrivals(counters, opened + delay_s, close)
        length = close - opened
        intervals.append({"opened": round(opened, 4), "closed": round(close, 4),
                          "still_open": closed is None, "measured_from": round(lo, 4),
                          "measured_to": round(hi, 4), "arrivals": n,
                          "allowance": math.floor(length / cooldown + 1e-9),
                          "per_cooldown": round(n * cooldown / length, 4)
                          if hi > lo else None})
    measured = [i["per_cooldown"] for i in intervals if i["per_cooldown"] is not None]
    out.update(open_intervals=intervals,
               open_s=round(sum(i["closed"] - i["opened"] for i in intervals), 3),
               open_arrivals=sum(i["arrivals"] for i in intervals),
               open_allowance=sum(i["allowance"] for i in intervals),
               probes_per_cooldown=max(measured) if measured else None)
    return out


def breaker_rates(name: str, counters: list[dict], end: float) -> list[dict]:
    return [{"variant": name, "t": lo, "arrivals_per_s":
             round(arrivals(counters, lo, hi) / (hi - lo), 2)}
            for lo, hi in M.bins(end, BREAKER_BIN_S)]


# -- one variant, all variants ------------------------------------------------------------
def analyse_variant(p: Params, name: str, data: RawVariant) -> tuple[dict, dict[str, list]]:
    records = data.table("client-records")
    summary = data.doc("client-summary")
    timeline = data.doc("timeline")
    t1, t2 = event_time(timeline, SLOW), event_time(timeline, RESTORE)
    counters = backend_counters(data)
    counts = summary["counts"]
    metrics: dict[str, Any] = {
        "t1_measured": t1, "t2_measured": t2,
        "goodput_ratio": counts.get("ok", 0) / summary["requests"],
        "p50_ms": summary["latency_ms"].get("p50"), "p99_ms": summary["latency_ms"].get("p99"),
        "attempts_per_request": summary["attempts"] / summary["requests"],
        "breaker_open_rejections": counts.get("breaker_open", 0),
        "drain_bound_s": drain_bound_s(p, name)}
    series: dict[str, list] = {"per-second": per_second(p, name, records, counters)}
    if t1 is None or t2 is None:
        return metrics, series  # the timeline reports why; nothing is measured
    amp, offered, arrived = amplification(records, counters, t1 + 2 * p.timeout_s, t2)
    w_amp, _, _ = amplification(records, counters, t2 - p.budget_window_s, t2)
    recovered, normal = recovery_s(p, records, t1, t2)
    delay = proxy_delay_s(p, records, t1)
    metrics.update({
        "amplification_slowdown": amp, "offered_slowdown": offered,
        "slowdown_window_s": t2 - (t1 + 2 * p.timeout_s),
        "backend_arrivals_slowdown": arrived, "amplification_budget_window": w_amp,
        "recovery_s": recovered, "normal_p99_ms": normal, "proxy_delay_ms": delay * 1000,
        "sampling_interval_ms": _median_spacing(counters) * 1000})
    if name in BUDGETS:
        rows = budget_windows(p, name, BUDGETS[name], records, counters, delay)
        metrics.update(budget_metrics(p, BUDGETS[name], rows))
        series["budget-windows"] = rows
    if policy_for(p, name)["kind"] == "breaker":
        metrics.update(breaker_metrics(p, records, counters, delay))
        series["breaker-arrivals"] = breaker_rates(name, counters, p.end)
    return metrics, series


def _median_spacing(counters: list[dict]) -> float:
    gaps = [b["start"] - a["start"] for a, b in zip(counters, counters[1:], strict=False)]
    return M.quantile(gaps, 0.5) or 0.0


def analyse(p: Params, raw: Raw) -> Analysis:
    variants: dict[str, dict] = {}
    series: dict[str, list] = {}
    for name, data in raw.items():
        metrics, rows = analyse_variant(p, name, data)
        variants[name] = metrics
        for table, part in rows.items():
            series.setdefault(table, []).extend(part)
    summary = {"drain_bound_s": {n: drain_bound_s(p, n) for n in variants},
               "probe_rate_per_s": 1 / p.breaker_cooldown_s,
               "faults": {n: {"t1": m["t1_measured"], "t2": m["t2_measured"]}
                          for n, m in variants.items()}}
    return Analysis(variants, series, summary)
