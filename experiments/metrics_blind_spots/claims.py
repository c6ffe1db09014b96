"""metrics-blind-spots' claims (pure): each prediction from the run's parameters (model.py),
each measurement from the component that shows it (the L4 node's counters, HAProxy's log,
stats socket and Prometheus exporter, wrk, the open-loop client)."""

from __future__ import annotations

import math

from lblab import claims as C
from lblab.driver import Analysis

from . import model
from .analysis import predicted_hidden_seconds, slow_threshold
from .params import Params

HDR_REL = 0.001
"""HDR histograms keep 3 significant digits: a percentile is exact to 0.1 %."""


def claims(p: Params, a: Analysis) -> list[C.Claim]:
    """Each variant's claims from its metrics; shown as skipped when it did not run."""
    out: list[C.Claim] = []
    for name, rows, step in (("l4-view", L4_CLAIMS, l4_claims),
                             ("tail-regression", TAIL_CLAIMS, tail_claims),
                             ("sampling", SAMPLING_CLAIMS, sampling_claims),
                             ("coordinated-omission", CO_CLAIMS, co_claims)):
        why = C.missing_variants(a.variants, name)
        out += ([C.skipped(cid, statement, why) for cid, statement in rows] if why
                else step(p, a.variants[name]))
    return out


# -- l4-view ------------------------------------------------------------------------------
L4_CLAIMS = [
    ("l4-connections-succeed", "The L4 node's counters show every connection succeeding "
     "(SYN-ACKs / SYNs) while requests fail"),
    ("l4-no-resets", "No backend resets a connection at the L4 node"),
    ("tcp-connections-succeed", "HAProxy in tcp mode logs every connection as ending "
     "normally (termination state --)"),
    ("tcp-bytes-change", "HAProxy in tcp mode sees the error window only as a change in "
     "bytes per connection: f x (error response - normal response)"),
    ("l7-error-share", "HAProxy in http mode logs a share f of 5xx in the window"),
    ("client-error-share", "The client saw a share f of 5xx in the window (ground truth)"),
]


def l4_claims(p: Params, m: dict) -> list[C.Claim]:
    (c1, s1), (c2, s2), (c3, s3), (c4, s4), (c5, s5), (c6, s6) = L4_CLAIMS
    f = p.error_fraction
    syn = m.get("l4_syn") or 0
    out = [
        C.near(c1, s1, 1.0, m.get("l4_connection_success"), 1 / max(syn, 1),
               note=f"{m.get('l4_synack')} SYN-ACKs for {syn} SYNs over the run, one request "
                    f"per connection ({m.get('l4_requests_sent')} requests through l4); "
                    "tolerance: one connection"),
        C.at_most(c2, s2, 0, m.get("l4_rst_from_backend"),
                  note="RST packets from the backends forwarded by the L4 node"),
    ]
    n_tcp = m.get("tcp_log_lines") or 0
    out.append(C.near(c3, s3, 1.0, m.get("tcp_normal_share"), 1 / max(n_tcp, 1),
                      note=f"{n_tcp} connections logged; stats: {m.get('tcp_errors')} "
                           f"econ+eresp+srv_abrt of {m.get('tcp_sessions')} sessions; "
                           "tolerance: one connection"))
    s200, s500 = m.get("size_200"), m.get("size_500")
    n_win = m.get("tcp_window_connections") or 0
    if s200 is None or s500 is None or not n_win:
        out.append(C.skipped(c4, s4, "no response-size calibration or no connection in "
                                     "the window"))
    else:
        diff = s500 - s200
        tol = C.binomial_tolerance(f, n_win) * abs(diff)
        out.append(C.near(c4, s4, f * diff, m.get("tcp_bytes_change"), tol,
                          note=f"a 200 is {s200} B and an injected 500 {s500} B on the wire "
                               f"(calibrated through l7t); {n_win} connections in the "
                               f"window; tolerance: 3 binomial standard errors of f x "
                               f"{abs(diff)} B"))
    for cid, statement, key, n_key in ((c5, s5, "l7_5xx_share", "l7_window_requests"),
                                       (c6, s6, "client_5xx_share", "client_window_requests")):
        n = m.get(n_key) or 0
        out.append(C.near(cid, statement, f, m.get(key), C.binomial_tolerance(f, n),
                          note=f"{n} requests in the measured window "
                               f"[{m.get('t1')}, {m.get('t2')}) s; tolerance: 3 binomial "
                               "standard errors"))
    return out


