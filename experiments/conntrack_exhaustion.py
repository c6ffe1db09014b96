"""conntrack-exhaustion: how much state an L4 NAT node holds, and what shrinks it.

Wiring (topologies/two_tier.py): c1 -> s1 -> l4 (nftables DNAT + masquerade, conntrack)
-> s2 -> b1..bK. The client opens HTTP/1.1 connections at a fixed rate (open loop).

Variants, all on one lab, the conntrack table flushed between them:
  churn          no keep-alive: one connection per request; entries live out TIME_WAIT
  short-timeout  the same churn with an aggressive TIME_WAIT timeout in the node
  keep-alive     connections reused for `keepalive_requests` requests each
  spread         the same churn over `nodes` NAT nodes (the client round-robins over them)
  syn-flood      the node as a stateful router in front of the servers; c2 floods spoofed
                 SYNs (hping3, bounded) while c1 keeps opening legitimate connections
  synproxy       the same flood with SYNs answered by nftables synproxy (no state until the
                 handshake completes)
  small-table    churn into a table made small by lowering the global nf_conntrack_max
                 (saved and restored, recorded in the result): it fills with ASSURED
                 TIME_WAIT entries, which early_drop cannot evict

Claims (predictions from this run's parameters):
  bytes-per-flow     the kernel's own conntrack object size (/proc/slabinfo) is inside the
                     note's 200-500 B budget
  littles-law-churn  steady occupancy = rate x TIME_WAIT timeout (within 15 %)
  short-timeout      occupancy falls in proportion: rate x short timeout (within 15 %)
  keep-alive         occupancy falls by the reuse factor: rate / k x timeout + open conns
  spread             the busiest of N nodes holds rate / N x timeout (within 15 %)
  synproxy           the flood leaves at most 1 % of the entries it leaves without synproxy
  small-table        with a full table of ASSURED entries, new connections get in only as
                     old ones expire: each holds its slot at least TIME_WAIT, so admissions
                     by t are at most min(offered by t, max + admissions by t - TIME_WAIT)
Measured and reported as it is: the flood's fill rate, and whether legitimate connections
survive a pure SYN flood at a full table (Linux early-drops unassured entries).
The note's example (100,000 new flows/s x 30 s = 3 M slots, 1.5 GB at 500 B) is recomputed
with the measured object size.
"""

from __future__ import annotations

import json
import statistics
import threading
from dataclasses import dataclass
from pathlib import Path

from lblab import claims as C
from lblab import plots
from lblab.experiment import Outcome, RunContext
from lblab.lab import ControllerSpec, Lab
from lblab.links import add_addresses
from lblab.params import param
from lblab.results import read_csv, write_csv, write_json
from lblab.sampler import Sampler
from lblab.workloads.client import ClientConfig
from lblab.workloads.floods import syn_flood
from lblab.workloads.handles import run_client, start_backend
from lbnodes.l4 import CT_SYSCTL, Backend, L4Config, L4Node, conntrack_object_size
from topologies.two_tier import ROLES, TwoTierTopo, backend_ip, lb_back_ip, lb_front_ip

NAME = "conntrack-exhaustion"
TITLE = "Conntrack state on an L4 NAT node: Little's law, timeouts, keep-alive"
SUMMARY = ("Measures bytes per flow and table occupancy under connection churn on an "
           "nftables NAT node; shows aggressive timeouts and keep-alive shrinking it.")
NEEDS = ("root", "ovs_running", "nft", "conntrack")
VARIANTS = ["churn", "short-timeout", "keep-alive", "spread"]
FLOODS = ["syn-flood", "synproxy"]
CONNTRACK_MAX = CT_SYSCTL.format("max")
NOTE_RATE, NOTE_TIMEOUT_S, NOTE_BYTES = 100_000, 30, 500
NOTE_BUDGET = (200, 500)
TOLERANCE = 0.15


