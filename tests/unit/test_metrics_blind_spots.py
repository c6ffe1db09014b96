"""metrics-blind-spots: the model against hand-computed values and the wrk2 README's
coordinated-omission example, and analyse + claims on synthetic raw data (every claim once
holding, once with its failure injected)."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
from hdrh.histogram import HdrHistogram

from experiments.metrics_blind_spots import analysis, claims, model
from experiments.metrics_blind_spots.params import FAULT_OFF, FAULT_ON, RESUME, STALL, Params, quick
from lblab.errors import UsageError
from lblab.params import apply_overrides
from lblab.raw import Raw

P = quick()


# -- the model, by hand ---------------------------------------------------------------------
def test_mixture_quantile_is_slow_only_when_the_slow_share_exceeds_the_tail():
    assert model.mixture_quantile(0.99, 0.05, 10, 100) == 110
    assert model.mixture_quantile(0.99, 0.005, 10, 100) == 10
    assert model.mixture_quantile(0.999, 0.005, 10, 100) == 110
    assert model.mean_shift(0.05, 100) == pytest.approx(5.0)


def test_ema_matches_haproxy_swrate_by_hand():
    # (1 - 1/512)^512 = 0.36753 -> 63.2 % of the way after 512 requests
    assert model.ema_reached(512) == pytest.approx(1 - 0.367520, abs=1e-5)
    assert model.ema_reached(0) == 0
    # 100 req/s: 10 ms for 2 s (200 requests) then 20 ms for 1 s (100 requests)
    first = 10 * (1 - (511 / 512) ** 200)
    expect = 20 + (first - 20) * (511 / 512) ** 100
    assert model.ema_at(3.0, 100, [(0, 2, 10), (2, 3, 20)]) == pytest.approx(expect)
    assert model.ema_at(1.0, 100, [(0, 2, 10), (2, 3, 20)]) == pytest.approx(
        10 * (1 - (511 / 512) ** 100))
    # warm at 10: only the fault's part moves, f x delta x reach
    assert model.ema_at(3.0, 100, [(0, 2, 10), (2, 3, 20)], start=10) == pytest.approx(
        10 + 10 * (1 - (511 / 512) ** 100))


def test_ema_sd_by_hand():
    a = 1 / 512
    assert model.ema_sd(0.05, 100) == pytest.approx(100 * math.sqrt(0.05 * 0.95)
                                                     * math.sqrt(a / (2 - a)))


def test_binomial_by_hand():
    assert model.binom_cdf(0, 10, 0.1) == pytest.approx(0.9 ** 10)
    assert model.binom_cdf(1, 10, 0.1) == pytest.approx(0.9 ** 10 + 10 * 0.1 * 0.9 ** 9)
    assert model.binom_cdf(10, 10, 0.3) == 1.0
    assert model.tail_rank(200, 0.99) == 2
    assert model.tail_rank(40, 0.999) == 0
    exact = 1 - sum(math.comb(200, k) * 0.05 ** k * 0.95 ** (200 - k) for k in range(3))
    assert model.p_quantile_slow(200, 0.05, 0.99) == pytest.approx(exact)


def test_sampling_model_by_hand():
    assert model.p_sample_misses(2400, 0.004, 0.01) == pytest.approx((1 - 4e-5) ** 2400)
    # 1.96^2 x 0.999 x 0.001 / 0.0005^2 = 15351.2
    assert model.quantile_sample_size(0.999) == 15352
    assert model.quantile_sample_size(0.99) == 1522


# -- the anchor: wrk2's README, Example 2 (a 1.4 s ^Z of httpd, -t2 -c100 -R2000, 39,500
# requests recorded after calibration). Its numbers: uncorrected p99 6.04 ms, p99.9 1.41 s,
# 108 requests above 6.711 ms; corrected p99 1.27 s, p99.9 1.42 s, 62.079 ms at the
# 92.5th percentile, max 1416.192 ms.
R, C, N, S = 2000, 100, 39500, 1.416
T = N / R


def test_wrk2_readme_closed_loop():
    assert model.closed_quantile(0.99, C, N, S, 0.00604) == 0.00604
    assert model.closed_quantile(0.999, C, N, S, 0.00604) == pytest.approx(1.41, rel=0.01)
    assert model.closed_loop_affected(C) / N == pytest.approx(108 / N, rel=0.10)


def test_wrk2_readme_open_loop():
    assert model.open_quantile(0.99, S, T, 0.012) == pytest.approx(1.27, rel=0.05)
    assert model.open_quantile(0.999, S, T, 0.012) == pytest.approx(1.42, rel=0.02)
    # above 62 ms: 7.5 % of requests in the README
    assert model.open_fraction(S, T, 0.062) == pytest.approx(1 - 0.925, rel=0.10)


def test_wrk2_readme_corrected_recording_gives_the_open_loop_back():
    hist = HdrHistogram(1, 120_000_000, 3)
    for _ in range(N - C):
        hist.record_value(6000)
    interval_us = int(C / R * 1e6)  # one connection's expected interval: 50 ms
    for _ in range(C):
        hist.record_corrected_value(int(S * 1e6), interval_us)
    p99 = hist.get_value_at_percentile(99) / 1e6
    assert p99 == pytest.approx(1.27, rel=0.06)
    n_total = hist.total_count
    assert p99 == pytest.approx(model.open_quantile(0.99, S, n_total / R, 0.006), rel=0.02)


# -- parameters ---------------------------------------------------------------------------
@pytest.mark.parametrize("assignments,field", [
    (["t1=25"], "t1 < t2"), (["slo_ms=5"], "slo_ms"),
    (["end=12", "t1=3", "t2=9", "stall_s=5"], "stall_s"),
    (["tail_fraction=0.02"], "tail_fraction"), (["workers=8"], "workers"),
    (["slow_fraction=0.005"], "slow_fraction"), (["variants=l4"], "variants")])
def test_bad_parameters_name_the_field(assignments, field):
    with pytest.raises(UsageError, match=field):
        apply_overrides("metrics-blind-spots", Params(), assignments)


# -- synthetic raw data -------------------------------------------------------------------
def timeline(*events: tuple[str, float]) -> dict:
    return {"events": [{"what": w, "at": t, "fired": t + 0.001} for w, t in events],
            "problems": [], "origin_wall": 1000.0}


def rec(i: int, t: float, latency: float, status: int = 200, target: str = "10.0.0.3"):
    return {"id": i, "attempt": 0, "intended_s": round(t, 4), "latency_ms": latency,
            "status": status, "outcome": "ok" if status < 500 else "5xx",
            "target": f"http://{target}/"}


def l4_raw(p: Params = P, *, fail_l4=False, resets=0, tcp_broken=False, tcp_same_bytes=False,
           l7_blind=False, client_share=None) -> Raw:
    n = int(p.rate * p.end)
    t1, t2 = p.t1 + 0.001, p.t2 + 0.001
    records, http_log, tcp_log = [], [], []
    every = round(1 / (client_share or p.error_fraction))
    k = 0
    for i in range(n):
        t = i / p.rate
        path = ("10.0.0.1", "10.0.0.2", "10.0.0.3")[i % 3]
        err = t1 <= t < t2 and (k := k + 1) % every == 0
        records.append(rec(i, t, 11.0, 500 if err else 200, path))
        if path == "10.0.0.2":
            tcp_log.append({"t": t, "tw_ms": 0, "tc_ms": 0, "tt_ms": 12,
                            "bytes": 230 if err and not tcp_same_bytes else 250,
                            "term": "sD" if tcp_broken and i % 7 == 0 else "--"})
        if path == "10.0.0.3":
            http_log.append({"t": t, "status": 500 if err and not l7_blind else 200,
                             "tr_ms": 11, "bytes": 240, "term": "--"})
    conns = n // 3
    before = {"syn_packets": 0, "synack_packets": 0, "rst_from_backend_packets": 0,
              "bytes_to_client_bytes": 0, "l7t_stot": 0, "l7t_econ": 0, "l7t_eresp": 0,
              "l7t_srv_abrt": 0, "l7h_hrsp_5xx": 0, "l7h_hrsp_2xx": 0}
    after = dict(before, syn_packets=conns, synack_packets=conns - (5 if fail_l4 else 0),
                 rst_from_backend_packets=resets, bytes_to_client_bytes=conns * 600,
                 l7t_stot=conns)
    return Raw.of(tables={"l4-view": {"client-records": records, "l7h-log": http_log,
                                      "l7t-log": tcp_log, "counters": []}},
                  docs={"l4-view": {"timeline": timeline((FAULT_ON, p.t1), (FAULT_OFF, p.t2)),
                                    "counters-before": before, "counters-after": after}},
                  lab={"response-sizes": {"200": 250, "500": 230}})


def by_id(p: Params, raw: Raw) -> dict:
    return {c.id: c for c in claims.claims(p, analysis.analyse(p, raw))}


L4_IDS = ["l4-connections-succeed", "l4-no-resets", "tcp-connections-succeed",
          "tcp-bytes-change", "l7-error-share", "client-error-share"]


def test_l4_view_claims_hold_on_a_clean_run():
    got = by_id(P, l4_raw())
    for cid in L4_IDS:
        assert got[cid].holds, (cid, got[cid])
    # the other variants were not run: their claims are shown as skipped
    assert got["p99-moves-by-delta"].skipped and got["open-p99"].skipped


@pytest.mark.parametrize("kw,cid", [
    ({"fail_l4": True}, "l4-connections-succeed"), ({"resets": 3}, "l4-no-resets"),
    ({"tcp_broken": True}, "tcp-connections-succeed"),
    ({"tcp_same_bytes": True}, "tcp-bytes-change"), ({"l7_blind": True}, "l7-error-share"),
    ({"client_share": 0.25}, "client-error-share")])
def test_l4_view_claims_fail_when_injected(kw, cid):
    got = by_id(P, l4_raw(**kw))
    assert not got[cid].holds and got[cid].verdict == "does not hold", got[cid]


def tail_raw(p: Params = P, *, shift=True, rtime_moves=True, prom_moves=True) -> Raw:
    n = int(p.rate * p.end)
    records, k = [], 0
    every = round(1 / p.slow_fraction)
    for i in range(n):
        t = i / p.rate
        slow = shift and p.t1 + 0.001 <= t < p.t2 + 0.001 and (k := k + 1) % every == 0
        records.append(rec(i, t, 10.6 + (i % 5) * 0.1 + (p.delta_ms if slow else 0)))
    segments = analysis.rtime_segments(p)
    flat = [(0.0, p.end, p.service_ms)]
    samples = []
    for j in range(int(p.end / p.sample_s)):
        t = j * p.sample_s
        moving = math.ceil(model.ema_at(t, p.rate, segments, start=p.service_ms))
        still = math.ceil(model.ema_at(t, p.rate, flat, start=p.service_ms))
        samples.append({"t": t, "rtime": moving if rtime_moves else still,
                        "prom_rtime_ms": float(moving if prom_moves else still)})
    return Raw.of(tables={"tail-regression": {"client-records": records,
                                              "averages": samples, "l7h-log": []}},
                  docs={"tail-regression": {"timeline": timeline((FAULT_ON, p.t1),
                                                                 (FAULT_OFF, p.t2))}})


TAIL_IDS = ["p99-moves-by-delta", "mean-moves-by-f-delta", "rtime-moves-by-f-delta",
            "prometheus-rtime-moves-by-f-delta", "slo-seconds-hidden"]


def test_tail_claims_hold_when_the_tail_moves():
    got = by_id(P, tail_raw())
    for cid in TAIL_IDS:
        assert got[cid].holds, (cid, got[cid])
    a = analysis.analyse(P, tail_raw())
    assert a.variants["tail-regression"]["slo_hidden_seconds"] == 6


@pytest.mark.parametrize("kw,cids", [
    ({"shift": False}, ["p99-moves-by-delta", "mean-moves-by-f-delta",
                        "slo-seconds-hidden"]),
    ({"rtime_moves": False}, ["rtime-moves-by-f-delta"]),
    ({"prom_moves": False}, ["prometheus-rtime-moves-by-f-delta"])])
def test_tail_claims_fail_when_injected(kw, cids):
    got = by_id(P, tail_raw(**kw))
    for cid in cids:
        assert not got[cid].holds, (cid, got[cid])


def test_hidden_seconds_need_the_average_below_the_slo():
    # an average that crosses the SLO (rtime above it) hides nothing
    raw = tail_raw()
    for s in raw["tail-regression"].tables["averages"]:
        s["rtime"] = 500
    assert analysis.analyse(P, raw).variants["tail-regression"]["slo_hidden_seconds"] == 0


def sampling_raw(p: Params = P, tail: float | None = None) -> Raw:
    n = int(p.rate * p.end)
    every = round(1 / (tail if tail is not None else p.tail_fraction))
    records = [rec(i, i / p.rate, 10.6 + (p.delta_ms if i % every == every // 2 else 0))
               for i in range(n)]
    return Raw.of(tables={"sampling": {"client-records": records}},
                  docs={"sampling": {"timeline": timeline()}})


SAMPLING_IDS = ["full-p999-sees-tail", "full-p99-blind", "sampled-p999-misses",
                "bound-sample-size"]


def test_sampling_claims_hold():
    got = by_id(P, sampling_raw())
    for cid in SAMPLING_IDS:
        assert got[cid].holds, (cid, got[cid])


def test_sampling_claims_fail_when_the_tail_is_not_there_or_too_big():
    no_tail = by_id(P, sampling_raw(tail=1e-9))
    assert not no_tail["full-p999-sees-tail"].holds
    big = by_id(P, sampling_raw(tail=0.05))
    assert not big["full-p99-blind"].holds
    assert not big["sampled-p999-misses"].holds


def test_bound_claim_fails_when_the_draws_stray():
    a = analysis.analyse(P, sampling_raw())
    a.variants["sampling"]["bound_inside_share"] = 0.6
    got = {c.id: c for c in claims.claims(P, a)}
    assert not got["bound-sample-size"].holds


def co_raw(p: Params = P, *, stall=True, wrk_corrects=False, jitter=0.0,
           spread_s=0.001) -> Raw:
    """wrk's C connections start `spread_s` apart; the open-loop client runs at R."""
    base, S = p.service_ms + 0.8, p.stall_s
    at = p.stall_at
    wrk = []
    for thread in range(p.connections):
        t = thread * spread_s
        while t < p.end:
            lat = base + (jitter if len(wrk) % 2 else -jitter)
            if stall and at <= t < at + base / 1000 + 0.0001 * thread:
                lat = (at + S - t) * 1000 + base
            if wrk_corrects and stall and at <= t < at + S:
                lat = (at + S - t) * 1000 + base
            wrk.append({"thread": thread, "sent_s": round(t, 6), "latency_ms": round(lat, 3),
                        "status": 200})
            t += (lat if not wrk_corrects else base) / 1000
    n = int(p.co_rate * p.end)
    records = []
    for i in range(n):
        t = (i + 0.5) / p.co_rate
        lat = base + ((at + S - t) * 1000 if stall and at <= t < at + S else 0)
        records.append(rec(i, t, round(lat, 3)))
    return Raw.of(tables={"coordinated-omission": {"client-records": records,
                                                   "wrk-records": wrk}},
                  docs={"coordinated-omission": {
                      "timeline": timeline((STALL, at), (RESUME, at + S)),
                      "wrk-summary": {"duration_us": int(p.end * 1e6), "wrk_p99_us": 900000}}})