# -- tail-regression ----------------------------------------------------------------------
TAIL_CLAIMS = [
    ("p99-moves-by-delta", "p99 moves by about delta when f >= 1 %"),
    ("mean-moves-by-f-delta", "The mean moves by f x delta"),
    ("rtime-moves-by-f-delta", "HAProxy's rtime (stats socket, a moving average over 512 "
     "requests) moves by about f x delta"),
    ("prometheus-rtime-moves-by-f-delta", "The Prometheus exporter's "
     "response_time_average_seconds moves by the same"),
    ("slo-seconds-hidden", "Seconds of 'p99 < SLO' violated by the HDR truth that HAProxy's "
     "average says are met"),
]


def tail_claims(p: Params, m: dict) -> list[C.Claim]:
    (c1, s1), (c2, s2), (c3, s3), (c4, s4), (c5, s5) = TAIL_CLAIMS
    f, d, s = p.slow_fraction, p.delta_ms, p.service_ms
    out = []
    predicted = model.mixture_quantile(0.99, f, s, d) - model.mixture_quantile(0.99, 0, s, d)
    spread = None
    if m.get("p999_before_ms") is not None and m.get("p1_before_ms") is not None:
        spread = m["p999_before_ms"] - m["p1_before_ms"] + HDR_REL * (s + d)
    out.append(C.near(c1, s1, predicted, m.get("p99_shift_ms"), spread or 0.0,
                      note=f"p99 {m.get('p99_before_ms')} -> {m.get('p99_window_ms')} ms "
                           f"(full HDR histograms, before and inside the window); "
                           "tolerance: the normal latency's spread (p99.9 - p1 before) + "
                           "HDR resolution") if spread is not None
               else C.skipped(c1, s1, "too few requests before or in the window"))
    n_w, n_b = m.get("requests_window") or 0, m.get("requests_before") or 0
    sd = m.get("sd_before_ms")
    if n_w and n_b and sd is not None:
        se = math.sqrt(f * (1 - f) * d * d / n_w + sd * sd / n_w + sd * sd / n_b)
        out.append(C.near(c2, s2, model.mean_shift(f, d), m.get("mean_shift_ms"), 3 * se,
                          note=f"mean {m.get('mean_before_ms')} -> {m.get('mean_window_ms')} "
                               f"ms over {n_b} / {n_w} requests; tolerance: 3 standard "
                               "errors of the difference of the two means"))
    else:
        out.append(C.skipped(c2, s2, "too few requests before or in the window"))
    tol = 3 * model.ema_sd(f, d) + 1.0
    for cid, statement, key in ((c3, s3, "rtime"), (c4, s4, "prom_rtime")):
        pred = m.get(f"{key}_shift_predicted_ms")
        if pred is None:
            out.append(C.skipped(cid, statement, "no sample of the average before t1 and t2"))
            continue
        out.append(C.near(cid, statement, pred, m.get(f"{key}_shift_ms"), tol,
                          note=f"{m.get(f'{key}_at_t1')} ms at {m.get(f'{key}_t1_s')} s -> "
                               f"{m.get(f'{key}_at_t2')} ms at {m.get(f'{key}_t2_s')} s; "
                               f"predicted: f x delta = {model.mean_shift(f, d):g} ms times "
                               f"the EMA's reach over {p.rate:g} req/s (1 - (1 - 1/512)^k), "
                               "warm at the start; tolerance: 3 sd of a 512-"
                               "request average of the mixture + 1 ms (HAProxy rounds up "
                               "to ms)"))
    mean, var = predicted_hidden_seconds(p)
    out.append(C.near(c5, s5, round(mean, 3), m.get("slo_hidden_seconds"),
                      3 * math.sqrt(var) + 1,
                      note=f"SLO p99 < {p.slo_ms:g} ms; seconds with p99 >= SLO in the "
                           f"client's HDR histogram and HAProxy's rtime < SLO (max "
                           f"{m.get('rtime_max_ms')} ms); predicted: each second of the "
                           f"window, P(p99 of {p.rate:g} requests is slow) from the binomial; "
                           "tolerance: 3 sd of that count + one second at an edge"))
    return out