@dataclass(frozen=True)
class Params:
    rate: float = param(200.0, "new connections (requests) per second", min=10, max=1000)
    time_wait_s: int = param(30, "conntrack TIME_WAIT timeout in the node (kernel default "
                             "120)", min=2, max=600)
    short_time_wait_s: int = param(8, "the aggressive TIME_WAIT timeout", min=1, max=600)
    keepalive_requests: int = param(20, "requests per connection in keep-alive (the reuse "
                                    "factor k)", min=2, max=10_000)
    measure_s: float = param(20.0, "steady-state seconds measured after the table fills",
                             min=2, max=3600)
    backends: int = param(3, "backends behind the node", min=1, max=20)
    service_ms: float = param(5.0, "mean backend service time", min=0, max=1000)
    sample_s: float = param(0.5, "seconds between occupancy samples", min=0.1, max=10)
    nodes: int = param(3, "NAT nodes the spread variant shares the churn over", min=2, max=8)
    flood_s: float = param(5.0, "seconds of SYN flood (hping3, spoofed sources)", min=1,
                           max=60)
    legit_rate: float = param(50.0, "legitimate connections/s during the flood", min=1,
                              max=500)
    small_table: int = param(4096, "nf_conntrack_max for the small-table variant (0: skip "
                             "it); global, restored afterwards", min=0, max=262144)
    client_addresses: int = param(8, "source addresses the churning client spreads over. "
                                  "One address at 200 conn/s wraps the kernel's source ports "
                                  "within TIME_WAIT, and a SYN that reuses a TIME_WAIT entry's "
                                  "5-tuple replaces it", min=1, max=64)

    def validate(self) -> str | None:
        if self.short_time_wait_s >= self.time_wait_s:
            return "short_time_wait_s must be below time_wait_s"
        if self.small_table and self.rate * self.time_wait_s < 1.2 * self.small_table:
            return (f"small_table {self.small_table} must be below rate x time_wait_s / 1.2 "
                    f"= {self.rate * self.time_wait_s / 1.2:.0f} for the table to fill")
        return None


def quick() -> Params:
    return Params(rate=150.0, time_wait_s=4, short_time_wait_s=1, keepalive_requests=10,
                  measure_s=2.5, flood_s=2.0, small_table=256)


def _timeout(p: Params, variant: str) -> int:
    return p.short_time_wait_s if variant == "short-timeout" else p.time_wait_s