CO_IDS = ["closed-loop-affected", "closed-p99-blind", "open-affected-share", "open-p99",
          "corrected-p99"]


def test_co_claims_hold_on_a_stall():
    got = by_id(P, co_raw())
    for cid in CO_IDS:
        assert got[cid].holds, (cid, got[cid])
    m = analysis.analyse(P, co_raw()).variants["coordinated-omission"]
    assert m["closed_affected"] == P.connections
    assert m["closed_p99_ms"] < 20 < 1000 < m["open_p99_ms"]


def test_corrected_p99_holds_when_the_correction_also_invents_records_for_jitter():
    # normal latencies 8.8 / 12.8 ms around a 10.8 ms mean: HdrHistogram's correction with
    # the mean interval adds a record for every slower one, and p99 moves down toward the
    # claim's lower end
    clean = analysis.analyse(P, co_raw()).variants["coordinated-omission"]
    jittery = analysis.analyse(P, co_raw(jitter=2.0)).variants["coordinated-omission"]
    assert jittery["corrected_count"] > clean["corrected_count"] + 0.3 * jittery["wrk_requests"]
    assert jittery["corrected_p99_ms"] < clean["corrected_p99_ms"]
    assert by_id(P, co_raw(jitter=2.0))["corrected-p99"].holds