# -- sampling -----------------------------------------------------------------------------
SAMPLING_CLAIMS = [
    ("full-p999-sees-tail", "The full histogram's p99.9 shows the +delta tail"),
    ("full-p99-blind", "The full histogram's p99 does not (the tail is under 1 %)"),
    ("sampled-p999-misses", "A 1 % tracer sample's p99.9 misses the tail in the predicted "
     "share of draws"),
    ("bound-sample-size", "A sample of the bounding size puts p99.9 within rank q -/+ "
     "(1-q)/2 in 95 % of draws"),
]


def sampling_claims(p: Params, m: dict) -> list[C.Claim]:
    (c1, s1), (c2, s2), (c3, s3), (c4, s4) = SAMPLING_CLAIMS
    f, d, s = p.tail_fraction, p.delta_ms, p.service_ms
    thr = slow_threshold(p)
    out = [
        C.at_least(c1, s1, model.mixture_quantile(0.999, f, s, d), m.get("full_p999_ms"),
                   note=f"predicted service + delta (the tail is {f:.2%} > 0.1 %); "
                        f"{m.get('slow_requests')} of {m.get('ok')} requests slow"),
        C.at_most(c2, s2, thr, m.get("full_p99_ms"),
                  note=f"predicted p99 = service = {model.mixture_quantile(0.99, f, s, d):g} "
                       f"ms; judged against the slow threshold service + delta/2"),
    ]
    n_req = p.rate * p.end
    miss = model.p_sample_misses(n_req, f, p.sample_rate)
    draws = m.get("draws") or 0
    if draws:
        sens = miss * abs(math.log(1 - p.sample_rate)) * 3 * math.sqrt(f * n_req)
        tol = 3 * math.sqrt(miss * (1 - miss) / draws) + sens
        out.append(C.near(c3, s3, round(miss, 4), m.get("sampled_p999_miss_share"), tol,
                          note=f"(1 - f x rate)^N, N = {n_req:g} requests; {draws} draws, mean "
                               f"sample {m.get('sample_size_mean')} requests, mean error of "
                               f"sampled p99.9 {m.get('sampled_p999_error_ms')} ms, of p99 "
                               f"{m.get('sampled_p99_error_ms')} ms; tolerance: 3 binomial "
                               "sd over the draws + 3 sd of this run's slow count's effect"))
    else:
        out.append(C.skipped(c3, s3, "no draws"))
    bd = m.get("bound_draws") or 0
    if bd:
        out.append(C.at_least(c4, s4, 0.95, m.get("bound_inside_share"),
                              3 * math.sqrt(0.95 * 0.05 / bd),
                              note=f"n = z^2 q (1-q) / ((1-q)/2)^2 = {m.get('bound_sample_size')} "
                                   f"requests (at a {p.sample_rate:.0%} rate: "
                                   f"{m.get('bound_requests_at_rate')} requests), {bd} draws "
                                   f"with replacement; range {m.get('bound_range_ms')} ms; "
                                   "slack: 3 binomial sd over the draws"))
    else:
        out.append(C.skipped(c4, s4, "no draws"))
    return out


# -- coordinated-omission -----------------------------------------------------------------
CO_CLAIMS = [
    ("closed-loop-affected", "wrk (closed loop) sees exactly C requests stalled: one per "
     "connection"),
    ("closed-p99-blind", "wrk's p99 does not show the stall"),
    ("open-affected-share", "The open-loop client sees the stall in a share (S - S/10) / T of "
     "its requests"),
    ("open-p99", "The open-loop client's p99 is S - 0.01 T"),
    ("corrected-p99", "HdrHistogram's corrected recording of wrk's latencies puts the stall "
     "back in p99 (between filling the stall only and one invented record per request)"),
]