def run(ctx: RunContext) -> Outcome:
    p: Params = ctx.params
    names = [f"b{i}" for i in range(1, p.backends + 1)]
    topo = TwoTierTopo(clients=2, lbs=p.nodes, backends=p.backends)
    duration = p.time_wait_s + 1 + p.measure_s
    series: list[dict] = []
    variants: dict[str, dict] = {}
    ctx.step("bringing the lab up")
    with Lab(ctx.lab_name, topo, controller=ControllerSpec(),
             log_dir=ctx.folder.path("logs")) as lab:
        for i, n in enumerate(names, start=1):
            start_backend(lab, n, backend_ip(i), port=8080, service_ms=p.service_ms,
                          max_requests_per_conn=p.keepalive_requests, seed=ctx.seed + i)
        pool = tuple(Backend(n, backend_ip(i), 8080) for i, n in enumerate(names, start=1))
        nodes = [L4Node(lab, L4Config(f"lb{i}", lb_front_ip(i), 80, pool,
                                      backend_ifname=f"lb{i}-eth1")).start()
                 for i in range(1, p.nodes + 1)]
        node = nodes[0]
        sources = client_sources(p)
        add_addresses(lab, "c1", "c1-eth0", sources, 16)
        for variant in VARIANTS:
            timeout = _timeout(p, variant)
            used = nodes if variant == "spread" else [node]
            ctx.step(f"{variant}: {p.rate:g} req/s over {len(used)} node(s) for {duration:g} s, "
                     f"TIME_WAIT {timeout} s")
            for n in used:
                n.set_ct_timeouts({"tcp_timeout_time_wait": timeout})
                n.flush_conntrack()
            before = sum(n.counters()["dispatched"]["packets"] for n in used)

            def probe(variant: str = variant, used: list = used) -> dict:
                per_node = [n.conntrack_states() for n in used]
                states = per_node[0]
                return {"variant": variant, "entries": sum(states.values()),
                        "time_wait": states.get("TIME_WAIT", 0),
                        "established": states.get("ESTABLISHED", 0),
                        "max_node_entries": max(sum(st.values()) for st in per_node)}

            cfg = ClientConfig(targets=[f"http://{lb_front_ip(i)}/"
                                        for i in range(1, len(used) + 1)], rate=p.rate,
                               duration_s=duration, arrival="constant", timeout_s=2.0,
                               keepalive=variant == "keep-alive", seed=ctx.seed,
                               local_addrs=sources)
            with Sampler(probe, p.sample_s) as sampler:
                records, summary = run_client(lab, "c1", cfg, ctx.folder.path("raw"), variant)
            series += sampler.rows
            new_flows = sum(n.counters()["dispatched"]["packets"] for n in used) - before
            variants[variant] = _metrics(p, variant, sampler.rows, summary, new_flows,
                                         duration, node.conntrack_stats())
        # The small table runs before the floods: conntrack's GC worker paces itself by the
        # average timeout of what it scans, so after a flood of 120 s SYN_SENT entries it
        # reclaims expired entries slowly and a full table would admit almost nothing.
        if p.small_table and ctx.caps.conntrack_max_writable:
            small, small_series = _small_table(ctx, lab, node, sources)
            variants["small-table"] = small
            series += small_series
        floods, flood_series = _flood_phases(ctx, lab, node, pool)
        variants.update(floods)
        series += flood_series
        sysctls = lab.sysctls_changed
    write_csv(ctx.folder.path("occupancy.csv"), series,
              ["t", "variant", "entries", "time_wait", "established", "max_node_entries",
               "cpu_busy"])
    objsize = conntrack_object_size()
    write_json(ctx.folder.path("snapshot.json"), {"slab_objsize": objsize,
                                                  "conntrack_max": ctx.caps.conntrack_max})
    notes = _notes(objsize, ctx.caps.conntrack_max) + _flood_notes(variants, sysctls, p, ctx)
    return Outcome(variants=variants, claims=_claims(p, variants, objsize),
                   notes=notes, topology=plots.topology_of(topo, ROLES),
                   sysctls_changed=sysctls)


def _flood_phases(ctx: RunContext, lab: Lab, node: L4Node, pool: tuple) -> tuple[dict, list]:
    """The node as a stateful router in front of the servers, flooded from c2 while c1 opens
    legitimate connections; once plain, once with synproxy."""
    p: Params = ctx.params
    for client in ("c1", "c2"):
        lab.run(client, ["ip", "route", "replace", "10.1.0.0/16", "via", lb_front_ip(1)])
    for i in range(1, p.backends + 1):
        lab.run(f"b{i}", ["ip", "route", "replace", "10.0.0.0/16", "via", lb_back_ip(1)])
    results, series = {}, []
    for variant in FLOODS:
        ctx.step(f"{variant}: {p.flood_s:g} s of spoofed SYNs at {backend_ip(1)}, "
                 f"{p.legit_rate:g} legitimate connections/s")
        flooded = L4Node(lab, L4Config("lb1", lb_front_ip(1), 8080, pool, mode="router",
                                       backend_ifname="lb1-eth1",
                                       synproxy=variant == "synproxy")).start()
        flooded.flush_conntrack()
        stats0 = flooded.conntrack_stats()

        def probe(variant: str = variant, flooded: L4Node = flooded) -> dict:
            return {"variant": variant, "entries": flooded.conntrack_count()}

        legit = ClientConfig(targets=[f"http://{backend_ip(min(2, p.backends))}:8080/"],
                             rate=p.legit_rate, duration_s=p.flood_s, arrival="constant",
                             timeout_s=2.0, keepalive=False, seed=ctx.seed)
        with Sampler(probe, 0.25) as sampler:
            flood = threading.Thread(target=syn_flood, args=(lab, "c2", backend_ip(1), 8080),
                                     kwargs={"count": 5_000_000, "seconds": p.flood_s,
                                             "spoof_sources": True}, daemon=True)
            flood.start()
            records, summary = run_client(lab, "c1", legit, ctx.folder.path("raw"), variant)
            flood.join()
        stats1 = flooded.conntrack_stats()
        rows = sampler.rows
        series += rows
        rates = [(b["entries"] - a["entries"]) / (b["t"] - a["t"])
                 for a, b in zip(rows, rows[1:], strict=False) if b["t"] > a["t"]]
        counters = flooded.counters()
        results[variant] = {
            "peak_entries": max((r["entries"] for r in rows), default=0),
            "fill_rate_per_s": max(rates, default=0.0),
            "table_max": ctx.caps.conntrack_max,
            "legit_success": summary["counts"].get("ok", 0) / summary["requests"],
            "legit_p99_ms": summary["latency_ms"].get("p99"),
            "early_drop": stats1.get("early_drop", 0) - stats0.get("early_drop", 0),
            "drop": stats1.get("drop", 0) - stats0.get("drop", 0),
            "synproxied_packets": counters.get("synproxied", {}).get("packets", 0),
        }
    return results, series


