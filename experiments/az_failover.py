"""az-failover: one of Z zones fails; who carries its load, at what cost, and what breaks.

Wiring (topologies/zones.py): users on u1 send to an anycast VIP; the fabric controller spreads
new connections over the Z zones' LB nodes (HAProxy, one per zone) and withdraws a node the
moment its link goes down (OpenFlow port status). Each zone has B backends with a capacity
model (W workers, exponential service of mean S, a long queue); the zones share one back-side
L2 network through `core`, whose port counters are the bytes that crossed zones.

The load is open loop at u x (the whole fleet's capacity), so every zone runs at utilization
u. At t0 one zone fails: its LB node's edge link and its uplink go down, and its HAProxy and
backends stop.

Variants (how each zone's HAProxy picks backends):
  naive       round robin over every zone's backends
  zone-aware  its own zone's backends; other zones' are `backup` servers, used only when
              health checks find every local one down
  surge       zone-aware, plus admission control: each server takes at most W + 1 requests
              at once (its workers, and one in hand-over so a freed worker never idles while
              HAProxy sends it the next), at most `surge_queue` more wait in the LB node's
              queue, and the rest are refused at once with a 503 instead of queueing on the
              survivors

Claims (predicted from this run's Z and utilizations): the survivors' load becomes Z/(Z-1)
times what it was; they stay unsaturated only if u <= (Z-1)/Z, so after the failure their
utilization is min(1, u Z/(Z-1)); in steady state naive balancing sends (Z-1)/Z of requests
across zones and zone-aware none; surge protection makes each surviving zone an M/M/c/K
queue (c = B W, K = c + B + surge_queue), so it refuses that model's blocking share and keeps
the admitted requests' p99 at the model's (lblab/queueing.py);
the survivors' health checks mark the failed zone's servers down within HAProxy's
fall x (inter + check timeout) + inter.
"""

from __future__ import annotations

import json
import math
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from controllers.policies import Fabric, Node
from lblab import claims as C
from lblab import plots
from lblab.counters import link_stats
from lblab.experiment import Outcome, RunContext
from lblab.lab import ControllerSpec, Lab
from lblab.links import set_links
from lblab.params import param
from lblab.queueing import MMcK
from lblab.ready import wait_until
from lblab.results import read_csv, write_csv
from lblab.sampler import Sampler, counter_delta
from lblab.workloads.client import ClientConfig
from lblab.workloads.handles import BackendHandle, run_client, start_backend
from lbnodes.common import hold_vip_quietly
from lbnodes.l7 import L7Config, L7Node, Server
from topologies.zones import (
    ANYCAST_VIP,
    ANYCAST_VMAC,
    EDGE_DPID,
    ROLES,
    ZonesTopo,
    backend_ip,
    backend_name,
    core_intf,
    edge_intf,
    lb_edge_port,
    lb_mac,
    lb_name,
    uplink_intf,
    zone_of_address,
    zone_of_backend,
)

NAME = "az-failover"
TITLE = "Zone failure: survivors' load, zone-aware routing, surge protection, cross-zone cost"
SUMMARY = ("Fails one of Z zones under load at several utilizations and compares naive "
           "global balancing, zone-aware routing and zone-aware with surge protection.")
NEEDS = ("root", "ovs_running", "haproxy")
VARIANTS = ("naive", "zone-aware", "surge")
BACKEND_PORT = 8080
CLIENT_BOOT_S = 1.0
SAMPLE_S = 0.2
BIN_S = 0.5
WARMUP_S = 1.0
AFTER_MIN_S = 1.0
PROXY_ALLOWANCE_MS = 50.0
"""What a success may add to the model's wait + service: connection set-up through the
fabric, two proxy hops and the backends' 1 ms event-loop ticks."""