def test_corrected_p99_holds_when_the_stalled_chains_are_aligned():
    # wrk's C stalled requests all sent at one instant: the correction's records clump C at a
    # time every e, so p99 steps by e, not e / C, and here sits more than e / C above the
    # continuous value v - 0.01 (T + v) (the quick runs of 2026-11 measured up to 6.5 ms)
    p = dataclasses.replace(P, service_ms=10.3)
    raw = co_raw(p, spread_s=0.0)
    m = analysis.analyse(p, raw).variants["coordinated-omission"]
    e, v = m["corrected_interval_ms"], m["closed_max_ms"]
    continuous = v - 0.01 * (m["wrk_duration_s"] * 1000 + v)
    assert m["corrected_p99_ms"] - continuous > e / p.connections + claims.HDR_REL * v
    assert by_id(p, raw)["corrected-p99"].holds


def test_co_claims_fail_without_a_stall():
    got = by_id(P, co_raw(stall=False))
    for cid in ("closed-loop-affected", "open-affected-share", "open-p99", "corrected-p99"):
        assert not got[cid].holds, (cid, got[cid])


def test_closed_p99_claim_fails_for_a_tool_that_does_not_omit():
    got = by_id(P, co_raw(wrk_corrects=True))
    assert not got["closed-p99-blind"].holds
    assert not got["closed-loop-affected"].holds


def test_every_claim_is_skipped_when_its_variant_did_not_run():
    got = by_id(P, Raw.of(tables={}))
    assert got and all(c.skipped for c in got.values())


def test_analysis_is_pure_and_repeatable():
    raw = sampling_raw()
    a1 = analysis.analyse(P, copy.deepcopy(raw))
    a2 = analysis.analyse(P, raw)
    assert a1.variants == a2.variants


def test_default_params_are_consistent():
    p = Params()
    assert dataclasses.replace(p) == p and p.validate() is None and quick().validate() is None
