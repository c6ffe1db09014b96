"""ecmp-rehash's analysis: pure, from the raw tables of each variant.

Per variant: `prober-conns` (the prober's records, one row per request, `t` its wall-clock
completion time), the documents `timeline` (the clock's origin, the change's real times) and
`prober` (the instants the prober was ready, the change completed, and every connection had
answered since).
"""

from __future__ import annotations

import math

from lblab import claims as C
from lblab import metrics as M
from lblab.driver import Analysis
from lblab.raw import Raw
from lblab.timeline import event_time
from topologies.two_tier import lb_back_ip

from .model import Params, change, model_share_after, predicted, variant_of

PROBER = "prober"
TABLE = f"{PROBER}-conns"
BIN_S_PER_INTERVAL = 0.25
"""Width of the failures-over-time bins, as a share of the probe interval."""


def node_of(peer: str | None, lbs: int) -> str:
    """The LB node a backend saw a request from (its back address, masqueraded)."""
    for i in range(1, lbs + 2):
        if peer == lb_back_ip(i):
            return f"lb{i}"
    return peer or "?"


def node_shares(where: dict[int, str]) -> dict[str, float]:
    nodes = list(where.values())
    return {n: M.share(nodes, lambda x, n=n: x == n) for n in sorted(set(nodes))}


def on_clock(rows: list[dict], origin: float) -> list[dict]:
    """The prober's rows with `t` on the variant's clock, in time order."""
    return sorted(({**r, "t": r["t"] - origin} for r in rows), key=lambda r: r["t"])


def analyse_change(rows: list[dict], timeline: dict, what: str, lbs: int) -> dict:
    """What one change did to the connections alive when it fired.

    The change's time is when the timeline event really fired. A connection's studied
    generation is the one that was up at t = 0, the instant every connection had answered
    once (the last to answer at or before it; generation 0 if none did): a connect that
    failed while the connections were still opening (a SYN lost, retried by the prober)
    happened before the measurement began and is counted apart, as `failed_while_opening`.
    Alive: a connection whose studied generation answered before the change and had not
    failed. Broken: an alive connection whose studied generation then failed. A survivor
    moved: alive, not broken, and answered after the change by another node than before it;
    unprobed: alive, not broken, never answered after.
    """
    origin, t_change = timeline.get("origin_wall"), event_time(timeline, what)
    if origin is None or t_change is None:
        return {"t_change_s": None, "connections": 0, "alive": 0, "broken": 0,
                "broken_fraction": None, "survivors_moved": 0, "unprobed_after_change": 0,
                "reconnected": 0, "failed_before_change": 0, "failed_while_opening": 0,
                "share_before": {}, "share_after": {}}
    rows = on_clock(rows, origin)
    studied = {r["conn"]: r["generation"] for r in rows if r["t"] <= 0 and r["outcome"] == "ok"}

    def of_studied(r: dict) -> bool:
        return r["generation"] == studied.get(r["conn"], 0)

    before_rows = M.window(rows, -math.inf, t_change, key="t")
    first = [r for r in before_rows if of_studied(r)]
    after_rows = M.window(rows, t_change, math.inf, key="t")
    failed_before = {r["conn"] for r in first if r["outcome"] != "ok"}
    alive = {r["conn"] for r in first if r["outcome"] == "ok"} - failed_before
    broken = {r["conn"] for r in after_rows if of_studied(r) and r["outcome"] != "ok"} & alive
    before = {r["conn"]: node_of(r["peer"], lbs) for r in first if r["conn"] in alive}
    after = {r["conn"]: node_of(r["peer"], lbs) for r in after_rows
             if r["outcome"] == "ok" and r["conn"] in alive}
    survivors = alive - broken
    return {
        "t_change_s": t_change,
        "connections": len({r["conn"] for r in rows}),
        "alive": len(alive), "broken": len(broken),
        "broken_fraction": len(broken) / len(alive) if alive else None,
        "survivors_moved": sum(1 for c in survivors if c in after and after[c] != before[c]),
        "unprobed_after_change": sum(1 for c in survivors if c not in after),
        "reconnected": sum(1 for c in broken if c in after),
        "failed_before_change": sum(1 for r in first if r["outcome"] != "ok"),
        "failed_while_opening": sum(1 for r in before_rows
                                    if not of_studied(r) and r["outcome"] != "ok"),
        "share_before": node_shares(before), "share_after": node_shares(after),
    }


def change_took_s(timeline: dict, what: str) -> float | None:
    """How long the change's API call took (it returns after the switch's barrier reply)."""
    for e in timeline.get("events", []):
        if e["what"] == what and e["fired"] is not None and e["done"] is not None:
            return round(e["done"] - e["fired"], 4)
    return None


def failures_per_bin(name: str, rows: list[dict], end: float, width: float) -> list[dict]:
    """Failed and answered requests per bin of the variant's clock (rows already on it)."""
    return [{"variant": name, "t": round(lo, 3),
             "failed": sum(1 for r in b if r["outcome"] != "ok"),
             "ok": sum(1 for r in b if r["outcome"] == "ok")}
            for (lo, _), b in zip(M.bins(end, width), M.per_bin(rows, end, width, "t"),
                                  strict=True)]


def analyse(p: Params, raw: Raw) -> Analysis:
    variants, table, failures = {}, [], []
    width = BIN_S_PER_INTERVAL * p.interval_s
    for name, data in raw.items():
        policy, phase = variant_of(name)
        what, _ = change(p, phase)
        timeline, prober = data.doc("timeline"), data.doc(PROBER)
        rows = data.table(TABLE)
        m = analyse_change(rows, timeline, what, p.lbs)
        pred = predicted(p, policy, phase)
        origin = timeline.get("origin_wall")
        m.update({
            "policy": policy, "phase": phase, "change": what,
            "change_took_s": change_took_s(timeline, what),
            "settled_after_change_s": round(prober["settled_wall"] - prober["mark_wall"], 3),
            "ready_after_launch_s": timeline.get("client_boot_s"),
            "predicted": pred,
            "tolerance": None if pred is None
            else C.binomial_tolerance(pred, m["alive"] or p.connections),
            "share_model_after": model_share_after(p, policy, phase),
        })
        variants[name] = m
        table.append({"variant": name, **{k: v for k, v in m.items()
                                          if not isinstance(v, dict)}})
        if origin is not None:
            end = prober["settled_wall"] - origin + p.interval_s
            failures += failures_per_bin(name, on_clock(rows, origin), end, width)
    return Analysis(variants, series={"broken": table, "failures": failures},
                    summary={"bin_s": width})
