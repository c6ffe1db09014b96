"""Raw data -> metrics: steady occupancy per phase, the small table's admissions, the floods.

Pure: it reads only `raw` (the variants' tables and documents, raw/_lab/) and the params.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from itertools import accumulate
from typing import Any

from experiments.conntrack_exhaustion.model import (
    admission_bound,
    keepalive_model,
    note_example,
    offered,
    predicted_entries,
)
from experiments.conntrack_exhaustion.params import (
    CHURN,
    CLIENT_TIMEOUT_S,
    FLOODS,
    SMALL_TABLE,
    Params,
    churn_duration_s,
    steady_window,
    timeout_s,
)
from lblab.driver import Analysis
from lblab.metrics import latency_p, ok_latencies, per_bin, requests, share, window
from lblab.raw import Raw, RawVariant
from lblab.timeline import event_time

SAMPLE_COLUMNS = ("entries", "time_wait", "established", "max_node_entries", "cpu_busy")


def analyse(p: Params, raw: Raw) -> Analysis:
    variants: dict[str, dict[str, Any]] = {}
    series: dict[str, list[dict]] = {"occupancy": []}
    for name, data in raw.items():
        if name in CHURN:
            variants[name] = churn_metrics(p, name, data)
        elif name == SMALL_TABLE:
            variants[name], series["small-table-admissions"] = small_table_metrics(p, data)
        elif name in FLOODS:
            variants[name] = flood_metrics(data)
        series["occupancy"] += [{"t": r["t"], "variant": name,
                                 **{k: r.get(k) for k in SAMPLE_COLUMNS}}
                                for r in data.tables.get("samples", [])]
    kernel = raw.lab.get("kernel", {})
    routes = raw.lab.get("routes", [])
    summary = {
        "slab_objsize": kernel.get("slab_objsize"),
        "conntrack_max": kernel.get("conntrack_max"),
        "conntrack_max_writable": kernel.get("conntrack_max_writable"),
        "note_example": note_example(kernel.get("slab_objsize")),
        "keepalive_model": keepalive_model(p),
        "connections_per_source_in_time_wait": p.rate / p.client_addresses * p.time_wait_s,
        "nat_paths_on_link": all(r["via"] is None for r in routes if r["phase"] == "nat")
        if routes else None,
    }
    return Analysis(variants, series, summary)


def _mean(rows: Sequence[Mapping[str, Any]], key: str) -> float | None:
    return statistics.fmean(r[key] for r in rows) if rows else None


def _delta(doc: dict, node: str, counter: str) -> int:
    return doc["after"][node]["conntrack"].get(counter, 0) \
        - doc["before"][node]["conntrack"].get(counter, 0)


def churn_metrics(p: Params, name: str, data: RawVariant) -> dict[str, Any]:
    """Steady-state occupancy: the samples once the first TIME_WAIT timeout has passed."""
    samples = data.table("samples")
    lo, hi = steady_window(p, name)
    steady = window(samples, lo, hi, key="t")
    reqs = requests(data.table("client-records"))
    nodes = data.doc("nodes")
    new_flows = sum(nodes["after"][n]["dispatched"] - nodes["before"][n]["dispatched"]
                    for n in nodes["after"])
    first = next(iter(nodes["after"]))
    return {
        "steady_entries": _mean(steady, "entries"),
        "steady_time_wait": _mean(steady, "time_wait"),
        "steady_established": _mean(steady, "established"),
        "steady_busiest_node": _mean(steady, "max_node_entries"),
        "steady_samples": len(steady), "steady_window_s": [lo, hi],
        "predicted_entries": predicted_entries(p, name),
        "peak_entries": max((r["entries"] for r in samples), default=0),
        "requests": len(reqs), "ok": sum(r["outcome"] == "ok" for r in reqs),
        "new_flows": new_flows, "reuse_factor": len(reqs) / new_flows if new_flows else None,
        "p99_ms": latency_p(ok_latencies(reqs), 99),
        "cpu_busy_mean": _mean(samples, "cpu_busy"),
        "ct_drop": _delta(nodes, first, "drop"),
        "ct_early_drop": _delta(nodes, first, "early_drop"),
        "time_wait_s": timeout_s(p, name),
    }


def small_table_metrics(p: Params, data: RawVariant) -> tuple[dict[str, Any], list[dict]]:
    """Admissions into a table of `small_table` slots against the slot recurrence's bound."""
    skipped = data.doc("skipped", None)
    if skipped:
        return {"skipped": skipped["why"], "table_max": p.small_table}, []
    duration = churn_duration_s(p)
    # The last request may get in `timeout` after the schedule ends.
    horizon = duration + CLIENT_TIMEOUT_S
    n_offered = offered(p.rate, duration)
    bound = admission_bound(p.rate, n_offered, p.small_table, p.time_wait_s, horizon)
    reqs = requests(data.table("client-records"))
    ok = [r for r in reqs if r["outcome"] == "ok"]
    lo, hi = p.time_wait_s + 1, duration
    steady = window(reqs, lo, hi)
    samples = data.table("samples")
    nodes, sysctl = data.doc("nodes"), data.doc("sysctl")
    first = next(iter(nodes["after"]))
    width = p.sample_s
    cumulative = list(accumulate(len(b) for b in per_bin(ok, horizon, width, key="done_s")))
    admissions = [{"t": round(min(horizon, (i + 1) * width), 3), "admitted": a,
                   "bound": admission_bound(p.rate, n_offered, p.small_table, p.time_wait_s,
                                            min(horizon, (i + 1) * width))}
                  for i, a in enumerate(cumulative)]
    excess = [r for r in admissions if r["admitted"] > r["bound"]]
    metrics = {
        "table_max": p.small_table, "offered": n_offered, "requests": len(reqs),
        "window_s": horizon, "admission_bound": bound,
        "bound_share": bound / n_offered if n_offered else None,
        "success": share(reqs, lambda r: r["outcome"] == "ok"), "ok_total": len(ok),
        "steady_success": share(steady, lambda r: r["outcome"] == "ok"),
        "admitted_per_s": len(window(ok, lo, hi, key="done_s")) / (hi - lo),
        "offered_per_s": p.rate,
        "peak_entries": max((r["entries"] for r in samples), default=0),
        "drop": _delta(nodes, first, "drop"), "early_drop": _delta(nodes, first, "early_drop"),
        "connect_p99_ms": latency_p(ok_latencies(reqs), 99),
        "conntrack_max_lowered_to": int(sysctl["new"]),
        "conntrack_max_before": int(sysctl["old"]),
        "conntrack_max_after": int(sysctl["after"]),
        # Admitted (by response time, so no later than by admission) beyond what slots held
        # for TIME_WAIT allow by then: slots the kernel freed early.
        "slot_bound_excess": max((r["admitted"] - r["bound"] for r in admissions), default=0),
        "slot_bound_exceeded_at_s": excess[0]["t"] if excess else None,
    }
    return metrics, admissions