@dataclass(frozen=True)
class Params:
    zones: int = param(3, "availability zones (Z)", min=2, max=5)
    backends: int = param(2, "backends per zone (B)", min=1, max=4)
    workers: int = param(4, "workers per backend (W)", min=1, max=64)
    service_ms: float = param(50.0, "mean service time (exponential), S", min=5, max=1000)
    queue: int = param(256, "queue limit per backend (then 503): long, as thread pools are",
                       min=0, max=10_000)
    utilizations: tuple[float, ...] = param((0.5, 0.67, 0.8, 0.9), "per-zone utilization "
                                            "before the failure (the sweep)", min=0.05, max=0.98)
    variants: tuple[str, ...] = param(VARIANTS, "variants to run", choices=VARIANTS)
    naive_utilizations: tuple[float, ...] = param((), "utilizations for the naive variant "
                                                  "(empty: the whole sweep); its cross-zone "
                                                  "share and detection time do not depend on "
                                                  "u", min=0.05, max=0.98)
    failed_zone: int = param(1, "the zone that fails", min=1, max=5)
    response_kb: float = param(8.0, "response body size (KiB)", min=0, max=1024)
    timeout_s: float = param(2.0, "client timeout", min=0.1, max=30)
    t0: float = param(6.0, "seconds of load before the zone fails", min=2, max=600)
    end: float = param(16.0, "seconds of load in all", min=4, max=1200)
    check_inter_ms: int = param(500, "HAProxy health-check interval", min=50, max=10_000)
    check_fall: int = param(2, "failed checks that mark a server down", min=1, max=10)
    surge_queue: int = param(8, "surge: requests that may wait in an LB node's queue "
                             "(K - c of the M/M/c/K it makes)", min=1, max=1000)
    usd_per_gb: float = param(0.02, "price of a GB that crosses zones (AWS: 0.01 out + "
                              "0.01 in)", min=0, max=10)

    def validate(self) -> str | None:
        if self.failed_zone > self.zones:
            return f"failed_zone must be at most zones ({self.zones})"
        if self.end - self.t0 < detect_bound_s(self) + AFTER_MIN_S:
            return ("end - t0 must leave time to detect the failure and measure a second after "
                    f"it: at least {detect_bound_s(self) + AFTER_MIN_S:g} s")
        if self.t0 < WARMUP_S + 1:
            return f"t0 must be at least {WARMUP_S + 1:g} s (warm-up plus a steady second)"
        return None


def quick() -> Params:
    """One unsaturated and one saturated utilization (naive only at the first), faster
    health checks and short phases, so the three variants fit in a minute."""
    return Params(utilizations=(0.5, 0.9), naive_utilizations=(0.5,), t0=2.3, end=5.6,
                  check_inter_ms=200)


def rate_for(p: Params, u: float) -> float:
    """Offered requests/s that run every zone at utilization u."""
    return u * p.zones * p.backends * p.workers / (p.service_ms / 1000)


def check_timeout_ms(p: Params) -> int:
    """A check's connect timeout is min(timeout connect, inter); we set timeout check to
    inter as well, so a check to a dead server fails after at most `inter`."""
    return min(1000, p.check_inter_ms)


def detect_bound_s(p: Params) -> float:
    """The latest a survivor's HAProxy marks a dead server DOWN: up to one interval until the
    next check starts, then `fall` checks that each time out and wait an interval, plus
    our sampling period."""
    return (p.check_inter_ms + p.check_fall * (p.check_inter_ms + check_timeout_ms(p))) / 1000 \
        + SAMPLE_S


def surviving_zone_queue(p: Params, u: float) -> MMcK:
    """What a surviving zone under surge protection is after the failure: Poisson arrivals
    at 1/(Z-1) of the load (the anycast split thins a Poisson stream into Poisson streams),
    c = B W workers, K = B (W + 1) + surge_queue: what maxconn lets through to the backends
    plus the LB node's queue."""
    c = p.backends * p.workers
    return MMcK(rate_for(p, u) / (p.zones - 1), 1000 / p.service_ms, c,
                c + p.backends + p.surge_queue)


