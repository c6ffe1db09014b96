"""conntrack-exhaustion: how much state an L4 NAT node holds, and what shrinks it.

Wiring (topologies/two_tier.py): c1 -> s1 -> l4 (nftables DNAT + masquerade, conntrack)
-> s2 -> b1..bK. The client opens HTTP/1.1 connections at a fixed rate (open loop).

Variants, all on one lab, the conntrack table flushed between them:
  churn          no keep-alive: one connection per request; entries live out TIME_WAIT
  short-timeout  the same churn with an aggressive TIME_WAIT timeout in the node
  keep-alive     connections reused for `keepalive_requests` requests each

Claims (predictions from this run's parameters):
  bytes-per-flow     the kernel's own conntrack object size (/proc/slabinfo) is inside the
                     note's 200-500 B budget
  littles-law-churn  steady occupancy = rate x TIME_WAIT timeout (within 15 %)
  short-timeout      occupancy falls in proportion: rate x short timeout (within 15 %)
  keep-alive         occupancy falls by the reuse factor: rate / k x timeout + open conns
                     (within 15 %)
The note's example (100,000 new flows/s x 30 s = 3 M slots, 1.5 GB at 500 B) is recomputed
with the measured object size. SYN floods, synproxy and spreading over more nodes are not in
this module yet (issue #4 carries them).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from lblab import claims as C
from lblab import plots
from lblab.experiment import Outcome, RunContext
from lblab.lab import ControllerSpec, Lab
from lblab.params import param
from lblab.results import read_csv, write_csv, write_json
from lblab.sampler import Sampler
from lblab.workloads.client import ClientConfig
from lblab.workloads.handles import run_client, start_backend
from lbnodes.l4 import Backend, L4Config, L4Node, conntrack_object_size
from topologies.two_tier import TwoTierTopo, backend_ip, lb_front_ip

NAME = "conntrack-exhaustion"
TITLE = "Conntrack state on an L4 NAT node: Little's law, timeouts, keep-alive"
SUMMARY = ("Measures bytes per flow and table occupancy under connection churn on an "
           "nftables NAT node; shows aggressive timeouts and keep-alive shrinking it.")
NEEDS = ("root", "ovs_running", "nft", "conntrack")
VARIANTS = ["churn", "short-timeout", "keep-alive"]
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
                             min=3, max=3600)
    backends: int = param(3, "backends behind the node", min=1, max=20)
    service_ms: float = param(5.0, "mean backend service time", min=0, max=1000)
    sample_s: float = param(0.5, "seconds between occupancy samples", min=0.1, max=10)

    def validate(self) -> str | None:
        if self.short_time_wait_s >= self.time_wait_s:
            return "short_time_wait_s must be below time_wait_s"
        return None


def quick() -> Params:
    return Params(rate=150.0, time_wait_s=6, short_time_wait_s=2, keepalive_requests=10,
                  measure_s=4.0)


def _timeout(p: Params, variant: str) -> int:
    return p.short_time_wait_s if variant == "short-timeout" else p.time_wait_s


def run(ctx: RunContext) -> Outcome:
    p: Params = ctx.params
    names = [f"b{i}" for i in range(1, p.backends + 1)]
    topo = TwoTierTopo(clients=1, lb_names="l4", backends=p.backends)
    duration = p.time_wait_s + 1 + p.measure_s
    series: list[dict] = []
    variants: dict[str, dict] = {}
    ctx.step("bringing the lab up")
    with Lab(ctx.lab_name, topo, controller=ControllerSpec(),
             log_dir=ctx.folder.path("logs")) as lab:
        for i, n in enumerate(names, start=1):
            start_backend(lab, n, backend_ip(i), port=8080, service_ms=p.service_ms,
                          max_requests_per_conn=p.keepalive_requests, seed=ctx.seed + i)
        node = L4Node(lab, L4Config(
            "l4", lb_front_ip(1), 80,
            tuple(Backend(n, backend_ip(i), 8080) for i, n in enumerate(names, start=1)),
            backend_ifname="l4-eth1")).start()
        for variant in VARIANTS:
            timeout = _timeout(p, variant)
            ctx.step(f"{variant}: {p.rate:g} req/s for {duration:g} s, TIME_WAIT {timeout} s")
            node.set_ct_timeouts({"tcp_timeout_time_wait": timeout})
            node.flush_conntrack()
            before = node.counters()["dispatched"]["packets"]

            def probe(variant: str = variant) -> dict:
                states = node.conntrack_states()
                return {"variant": variant, "entries": sum(states.values()),
                        "time_wait": states.get("TIME_WAIT", 0),
                        "established": states.get("ESTABLISHED", 0)}

            cfg = ClientConfig(targets=[f"http://{lb_front_ip(1)}/"], rate=p.rate,
                               duration_s=duration, arrival="constant", timeout_s=2.0,
                               keepalive=variant == "keep-alive", seed=ctx.seed)
            with Sampler(probe, p.sample_s) as sampler:
                records, summary = run_client(lab, "c1", cfg, ctx.folder.path("raw"), variant)
            series += sampler.rows
            new_flows = node.counters()["dispatched"]["packets"] - before
            variants[variant] = _metrics(p, variant, sampler.rows, summary, new_flows,
                                         duration, node.conntrack_stats())
        sysctls = lab.sysctls_changed
    write_csv(ctx.folder.path("occupancy.csv"), series,
              ["t", "variant", "entries", "time_wait", "established", "cpu_busy"])
    objsize = conntrack_object_size()
    write_json(ctx.folder.path("snapshot.json"), {"slab_objsize": objsize,
                                                  "conntrack_max": ctx.caps.conntrack_max})
    return Outcome(variants=variants, claims=_claims(p, variants, objsize),
                   notes=_notes(objsize, ctx.caps.conntrack_max), topology=plots.topology_of(
                       topo, {"c": "client", "s1": "switch-front", "l": "lb",
                              "s2": "switch-back", "b": "backend"}),
                   sysctls_changed=sysctls)


def _metrics(p: Params, variant: str, rows: list[dict], summary: dict, new_flows: int,
             duration: float, ct_stats: dict) -> dict:
    """Steady-state occupancy: the samples after the first TIME_WAIT timeout has passed."""
    start = _timeout(p, variant) + 1
    steady = [r for r in rows if start <= r["t"] <= duration - 0.5]
    mean = lambda key: statistics.fmean(r[key] for r in steady) if steady else None  # noqa: E731
    requests = summary["requests"]
    return {
        "steady_entries": mean("entries"), "steady_time_wait": mean("time_wait"),
        "steady_established": mean("established"),
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
    ]


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
    import json

    rows = read_csv(folder / "occupancy.csv")
    result = json.loads((folder / "result.json").read_text())
    p, claims = result["params"], {c["id"]: c for c in result["claims"]}
    made = []
    fig, ax = plots.figure(8, 4.2)
    for variant in VARIANTS:
        pts = [(float(r["t"]), int(r["entries"])) for r in rows if r["variant"] == variant]
        colour = plots.colour(VARIANTS, variant)
        ax.plot([t for t, _ in pts], [e for _, e in pts], label=f"{variant} (measured)",
                color=colour)
        cid = {"churn": "littles-law-churn"}.get(variant, variant)
        ax.axhline(claims[cid]["predicted"], color=colour, ls="--", lw=1,
                   label=f"{variant} (predicted)")
    ax.set_xlabel("seconds since the client started")
    ax.set_ylabel("conntrack entries in the L4 node")
    ax.set_title(f"Conntrack occupancy at {p['rate']:g} new requests/s")
    ax.legend(fontsize=8, ncol=2)
    made.append(plots.save(fig, folder / "occupancy.png"))

    fig, ax = plots.figure(7, 3.8)
    ids = ["littles-law-churn", "short-timeout", "keep-alive"]
    xs = range(len(ids))
    ax.bar([x - 0.2 for x in xs], [claims[i]["predicted"] for i in ids], 0.4,
           label="predicted", color="#bbbbbb")
    ax.bar([x + 0.2 for x in xs], [claims[i]["measured"] or 0 for i in ids], 0.4,
           label="measured", color=[plots.colour(VARIANTS, v) for v in VARIANTS])
    for x, i in zip(xs, ids, strict=True):
        ax.text(x + 0.2, (claims[i]["measured"] or 0), claims[i]["holds"] and "holds"
                or "does not hold", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(xs), VARIANTS)
    ax.set_ylabel("steady-state entries")
    ax.set_title("Occupancy: Little's law prediction vs measurement")
    ax.legend()
    made.append(plots.save(fig, folder / "steady-state.png"))
    return made
