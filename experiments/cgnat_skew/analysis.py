"""cgnat-skew's analysis: raw client records -> per-unit counts, shares, max/mean, Jain's
index, stickiness, and each spreading policy's predicted max/mean (model.py). Pure."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from typing import Any

from lblab.driver import Analysis
from lblab.metrics import jain, latency_p, requests
from lblab.raw import Raw
from topologies.cgnat import anycast_back_ip

from . import model
from .params import (
    BALANCE_FACTOR,
    MULTINOMIAL,
    ROTATION,
    SIMULATED,
    SOURCE_HASHED,
    Params,
    Setting,
    settings,
    units,
)

RECORDS = "-records"


def host_records(data: Any) -> dict[str, list[dict]]:
    """Each user host's requests (last attempt per id, ids being per client)."""
    return {name[:-len(RECORDS)]: requests(rows) for name, rows in data.tables.items()
            if name.endswith(RECORDS)}


def unit_of(p: Params, layer: str, record: dict) -> Any:
    """Which unit served a request: the backend it names, or for ECMP the anycast node whose
    back address the backend saw."""
    if layer == "ecmp":
        nodes = {anycast_back_ip(i): f"a{i}" for i in range(1, p.anycast + 1)}
        return nodes.get(record["peer"], record["peer"])
    return record["backend"]


def variant_metrics(p: Params, s: Setting, by_host: dict[str, list[dict]]) -> dict:
    names = units(p, s.layer)
    rows = [dict(r, host=h) for h, recs in by_host.items() for r in recs]
    ok = [r for r in rows if r["outcome"] == "ok"]
    unit = [unit_of(p, s.layer, r) for r in ok]
    counts = Counter(u for u in unit if u in names)
    per = [counts.get(n, 0) for n in names]
    attributed = sum(per)
    by_user: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for r, u in zip(ok, unit, strict=True):
        by_user[(r["host"], r["source"])][u] += 1
    sticky = [max(c.values()) / sum(c.values()) for c in by_user.values()]
    big = Counter(u for r, u in zip(ok, unit, strict=True) if r["host"] == "u1")
    latencies: dict[str, list[float]] = defaultdict(list)
    for r, u in zip(ok, unit, strict=True):
        latencies[u].append(r["latency_ms"])
    return {
        "policy": s.policy, "sweep_share": s.sweep_share,
        "requests": len(rows), "ok": len(ok), "attributed": attributed,
        "counts": dict(zip(names, per, strict=True)),
        "shares": {n: c / attributed if attributed else 0.0 for n, c in zip(names, per,
                                                                             strict=True)},
        "max_over_mean": model.max_over_mean(max(per), attributed, len(names)),
        "jain": jain(per) if attributed else None,
        "stickiness": statistics.fmean(sticky) if sticky else None,
        "p99_ms_per_unit": {n: latency_p(latencies[n], 99) for n in names if latencies[n]},
        "biggest_cgnat_request_share": (sum(big.values()) / len(ok)) if ok else None,
        "biggest_cgnat_on_one_unit": (max(big.values()) / sum(big.values())) if big else None,
    }


def prediction(p: Params, policy: str, m: dict) -> tuple[float, str]:
    """The predicted max/mean of a spreading policy for this run's counts, and how."""
    n, u = m["attributed"], len(m["counts"])
    q = f"{model.QUANTILE * 100:g}th percentile"
    if policy in MULTINOMIAL:
        return (model.multinomial_max_over_mean(n, u),
                f"{q} of max/mean of multinomial(n={n}, 1/{u}): independent uniform picks "
                f"(Monte Carlo, {model.MULTINOMIAL_RUNS} seeded draws)")
    if policy in ROTATION:
        picks = ("" if m.get("l4_picks") is None
                 else f"; the L4 node counted {m['l4_picks']} picks (new connections)")
        return (model.rotation_max_over_mean(m["requests"], n, u),
                f"strict rotation: no unit above ceil({m['requests']} requests / {u}) "
                f"(exact; a failed request can still have taken its turn{picks})")
    mechanism = policy.split(":")[1]
    extra = (f"hash-balance-factor {BALANCE_FACTOR}: bounds concurrent requests per server "
             "near ceil(f x mean); request shares follow concurrency shares (Little's law, "
             "one service-time law for all); worst case: every request prefers one server. "
             if mechanism == "bounded" else "")
    return (model.simulated_max_over_mean(mechanism, n, rate=p.rate, service_ms=p.service_ms,
                                          servers=u, factor=BALANCE_FACTOR),
            f"{extra}{q} of max/mean of HAProxy's {mechanism} rule simulated for n={n} "
            f"Poisson arrivals at {p.rate:g}/s, exponential service of mean {p.service_ms:g} "
            f"ms, seeded runs (model.py)")


def analyse(p: Params, raw: Raw) -> Analysis:
    plan = settings(p)
    variants: dict[str, dict] = {}
    for name, data in raw.items():
        s = plan[name]
        m = variant_metrics(p, s, host_records(data))
        m["users"] = data.doc("population", {})
        m["l4_picks"] = data.doc("l4-counters", {}).get("dispatched", {}).get("packets")
        if s.sweep_share is None and s.policy in MULTINOMIAL + ROTATION + SIMULATED:
            m["predicted_max_over_mean"], m["prediction"] = prediction(p, s.policy, m)
        variants[name] = m
    share_rows = [{"policy": name, "unit": unit, "count": m["counts"][unit], "share": share}
                  for name, m in variants.items() if m["sweep_share"] is None
                  for unit, share in m["shares"].items()]
    sweep_rows = [{"policy": m["policy"], "cgnat_share": m["sweep_share"],
                   "users": sum(m["users"].values()), "jain": m["jain"],
                   "max_over_mean": m["max_over_mean"], "stickiness": m["stickiness"]}
                  for m in variants.values() if m["sweep_share"] is not None]
    series = {"shares": share_rows}
    if sweep_rows:
        series["sweep"] = sweep_rows
    summary = {"biggest_cgnat_share": p.cgnat_shares[0], "quantile": model.QUANTILE,
               "balance_factor": BALANCE_FACTOR,
               "haproxy_ring_shares": model.ring_shares(p.backends),
               "source_hashed": [v for v in SOURCE_HASHED if v in variants]}
    return Analysis(variants, series, summary)