def co_claims(p: Params, m: dict) -> list[C.Claim]:
    (c1, s1), (c2, s2), (c3, s3), (c4, s4), (c5, s5) = CO_CLAIMS
    if m.get("closed_affected") is None:
        return [C.skipped(cid, st, "no records from wrk or the client") for cid, st in CO_CLAIMS]
    S, T, base = p.stall_s, p.end, p.service_ms / 1000
    n_w = model.closed_loop_requests(p.connections, base, T)
    closed_p99 = model.closed_quantile(0.99, p.connections, n_w, S, base)
    out = [
        C.near(c1, s1, model.closed_loop_affected(p.connections), m["closed_affected"], 0,
               note=f"latency >= S/2 = {m.get('threshold_closed_ms')} ms among "
                    f"{m.get('wrk_requests')} requests (share "
                    f"{m.get('closed_affected_share')}; C / N)"),
        C.at_most(c2, s2, m.get("threshold_open_ms") or S * 100, m.get("closed_p99_ms"),
                  note=f"predicted p99 = {closed_p99 * 1000:g} ms, as C / N = "
                       f"{p.connections} / {n_w:.0f} < 1 % (N = C T / service); judged "
                       f"against S/10; wrk's own (stats_correct) p99: "
                       f"{m.get('wrk_own_p99_ms')} ms"),
    ]
    n_open = m.get("open_requests") or 0
    share = model.open_fraction(S, T, S / 10)
    out.append(C.near(c3, s3, round(share, 5), m.get("open_affected_share"),
                      C.binomial_tolerance(share, n_open),
                      note=f"{n_open} requests; tolerance: 3 binomial standard errors"))
    rate = p.co_rate
    tail = 0.01 * rate * T
    tol = 3 * math.sqrt(tail) / rate + base
    out.append(C.near(c4, s4, round(model.open_quantile(0.99, S, T, base) * 1000, 1),
                      m.get("open_p99_ms"), round(tol * 1000, 1),
                      note=f"tolerance: 3 sd of the {tail:.0f} requests above p99 (Poisson) "
                           "at 1/R apart + the service time"))
    T_w = m.get("wrk_duration_s") or T
    e = (m.get("corrected_interval_ms") or 0) / 1000
    v = max(S, (m.get("closed_max_ms") or 0) / 1000)
    # records: N normal + v / e per stalled connection (spaced e, C of them: R_w a second
    # of stall) + at most one per normal request slower than e (while those stay < 2e).
    # The low end takes the planned stall S, the high end what the stalled requests took.
    # A stall of v leaves the chain v, v - e, v - 2e, ...: floor((v - L) / e) + 1 records
    # at or above L, up to one more per connection than (v - L) / e, so the p99 can sit up
    # to one spacing e above the continuous value (and, with the floor, one below). The C
    # chains interleave only if the stalled requests' phases spread evenly over e, which C
    # (4) random phases need not do: the slack is e, not e / C.
    high = model.open_quantile(0.99, v, T_w + v, base)
    low = model.open_quantile(0.99, S, 2 * T_w + S, base)
    slack = e + HDR_REL * v
    out.append(C.between(c5, s5, round((low - slack) * 1000, 1),
                         round((high + slack) * 1000, 1), m.get("corrected_p99_ms"),
                         note=f"expected interval e = C x duration / N = "
                              f"{m.get('corrected_interval_ms')} ms (wrk's own choice); the "
                              f"stalled requests took v = {v * 1000:g} ms; "
                              f"{m.get('corrected_count')} records for {m.get('wrk_requests')} "
                              "requests. p99 = v - 0.01 (T + v) if the correction only fills "
                              "the stall, S - 0.01 (2T + S) if it also adds one record for "
                              "every normal request slower than e; slack: one step e of "
                              "a stall's chain of records + HDR resolution"))
    return out


def notes(p: Params, a: Analysis) -> list[str]:
    out = []
    co = a.variants.get("coordinated-omission")
    if co and co.get("wrk_own_p99_ms") is not None:
        out.append(f"Debian's wrk 4.1 corrects its own percentiles (stats_correct, expected "
                   f"interval = runtime / (requests / C)): its printed p99 was "
                   f"{co['wrk_own_p99_ms']} ms; the closed-loop view here is wrk's raw "
                   "per-request record (wrk_record.lua).")
    tr = a.variants.get("tail-regression")
    if tr and tr.get("rtime_max_ms") is not None:
        out.append(f"HAProxy 2.6's rtime is a 1/512 EMA (swrate_add), rounded up to ms: it "
                   f"peaked at {tr['rtime_max_ms']} ms while p99 was "
                   f"{tr.get('p99_window_ms')} ms. After a (re)start the Prometheus "
                   "exporter's average divides by 512 from the first request (the stats "
                   "socket by min(requests, 512)), so it reads low for ~1,500 requests.")
    return out