def fill_rate(samples: Sequence[Mapping[str, Any]]) -> float:
    """The fastest growth of the entries between consecutive samples (entries/s)."""
    return max(((b["entries"] - a["entries"]) / (b["t"] - a["t"])
                for a, b in zip(samples, samples[1:], strict=False) if b["t"] > a["t"]),
               default=0.0)


def flood_metrics(data: RawVariant) -> dict[str, Any]:
    samples = data.table("samples")
    reqs = requests(data.table("client-records"))
    node = data.doc("node")
    timeline = data.doc("timeline", {})
    fired = event_time(timeline, "syn-flood")
    done = next((e["done"] for e in timeline.get("events", []) if e["what"] == "syn-flood"),
                None)
    before, after = node["conntrack_before"], node["conntrack_after"]
    return {
        "peak_entries": max((r["entries"] for r in samples), default=0),
        "fill_rate_per_s": fill_rate(samples),
        "table_max": node["table_max"],
        "legit_requests": len(reqs),
        "legit_success": share(reqs, lambda r: r["outcome"] == "ok"),
        "legit_p99_ms": latency_p(ok_latencies(reqs), 99),
        "early_drop": after.get("early_drop", 0) - before.get("early_drop", 0),
        "drop": after.get("drop", 0) - before.get("drop", 0),
        "synproxied_packets": node["counters"].get("synproxied", {}).get("packets", 0),
        "flood_started_s": fired,
        "flood_s": None if fired is None or done is None else round(done - fired, 3),
    }