def client_sources(p: Params) -> list[str]:
    """The churning client's source addresses, beside c1's own in its /16.

    Why several: Linux picks a connection's source port a small random even step after the
    last one (2-16 here), so one address wraps its 28,232 ephemeral ports every ~3,100
    connections. Below rate x TIME_WAIT that means new connections reuse the 5-tuples of
    TIME_WAIT entries, which conntrack replaces in place: the table then holds fewer entries
    than Little's law says, and a full table admits connections without a free slot. Many
    sources, as real clients are, keep every 5-tuple new within TIME_WAIT."""
    return [f"10.0.5.{k}" for k in range(1, p.client_addresses + 1)]


def admission_bound(rate: float, offered: int, table: int, hold_s: float,
                    window_s: float) -> float:
    """The most connections a table of `table` slots can admit within `window_s`, when each
    holds its slot for at least `hold_s` after admission and `rate` arrive per second
    (`offered` in all).

    The connections admitted in any `hold_s` interval all hold slots at its end, so
    A(t) <= table + A(t - hold), and A(t) <= min(offered, rate x t). A closed form such as
    table x (1 + (window - hold) / hold) is not a bound: it treats the table as filled at
    once, but at a constant rate it fills over table / rate seconds and the first slots free
    again in that same order, up to 2 x table by 2 x hold.
    """
    if window_s <= 0:
        return 0.0
    return min(offered, rate * window_s,
               table + admission_bound(rate, offered, table, hold_s, window_s - hold_s))


def _small_table(ctx: RunContext, lab: Lab, node: L4Node,
                 sources: list[str]) -> tuple[dict, list]:
    """Churn into a table of `small_table` entries: it fills with ASSURED TIME_WAIT entries."""
    p: Params = ctx.params
    duration = p.time_wait_s + 1 + p.measure_s
    ctx.step(f"small-table: nf_conntrack_max {p.small_table} (global, restored after), "
             f"{p.rate:g} req/s for {duration:g} s")
    node.start()  # back to NAT mode
    node.set_ct_timeouts({"tcp_timeout_time_wait": p.time_wait_s})
    node.flush_conntrack()
    stats0 = node.conntrack_stats()

    def probe() -> dict:
        return {"variant": "small-table", "entries": node.conntrack_count()}

    cfg = ClientConfig(targets=[f"http://{lb_front_ip(1)}/"], rate=p.rate, duration_s=duration,
                       arrival="constant", timeout_s=2.0, keepalive=False, seed=ctx.seed,
                       local_addrs=sources)
    with lab.global_sysctl(CONNTRACK_MAX, str(p.small_table)):
        with Sampler(probe, p.sample_s) as sampler:
            records, summary = run_client(lab, "c1", cfg, ctx.folder.path("raw"), "small-table")
    lo, hi = p.time_wait_s + 1, duration
    steady = [r for r in records if r["attempt"] == "0" and lo <= float(r["intended_s"]) < hi]
    admitted = sum(1 for r in records if r["outcome"] == "ok" and r["done_s"]
                   and lo <= float(r["done_s"]) < hi)
    stats1 = node.conntrack_stats()
    # The last request may get in `timeout` after the schedule ends.
    window = duration + cfg.timeout_s
    bound = admission_bound(p.rate, summary["requests"], p.small_table, p.time_wait_s, window)
    return {"table_max": p.small_table, "admitted_per_s": admitted / (hi - lo),
            "admission_bound": bound, "ok_total": summary["counts"].get("ok", 0),
            "requests": summary["requests"], "window_s": window,
            "steady_success": (sum(1 for r in steady if r["outcome"] == "ok") / len(steady)
                               if steady else None),
            "offered_per_s": p.rate,
            "success": summary["counts"].get("ok", 0) / summary["requests"],
            "peak_entries": max((r["entries"] for r in sampler.rows), default=0),
            "drop": stats1.get("drop", 0) - stats0.get("drop", 0),
            "early_drop": stats1.get("early_drop", 0) - stats0.get("early_drop", 0),
            "connect_p99_ms": summary["latency_ms"].get("p99")}, sampler.rows