def servers_for(p: Params, variant: str, zone: int) -> tuple[Server, ...]:
    out = []
    for z in range(1, p.zones + 1):
        for k in range(1, p.backends + 1):
            remote = z != zone and variant != "naive"
            limit = variant == "surge"
            out.append(Server(backend_name(z, k), backend_ip(z, k), BACKEND_PORT,
                              backup=remote, maxconn=p.workers + 1 if limit else 0))
    return tuple(out)


def l7_config(p: Params, variant: str, zone: int) -> L7Config:
    return L7Config(lb_name(zone), ANYCAST_VIP, 80, servers_for(p, variant, zone),
                    check=True, check_inter_ms=p.check_inter_ms, check_fall=p.check_fall,
                    check_rise=2, timeout_check_ms=p.check_inter_ms, retries=1,
                    redispatch=True, allbackups=True, timeout_connect_ms=1000,
                    max_queued=p.surge_queue if variant == "surge" else 0,
                    timeout_queue_ms=int(p.timeout_s * 1000))


def fabric(p: Params) -> Fabric:
    nodes = tuple(Node(lb_name(z), lb_edge_port(z), lb_mac(z), bucket_id=z)
                  for z in range(1, p.zones + 1))
    return Fabric(EDGE_DPID, ANYCAST_VIP, ANYCAST_VMAC, nodes=nodes, policy="select15",
                  fields="5tuple")


class Zones:
    """The running lab: LB nodes and backends per zone, and the fault that fails one."""

    def __init__(self, lab: Lab, p: Params, seed: int) -> None:
        self.lab, self.p, self.seed = lab, p, seed
        self.backends: dict[int, list[BackendHandle]] = {}
        self.lbs: dict[int, L7Node] = {}
        self.variant = ""
        for z in range(1, p.zones + 1):
            hold_vip_quietly(lab, lb_name(z), ANYCAST_VIP)
            self.backends[z] = [self._backend(z, k) for k in range(1, p.backends + 1)]

    def _backend(self, z: int, k: int) -> BackendHandle:
        p = self.p
        return start_backend(self.lab, backend_name(z, k), backend_ip(z, k), port=BACKEND_PORT,
                             workers=p.workers, queue_limit=p.queue, service_ms=p.service_ms,
                             service_dist="exponential", seed=self.seed + 10 * z + k)

    def prepare(self, variant: str) -> None:
        """Every zone up, every LB node on `variant`'s config, every backend idle."""
        fz = self.p.failed_zone
        if not self.backends[fz]:
            set_links([edge_intf(fz), uplink_intf(fz)], up=True)
            self.backends[fz] = [self._backend(fz, k) for k in range(1, self.p.backends + 1)]
        for z in range(1, self.p.zones + 1):
            if self.variant != variant or z not in self.lbs:
                if z in self.lbs:
                    self.lbs.pop(z).stop()
                self.lbs[z] = L7Node(self.lab, l7_config(self.p, variant, z)).start()
        self.variant = variant
        wait_until(lambda: all(n["link_up"] and n["active"] for n in self.fabric_nodes()),
                   timeout=10, what="the controller to count every zone's LB node live")
        wait_until(self._all_servers_up, timeout=10 + 4 * self.p.check_inter_ms / 1000,
                   what="every HAProxy to see every backend up")
        drain = self.p.queue * self.p.service_ms / 1000 / self.p.workers + 10
        wait_until(lambda: all(s["busy"] == 0 and s["queued"] == 0
                               for s in self.capacity().values()),
                   timeout=drain, what="backends to finish the previous run's work")

    def fabric_nodes(self) -> list[dict]:
        return self.lab.controller_api_call("GET", "/state")["fabric"]["nodes"]

    def _all_servers_up(self) -> bool:
        return all(row["status"] == "UP" for lb in self.lbs.values()
                   for row in lb.api.servers(lb.backend).values())

    def capacity(self, names: list[str] | None = None) -> dict[str, dict]:
        """Capacity counters of the running backends (or of those named)."""
        return {h.node: h.stats()["capacity"] for hs in list(self.backends.values())
                for h in hs if names is None or h.node in names}

    def fail(self) -> float:
        """Zone failure: links down first (the zone is cut off at once), then its processes
        stop. Returns the wall-clock time of the cut."""
        fz = self.p.failed_zone
        set_links([edge_intf(fz), uplink_intf(fz)], up=False)
        cut = time.time()
        self.lbs.pop(fz).stop()
        for h in self.backends[fz]:
            h.stop()
        self.backends[fz] = []
        return cut

    def failed_servers_down(self) -> bool | None:
        """Does a survivor's HAProxy hold every server of the failed zone DOWN?"""
        survivor = next((lb for z, lb in self.lbs.items() if z != self.p.failed_zone), None)
        if survivor is None:
            return None
        rows = survivor.api.servers(survivor.backend)
        failed = [backend_name(self.p.failed_zone, k) for k in range(1, self.p.backends + 1)]
        return all(rows[name]["status"].startswith("DOWN") for name in failed)


