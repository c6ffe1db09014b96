"""sticky-sessions' analysis (pure): the users' records and HAProxy's samples -> metrics.

A session's backend at time t is the one that answered its last successful request done by
t; it is active at t from its first successful reply until it sends its checkout (or the
run ends). A session lost its cart when any reply held fewer items than the adds it had
confirmed (lblab.workloads.users.cart_lost, recorded per request as `lost`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from lblab import metrics
from lblab.claims import binomial_tolerance
from lblab.driver import Analysis
from lblab.raw import Raw, RawVariant
from lblab.timeline import event_time

from . import model
from .params import BACK, DRAIN, FAIL, FAILED_LB, STICK, STOP, WITHDRAW, Params

Row = Mapping[str, Any]
STEP_S = 1.0
"""Width of the per-backend series (load, active sessions)."""
RECOVERY_POINTS = 8
"""Points of the recovery curve, evenly spread from when the backend is UP to the end."""


def sessions(records: Sequence[Row]) -> dict[int, list[Row]]:
    out: dict[int, list[Row]] = defaultdict(list)
    for r in records:
        out[r["session"]].append(r)
    return {sid: sorted(rows, key=lambda r: r["seq"]) for sid, rows in out.items()}


def backend_at(rows: Sequence[Row], t: float) -> str | None:
    """The session's backend at t, if it is active then (see the module docstring)."""
    ok = [r for r in rows if r["outcome"] == "ok" and r["done_s"] <= t]
    if not ok or rows[-1]["sent_s"] < t:
        return None
    return ok[-1]["backend"]


def census(by_session: Mapping[int, Sequence[Row]], t: float) -> dict[int, str]:
    """Active sessions at t and their backends."""
    found = {sid: backend_at(rows, t) for sid, rows in by_session.items()}
    return {sid: b for sid, b in found.items() if b}


def lost_sessions(by_session: Mapping[int, Sequence[Row]]) -> set[int]:
    return {sid for sid, rows in by_session.items() if any(r["lost"] for r in rows)}


def first_status_after(samples: Sequence[Row], server: str, t: float,
                       prefix: str) -> float | None:
    """When HAProxy's sampled status of `server` first starts with `prefix` at or after t."""
    for s in samples:
        if s["t"] >= t and str(s.get(f"{server}.status") or "").startswith(prefix):
            return s["t"]
    return None


def per_backend_series(name: str, v: RawVariant, servers: list[str],
                       by_session: Mapping[int, Sequence[Row]], end: float) -> list[dict]:
    samples = v.table("haproxy")
    rows = []
    for lo, hi in metrics.bins(end, STEP_S):
        active = Counter(census(by_session, (lo + hi) / 2).values())
        for srv in servers:
            served = metrics.counter_delta(samples, f"{srv}.ok", lo, hi)
            rows.append({"variant": name, "t": lo, "backend": srv,
                         "requests_per_s": round(served / (hi - lo), 3),
                         "sessions": active.get(srv, 0)})
    return rows


def failure(p: Params, v: RawVariant, by_session: Mapping[int, Sequence[Row]],
            t0: float | None, gone: str | None = None) -> dict[str, Any]:
    """Carts lost by the sessions active when the backend failed (or was set to drain)."""
    failed = f"b{p.failed}"
    if t0 is None:
        return {}
    active = census(by_session, t0)
    lost = lost_sessions(by_session)
    on_failed = {sid for sid, b in active.items() if b == failed}
    records = v.table("users-records")
    after = [r for r in records if r["sent_s"] >= t0]
    down = first_status_after(v.table("haproxy"), failed, gone if gone is not None else t0,
                              "DOWN")
    out = {
        "t0": t0, "active": len(active), "on_failed": len(on_failed),
        "lost": len(lost & set(active)),
        "lost_share": len(lost & set(active)) / len(active) if active else None,
        "lost_on_failed": len(lost & on_failed),
        "lost_elsewhere": len(lost - on_failed),
        "failed_requests": sum(r["outcome"] != "ok" for r in after),
        "requests_after": len(after),
        "detection_s": None if down is None else round(down - (gone if gone is not None
                                                                else t0), 3),
    }
    return out


def drain(p: Params, v: RawVariant, by_session: Mapping[int, Sequence[Row]]) -> dict[str, Any]:
    failed = f"b{p.failed}"
    doc = v.doc("timeline")
    t0, stop = event_time(doc, DRAIN), event_time(doc, STOP)
    if t0 is None or stop is None:
        return {}
    out = failure(p, v, by_session, t0, gone=stop)
    active = census(by_session, t0)
    lost = lost_sessions(by_session)
    on = [sid for sid, b in active.items() if b == failed]
    ended = [sid for sid in on if by_session[sid][-1]["kind"] == "checkout"
             and by_session[sid][-1]["sent_s"] < stop]
    new_on = [sid for sid, rows in by_session.items() if sid not in active
              and any(r["outcome"] == "ok" and r["backend"] == failed and r["sent_s"] >= t0
                      for r in rows[:1])]
    out.update({"t_stop": stop, "window_s": round(stop - t0, 3),
                "ended_in_window": len(ended), "lost_ended_in_window": len(set(ended) & lost),
                "new_sessions_on_drained": len(new_on)})
    return out


