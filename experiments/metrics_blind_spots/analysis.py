"""metrics-blind-spots' analysis (pure): raw records, logs and counters -> each view's
numbers per variant, and the series the plots draw.

Truth is the open-loop client's record of every request (latency from its intended send
time) and HAProxy's per-request log; the views are the L4 node's counters, HAProxy in tcp
mode, HAProxy's moving averages (stats socket and Prometheus), a 1 % tracer sample, and
wrk's closed loop. Fault windows are the timeline's measured times.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from lblab import metrics as M
from lblab.driver import Analysis
from lblab.raw import Raw, RawVariant
from lblab.timeline import event_time

from . import model
from .params import BIN_S, FAULT_OFF, FAULT_ON, PATHS, RESUME, STALL, Params

SPECTRUM = tuple(100 * (1 - 10 ** (-k / 4)) for k in range(0, 17))
"""Percentiles of the spectrum plots: 0, 43.8, 68.4, 82.2, 90, ... 99.99."""
SAMPLE_SEED = 19
"""The tracer's draws are reproducible: the same raw data gives the same samples."""


def analyse(p: Params, raw: Raw) -> Analysis:
    variants: dict[str, dict[str, Any]] = {}
    series: dict[str, list[dict[str, Any]]] = {}
    steps = {"l4-view": l4_view, "tail-regression": tail_regression, "sampling": sampling,
             "coordinated-omission": coordinated_omission}
    for name, step in steps.items():
        if name in raw:
            metrics, tables = step(p, raw[name], raw.lab)
            variants[name] = metrics
            for table, rows in tables.items():
                series.setdefault(table, []).extend(rows)
    summary = {"faults": {n: {"t1": m.get("t1"), "t2": m.get("t2")}
                          for n, m in variants.items() if "t1" in m}}
    return Analysis(variants, series, summary)


def fault_window(p: Params, data: RawVariant) -> tuple[float | None, float | None]:
    doc = data.doc("timeline", {})
    return event_time(doc, FAULT_ON), event_time(doc, FAULT_OFF)