def run(ctx: RunContext) -> Outcome:
    p: Params = ctx.params
    topo = ZonesTopo(zones=p.zones, backends=p.backends)
    spec = ControllerSpec(config={"fabrics": [fabric(p).to_json()]})
    variants: dict[str, dict] = {}
    series: list[dict] = []
    ctx.step("bringing the lab up")
    with Lab(ctx.lab_name, topo, controller=spec, log_dir=ctx.folder.path("logs")) as lab:
        lab.extra_addresses.add(ANYCAST_VIP)
        zones = Zones(lab, p, ctx.seed)
        for variant in p.variants:
            sweep = p.naive_utilizations if variant == "naive" else ()
            for u in sweep or p.utilizations:
                key = f"{variant}@{u:g}"
                ctx.step(f"{key}: {rate_for(p, u):.0f} req/s, zone {p.failed_zone} fails at "
                         f"{p.t0:g} s of {p.end:g} s")
                zones.prepare(variant)
                rows, metrics = _one_run(ctx, lab, zones, p, variant, u, key)
                series += rows
                variants[key] = metrics
    write_csv(ctx.folder.path("timeline.csv"), series)
    return Outcome(variants=variants, claims=_claims(p, variants), notes=_notes(p),
                   topology=plots.topology_of(topo, ROLES))


def _one_run(ctx: RunContext, lab: Lab, zones: Zones, p: Params, variant: str, u: float,
             key: str) -> tuple[list[dict], dict]:
    fz = p.failed_zone
    survivors = [backend_name(z, k) for z in range(1, p.zones + 1) if z != fz
                 for k in range(1, p.backends + 1)]
    cores = [core_intf(z) for z in range(1, p.zones + 1)]
    base_bytes = {n: s["rx_bytes"] for n, s in link_stats(cores).items()}
    base_cap = zones.capacity(survivors)
    origin = time.time() + CLIENT_BOOT_S
    cut: list[float] = []

    def probe() -> dict:
        cap = zones.capacity(survivors)  # not the failing zone's: they stop under our feet
        live = {n["name"]: n["link_up"] and n["active"] for n in zones.fabric_nodes()}
        return {"wall": time.time(),
                "arrived": sum(cap[n]["arrived"] - base_cap[n]["arrived"] for n in survivors),
                "busy_s": sum(cap[n]["busy_s"] - base_cap[n]["busy_s"] for n in survivors),
                "cross_bytes": sum(s["rx_bytes"] - base_bytes[n]
                                   for n, s in link_stats(cores).items()),
                "failed_down": zones.failed_servers_down() if cut else False,
                "failed_live": live.get(lb_name(fz), False)}

    def fault() -> None:
        time.sleep(max(0.0, origin + p.t0 - time.time()))
        cut.append(zones.fail())

    body = int(p.response_kb * 1024)
    cfg = ClientConfig(targets=[f"http://{ANYCAST_VIP}/bytes/{body}"], rate=rate_for(p, u),
                       duration_s=p.end, arrival="poisson", timeout_s=p.timeout_s,
                       keepalive=False, seed=ctx.seed, start_at=origin)
    with Sampler(probe, SAMPLE_S) as sampler:
        thread = threading.Thread(target=fault, daemon=True)
        thread.start()
        records, summary = run_client(lab, "u1", cfg, ctx.folder.path("raw"),
                                      key.replace("@", "-u"))
        thread.join()
    if sampler.errors:
        ctx.step(f"{key}: {len(sampler.errors)} samples failed, first: {sampler.errors[0]}")
    t_cut = (cut[0] - origin) if cut else p.t0
    samples = [{**s, "t": s["wall"] - origin} for s in sampler.rows]
    rows = _timeline(p, variant, u, records, samples, len(survivors))
    return rows, _metrics(p, u, records, samples, t_cut, len(survivors))


