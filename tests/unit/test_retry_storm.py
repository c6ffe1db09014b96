"""retry-storm's analysis and claims on synthetic raw data: a discrete-event model of the
client (driving the real retry policies of lblab.workloads.retry) in front of backends that
time out every attempt sent during the slowdown, whose arrival counter is sampled as the
experiment samples it. Each claim is shown holding on well-behaved data and failing when
its failure is put into the data."""

from __future__ import annotations

import dataclasses
import heapq

import pytest

from experiments.retry_storm import EXPERIMENT
from experiments.retry_storm import analysis as A
from experiments.retry_storm.params import (
    Params,
    amplification_error,
    attempt_lags_s,
    drain_bound_s,
    policy_for,
    quick,
)
from lblab import metrics as M
from lblab.driver import Analysis
from lblab.raw import Raw
from lblab.workloads.client import ClientConfig, schedule
from lblab.workloads.retry import make_policy

P = quick()            # rate 60, slowdown 1.5-5 s of 9, timeout 0.5 s, window 2 s, cooldown 0.5 s
BASE = 1000            # the backends' counter before the client started
DELAY = 0.002          # send -> backend arrival


def simulate(p: Params, variant: str, *, policy: dict | None = None, slow_from: float | None
             = None, recover_after: float = 0.3, per_failed_attempt: int = 1,
             extra: list[float] = (), fired_late: float = 0.003, seed: int = 1) -> dict:
    """One variant's raw data. Requests on the client's Poisson schedule; an attempt sent in
    [slow_from, t2 + recover_after) times out after timeout_s, any other succeeds after
    normal_ms. A failed attempt reaches the backends `per_failed_attempt` times (a retrying
    proxy); `extra` are arrivals the client never sent."""
    slow_from = p.t1 if slow_from is None else slow_from
    pol = make_policy(policy or policy_for(p, variant), seed=1)
    events: list = []
    seq = 0

    def push(t, kind, *data):
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, data))

    for i, t in enumerate(schedule(ClientConfig([], rate=p.rate, duration_s=p.end,
                                                seed=seed))):
        push(t, "request", i)
    rows, arrivals, finals = [], [], {}

    def send(rid, attempt, intended, t):
        pol.on_attempt(attempt, t)
        fails = slow_from <= t < p.t2 + recover_after
        arrivals.extend([t + DELAY] * (per_failed_attempt if fails else 1))
        push(t + (p.timeout_s if fails else p.normal_ms / 1000), "done", rid, attempt,
             intended, t, "timeout" if fails else "ok")

    while events:
        t, _, kind, data = heapq.heappop(events)
        if kind == "request":
            (rid,) = data
            if not pol.allow(t):
                rows.append(_row(rid, 0, t, None, None, "breaker_open"))
                finals[rid] = rows[-1]
                continue
            send(rid, 0, t, t)
        elif kind == "done":
            rid, attempt, intended, sent, outcome = data
            pol.on_outcome(outcome == "ok", t)
            rows.append(_row(rid, attempt, intended, sent, t, outcome))
            finals[rid] = rows[-1]
            if outcome == "ok":
                continue
            delay = pol.next_delay(attempt, outcome, t)
            if delay is not None:
                push(t + delay, "retry", rid, attempt + 1, intended)
        else:  # retry
            rid, attempt, intended = data
            if not pol.allow(t):
                rows.append(_row(rid, attempt, intended, None, None, "breaker_open"))
                finals[rid] = rows[-1]
                continue
            send(rid, attempt, intended, t)
    arrivals = sorted(arrivals + list(extra))
    samples, k = [], 0
    t = -0.1
    while t < p.end + 2:
        while k < len(arrivals) and arrivals[k] <= t + 0.0005:
            k += 1
        samples.append({"t": round(t, 3), "arrived": BASE + k, "rejected": 0, "busy": 0,
                        "queued": 0, "read_ms": 1.0})
        t += p.sample_s
    counts: dict[str, int] = {}
    for r in finals.values():
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    ok = [r["latency_ms"] for r in finals.values() if r["outcome"] == "ok"]
    return {"tables": {"client-records": sorted(rows, key=lambda r: (r["id"], r["attempt"])),
                       "samples": samples},
            "docs": {"client-summary": {"counts": counts, "requests": len(finals),
                                        "attempts": len(rows),
                                        "latency_ms": M.latency_percentiles(ok)},
                     "backends-before": {"arrived": BASE, "rejected": 0, "busy": 0,
                                         "queued": 0, "read_ms": 1.0},
                     "timeline": {"events": [
                         {"what": "slow", "fired": slow_from + fired_late},
                         {"what": "restore", "fired": p.t2 + fired_late}]}}}