def recovery(p: Params, v: RawVariant, by_session: Mapping[int, Sequence[Row]],
             end: float) -> tuple[dict[str, Any], list[dict]]:
    failed = f"b{p.failed}"
    back = event_time(v.doc("timeline"), BACK)
    up = None if back is None else first_status_after(v.table("haproxy"), failed, back, "UP")
    if up is None:
        return {"t_up": None}, []
    last = end - p.think_s  # the final checkouts of the run's end are not sessions ending
    rows = []
    for k in range(1, RECOVERY_POINTS + 1):
        t = up + (last - up) * k / RECOVERY_POINTS
        active = census(by_session, t)
        n = len(active)
        share = sum(b == failed for b in active.values()) / n if n else None
        rows.append({"variant": "recovery", "t": round(t, 3), "since_up": round(t - up, 3),
                     "active": n, "share": share,
                     "predicted": round(model.recovery_share(p, t - up), 5),
                     "tolerance": round(binomial_tolerance(model.recovery_share(p, t - up),
                                                           n), 5)})
    return {"t_back": back, "t_up": up, "points": len(rows)}, rows


def loads(v: RawVariant) -> dict[str, Any]:
    """Requests each server answered (HAProxy's hrsp_2xx after the variant) and max/mean."""
    after = v.doc("haproxy-after")
    served = {name: c["hrsp_2xx"] for name, c in after.items()}
    mean = sum(served.values()) / len(served) if served else 0
    return {"served": served, "requests": sum(served.values()),
            "max_over_mean": max(served.values()) / mean if mean else None}


def affinity(p: Params, v: RawVariant,
             by_session: Mapping[int, Sequence[Row]]) -> dict[str, Any]:
    """stick-*: which active sessions lost their backend when lb1 was withdrawn."""
    t0 = event_time(v.doc("timeline"), WITHDRAW)
    if t0 is None:
        return {}
    failed_ip = v.doc("lb-nodes")[f"lb{FAILED_LB}"]
    active = census(by_session, t0)
    lost = lost_sessions(by_session)
    via, moved = {}, set()
    for sid, backend in active.items():
        rows = by_session[sid]
        before = [r for r in rows if r["outcome"] == "ok" and r["done_s"] <= t0]
        via[sid] = before[-1]["via"]
        if any(r["outcome"] == "ok" and r["sent_s"] >= t0 and r["backend"] != backend
               for r in rows):
            moved.add(sid)
    on_node = {sid for sid, ip in via.items() if ip == failed_ip}
    n = len(active)
    return {"t0": t0, "active": n, "on_failed_node": len(on_node),
            "failed_node_share": len(on_node) / n if n else None,
            "moved": len(moved), "moved_share": len(moved) / n if n else None,
            "moved_from_survivor": len(moved - on_node),
            "lost": len(lost & set(active)),
            "failed_requests": sum(r["outcome"] != "ok" for r in v.table("users-records")
                                   if r["sent_s"] >= t0)}


def analyse(p: Params, raw: Raw) -> Analysis:
    variants: dict[str, dict] = {}
    series: dict[str, list[dict]] = {"per-backend": [], "recovery-curve": []}
    summary: dict[str, Any] = {"failed": f"b{p.failed}"}
    servers = [f"b{i}" for i in range(1, p.backends + 1)]
    for name, v in raw.items():
        records = v.table("users-records")
        by_session = sessions(records)
        users = v.doc("users-summary")
        end = users["config"]["duration_s"]
        summary["seed"] = users["config"]["seed"]
        m: dict[str, Any] = {
            "requests": len(records), "sessions": len(by_session),
            "failed_requests_all": sum(r["outcome"] != "ok" for r in records),
            "sessions_lost": len(lost_sessions(by_session)),
            "p99_ms": metrics.quantile([r["latency_ms"] for r in records
                                        if r["outcome"] == "ok"], 0.99),
            **loads(v)}
        if name in ("cookie-local", "cookie-redis", "recovery"):
            m.update(failure(p, v, by_session, event_time(v.doc("timeline"), FAIL)))
        if name == "drain":
            m.update(drain(p, v, by_session))
        if name in STICK:
            m.update(affinity(p, v, by_session))
        if name == "recovery":
            rec, curve = recovery(p, v, by_session, end)
            m.update(rec)
            series["recovery-curve"] += curve
        series["per-backend"] += per_backend_series(name, v, servers, by_session, end)
        variants[name] = m
    if "hot-backends" in raw or "hot-roundrobin" in raw:
        series["hot-simulated"] = simulated_histograms(p, summary.get("seed", 0))
    return Analysis(variants, series, summary)


def simulated_histograms(p: Params, seed: int, bins: int = 40) -> list[dict]:
    """The simulated max/mean distributions the hot-* claims are judged by, as histograms
    (for the plot; the claims compute their bounds from model.py themselves)."""
    import numpy as np

    rows = []
    for kind, samples in (("affinity", model.affinity_imbalance(p, seed)),
                          ("multinomial", model.multinomial_imbalance(p, seed))):
        counts, edges = np.histogram(samples, bins=bins)
        rows += [{"kind": kind, "lo": round(float(lo), 5), "hi": round(float(hi), 5),
                  "count": int(c)} for c, lo, hi in zip(counts, edges[:-1], edges[1:], strict=True)]
    return rows