def _flood_notes(v: dict, sysctls: dict, p: Params, ctx: RunContext) -> list[str]:
    notes = []
    flood = v.get("syn-flood")
    if flood:
        full = flood["table_max"] and flood["peak_entries"] >= 0.99 * flood["table_max"]
        notes.append(
            f"SYN flood, measured as it is: entries rose at up to {flood['fill_rate_per_s']:,.0f}"
            f"/s to {flood['peak_entries']:,} (table {flood['table_max']:,}: "
            f"{'full' if full else 'not full'}); {flood['legit_success']:.1%} of legitimate "
            f"connections succeeded meanwhile, because the kernel early-dropped "
            f"{flood['early_drop']:,} unassured (SYN-only) entries to make room.")
    if "small-table" in v:
        notes.append(f"small-table lowered the global nf_conntrack_max to {p.small_table} for "
                     f"its phase and restored it afterwards (changed: {sysctls}). A full table "
                     "admits a new connection only once conntrack's GC worker has freed an "
                     "expired entry; the worker paces itself by the average timeout of the "
                     "entries it scans (1-60 s), so admissions come in bursts, and after a "
                     "flood of long-lived SYN_SENT entries they nearly stop (seen in "
                     "development: 3/s instead of 64/s), which is why this phase runs first.")
    elif p.small_table:
        notes.append("small-table skipped: nf_conntrack_max is not writable here "
                     f"(conntrack_max_writable={ctx.caps.conntrack_max_writable}).")
    per_source = p.rate / p.client_addresses * p.time_wait_s
    notes.append(f"The churning client spread over {p.client_addresses} source address(es): "
                 f"{per_source:,.0f} connections per address within TIME_WAIT. Linux advances "
                 "a source port by a random even step (2-16), so an address wraps its 28,232 "
                 "ephemeral ports every ~3,100 connections; past that, new connections reuse "
                 "TIME_WAIT entries' 5-tuples, which conntrack replaces in place (fewer "
                 "entries than Little's law, admissions without a free slot)."
                 + (" That is the case in this run." if per_source > 3100 else ""))
    return notes


def _metrics(p: Params, variant: str, rows: list[dict], summary: dict, new_flows: int,
             duration: float, ct_stats: dict) -> dict:
    """Steady-state occupancy: the samples after the first TIME_WAIT timeout has passed."""
    start = _timeout(p, variant) + 1
    steady = [r for r in rows if start <= r["t"] <= duration - 0.5]
    mean = lambda key: statistics.fmean(r[key] for r in steady) if steady else None  # noqa: E731
    busiest = mean("max_node_entries")
    requests = summary["requests"]
    return {
        "steady_entries": mean("entries"), "steady_time_wait": mean("time_wait"),
        "steady_established": mean("established"), "steady_busiest_node": busiest,
        "peak_entries": max((r["entries"] for r in rows), default=0),
        "requests": requests, "ok": summary["counts"].get("ok", 0),
        "new_flows": new_flows, "reuse_factor": requests / new_flows if new_flows else None,
        "p99_ms": summary["latency_ms"].get("p99"), "cpu_busy_mean":
            statistics.fmean(r["cpu_busy"] for r in rows) if rows else None,
        "ct_drop": ct_stats.get("drop", 0), "ct_early_drop": ct_stats.get("early_drop", 0),
        "time_wait_s": _timeout(p, variant),
    }


