"""hol-and-buffering's analysis (pure): raw tables and documents -> metrics and series."""

from __future__ import annotations

from typing import Any

from experiments.hol_buffering import model
from experiments.hol_buffering.params import (
    BUFFER_VARIANTS,
    LOSS_VARIANTS,
    SLOW_VARIANTS,
    Params,
)
from lblab import metrics as M
from lblab.driver import Analysis
from lblab.raw import Raw, RawVariant

STALL_MS = model.RTO_MIN_MS / 2
"""A stream is stalled when it took longer than half the minimum RTO: loss-free rounds take
a few milliseconds, and a loss recovered by the timeout takes at least the minimum RTO."""
CURVE_PCT = (0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10)


def _loss(p: Params, v: RawVariant) -> tuple[dict, list[dict]]:
    rows = v.table("streams")
    times = [r["completion_ms"] for r in rows]
    stalled = [t for t in times if t >= STALL_MS]
    loss = v.doc("loss")
    front = v.doc("haproxy-frontend", {})
    last = {}
    for r in rows:
        last[r["round"]] = max(last.get(r["round"], 0), r["conn_bytes"])
    m: dict[str, Any] = {
        "streams": len(rows), "rounds": len({r["round"] for r in rows}),
        "ok_share": M.share(rows, lambda r: r["status"] == 200),
        "stalled": len(stalled), "stalled_share": M.share(rows, lambda r: r["completion_ms"]
                                                          >= STALL_MS),
        **{f"{k}_ms": val for k, val in M.latency_percentiles(times, (50, 90, 99)).items()},
        "stalled_p5_ms": M.quantile(stalled, 0.05),
        "packets_seen": loss["seen"], "packets_dropped": loss["dropped"],
        "drop_share": loss["dropped"] / loss["seen"] if loss["seen"] else None,
        "loss_pct": loss["loss_pct"], "mode": v.name.partition("@")[0].removeprefix("loss-"),
        "round_bytes_mean": sum(last.values()) / len(last) if last else None,
        "h2_headers_rcvd": front.get("h2_headers_rcvd"),
        "proxy_sysctls": loss.get("proxy_sysctls", {}),
    }
    series = [{"variant": v.name, "round": r["round"], "stream": r["stream"],
               "completion_ms": r["completion_ms"]} for r in rows]
    return m, series


def _slow(p: Params, v: RawVariant) -> tuple[dict, list[dict]]:
    rows = v.table("slow")
    doc = v.doc("slow")
    upload = next(r for r in rows if r["kind"] == "upload")
    pause_end = upload["sent_s"] + doc["pause_s"]
    during = [r for r in rows if r["kind"] == "sibling" and r["sent_s"] < pause_end]
    lat = [r["completion_ms"] for r in during]
    m = {"siblings": len(during), "pause_end_s": pause_end,
         "blocked": sum(r["done_s"] >= pause_end for r in during),
         "blocked_share": M.share(during, lambda r: r["done_s"] >= pause_end),
         **{f"sibling_{k}_ms": val for k, val in M.latency_percentiles(lat, (50, 99)).items()},
         "upload_ms": upload["completion_ms"], "upload_status": upload.get("status"),
         "ok_share": M.share(rows, lambda r: r.get("status") == 200),
         "buffers": doc["buffers"],
         "h2_headers_rcvd": v.doc("haproxy-frontend", {}).get("h2_headers_rcvd")}
    series = [{"variant": v.name, "kind": r["kind"], "sent_s": r["sent_s"],
               "done_s": r["done_s"], "completion_ms": r["completion_ms"]} for r in rows]
    return m, series