def _final(records: list[dict]) -> list[dict]:
    return [r for r in records if r["attempt"] == "0"]


def _window(records: list[dict], lo: float, hi: float) -> list[dict]:
    return [r for r in records if lo <= float(r["intended_s"]) < hi]


def _p(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _done_s(r: dict) -> float:
    """When a request was over (answered, refused or given up), on the client's clock."""
    return float(r["done_s"]) if r["done_s"] else float(r["intended_s"])


def _latencies(rows: list[dict]) -> list[float]:
    return [float(r["latency_ms"]) for r in rows if r["outcome"] == "ok"]


def _cross_zone(rows: list[dict]) -> tuple[int, int]:
    """(requests served by another zone than their LB node's, requests answered)."""
    ok = [r for r in rows if r["outcome"] == "ok" and r["peer"] and r["backend"]]
    cross = sum(zone_of_backend(r["backend"]) != zone_of_address(r["peer"]) for r in ok)
    return cross, len(ok)


def _utilization(samples: list[dict], lo: float, hi: float, workers: int) -> float | None:
    """Worker-seconds served in [lo, hi) over the workers' seconds available."""
    if not samples or samples[-1]["t"] < hi:
        return None
    return counter_delta(samples, "busy_s", lo, hi) / ((hi - lo) * workers)


def _first_after(samples: list[dict], key: str, value: bool, t: float) -> float | None:
    for s in samples:
        if s["t"] >= t and s[key] == value:
            return s["t"] - t
    return None


def _metrics(p: Params, u: float, records: list[dict], samples: list[dict], t_cut: float,
             n_survivors: int) -> dict:
    requests = _final(records)
    after_lo = t_cut + detect_bound_s(p)
    after_hi = p.end
    # Steady state: requests that were over before the cut. Those still in flight at the
    # cut and then lost are the failure's immediate toll, counted apart.
    before = _window(requests, WARMUP_S, t_cut)
    steady = [r for r in before if _done_s(r) <= t_cut]
    lost = sum(r["outcome"] != "ok" for r in before if _done_s(r) > t_cut)
    after = _window(requests, after_lo, after_hi)
    cross, answered = _cross_zone(steady)
    workers = n_survivors * p.workers
    # The survivors' share of the offered requests, before and after: its ratio is their
    # load multiplier with the schedule's own Poisson wobble divided out.
    arrived_before = counter_delta(samples, "arrived", WARMUP_S, t_cut)
    arrived_after = counter_delta(samples, "arrived", after_lo, after_hi)
    share_before = arrived_before / len(before) if before else None
    share_after = arrived_after / len(after) if after else None
    cross_bytes_steady = counter_delta(samples, "cross_bytes", WARMUP_S, t_cut)
    total_bytes = samples[-1]["cross_bytes"] if samples else 0
    gb = total_bytes / 1e9
    per_request = cross_bytes_steady / len(steady) if steady else None

    def errors(rows: list[dict]) -> float | None:
        return sum(r["outcome"] != "ok" for r in rows) / len(rows) if rows else None

    return {
        "utilization": u, "rate": rate_for(p, u), "requests": len(requests),
        "predicted_post_failure_load": u * p.zones / (p.zones - 1),
        "survivor_load_multiplier": (share_after / share_before
                                     if share_before and share_after is not None else None),
        "survivor_arrivals_before": arrived_before, "offered_before": len(before),
        "survivor_arrivals_after": arrived_after, "offered_after": len(after),
        "survivor_utilization_before": _utilization(samples, WARMUP_S, t_cut, workers),
        "survivor_utilization_after": _utilization(samples, after_lo, after_hi, workers),
        "error_rate_steady": errors(steady), "error_rate_after": errors(after),
        "shed_share_after": (sum(r["outcome"] == "5xx" for r in after) / len(after)
                             if after else None),
        "p50_ms_steady": _p(_latencies(steady), 0.50), "p99_ms_steady": _p(_latencies(steady),
                                                                           0.99),
        "p50_ms_after": _p(_latencies(after), 0.50), "p99_ms_after": _p(_latencies(after), 0.99),
        "cross_zone_share_steady": cross / answered if answered else None,
        "cross_zone_answered_steady": answered,
        "cross_zone_bytes_per_request": per_request,
        "cross_zone_gb": gb, "cross_zone_cost_usd": gb * p.usd_per_gb,
        "cross_zone_usd_per_million_requests": (per_request * 1e6 / 1e9 * p.usd_per_gb
                                                if per_request is not None else None),
        "time_to_detect_s": _first_after(samples, "failed_down", True, t_cut),
        "time_to_withdraw_s": _first_after(samples, "failed_live", False, t_cut),
        "fault_at_s": t_cut, "lost_in_flight": lost,
        "outcomes": {o: sum(r["outcome"] == o for r in requests)
                     for o in sorted({r["outcome"] for r in requests})},
    }


def _timeline(p: Params, variant: str, u: float, records: list[dict], samples: list[dict],
              n_survivors: int) -> list[dict]:
    requests = _final(records)
    rows = []
    for b in range(int(math.ceil(p.end / BIN_S))):
        lo, hi = b * BIN_S, (b + 1) * BIN_S
        got = _window(requests, lo, hi)
        lat = _latencies(got)
        rows.append({
            "variant": variant, "utilization": u, "t": lo, "requests": len(got),
            "error_rate": sum(r["outcome"] != "ok" for r in got) / len(got) if got else "",
            "p50_ms": _p(lat, 0.5) if lat else "", "p99_ms": _p(lat, 0.99) if lat else "",
            "survivor_utilization": _utilization(samples, lo, hi, n_survivors * p.workers)
            or "",
            "cross_zone_mb_per_s": counter_delta(samples, "cross_bytes", lo, hi) / BIN_S / 1e6,
        })
    return rows


def threshold(z: int) -> float:
    """The highest pre-failure utilization that survives losing one of z zones."""
    return (z - 1) / z


def _notes(p: Params) -> list[str]:
    table = ", ".join(f"Z={z}: {threshold(z):.0%}" for z in range(2, 6))
    return [f"Survivable pre-failure utilization (Z-1)/Z: {table}. A 20-30 % buffer "
            f"(utilization 70-80 %) survives losing a zone only from Z = 4-5 up; this run has "
            f"Z = {p.zones}, threshold {threshold(p.zones):.0%}.",
            "Cross-zone bytes are the rx counters of core's ports (bytes that left a zone), "
            f"priced at {p.usd_per_gb:g} USD/GB."]


def _claims(p: Params, v: dict) -> list[C.Claim]:
    z = p.zones
    mult = z / (z - 1)
    out: list[C.Claim] = []
    aware = [m for k, m in v.items() if k.startswith("zone-aware@")]
    if aware:
        n_before = sum(m["offered_before"] for m in aware)
        n_after = sum(m["offered_after"] for m in aware)
        pooled = None
        if n_before and n_after and sum(m["survivor_arrivals_before"] for m in aware):
            pooled = (sum(m["survivor_arrivals_after"] for m in aware) / n_after) / \
                (sum(m["survivor_arrivals_before"] for m in aware) / n_before)
        share = (z - 1) / z
        out.append(C.within(
            "survivor-load", f"Losing 1 of Z = {z} zones multiplies each survivor's load by "
            f"Z/(Z-1) = {mult:.3g} (zone-aware; survivors' share of the offered requests, "
            "after / before, pooled over the sweep)", mult, pooled,
            rel=max(0.10, 3 * math.sqrt((1 - share) / (share * max(1, n_before)))),
            note="tolerance: 10 %, or 3 standard errors of the survivors' share before "
                 "the failure (a binomial share of the requests hashed to them) if larger"))
    for m in aware:
        u = m["utilization"]
        load = u * mult
        state = "saturated" if load > 1 else "unsaturated"
        out.append(C.within(
            f"post-failure-utilization-u{u:g}",
            f"At u = {u:.0%} before, survivors run at u Z/(Z-1) = {load:.2f} of capacity: "
            f"{state} (threshold (Z-1)/Z = {threshold(z):.0%}); their workers' busy share "
            "after the failure", min(1.0, load), m["survivor_utilization_after"],
            rel=max(0.10, 3 * math.sqrt(2 / max(1, m["offered_after"]))),
            note="tolerance: 10 %, or 3 standard errors of the work of N Poisson requests "
                 "of exponential service (sqrt(2/N)) if larger"))
    for name, predicted in (("naive", (z - 1) / z), ("zone-aware", 0.0)):
        runs = [m for k, m in v.items() if k.startswith(f"{name}@")]
        if not runs:
            continue
        n = sum(m["cross_zone_answered_steady"] for m in runs)
        measured = (sum(m["cross_zone_share_steady"] * m["cross_zone_answered_steady"]
                        for m in runs if m["cross_zone_share_steady"] is not None) / n
                    if n else None)
        if name == "naive":
            out.append(C.near("naive-cross-zone",
                              f"Naive balancing serves (Z-1)/Z = {predicted:.3g} of requests "
                              "from another zone (steady state)", predicted, measured,
                              C.binomial_tolerance(predicted, n)))
        else:
            out.append(C.at_most("zone-aware-cross-zone",
                                 "Zone-aware routing serves about none from another zone "
                                 "(steady state; at most 1 %)", 0.01, measured))
    for key, m in v.items():
        if not key.startswith("surge@"):
            continue
        u = m["utilization"]
        q = surviving_zone_queue(p, u)
        c, k = q.servers, q.capacity
        p99 = q.sojourn_quantile(0.99) * 1000
        out.append(C.near(
            f"surge-sheds-u{u:g}",
            f"At u = {u:.0%} each surviving zone gets {q.arrival_rate:.0f} req/s for "
            f"{c} x {1000 / q.service_rate:g} ms workers (load {q.offered / c:.2f}); "
            f"admission control with {k - c} queue places refuses the M/M/{c}/{k} blocking "
            f"share of requests at once (503)", q.blocking, m["shed_share_after"], 0.05,
            note="0.05: the model leaves out HAProxy's hand-over of a freed worker (one "
                 "round trip) and the anycast split's drift over a short window"))
        out.append(C.at_most(
            f"surge-p99-u{u:g}",
            f"... and keeps the admitted requests' p99 at the M/M/{c}/{k} sojourn p99 "
            f"({p99:.0f} ms) + {PROXY_ALLOWANCE_MS:g} ms of network and proxy",
            p99 + PROXY_ALLOWANCE_MS, m["p99_ms_after"]))
    for key, m in v.items():
        if key.startswith("naive@"):
            out.append(C.at_most(
                f"detect-{key.replace('@', '-u')}",
                f"Survivors' health checks mark the failed zone's servers down within "
                f"inter + fall x (inter + check timeout) + sampling = "
                f"{detect_bound_s(p):.2f} s", detect_bound_s(p), m["time_to_detect_s"]))
    return out


# -- plots ------------------------------------------------------------------------------------
def _params(folder: Path) -> tuple[dict, dict]:
    result = json.loads((folder / "result.json").read_text())
    return result["params"], result["variants"]


def plot(folder: Path) -> list[Path]:
    p, v = _params(folder)
    rows = read_csv(folder / "timeline.csv")
    names = [n for n in VARIANTS if any(k.startswith(f"{n}@") for k in v)]
    utils = sorted({float(m["utilization"]) for m in v.values()})
    return [_plot_timeline(folder, p, rows, names, utils), _plot_sweep(folder, p, v, names, utils),
            _plot_cost(folder, p, v, names)]


def _plot_timeline(folder: Path, p: dict, rows: list[dict], names: list[str],
                   utils: list[float]) -> Path:
    metrics = (("error_rate", "error rate"), ("p99_ms", "p99 of successes (ms)"),
               ("survivor_utilization", "survivors' busy workers"))
    fig, grid = plots.grid(len(metrics), len(names), 4.2 * len(names), 8.0)
    for col, name in enumerate(names):
        for row, (key, label) in enumerate(metrics):
            ax = grid[row][col]
            for u in utils:
                pts = [(float(r["t"]) + BIN_S / 2, float(r[key])) for r in rows
                       if r["variant"] == name and float(r["utilization"]) == u and r[key]]
                ax.plot([t for t, _ in pts], [y for _, y in pts], lw=1.4, label=f"u={u:.0%}",
                        color=plots.PALETTE[utils.index(u) % len(plots.PALETTE)])
            ax.axvline(p["t0"], color="black", ls="--", lw=1)
            if key == "p99_ms":
                ax.set_yscale("log")
            if row == 0:
                ax.set_title(f"{name}: zone {p['failed_zone']} of {p['zones']} fails at "
                             f"{p['t0']:g} s", fontsize=9)
            if col == 0:
                ax.set_ylabel(label, fontsize=8)
            if row == len(metrics) - 1:
                ax.set_xlabel("seconds")
    grid[0][0].legend(fontsize=7)
    return plots.save(fig, folder / "timeline.png")


def _plot_sweep(folder: Path, p: dict, v: dict, names: list[str], utils: list[float]) -> Path:
    fig, axes = plots.figure(11, 3.8, ncols=3)
    panels = (("error_rate_after", "error rate after the failure"),
              ("p99_ms_after", "p99 after the failure (ms)"),
              ("survivor_utilization_after", "survivors' busy workers after"))
    for ax, (key, title) in zip(axes, panels, strict=True):
        for name in names:
            pts = [(u, v[f"{name}@{u:g}"][key]) for u in utils
                   if f"{name}@{u:g}" in v and v[f"{name}@{u:g}"][key] is not None]
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=name,
                    color=plots.colour(list(VARIANTS), name))
        ax.axvline(threshold(p["zones"]), color="black", ls="--", lw=1,
                   label=f"(Z-1)/Z = {threshold(p['zones']):.0%}")
        ax.set_xlabel("utilization before the failure")
        ax.set_title(title)
        if key == "p99_ms_after":
            ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    return plots.save(fig, folder / "sweep.png")


def _plot_cost(folder: Path, p: dict, v: dict, names: list[str]) -> Path:
    fig, axes = plots.figure(10, 3.8, ncols=2)
    colours = [plots.colour(list(VARIANTS), n) for n in names]
    gb = [sum(m["cross_zone_gb"] for k, m in v.items() if k.startswith(f"{n}@")) for n in names]
    per_m = [statistics.fmean([m["cross_zone_usd_per_million_requests"] or 0
                               for k, m in v.items() if k.startswith(f"{n}@")]) for n in names]
    axes[0].bar(names, gb, color=colours)
    axes[0].set_title(f"cross-zone GB in this run ({sum(gb) * p['usd_per_gb']:.4f} USD at "
                      f"{p['usd_per_gb']:g} USD/GB)", fontsize=9)
    for x, g in enumerate(gb):
        axes[0].text(x, g, f"{g * p['usd_per_gb']:.5f} USD", ha="center", va="bottom",
                     fontsize=8)
    axes[1].bar(names, per_m, color=colours)
    axes[1].set_title("cross-zone USD per million requests (steady state)", fontsize=9)
    return plots.save(fig, folder / "cross-zone-cost.png")