def _claims(p: Params, v: dict, objsize: int | None) -> list[C.Claim]:
    lo, hi = NOTE_BUDGET
    ka = v["keep-alive"]
    return [
        C.within("bytes-per-flow",
                 f"The kernel's conntrack entry fits the note's {lo}-{hi} B per-flow budget "
                 "(measured: nf_conntrack object size in /proc/slabinfo)",
                 (lo + hi) / 2, objsize, rel=(hi - lo) / (hi + lo)),
        C.within("littles-law-churn",
                 f"Without keep-alive, occupancy = {p.rate:g} conn/s x {p.time_wait_s} s "
                 "TIME_WAIT (Little's law)", p.rate * p.time_wait_s,
                 v["churn"]["steady_entries"], rel=TOLERANCE),
        C.within("short-timeout",
                 f"An aggressive {p.short_time_wait_s} s TIME_WAIT shrinks occupancy in "
                 f"proportion: {p.rate:g} x {p.short_time_wait_s}",
                 p.rate * p.short_time_wait_s, v["short-timeout"]["steady_entries"],
                 rel=TOLERANCE),
        C.within("keep-alive",
                 f"Keep-alive ({p.keepalive_requests} requests per connection) cuts occupancy "
                 f"by the reuse factor: {p.rate:g}/{p.keepalive_requests} x {p.time_wait_s} s "
                 "plus the connections open at any moment",
                 p.rate / p.keepalive_requests * p.time_wait_s
                 + (ka["steady_established"] or 0), ka["steady_entries"], rel=TOLERANCE,
                 note="open connections are measured (ESTABLISHED entries); closed ones follow "
                      "Little's law"),
        C.within("spread",
                 f"Spreading the churn over {p.nodes} nodes holds rate / N x TIME_WAIT = "
                 f"{p.rate:g}/{p.nodes} x {p.time_wait_s} s on the busiest node",
                 p.rate / p.nodes * p.time_wait_s, v["spread"]["steady_busiest_node"],
                 rel=TOLERANCE),
        C.at_most("synproxy",
                  "With synproxy the flood leaves at most 1 % of the conntrack entries it "
                  "leaves without", 0.01 * v["syn-flood"]["peak_entries"],
                  v["synproxy"]["peak_entries"]),
    ] + ([C.at_most("small-table",
                    "Legitimate connections fail when the table is full of ASSURED entries: "
                    "each admitted connection holds a slot for at least TIME_WAIT, so "
                    "admissions by t are at most min(offered, max + admissions by "
                    f"t - TIME_WAIT): {v['small-table']['admission_bound']:.0f} of the "
                    f"{v['small-table']['requests']} offered can succeed (share)",
                    v["small-table"]["admission_bound"] / v["small-table"]["requests"],
                    v["small-table"]["success"],
                    note="a bound, not an estimate: the kernel frees expired entries lazily "
                         "(GC worker), so admissions may fall well below it; admitted_per_s "
                         "is measured")]
         if "small-table" in v else [])


def _notes(objsize: int | None, cmax: int | None) -> list[str]:
    notes = []
    if objsize:
        slots = NOTE_RATE * NOTE_TIMEOUT_S
        notes.append(
            f"The note's example recomputed: {NOTE_RATE:,} new flows/s x {NOTE_TIMEOUT_S} s = "
            f"{slots:,} slots; at the note's {NOTE_BYTES} B that is "
            f"{slots * NOTE_BYTES / 1e9:.2f} GB, at this kernel's {objsize} B it is "
            f"{slots * objsize / 1e9:.2f} GB.")
        if cmax:
            notes.append(f"This machine's table: nf_conntrack_max = {cmax:,} entries x "
                         f"{objsize} B = {cmax * objsize / 2**20:.0f} MiB; it would be full "
                         f"at {cmax / NOTE_TIMEOUT_S:,.0f} new flows/s with a 30 s timeout.")
    return notes