def _row(rid, attempt, intended, sent, done, outcome):
    return {"id": rid, "attempt": attempt, "intended_s": intended, "sent_s": sent,
            "done_s": done, "latency_ms": None if done is None else (done - intended) * 1000,
            "status": 200 if outcome == "ok" else None, "outcome": outcome}


def raw_of(variants: dict[str, dict]) -> Raw:
    return Raw.of({n: d["tables"] for n, d in variants.items()},
                  {n: d["docs"] for n, d in variants.items()})


def run(p: Params = P, **variants: dict) -> tuple[Analysis, dict[str, object]]:
    a = EXPERIMENT.analyse(p, raw_of(variants))
    return a, {c.id: c for c in EXPERIMENT.claims(p, a)}


def good(p: Params = P, names=("naive", "layered", "budget-10", "breaker")) -> dict:
    return {n: simulate(p, n, per_failed_attempt=1 + p.proxy_retries if n == "layered" else 1)
            for n in names}


# -- predictions and helpers, by hand -----------------------------------------------------
def test_drain_bound_adds_the_cooldown_only_for_the_breaker():
    d = Params()  # W 8, Q 16, slow 2 s, cooldown 1 s: ceil(24/8) x 2 + 1
    assert drain_bound_s(d, "budget-10") == 7.0
    assert drain_bound_s(d, "token-bucket") == 7.0
    assert drain_bound_s(d, "breaker") == 8.0
    assert drain_bound_s(P, "budget-10") == 3.0 and drain_bound_s(P, "breaker") == 3.5


def test_amplification_error_by_hand():
    # naive, quick: lags 0 and 0.5 s; 150 requests in 2.5 s -> rate 60: sqrt(2 x 60 x 0.5)/150
    assert amplification_error(P, "naive", 150, 2.5) == pytest.approx(60 ** 0.5 / 150)
    # layered: proxy timeout int(0.5 x 900 / 2) = 225 ms; lags 0, .225, .45, .675
    assert attempt_lags_s(P, "layered") == pytest.approx([0, 0.225, 0.45, 0.675])
    assert amplification_error(P, "layered", 150, 2.5) == pytest.approx(
        (2 * 60 * 1.35) ** 0.5 / 150)


def test_edge_error_is_the_increase_over_the_bracketing_samples():
    c = [{"t": 0.1005, "start": 0.1, "end": 0.101, "arrived": 2},
         {"t": 0.2005, "start": 0.2, "end": 0.201, "arrived": 5},
         {"t": 0.3005, "start": 0.3, "end": 0.301, "arrived": 9}]
    assert A.edge_error(c, 0.15) == 3        # between reads: 5 - 2
    assert A.edge_error(c, 0.2005) == 7      # inside a read: 9 - 2
    assert A.edge_error(c, 0.05) == 2        # before the first sample: from 0
    assert A.edge_error(c, 0.0) == 0
    assert A.inner_arrivals(c, 0.15, 0.31) == (4, 0.2, 0.301)
    assert A.inner_arrivals(c, 0.15, 0.25) == (0.0, 0.15, 0.15)


