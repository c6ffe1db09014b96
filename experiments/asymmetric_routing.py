"""asymmetric-routing: ECMP over N stateful routers, each direction hashed on its own.

    c1 --(gw 10.0.0.254)-- s1 ==ECMP==> lb1..lbN (routers) <==ECMP== s2 --(gw 10.1.0.254)-- b1..bK

The controller answers ARP for a virtual gateway on each side and hashes the traffic sent to
it over the routers: s1 spreads client->server packets, s2 spreads server->client packets.
The routers forward between their legs; in the stateful variants conntrack drops any packet
of a flow the router never saw (strict: no mid-stream pickup).

Variants (one lab, in this order):
  symmetric    both sides use the same symmetric hash (multipath symmetric_l3l4, same
               router order): a flow's two directions meet the same router
  stateless    independent hashing, but the routers keep no state (plain forwarding)
  independent  both sides hash the 5-tuple as it appears (select15): the return path of a
               flow lands on a router chosen independently of its forward path. It runs
               last: the servers keep retransmitting SYN-ACKs for the half-open connections
               it breaks (about a minute), which would count as drops in a later variant.

Claims: independent hashing breaks 1 - sum_i f_i r_i of connections, where f and r are the
two sides' shares (with equal shares: (N-1)/N); symmetric hashing and stateless routers
break none. Where they died, flow by flow: each stateful router keeps the 4-tuple of every
SYN it forwarded and of every packet it dropped as `ct state invalid` (nftables sets), and
the client records each attempt's local port, so every broken connection must have been
dropped by a router other than the one that saw its SYN, and no completed one anywhere.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from controllers.policies import Fabric, Node, shares
from lblab import claims as C
from lblab import plots
from lblab.driver import Analysis, Experiment, LabPlan, VariantPlan, VariantRun
from lblab.lab import ControllerSpec, Lab
from lblab.params import param
from lblab.raw import Raw
from lblab.workloads.client import ClientConfig
from lblab.workloads.handles import start_backend
from lbnodes.l4 import Backend, L4Config, L4Node
from topologies.two_tier import (
    ROLES,
    TwoTierTopo,
    backend_ip,
    client_ip,
    lb_back_mac,
    lb_edge_port,
    lb_mac,
)

VARIANTS = ("symmetric", "stateless", "independent")
GW_FRONT, GW_FRONT_MAC = "10.0.0.254", "02:00:00:00:00:fe"
GW_BACK, GW_BACK_MAC = "10.1.0.254", "02:00:00:00:01:fe"
POLICY = {"independent": ("select15", "5tuple"), "symmetric": ("hrw", "symmetric"),
          "stateless": ("select15", "5tuple")}
BACKEND_PORT = 8080


@dataclass(frozen=True)
class Params:
    routers: int = param(2, "N: stateful routers in parallel", min=2, max=8)
    connections: int = param(400, "short connections (one request each) per variant", min=20,
                             max=5000)
    rate: float = param(100.0, "new connections per second", min=10, max=500)
    timeout_s: float = param(1.5, "client timeout (a broken connection waits this long)",
                             min=0.2, max=10)
    backends: int = param(3, "servers", min=1, max=10)


def fabrics(n: int, variant: str) -> tuple[Fabric, Fabric]:
    policy, fields = POLICY[variant]
    front = Fabric(1, GW_FRONT, GW_FRONT_MAC, policy=policy, fields=fields,
                   match_dst="10.1.0.0/16",
                   nodes=tuple(Node(f"lb{i}", lb_edge_port(i), lb_mac(i), bucket_id=i)
                               for i in range(1, n + 1)))
    back = Fabric(2, GW_BACK, GW_BACK_MAC, policy=policy, fields=fields,
                  match_dst="10.0.0.0/16",
                  nodes=tuple(Node(f"lb{i}", lb_edge_port(i), lb_back_mac(i), bucket_id=i)
                              for i in range(1, n + 1)))
    return front, back


def predicted_broken(n: int, variant: str) -> float:
    """Stateful, independent sides: a flow survives only if both directions pick the same
    router, probability sum_i f_i r_i. Symmetric hashing or stateless routers: none break."""
    if variant != "independent":
        return 0.0
    front, back = fabrics(n, variant)
    f, r = shares(front), shares(back)
    return 1 - sum(f.get(k, 0) * r.get(k, 0) for k in f)


@dataclass
class Env:
    lab: Lab
    routers: list[L4Node]


class AsymmetricRouting(Experiment):
    name = "asymmetric-routing"
    title = "Asymmetric ECMP through stateful routers"
    summary = ("Hashes each direction of ECMP over N stateful routers independently or "
               "symmetrically and counts the connections whose reply meets a router "
               "without state.")
    needs = ("root", "ovs_running", "nft", "conntrack")
    Params = Params

    def quick(self) -> Params:
        return Params(connections=200)

    def variants(self, p: Params) -> list[VariantPlan]:
        return [VariantPlan(v, p.connections / p.rate + p.timeout_s) for v in VARIANTS]

    def lab(self, p: Params, key: str) -> LabPlan:
        front, back = fabrics(p.routers, "independent")
        return LabPlan(TwoTierTopo(clients=1, lbs=p.routers, backends=p.backends,
                                   client_gw=GW_FRONT, backend_gw=GW_BACK),
                       ControllerSpec(config={"fabrics": [front.to_json(), back.to_json()]}),
                       ROLES)

    def setup(self, lab: Lab, p: Params, rep: Any) -> Env:
        for i in range(1, p.backends + 1):
            start_backend(lab, f"b{i}", backend_ip(i), port=BACKEND_PORT, service_ms=1)
        return Env(lab, [])

    def prepare(self, env: Env, p: Params, v: VariantPlan) -> None:
        pool = tuple(Backend(f"b{i}", backend_ip(i), BACKEND_PORT)
                     for i in range(1, p.backends + 1))
        mode = "forward" if v.name == "stateless" else "router"
        env.routers = [L4Node(env.lab, L4Config(f"lb{i}", "10.0.0.1", BACKEND_PORT, pool,
                                                backend_ifname=f"lb{i}-eth1", mode=mode,
                                                tcp_loose=False,
                                                flow_sets=mode == "router")).start()
                       for i in range(1, p.routers + 1)]
        policy, fields = POLICY[v.name]
        for dpid in (1, 2):
            env.lab.controller_api_call("POST", "/fabric/policy",
                                        {"dpid": dpid, "policy": policy, "fields": fields})
        for r in env.routers:
            r.flush_conntrack()

    def measure(self, env: Env, p: Params, v: VariantPlan, run: VariantRun) -> None:
        run.step(f"{p.connections} connections at {p.rate:g}/s")
        before = {r.cfg.name: r.counters() for r in env.routers}
        run.client("c1", ClientConfig(
            targets=[f"http://{backend_ip(i)}:{BACKEND_PORT}/" for i in range(1, p.backends + 1)],
            rate=p.rate, duration_s=p.connections / p.rate + 1e-6, arrival="constant",
            timeout_s=p.timeout_s, keepalive=False, seed=run.seed))
        after = {r.cfg.name: r.counters() for r in env.routers}
        run.write_table("routers", [
            {"router": name, "invalid_drops": _packets(after[name], "invalid")
             - _packets(before[name], "invalid")} for name in after])
        run.write_table("flows", [
            {"router": r.cfg.name, "set": which, "saddr": sa, "sport": sp, "daddr": da,
             "dport": dp}
            for r in env.routers if r.cfg.flow_sets for which in ("syn_seen", "invalid_seen")
            for sa, sp, da, dp in r.flows(which)])

    def analyse(self, p: Params, raw: Raw) -> Analysis:
        variants = {}
        for name, data in raw.items():
            records = data.table("client-records")
            outcomes = Counter(r["outcome"] for r in records)
            invalid = {r["router"]: r["invalid_drops"] for r in data.table("routers")}
            summary = data.doc("client-summary")
            variants[name] = {
                "requests": len(records), "broken_fraction": 1 - outcomes["ok"] / len(records),
                "broken": len(records) - outcomes["ok"], "outcomes": dict(outcomes),
                "invalid_drops": invalid, "predicted": predicted_broken(p.routers, name),
                "p99_ms": summary["latency_ms"].get("p99"),
                **where_flows_died(records, data.table("flows") if "flows" in data.tables
                                   else [])}
        return Analysis(variants)

    def claims(self, p: Params, a: Analysis) -> list[C.Claim]:
        n, v = p.routers, a.variants
        out = []
        if why := C.missing_variants(v, "independent"):
            out.append(C.skipped("independent-breaks", "independent hashing breaks (N-1)/N",
                                 why))
        else:
            ind = v["independent"]
            out.append(C.near(
                "independent-breaks",
                f"Hashing each direction independently over N={n} stateful routers breaks "
                f"(N-1)/N = {(n - 1) / n:.3f} of connections (1 - sum of share products)",
                ind["predicted"], ind["broken_fraction"],
                C.binomial_tolerance(ind["predicted"], ind["requests"]),
                note="tolerance: 3 binomial standard errors for the run's connections"))
            out.append(C.at_least(
                "independent-broken-die-elsewhere",
                "Every broken connection was dropped as `ct state invalid` by a router other "
                "than the one that forwarded its SYN (share of broken connections, matched "
                "by 4-tuple from the client's records and the routers' flow sets)",
                1.0, ind["broken_dropped_elsewhere_share"]))
            out.append(C.at_most(
                "independent-survivors-untouched",
                "No connection that completed had a packet dropped as invalid on any router "
                "(completed connections with an invalid drop)",
                0.0, ind["completed_with_invalid"]))
        for name in ("symmetric", "stateless"):
            if why := C.missing_variants(v, name):
                out.append(C.skipped(f"{name}-breaks-none", f"{name}: none break", why))
                continue
            what = ("A symmetric hash on both sides sends both directions through the same "
                    "router" if name == "symmetric"
                    else "Routers without state forward whatever path a packet takes")
            out.append(C.at_most(f"{name}-breaks-none", f"{what}: broken fraction", 0.0,
                                 v[name]["broken_fraction"]))
        if not C.missing_variants(v, "symmetric"):
            out.append(C.at_most(
                "symmetric-no-invalid-drops",
                "With symmetric hashing no router drops a packet as `ct state invalid`",
                0.0, sum(v["symmetric"]["invalid_drops"].values())))
        return out

    def plot(self, folder: Path, result: dict) -> list[Path]:
        v, p = result["variants"], result["params"]
        names = [n for n in VARIANTS if n in v]
        fig, axes = plots.figure(10, 3.8, ncols=2)
        xs = list(range(len(names)))
        colours = [plots.colour(list(VARIANTS), k) for k in names]
        axes[0].bar(xs, [v[k]["broken_fraction"] for k in names], color=colours,
                    label="measured")
        axes[0].scatter(xs, [v[k]["predicted"] for k in names], marker="_", s=600,
                        color="black", zorder=3, label="predicted")
        axes[0].set_xticks(xs, names)
        axes[0].set_ylim(0, 1)
        axes[0].set_ylabel("fraction of connections broken")
        axes[0].set_title(f"N={p['routers']} stateful routers, {p['connections']} connections")
        axes[0].legend(fontsize=8)
        routers = sorted(next(iter(v.values()))["invalid_drops"]) if v else []
        width = 0.8 / max(1, len(names))
        for j, k in enumerate(names):
            axes[1].bar([i + j * width for i in range(len(routers))],
                        [v[k]["invalid_drops"].get(r, 0) for r in routers], width, label=k,
                        color=plots.colour(list(VARIANTS), k))
        axes[1].set_xticks([i + width for i in range(len(routers))], routers)
        axes[1].set_ylabel("packets dropped as ct state invalid")
        axes[1].set_title("Where the replies died")
        axes[1].legend(fontsize=8)
        return [plots.save(fig, folder / "asymmetric.png")]


def where_flows_died(records: list[dict], flows: list[dict]) -> dict:
    """Match each connection (one per record: keep-alive is off) to the routers' flow sets
    by its 4-tuple: which router forwarded its SYN, which dropped its packets as invalid
    (an invalid packet's tuple is taken in either direction)."""
    syn: dict[tuple, set[str]] = {}
    invalid: dict[tuple, set[str]] = {}
    client = client_ip(1)
    for f in flows:
        key = (f["saddr"], f["sport"], f["daddr"], f["dport"])
        if f["saddr"] != client:
            key = (f["daddr"], f["dport"], f["saddr"], f["sport"])
        (syn if f["set"] == "syn_seen" else invalid).setdefault(key, set()).add(f["router"])
    broken = elsewhere = completed_with_invalid = unmatched = 0
    for r in records:
        target = urlsplit(r["target"])
        key = (r["source"] or client, r["sport"], target.hostname, target.port)
        dropped_by = invalid.get(key, set())
        if r["outcome"] == "ok":
            completed_with_invalid += bool(dropped_by)
            continue
        broken += 1
        unmatched += r["sport"] is None or key not in syn
        elsewhere += bool(dropped_by - syn.get(key, set())) and key in syn
    return {"broken_dropped_elsewhere": elsewhere,
            "broken_dropped_elsewhere_share": elsewhere / broken if broken else None,
            "broken_without_syn_record": unmatched,
            "completed_with_invalid": completed_with_invalid if flows else None}


def _packets(counters: dict, name: str) -> int:
    return counters.get(name, {}).get("packets", 0)


EXPERIMENT = AsymmetricRouting()