def _counts(rows: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        key = str(r["status"]) if r["outcome"] == "ok" else r["outcome"]
        out[key] = out.get(key, 0) + 1
    return out


def _uploads(p: Params, v: RawVariant) -> tuple[dict, list[dict]]:
    rows = v.table("uploads")
    mem = v.table("memory")
    counts = _counts(rows)
    m: dict[str, Any] = {"uploads": len(rows), "outcomes": counts,
                         "answered_200": counts.get("200", 0),
                         "refused_413": counts.get("413", 0),
                         "refused_503": counts.get("503", 0),
                         "reset": counts.get("reset", 0),
                         "connection_refused": counts.get("refused", 0)}
    series = []
    if v.name == "buffer-haproxy":
        before = v.doc("haproxy-before")
        rss = [s["rss_bytes"] for s in mem if s["rss_bytes"] is not None]
        pools = [s["pool_used_bytes"] for s in mem if s["pool_used_bytes"] is not None]
        m.update({"rss_before_bytes": before["rss_bytes"],
                  "rss_peak_bytes": max(rss, default=None),
                  "rss_growth_bytes": (max(rss) - before["rss_bytes"]) if rss else None,
                  "pool_growth_bytes": (max(pools) - before["pool_used_bytes"]) if pools
                  else None,
                  "peak_conns": max((s["curr_conns"] or 0 for s in mem), default=None)})
        series = [{"variant": v.name, "t": s["t"], "bytes": s["rss_bytes"] - before["rss_bytes"]
                   if s["rss_bytes"] is not None else None, "what": "haproxy RSS growth"}
                  for s in mem]
        return m, series
    limit = v.doc("memory-limit")
    tier = v.doc("tier")
    rest = limit["rest_bytes"]
    used = [s["usage_bytes"] for s in mem if s["usage_bytes"] is not None]
    dead = [s["t"] for s in mem if not s["alive"]]
    resets = [r["done_s"] for r in rows if r["outcome"] == "reset"]
    m.update({"rest_bytes": rest, "limit_bytes": limit["limit_bytes"],
              "cgroup": limit["version"],
              "peak_growth_bytes": (max(used) - rest) if used else None,
              "oom_kills": tier["oom_kills"], "exit_code": tier["exit_code"],
              "died_at_s": min(dead) if dead else None,
              "kill_seen_at_s": min(resets) if resets else None,
              "in_flight_at_kill": len(resets)})
    series = [{"variant": v.name, "t": s["t"], "bytes": s["usage_bytes"] - rest
               if s["usage_bytes"] is not None else None, "what": "tier cgroup usage growth"}
              for s in mem]
    return m, series


def analyse(p: Params, raw: Raw) -> Analysis:
    variants: dict[str, dict] = {}
    streams: list[dict] = []
    memory: list[dict] = []
    slow: list[dict] = []
    buffers = None
    for name, v in raw.items():
        if name.partition("@")[0] in LOSS_VARIANTS:
            variants[name], rows = _loss(p, v)
            streams += rows
        elif name in SLOW_VARIANTS:
            variants[name], rows = _slow(p, v)
            buffers = variants[name]["buffers"]
            slow += rows
        elif name in BUFFER_VARIANTS:
            variants[name], rows = _uploads(p, v)
            memory += rows
    pct = p.loss_pct / 100
    curve = [{"loss_pct": q, "h1": model.stall_h1(q / 100, p.response_bytes),
              "h2": model.stall_h2(q / 100, p.response_bytes, p.streams)}
             for q in sorted({*CURVE_PCT, p.loss_pct, *p.sweep_pcts})]
    summary = {
        "stall_ms": STALL_MS, "rto_min_ms": model.RTO_MIN_MS,
        "predicted_stall_h1": model.stall_h1(pct, p.response_bytes),
        "predicted_stall_h2": model.stall_h2(pct, p.response_bytes, p.streams),
        "h1_segments": model.h1_segments(p.response_bytes),
        "h2_segments": model.h2_segments(p.response_bytes, p.streams),
        "tier_kill_upload": model.tier_kill_upload(p.headroom_bytes, p.body_bytes),
        "haproxy_bound_bytes": model.haproxy_bound_bytes(p.uploads, p.bufsize),
        "headroom_bytes": p.headroom_bytes, "body_bytes": p.body_bytes,
        "slow_pause_s": p.slow_pause_ms / 1000,
    }
    if buffers is not None:
        wmem, rmem = buffers["l7s"]["tcp_wmem"], buffers["b1"]["tcp_rmem"]
        summary.update({"proxy_wmem_max": wmem, "upstream_rmem_max": rmem,
                        "absorbed_bytes": model.absorbed_bytes(p.bufsize, wmem, rmem)})
    series = {"streams": streams, "memory": memory, "slow": slow, "stall_curve": curve}
    return Analysis(variants, {k: s for k, s in series.items() if s}, summary)