def test_open_intervals_and_streaks_from_the_responses():
    resp = [{"done_s": t, "outcome": o} for t, o in
            [(1, "ok"), (2, "timeout"), (3, "5xx"), (4, "timeout"), (5, "timeout"),
             (6, "ok"), (7, "timeout"), (8, "timeout"), (9, "timeout")]]
    assert A.open_intervals(resp, 3) == [(4, 6), (9, None)]
    assert A.open_intervals(resp, 5) == []
    streaks = A.failure_streaks(resp)
    assert [A.streak_at(streaks, t) for t in (0.5, 1, 3.5, 5, 6, 8.9)] == [0, 0, 2, 4, 0, 2]


def test_budget_windows_count_retries_at_the_backends():
    p = dataclasses.replace(P, budget_window_s=1.0)
    records = [_row(i, 0, i / 10, i / 10, i / 10 + 0.5, "timeout") for i in range(1, 11)]
    records += [_row(10, 1, 1.0, 1.52, 1.6, "ok")]
    # arrivals 10 ms after each send; samples (instant reads) at 0.05, 0.15, ...
    arrived = [r["sent_s"] + 0.01 for r in records]
    counters = [{"t": k / 10 + 0.05, "start": k / 10 + 0.05, "end": k / 10 + 0.05,
                 "arrived": sum(a <= k / 10 + 0.05 for a in arrived)} for k in range(20)]
    (row,) = A.budget_windows(p, "budget-10", 0.1, records, counters, 0.01)
    # window [0.52, 1.52]: counter 10.7 - 4.7 = 6 arrivals, 5 first attempts intended in it
    assert row["requests"] == 5 and row["client_requests"] == 5
    assert row["backend_retries"] == pytest.approx(1.0)
    assert row["client_retries"] == 1 and row["allowance"] == pytest.approx(0.5)
    # 1 + 1 at the counter's edges, + the retry itself in flight across the window's end
    assert row["tolerance"] == pytest.approx(3.0)


# -- every claim holds on well-behaved data -----------------------------------------------
def test_every_claim_holds_when_the_data_behaves():
    a, got = run(**good())
    assert all(c.holds for c in got.values() if not c.skipped), {
        k: (c.predicted, c.measured, c.note) for k, c in got.items()
        if not (c.holds or c.skipped)}
    assert {k for k, c in got.items() if c.skipped} == {
        "budget-20-every-window", "budget-20-recovery", "token-bucket-recovery"}
    assert a.variants["naive"]["amplification_slowdown"] == pytest.approx(2.0, rel=0.1)
    assert a.variants["layered"]["amplification_slowdown"] == pytest.approx(4.0, rel=0.1)
    b = a.variants["breaker"]
    assert b["failures_at_stop_range"][0] <= P.breaker_threshold <= b["failures_at_stop_range"][1]
    assert b["open_intervals"] and b["probes_per_cooldown"] <= 1.0
    assert a.summary["drain_bound_s"] == {"naive": 3.0, "layered": 3.0, "budget-10": 3.0,
                                          "breaker": 3.5}
    assert {"per-second", "budget-windows", "breaker-arrivals"} <= set(a.series)


def test_windows_use_the_measured_fault_times():
    # The slowdown really starts 1 s after the planned t1, and the timeline says so.
    late = simulate(P, "naive", slow_from=P.t1 + 1.0)
    a, got = run(naive=late)
    assert a.variants["naive"]["t1_measured"] == pytest.approx(P.t1 + 1.003)
    assert got["naive-amplification"].holds
    assert a.variants["naive"]["amplification_slowdown"] == pytest.approx(2.0, rel=0.1)


def test_p99_per_bin_is_the_hdr_percentile():
    a, _ = run(naive=simulate(P, "naive"))
    first = next(r for r in a.series["per-second"] if r["t"] == 0)
    assert first["p99_ms"] == M.latency_p([P.normal_ms] * first["goodput"], 99)


