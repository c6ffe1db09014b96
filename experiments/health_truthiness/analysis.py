"""health-truthiness's analysis (pure): per fault and check type, from the client's records,
HAProxy's sampled stats and the backends' own check counters.

A server *serves* while HAProxy shows it UP (also "UP 1/3", going down) with a weight
above 0; it is *ejected* otherwise. Eject times are the first sample after the fault with
the server ejected, so they are late by at most one sampling gap (the largest gap of this
run's samples around the fault is reported as `resolution_s`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from lblab import metrics as M
from lblab.driver import Analysis
from lblab.raw import Raw
from lblab.timeline import event_time
from topologies.two_tier import lb_back_ip, lb_front_ip

from .params import CHECKS, FAULT_END, FAULT_START, FAULTY, Params, cart_rate_per_backend, routes

BIN_S = 0.25
CHECK_KIND = {"shallow": "healthz", "passive": "healthz", "deep": "ready", "multi": "agent"}
"""Which of the backend's counters counts a check type's checks (l4 only connects)."""
NODE_OF_IP = {lb_front_ip(i): c for i, c in enumerate(CHECKS, start=1)}


def serving(samples_row: Mapping[str, Any], check: str, server: str) -> bool | None:
    status = samples_row.get(f"{check}.{server}.status")
    if status is None:
        return None
    weight = samples_row.get(f"{check}.{server}.weight")
    return str(status).startswith("UP") and (weight is None or int(weight) > 0)


def servers_in(samples: Sequence[Mapping[str, Any]], check: str) -> list[str]:
    names = {k.split(".")[1] for row in samples[:1] for k in row
             if k.startswith(f"{check}.") and k.endswith(".status")}
    return sorted(names, key=lambda n: int(n[1:]))


def first_ejection(samples, check: str, server: str, lo: float, hi: float) -> float | None:
    for row in samples:
        if lo <= row["t"] < hi and serving(row, check, server) is False:
            return row["t"]
    return None


def empty_intervals(samples, check: str, lo: float) -> list[tuple[float, float, float]]:
    """(first sample with no server serving, last such sample, first sample with one
    again) of each run of such samples from lo on. The fleet was surely empty between the
    first two; the third ends the measured duration."""
    names = servers_in(samples, check)
    out, start, last = [], None, None
    for row in samples:
        if row["t"] < lo:
            continue
        empty = not any(serving(row, check, n) for n in names)
        if empty:
            start = row["t"] if start is None else start
            last = row["t"]
        elif start is not None:
            out.append((start, last, row["t"]))
            start = None
    if start is not None:
        out.append((start, last, samples[-1]["t"]))
    return out


def resolution(samples, lo: float, hi: float) -> float | None:
    ts = [r["t"] for r in samples]
    gaps = [b - a for a, b in zip(ts, ts[1:], strict=False) if b >= lo and a <= hi]
    return max(gaps) if gaps else None


def delta(samples, key: str, lo: float, hi: float) -> int | None:
    if not samples or any(r.get(key) is None for r in samples):
        return None
    return round(M.counter_delta(samples, key, lo, hi))


def last_increase(samples, key: str, lo: float, hi: float) -> float | None:
    """The first sample at which the counter reached its value at hi (from lo on)."""
    final = M.counter_at(samples, key, hi)
    for row in samples:
        if lo <= row["t"] <= hi and float(row[key]) >= final:
            return row["t"]
    return None


def checks_counted(apps: Mapping[str, Any], check: str, node_index: int) -> int | None:
    """Checks of one node's type the backends counted between the fault's start and end."""
    kind = CHECK_KIND.get(check)
    if kind is None or not apps.get("start") or not apps.get("end"):
        return None
    peer = lb_back_ip(node_index)
    total = 0
    for a, b in zip(apps["start"], apps["end"], strict=True):
        total += (b["checks"].get(kind, {}).get(peer, 0)
                  - a["checks"].get(kind, {}).get(peer, 0))
    return total


def _node(row: Mapping[str, Any]) -> tuple[str | None, str]:
    url = urlsplit(str(row.get("target", "")))
    return NODE_OF_IP.get(url.hostname or ""), url.path


def analyse_variant(p: Params, fault: str, records: list, samples: list, timeline: dict,
                    apps: dict) -> tuple[dict, list[dict], list[dict]]:
    t0 = event_time(timeline, FAULT_START)
    t1 = event_time(timeline, FAULT_END)
    reqs = M.requests(records)
    by_node: dict[str, list] = {c: [] for c in CHECKS}
    for r in reqs:
        node, path = _node(r)
        if node:
            by_node[node].append({**r, "path": path})
    out: dict[str, Any] = {"fault": fault, "fault_start_s": t0, "fault_end_s": t1,
                           "requests": len(reqs), "samples": len(samples),
                           "cart_rate_per_backend": cart_rate_per_backend(p, fault),
                           "checks": {}}
    rows, series = [], []
    if t0 is None or t1 is None or not samples:
        return out, rows, series
    out["resolution_s"] = resolution(samples, t0, t1 + p.settle_s)
    end = max(r["t"] for r in samples)
    for i, check in enumerate(CHECKS, start=1):
        node_reqs = by_node[check]
        names = servers_in(samples, check)
        fault_reqs = M.window(node_reqs, t0, t1)
        b1 = [r for r in fault_reqs if r.get("backend") == FAULTY]
        b1_errors = [r for r in b1 if (r.get("status") or 0) >= 500]
        eject = first_ejection(samples, check, FAULTY, t0, t1)
        eject_s = None if eject is None else eject - t0
        before = M.window(b1_errors, t0, eject if eject is not None else t1)
        empties = empty_intervals(samples, check, t0)
        empty = max(empties, key=lambda iv: iv[2] - iv[0]) if empties else None
        in_empty = M.window(node_reqs, empty[0], empty[1]) if empty else []
        statics = [r for r in fault_reqs if r["path"] == "/static"]
        carts = [r for r in fault_reqs if r["path"] == "/cart"]
        hana_key = f"{check}.{FAULTY}.hanafail"
        hana = delta(samples, hana_key, t0, t1)
        last_hana = last_increase(samples, hana_key, t0, t1) if hana else None
        m = {
            "requests": len(node_reqs), "requests_fault": len(fault_reqs),
            "b1_requests_fault": len(b1), "b1_errors_fault": len(b1_errors),
            "eject_s": eject_s, "b1_errors_before_eject": len(before),
            "b1_ejections": delta(samples, f"{check}.{FAULTY}.chkdown", t0, t1),
            "ejections_all": sum(delta(samples, f"{check}.{n}.chkdown", t0, t1) or 0
                                 for n in names),
            "ejections_others": sum(delta(samples, f"{check}.{n}.chkdown", t0, t1) or 0
                                    for n in names if n != FAULTY),
            "fleet_empty_s": None if empty is None else empty[2] - empty[0],
            "fleet_empty_from_s": None if empty is None else empty[0],
            "fleet_empty_requests": len(in_empty),
            "fleet_empty_failed_share": M.share(in_empty, lambda r: r["outcome"] != "ok"),
            "static_requests_fault": len(statics),
            "static_ok_share_fault": M.share(statics, lambda r: r["outcome"] == "ok"),
            "cart_ok_share_fault": M.share(carts, lambda r: r["outcome"] == "ok"),
            "ok_share": M.share(node_reqs, lambda r: r["outcome"] == "ok"),
            "passive_ejections": hana,
            "b1_requests_to_last_passive_ejection": (
                len([r for r in M.window(node_reqs, t0, last_hana)
                     if r.get("backend") == FAULTY]) if last_hana is not None else None),
            "checks_counted": checks_counted(apps, check, i),
        }
        out["checks"][check] = m
        rows.append({"fault": fault, "check": check, "eject_s": _r(eject_s),
                     "b1_errors_fault": m["b1_errors_fault"],
                     "b1_errors_before_eject": m["b1_errors_before_eject"],
                     "b1_ejections": m["b1_ejections"],
                     "ejections_others": m["ejections_others"],
                     "fleet_empty_s": _r(m["fleet_empty_s"]),
                     "ok_share": _r(m["ok_share"])})
        series += _timeline_rows(fault, check, node_reqs, samples, names, end)
    return out, rows, series


def _timeline_rows(fault, check, node_reqs, samples, names, end) -> list[dict]:
    rows = []
    sample_bins = M.per_bin(samples, end, BIN_S, key="t")
    for (lo, _hi), reqs, smp in zip(M.bins(end, BIN_S), M.per_bin(node_reqs, end, BIN_S),
                                    sample_bins, strict=True):
        up = [sum(bool(serving(s, check, n)) for n in names) for s in smp]
        b1 = [bool(serving(s, check, FAULTY)) for s in smp]
        rows.append({"fault": fault, "check": check, "t": round(lo, 3), "requests": len(reqs),
                     "error_share": _r(M.share(reqs, lambda r: r["outcome"] != "ok")),
                     "servers_up": _r(min(up)) if up else None,
                     "b1_up": _r(sum(b1) / len(b1)) if b1 else None})
    return rows


def analyse(p: Params, raw: Raw) -> Analysis:
    variants, table, series = {}, [], []
    for name, rv in raw.items():
        fault = name
        m, rows, ser = analyse_variant(p, fault, rv.table("client-records"),
                                       rv.tables.get("haproxy", []), rv.doc("timeline", {}),
                                       rv.doc("apps", {}))
        variants[name] = m
        table += rows
        series += ser
    return Analysis(variants, series={"ejections": table, "timeline": series},
                    summary={"routes": {f: routes(p, f) for f in variants},
                             "bin_s": BIN_S})


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)