def plot(folder: Path) -> list[Path]:
    rows = read_csv(folder / "occupancy.csv")
    result = json.loads((folder / "result.json").read_text())
    p, claims, v = result["params"], {c["id"]: c for c in result["claims"]}, result["variants"]
    cid = {"churn": "littles-law-churn"}
    made = []
    fig, ax = plots.figure(8, 4.2)
    for variant in VARIANTS:
        key = "max_node_entries" if variant == "spread" else "entries"
        pts = [(float(r["t"]), int(r[key])) for r in rows if r["variant"] == variant]
        colour = plots.colour(VARIANTS, variant)
        label = "spread (busiest node)" if variant == "spread" else variant
        ax.plot([t for t, _ in pts], [e for _, e in pts], label=f"{label}", color=colour)
        ax.axhline(claims[cid.get(variant, variant)]["predicted"], color=colour, ls="--", lw=1)
    ax.set_xlabel("seconds since the client started (dashed: Little's law prediction)")
    ax.set_ylabel("conntrack entries in an L4 node")
    ax.set_title(f"Conntrack occupancy at {p['rate']:g} new connections/s")
    ax.legend(fontsize=8, ncol=2)
    made.append(plots.save(fig, folder / "occupancy.png"))

    fig, ax = plots.figure(7, 3.8)
    xs = range(len(VARIANTS))
    ids = [cid.get(k, k) for k in VARIANTS]
    ax.bar([x - 0.2 for x in xs], [claims[i]["predicted"] for i in ids], 0.4,
           label="predicted", color="#bbbbbb")
    ax.bar([x + 0.2 for x in xs], [claims[i]["measured"] or 0 for i in ids], 0.4,
           label="measured", color=[plots.colour(VARIANTS, k) for k in VARIANTS])
    for x, i in zip(xs, ids, strict=True):
        ax.text(x + 0.2, claims[i]["measured"] or 0,
                "holds" if claims[i]["holds"] else "does not hold", ha="center",
                va="bottom", fontsize=8)
    ax.set_xticks(list(xs), VARIANTS)
    ax.set_ylabel("steady-state entries (spread: busiest node)")
    ax.set_title("Occupancy: Little's law prediction vs measurement")
    ax.legend()
    made.append(plots.save(fig, folder / "steady-state.png"))

    if "syn-flood" in v:
        fig, axes = plots.figure(11, 3.8, ncols=2)
        for variant, colour in zip(FLOODS, ("#d1495b", "#66a182"), strict=True):
            pts = [(float(r["t"]), int(r["entries"])) for r in rows if r["variant"] == variant]
            axes[0].plot([t for t, _ in pts], [e for _, e in pts], color=colour,
                         label=f"{variant} (legit ok {v[variant]['legit_success']:.0%})")
        if v["syn-flood"]["table_max"]:
            axes[0].axhline(v["syn-flood"]["table_max"], color="black", ls="--", lw=1,
                            label="nf_conntrack_max")
        axes[0].set_xlabel("seconds")
        axes[0].set_ylabel("conntrack entries")
        axes[0].set_title(f"{p['flood_s']:g} s of spoofed SYNs")
        axes[0].legend(fontsize=8)
        if "small-table" in v:
            st = v["small-table"]
            pts = [(float(r["t"]), int(r["entries"])) for r in rows
                   if r["variant"] == "small-table"]
            axes[1].plot([t for t, _ in pts], [e for _, e in pts], color="#1b6ca8",
                         label="entries")
            axes[1].axhline(st["table_max"], color="black", ls="--", lw=1,
                            label=f"nf_conntrack_max lowered to {st['table_max']}")
            axes[1].set_title(f"Table of ASSURED entries: {st['admitted_per_s']:.0f} of "
                              f"{st['offered_per_s']:g} conn/s admitted")
            axes[1].set_xlabel("seconds")
            axes[1].legend(fontsize=8)
        else:
            axes[1].axis("off")
        made.append(plots.save(fig, folder / "floods.png"))
    return made