# -- each claim fails when its failure is in the data -------------------------------------
def test_naive_amplification_fails_without_retries():
    _, got = run(naive=simulate(P, "naive", policy={"kind": "none"}))
    assert not got["naive-amplification"].holds


def test_layered_amplification_fails_when_the_proxy_does_not_retry():
    _, got = run(layered=simulate(P, "layered", per_failed_attempt=1))
    assert not got["layered-amplification"].holds


def test_budget_fails_when_the_client_admits_more_than_its_ratio():
    loose = {**policy_for(P, "budget-10"), "ratio": 0.3}
    a, got = run(**{"budget-10": simulate(P, "budget-10", policy=loose)})
    assert not got["budget-10-every-window"].holds
    assert a.variants["budget-10"]["budget_windows_over"] > 0


def test_budget_fails_when_the_backends_see_more_retries_than_the_client_sent():
    # The client keeps its budget, but something between (a retrying proxy) doubles the
    # failed attempts: only the backends can tell.
    a, got = run(**{"budget-10": simulate(P, "budget-10", per_failed_attempt=2)})
    assert a.variants["budget-10"]["budget_client_windows_over"] == 0
    assert not got["budget-10-every-window"].holds


def test_breaker_opening_early_fails_the_threshold_claim_only():
    early = {**policy_for(P, "breaker"), "threshold": 2}
    _, got = run(breaker=simulate(P, "breaker", policy=early))
    assert not got["breaker-opens-at-threshold"].holds
    assert got["breaker-probe-rate"].holds


def test_breaker_opening_late_fails_the_threshold_claim():
    late = {**policy_for(P, "breaker"), "threshold": 12}
    _, got = run(breaker=simulate(P, "breaker", policy=late))
    assert not got["breaker-opens-at-threshold"].holds


def test_arrivals_during_the_open_interval_fail_the_probe_rate():
    leak = [3.0 + i / 20 for i in range(20)]          # 20/s for one second while open
    _, got = run(breaker=simulate(P, "breaker", extra=leak))
    assert not got["breaker-probe-rate"].holds
    assert got["breaker-opens-at-threshold"].holds


def test_a_breaker_that_never_opens_fails_both():
    _, got = run(breaker=simulate(P, "breaker", policy={"kind": "none"}))
    assert not got["breaker-opens-at-threshold"].holds
    assert not got["breaker-probe-rate"].holds


def test_slow_recovery_fails_the_recovery_claim():
    p = dataclasses.replace(P, end=12.0)
    a, got = run(p, **{"budget-10": simulate(p, "budget-10", recover_after=3.2)})
    assert a.variants["budget-10"]["recovery_s"] == 4.0 > drain_bound_s(p, "budget-10")
    assert not got["budget-10-recovery"].holds


def test_recovery_bound_differs_between_breaker_and_budget():
    bounds = {"budget-10": 3.0, "breaker": 3.5}
    a = Analysis({"budget-10": {"recovery_s": 3.5}, "breaker": {"recovery_s": 3.5}},
                 summary={"drain_bound_s": bounds})
    got = {c.id: c for c in EXPERIMENT.claims(P, a)}
    assert not got["budget-10-recovery"].holds
    assert got["breaker-recovery"].holds


def test_claims_of_variants_not_run_are_skipped_not_dropped():
    _, got = run(naive=simulate(P, "naive"))
    assert got["naive-amplification"].holds
    for cid in ("layered-amplification", "budget-10-every-window", "budget-20-every-window",
                "breaker-opens-at-threshold", "breaker-probe-rate", "breaker-recovery",
                "token-bucket-recovery"):
        assert got[cid].skipped, cid


def test_the_threshold_claim_is_skipped_when_gaps_cannot_be_told_from_silence():
    p = dataclasses.replace(P, rate=20.0)   # 20 x 0.25 s = 5 expected arrivals per quiet
    _, got = run(p, breaker=simulate(p, "breaker"))
    assert got["breaker-opens-at-threshold"].skipped