def path_of(target: str) -> str:
    """Which LB node a client target URL went to (l4, l7t, l7h are 10.0.0.1, .2, .3)."""
    host = target.split("//", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return PATHS[int(host.rsplit(".", 1)[1]) - 1]


def _delta(before: dict, after: dict, key: str) -> int:
    return int(after.get(key, 0) or 0) - int(before.get(key, 0) or 0)


def _share(rows: list, pred) -> float | None:
    return M.share(rows, pred)


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


# -- l4-view ------------------------------------------------------------------------------
def l4_view(p: Params, data: RawVariant, lab: dict) -> tuple[dict, dict]:
    t1, t2 = fault_window(p, data)
    reqs = M.requests(data.table("client-records"))
    by_path = {name: [r for r in reqs if path_of(r["target"]) == name] for name in PATHS}
    before, after = data.doc("counters-before"), data.doc("counters-after")
    syn = _delta(before, after, "syn_packets")
    synack = _delta(before, after, "synack_packets")
    rst = _delta(before, after, "rst_from_backend_packets")
    tcp_stot = _delta(before, after, "l7t_stot")
    tcp_errors = sum(_delta(before, after, f"l7t_{k}") for k in ("econ", "eresp", "srv_abrt"))
    tcp_log = data.tables.get("l7t-log", [])
    http_log = data.tables.get("l7h-log", [])
    out: dict[str, Any] = {"t1": t1, "t2": t2, "requests": len(reqs)}
    if t1 is None or t2 is None:
        return out, {}
    win = {n: M.window(rows, t1, t2) for n, rows in by_path.items()}
    all_win = M.window(reqs, t1, t2)
    out.update({
        "client_5xx_share": _r(_share(all_win, lambda r: r["outcome"] == "5xx")),
        "client_window_requests": len(all_win),
        "client_5xx_share_by_path": {n: _r(_share(w, lambda r: r["outcome"] == "5xx"))
                                     for n, w in win.items()},
        "client_failed_outside_5xx": sum(r["outcome"] not in ("ok", "5xx") for r in reqs),
        "l4_syn": syn, "l4_synack": synack, "l4_rst_from_backend": rst,
        "l4_connection_success": _r(synack / syn if syn else None, 6),
        "l4_requests_sent": len(by_path["l4"]),
        "l4_bytes_to_client_per_conn": _r(_delta(before, after, "bytes_to_client_bytes")
                                          / syn if syn else None, 1),
        "tcp_sessions": tcp_stot, "tcp_errors": tcp_errors,
        "tcp_connection_success": _r(1 - tcp_errors / tcp_stot if tcp_stot else None, 6),
    })
    tcp_win = M.window(tcp_log, t1, t2, key="t")
    tcp_pre = M.window(tcp_log, 0, t1, key="t")
    out["tcp_log_lines"] = len(tcp_log)
    out["tcp_normal_share"] = _r(_share(tcp_log, lambda r: r["term"] == "--"), 6)
    out["tcp_window_connections"] = len(tcp_win)
    if tcp_win and tcp_pre:
        out["tcp_bytes_before"] = _r(statistics.fmean(r["bytes"] for r in tcp_pre), 2)
        out["tcp_bytes_window"] = _r(statistics.fmean(r["bytes"] for r in tcp_win), 2)
        out["tcp_bytes_change"] = _r(out["tcp_bytes_window"] - out["tcp_bytes_before"], 2)
    sizes = lab.get("response-sizes", {})
    out["size_200"], out["size_500"] = sizes.get("200"), sizes.get("500")
    http_win = M.window(http_log, t1, t2, key="t")
    out["l7_window_requests"] = len(http_win)
    out["l7_5xx_share"] = _r(_share(http_win, lambda r: r["status"] >= 500))
    out["l7_5xx_share_outside"] = _r(_share(
        [r for r in http_log if not t1 <= r["t"] < t2], lambda r: r["status"] >= 500))
    rel = relative(data.tables.get("counters", []), before)
    n5 = M.counter_delta(rel, "l7h_hrsp_5xx", t1, t2)
    n = n5 + M.counter_delta(rel, "l7h_hrsp_2xx", t1, t2)
    out["l7_stats_5xx_share"] = _r(n5 / n if n else None)
    per_conn = []
    for lo, hi in ((0.0, t1), (t1, t2)):
        conns = M.counter_delta(rel, "syn_packets", lo, hi)
        per_conn.append(M.counter_delta(rel, "bytes_to_client_bytes", lo, hi) / conns
                        if conns else None)
    if None not in per_conn:
        out["l4_bytes_per_conn_before"] = _r(per_conn[0], 1)
        out["l4_bytes_per_conn_window"] = _r(per_conn[1], 1)
    rows = l4_per_second(p, reqs, rel, tcp_log, http_log)
    return out, {"l4-view-per-second": rows}


def relative(samples: list[dict], before: dict) -> list[dict]:
    """Sampled cumulative counters from t = 0 on, less their values before the client
    started (nothing crosses the nodes before t = 0), as lblab.metrics.counter_at reads."""
    return [{k: (v - before[k] if k in before and isinstance(v, int | float) and k != "t"
                 else v) for k, v in s.items()} for s in samples if s["t"] >= 0]


def l4_per_second(p: Params, reqs: list, rel: list, tcp_log: list,
                  http_log: list) -> list[dict]:
    rows = []
    for (lo, hi), got, tcp, http in zip(M.bins(p.end, BIN_S), M.per_bin(reqs, p.end, BIN_S),
                                        M.per_bin(tcp_log, p.end, BIN_S, key="t"),
                                        M.per_bin(http_log, p.end, BIN_S, key="t"),
                                        strict=True):
        syn = M.counter_delta(rel, "syn_packets", lo, hi)
        synack = M.counter_delta(rel, "synack_packets", lo, hi)
        rows.append({
            "t": lo, "client_5xx_share": _r(_share(got, lambda r: r["outcome"] == "5xx")),
            "l7_log_5xx_share": _r(_share(http, lambda r: r["status"] >= 500)),
            "tcp_normal_share": _r(_share(tcp, lambda r: r["term"] == "--")),
            "l4_connection_success": _r(synack / syn if syn > 0.5 else None),
            "tcp_bytes_mean": _r(statistics.fmean(r["bytes"] for r in tcp) if tcp else None,
                                 1)})
    return rows


# -- tail-regression ----------------------------------------------------------------------
def ok_lat(rows: list) -> list[float]:
    return M.ok_latencies(rows)


def last_before(samples: list, t: float, key: str) -> tuple[float | None, float | None]:
    """The last sample of `key` taken before t: (its time, its value)."""
    prior = [s for s in samples if s["t"] < t and s.get(key) is not None]
    return (prior[-1]["t"], prior[-1][key]) if prior else (None, None)


def rtime_segments(p: Params) -> list[tuple[float, float, float]]:
    """The mean response time HAProxy's rtime averages, by the plan: service time, plus
    f x delta between t1 and t2 (the base cancels out of every shift: the average starts
    warm, at it; see MetricsBlindSpots.prepare)."""
    fault = p.service_ms + model.mean_shift(p.slow_fraction, p.delta_ms)
    return [(0.0, p.t1, p.service_ms), (p.t1, p.t2, fault), (p.t2, p.end, p.service_ms)]


def tail_regression(p: Params, data: RawVariant, lab: dict) -> tuple[dict, dict]:
    t1, t2 = fault_window(p, data)
    reqs = M.requests(data.table("client-records"))
    out: dict[str, Any] = {"t1": t1, "t2": t2, "requests": len(reqs)}
    if t1 is None or t2 is None:
        return out, {}
    pre, win = ok_lat(M.window(reqs, 0, t1)), ok_lat(M.window(reqs, t1, t2))
    out.update({"requests_before": len(pre), "requests_window": len(win),
                "failed": sum(r["outcome"] != "ok" for r in reqs)})
    if len(pre) < 2 or len(win) < 2:
        return out, {}
    pb, pw = M.latency_percentiles(pre, (1, 50, 99, 99.9)), M.latency_percentiles(win)
    out.update({
        "p1_before_ms": pb["p1"], "p50_before_ms": pb["p50"], "p99_before_ms": pb["p99"],
        "p999_before_ms": pb["p99.9"],
        "p50_window_ms": pw["p50"], "p99_window_ms": pw["p99"], "p999_window_ms": pw["p99.9"],
        "p99_shift_ms": _r(pw["p99"] - pb["p99"], 3),
        "mean_before_ms": _r(statistics.fmean(pre), 3),
        "mean_window_ms": _r(statistics.fmean(win), 3),
        "sd_before_ms": _r(statistics.stdev(pre), 3),
        "slow_share_window": _r(M.share(win, lambda x: x >= p.service_ms + p.delta_ms / 2)),
    })
    out["mean_shift_ms"] = _r(out["mean_window_ms"] - out["mean_before_ms"], 3)
    samples = data.tables.get("averages", [])
    for key, name in (("rtime", "rtime"), ("prom_rtime_ms", "prom_rtime")):
        ta, va = last_before(samples, t1, key)
        tb, vb = last_before(samples, t2, key)
        out[f"{name}_at_t1"], out[f"{name}_at_t2"] = va, vb
        out[f"{name}_t1_s"], out[f"{name}_t2_s"] = ta, tb
        out[f"{name}_shift_ms"] = _r(vb - va if va is not None and vb is not None else None, 3)
        if ta is not None and tb is not None:
            out[f"{name}_shift_predicted_ms"] = _r(
                model.ema_at(tb, p.rate, rtime_segments(p), start=p.service_ms)
                - model.ema_at(ta, p.rate, rtime_segments(p), start=p.service_ms), 3)
    http_log = data.tables.get("l7h-log", [])
    if http_log:
        tr = [r["tr_ms"] for r in M.window(http_log, t1, t2, key="t")]
        out["log_tr_p99_window_ms"] = M.latency_p(tr, 99) if tr else None
    rows = tail_per_second(p, reqs, samples)
    hidden = [r for r in rows if r["hidden"]]
    out["slo_violated_seconds"] = sum(r["p99_ms"] is not None and r["p99_ms"] >= p.slo_ms
                                      for r in rows)
    out["slo_hidden_seconds"] = len(hidden)
    out["rtime_max_ms"] = max((r["rtime_ms"] for r in rows if r["rtime_ms"] is not None),
                              default=None)
    return out, {"tail-per-second": rows}


def tracer_mask(n: int, rate: float, draws: int, seed: int = SAMPLE_SEED) -> np.ndarray:
    """draws x n booleans: which requests each independent tracer sample keeps."""
    return np.random.default_rng(seed).random((draws, n)) < rate


def tail_per_second(p: Params, reqs: list, samples: list) -> list[dict]:
    mask = tracer_mask(len(reqs), p.sample_rate, 1)[0]
    kept = [r for r, keep in zip(reqs, mask, strict=True) if keep]
    rows = []
    for (lo, hi), got, traced in zip(M.bins(p.end, BIN_S), M.per_bin(reqs, p.end, BIN_S),
                                     M.per_bin(kept, p.end, BIN_S), strict=True):
        lat = ok_lat(got)
        pct = M.latency_percentiles(lat) if lat else {}
        late = [r for r in got if r["outcome"] != "ok"]
        p99 = pct.get("p99") if not late else max(pct.get("p99") or 0, p.slo_ms)
        _, rtime = last_before(samples, hi, "rtime")
        _, prom = last_before(samples, hi, "prom_rtime_ms")
        sampled = M.latency_p(ok_lat(traced), 99) if traced else None
        rows.append({"t": lo, "requests": len(got), "p50_ms": pct.get("p50"), "p99_ms": p99,
                     "p999_ms": pct.get("p99.9"),
                     "mean_ms": _r(statistics.fmean(lat), 3) if lat else None,
                     "rtime_ms": rtime, "prom_rtime_ms": prom, "sampled_p99_ms": sampled,
                     "sampled_n": len(traced),
                     "hidden": bool(p99 is not None and p99 >= p.slo_ms
                                    and rtime is not None and rtime < p.slo_ms)})
    return rows


def predicted_hidden_seconds(p: Params) -> tuple[float, float]:
    """(expected, variance) of the seconds whose p99 (R requests a second) is at or above
    the SLO while HAProxy's average (the EMA by the plan) is below it: a second with a
    share s of its time in the fault window has each request slow with probability f s."""
    mean = var = 0.0
    n = max(1, round(p.rate * BIN_S))
    for lo, hi in M.bins(p.end, BIN_S):
        overlap = max(0.0, min(hi, p.t2) - max(lo, p.t1)) / (hi - lo)
        if not overlap or p.service_ms + p.delta_ms < p.slo_ms:
            continue
        if model.ema_at(hi, p.rate, rtime_segments(p), start=p.service_ms) >= p.slo_ms:
            continue
        q = model.p_quantile_slow(n, p.slow_fraction * overlap, 0.99)
        mean += q
        var += q * (1 - q)
    return mean, var


# -- sampling -----------------------------------------------------------------------------
def slow_threshold(p: Params) -> float:
    """A request is `slow` (one of those with +delta) above service + delta / 2."""
    return p.service_ms + p.delta_ms / 2


def sampling(p: Params, data: RawVariant, lab: dict) -> tuple[dict, dict]:
    reqs = M.requests(data.table("client-records"))
    lat = ok_lat(reqs)
    out: dict[str, Any] = {"requests": len(reqs), "ok": len(lat)}
    if len(lat) < 10:
        return out, {}
    full = M.latency_percentiles(lat, (50, 99, 99.9))
    thr = slow_threshold(p)
    out.update({"full_p50_ms": full["p50"], "full_p99_ms": full["p99"],
                "full_p999_ms": full["p99.9"], "slow_requests": sum(x >= thr for x in lat),
                "slow_threshold_ms": thr})
    arr = np.array(lat)
    mask = tracer_mask(len(arr), p.sample_rate, p.sample_draws)
    draws = []
    for i, keep in enumerate(mask):
        picked = arr[keep]
        pct = M.latency_percentiles(picked.tolist(), (99, 99.9)) if len(picked) else {}
        draws.append({"draw": i, "n": int(len(picked)), "p99_ms": pct.get("p99"),
                      "p999_ms": pct.get("p99.9")})
    got = [d for d in draws if d["p999_ms"] is not None]
    out["sample_size_mean"] = _r(statistics.fmean(d["n"] for d in draws), 2)
    out["draws"] = len(draws)
    out["sampled_p999_miss_share"] = _r(
        sum(d["p999_ms"] is None or d["p999_ms"] < thr for d in draws) / len(draws))
    out["sampled_p999_error_ms"] = _r(statistics.fmean(abs(d["p999_ms"] - full["p99.9"])
                                                       for d in got) if got else None, 3)
    out["sampled_p99_error_ms"] = _r(statistics.fmean(abs(d["p99_ms"] - full["p99"])
                                                      for d in got) if got else None, 3)
    # The sample size that bounds p99.9's rank error (q -/+ (1-q)/2 at 95 %), checked by
    # drawing that many requests (with replacement) from the full record.
    q = 0.999
    n_bound = model.quantile_sample_size(q)
    eps = (1 - q) / 2
    lo_ms = M.latency_p(lat, 100 * (q - eps))
    hi_ms = M.latency_p(lat, 100 * (q + eps))
    rng = np.random.default_rng(SAMPLE_SEED + 1)
    bound_draws = min(p.sample_draws, 60)
    inside = 0
    for _ in range(bound_draws):
        est = M.latency_p(rng.choice(arr, size=n_bound, replace=True).tolist(), 100 * q)
        inside += lo_ms <= est <= hi_ms
    out.update({"bound_sample_size": n_bound, "bound_draws": bound_draws,
                "bound_range_ms": [lo_ms, hi_ms],
                "bound_inside_share": _r(inside / bound_draws),
                "bound_requests_at_rate": round(n_bound / p.sample_rate)})
    return out, {"sampling-draws": draws}


# -- coordinated-omission -----------------------------------------------------------------
def corrected_histogram(latencies_ms: list[float], interval_ms: float) -> HdrHistogram:
    """HdrHistogram's coordinated-omission correction of a closed loop's record."""
    hist = HdrHistogram(1, M.HIST_MAX_US, 3)
    interval = max(1, int(interval_ms * 1000))
    for ms in latencies_ms:
        hist.record_corrected_value(min(M.HIST_MAX_US, max(1, int(ms * 1000))), interval)
    return hist


def spectrum(hist: HdrHistogram, view: str) -> list[dict]:
    if not hist.total_count:
        return []
    rows = [{"view": view, "percentile": round(q, 4),
             "latency_ms": (hist.get_value_at_percentile(q) if q else hist.get_min_value())
             / 1000} for q in SPECTRUM]
    rows.append({"view": view, "percentile": 100.0, "latency_ms": hist.get_max_value() / 1000})
    return rows


def coordinated_omission(p: Params, data: RawVariant, lab: dict) -> tuple[dict, dict]:
    doc = data.doc("timeline", {})
    stall, resume = event_time(doc, STALL), event_time(doc, RESUME)
    wrk = data.tables.get("wrk-records", [])
    summary = data.doc("wrk-summary", {})
    reqs = M.requests(data.table("client-records"))
    open_lat = ok_lat(reqs)
    out: dict[str, Any] = {"stall_at": stall, "resume_at": resume,
                           "stall_measured_s": _r(resume - stall if stall is not None
                                                  and resume is not None else None),
                           "wrk_requests": len(wrk), "open_requests": len(reqs),
                           "open_failed": len(reqs) - len(open_lat)}
    closed_lat = [r["latency_ms"] for r in wrk if r["status"] and r["status"] < 500]
    if not closed_lat or not open_lat:
        return out, {}
    duration_s = (summary.get("duration_us") or 0) / 1e6 or p.end
    thr_closed = p.stall_s * 1000 / 2
    thr_open = p.stall_s * 1000 / 10
    interval_ms = p.connections * duration_s * 1000 / len(closed_lat)
    corrected = corrected_histogram(closed_lat, interval_ms)
    cp = M.latency_percentiles(closed_lat, (50, 99, 99.9))
    op = M.latency_percentiles(open_lat, (50, 99, 99.9))
    out.update({
        "wrk_duration_s": _r(duration_s, 3), "wrk_rate": _r(len(closed_lat) / duration_s, 1),
        "closed_affected": sum(x >= thr_closed for x in closed_lat),
        "closed_affected_share": _r(sum(x >= thr_closed for x in closed_lat)
                                    / len(closed_lat), 6),
        "closed_p50_ms": cp["p50"], "closed_p99_ms": cp["p99"], "closed_p999_ms": cp["p99.9"],
        "closed_max_ms": max(closed_lat),
        "wrk_own_p99_ms": (summary.get("wrk_p99_us") or 0) / 1000,
        "open_affected_share": _r(sum(x >= thr_open for x in open_lat) / len(open_lat), 5),
        "open_p50_ms": op["p50"], "open_p99_ms": op["p99"], "open_p999_ms": op["p99.9"],
        "corrected_interval_ms": _r(interval_ms, 3),
        "corrected_count": corrected.total_count,
        "corrected_p99_ms": corrected.get_value_at_percentile(99) / 1000,
        "corrected_p999_ms": corrected.get_value_at_percentile(99.9) / 1000,
        "threshold_closed_ms": thr_closed, "threshold_open_ms": thr_open,
    })
    rows = (spectrum(M.latency_histogram(closed_lat), "closed loop (wrk)")
            + spectrum(M.latency_histogram(open_lat), "open loop")
            + spectrum(corrected, "wrk, HDR-corrected"))
    return out, {"co-spectrum": rows}
