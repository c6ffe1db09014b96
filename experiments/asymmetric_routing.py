"""asymmetric-routing: ECMP over N stateful routers, each direction hashed on its own.

    c1 --(gw 10.0.0.254)-- s1 ==ECMP==> lb1..lbN (routers) <==ECMP== s2 --(gw 10.1.0.254)-- b1..bK

The controller answers ARP for a virtual gateway on each side and hashes the traffic sent to
it over the routers: s1 spreads client->server packets, s2 spreads server->client packets.
The routers forward between their legs; in the stateful variants conntrack drops any packet
of a flow the router never saw (strict: no mid-stream pickup).

Variants:
  independent  both sides hash the 5-tuple as it appears (select15): the return path of a
               flow lands on a router chosen independently of its forward path
  symmetric    both sides use the same symmetric hash (multipath symmetric_l3l4, same
               router order): a flow's two directions meet the same router
  stateless    independent hashing, but the routers keep no state (plain forwarding)

Claims: independent hashing breaks 1 - sum_i f_i r_i of connections, where f and r are the
two sides' shares (with equal shares: (N-1)/N); symmetric hashing breaks none; stateless
routers break none. Each router's `ct state invalid` counter shows where packets died.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from controllers.policies import Fabric, Node, shares
from lblab import claims as C
from lblab import plots
from lblab.experiment import Outcome, RunContext
from lblab.lab import ControllerSpec, Lab
from lblab.params import param
from lblab.results import write_csv
from lblab.workloads.client import ClientConfig
from lblab.workloads.handles import run_client, start_backend
from lbnodes.l4 import Backend, L4Config, L4Node
from topologies.two_tier import ROLES, TwoTierTopo, backend_ip, lb_back_mac, lb_edge_port, lb_mac

NAME = "asymmetric-routing"
TITLE = "Asymmetric ECMP through stateful routers"
SUMMARY = ("Hashes each direction of ECMP over N stateful routers independently or "
           "symmetrically and counts the connections whose reply meets a router without state.")
NEEDS = ("root", "ovs_running", "nft", "conntrack")
VARIANTS = ("symmetric", "stateless", "independent")
"""Independent runs last: the servers keep retransmitting SYN-ACKs for the half-open
connections it breaks (for about a minute), which would count as invalid drops in a later
variant."""
GW_FRONT, GW_FRONT_MAC = "10.0.0.254", "02:00:00:00:00:fe"
GW_BACK, GW_BACK_MAC = "10.1.0.254", "02:00:00:00:01:fe"
POLICY = {"independent": ("select15", "5tuple"), "symmetric": ("hrw", "symmetric"),
          "stateless": ("select15", "5tuple")}


@dataclass(frozen=True)
class Params:
    routers: int = param(2, "N: stateful routers in parallel", min=2, max=8)
    connections: int = param(400, "short connections (one request each) per variant", min=20,
                             max=5000)
    rate: float = param(100.0, "new connections per second", min=10, max=500)
    timeout_s: float = param(1.5, "client timeout (a broken connection waits this long)",
                             min=0.2, max=10)
    backends: int = param(3, "servers", min=1, max=10)


def quick() -> Params:
    return Params(connections=200)


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


def run(ctx: RunContext) -> Outcome:
    p: Params = ctx.params
    topo = TwoTierTopo(clients=1, lbs=p.routers, backends=p.backends)
    front, back = fabrics(p.routers, "independent")
    spec = ControllerSpec(config={"fabrics": [front.to_json(), back.to_json()]})
    variants: dict[str, dict] = {}
    rows: list[dict] = []
    ctx.step(f"bringing up {p.routers} routers between client and servers")
    with Lab(ctx.lab_name, topo, controller=spec, log_dir=ctx.folder.path("logs")) as lab:
        lab.run("c1", ["ip", "route", "add", "10.1.0.0/16", "via", GW_FRONT])
        servers = []
        for i in range(1, p.backends + 1):
            lab.run(f"b{i}", ["ip", "route", "add", "10.0.0.0/16", "via", GW_BACK])
            servers.append(start_backend(lab, f"b{i}", backend_ip(i), port=8080, service_ms=1))
        pool = tuple(Backend(f"b{i}", backend_ip(i), 8080) for i in range(1, p.backends + 1))
        for variant in VARIANTS:
            ctx.step(f"{variant}: {p.connections} connections at {p.rate:g}/s")
            mode = "forward" if variant == "stateless" else "router"
            routers = [L4Node(lab, L4Config(f"lb{i}", "10.0.0.1", 8080, pool,
                                            backend_ifname=f"lb{i}-eth1", mode=mode,
                                            tcp_loose=False)).start()
                       for i in range(1, p.routers + 1)]
            policy, fields = POLICY[variant]
            for dpid in (1, 2):
                lab.controller_api_call("POST", "/fabric/policy",
                                        {"dpid": dpid, "policy": policy, "fields": fields})
            for r in routers:
                r.flush_conntrack()
            before = {r.cfg.name: r.counters() for r in routers}
            cfg = ClientConfig(targets=[f"http://{backend_ip(i)}:8080/"
                                        for i in range(1, p.backends + 1)],
                               rate=p.rate, duration_s=p.connections / p.rate + 1e-6,
                               arrival="constant", timeout_s=p.timeout_s, keepalive=False,
                               seed=ctx.seed)
            records, summary = run_client(lab, "c1", cfg, ctx.folder.path("raw"), variant)
            after = {r.cfg.name: r.counters() for r in routers}
            invalid = {name: _delta(before[name], after[name], "invalid") for name in after}
            outcomes = Counter(r["outcome"] for r in records)
            broken = 1 - outcomes.get("ok", 0) / summary["requests"]
            variants[variant] = {"requests": summary["requests"], "broken_fraction": broken,
                                 "outcomes": dict(outcomes), "invalid_drops": invalid,
                                 "predicted": predicted_broken(p.routers, variant),
                                 "p99_ms": summary["latency_ms"].get("p99")}
            rows += [{"variant": variant, "router": name, "invalid_drops": n}
                     for name, n in invalid.items()]
        errors = lab.controller_errors
    write_csv(ctx.folder.path("invalid-drops.csv"), rows)
    notes = [f"controller errors: {errors!r}"] if errors else []
    return Outcome(variants=variants, claims=_claims(p, variants), notes=notes,
                   topology=plots.topology_of(topo, ROLES))


def _delta(before: dict, after: dict, name: str) -> int:
    return after.get(name, {}).get("packets", 0) - before.get(name, {}).get("packets", 0)


def _claims(p: Params, v: dict) -> list[C.Claim]:
    n = p.routers
    ind = v["independent"]
    return [
        C.near("independent-breaks",
               f"Hashing each direction independently over N={n} stateful routers breaks "
               f"(N-1)/N = {(n - 1) / n:.3f} of connections (1 - sum of share products)",
               ind["predicted"], ind["broken_fraction"],
               C.binomial_tolerance(ind["predicted"], ind["requests"]),
               note="tolerance: 3 binomial standard errors for the run's connections"),
        C.at_most("symmetric-breaks-none",
                  "A symmetric hash on both sides sends both directions through the same "
                  "router: broken fraction", 0.0, v["symmetric"]["broken_fraction"]),
        C.at_most("stateless-breaks-none",
                  "Routers without state forward whatever path a packet takes: broken "
                  "fraction", 0.0, v["stateless"]["broken_fraction"]),
        C.at_least("independent-drops-are-invalid",
                   "The broken connections died as `ct state invalid` drops on the routers "
                   "(drops counted, at least one per broken connection)",
                   round(ind["broken_fraction"] * ind["requests"]),
                   sum(ind["invalid_drops"].values())),
    ]


def plot(folder: Path) -> list[Path]:
    result = json.loads((folder / "result.json").read_text())
    v, p = result["variants"], result["params"]
    made = []
    fig, axes = plots.figure(10, 3.8, ncols=2)
    xs = range(len(VARIANTS))
    axes[0].bar(list(xs), [v[k]["broken_fraction"] for k in VARIANTS],
                color=[plots.colour(list(VARIANTS), k) for k in VARIANTS], label="measured")
    axes[0].scatter(list(xs), [v[k]["predicted"] for k in VARIANTS], marker="_", s=600,
                    color="black", zorder=3, label="predicted")
    axes[0].set_xticks(list(xs), VARIANTS)
    axes[0].set_ylim(0, 1)
    axes[0].set_ylabel("fraction of connections broken")
    axes[0].set_title(f"N={p['routers']} stateful routers, {p['connections']} connections")
    axes[0].legend(fontsize=8)
    routers = sorted(v["independent"]["invalid_drops"])
    width = 0.8 / len(VARIANTS)
    for j, k in enumerate(VARIANTS):
        axes[1].bar([i + j * width for i in range(len(routers))],
                    [v[k]["invalid_drops"][r] for r in routers], width, label=k,
                    color=plots.colour(list(VARIANTS), k))
    axes[1].set_xticks([i + width for i in range(len(routers))], routers)
    axes[1].set_ylabel("packets dropped as ct state invalid")
    axes[1].set_title("Where the replies died")
    axes[1].legend(fontsize=8)
    made.append(plots.save(fig, folder / "asymmetric.png"))
    return made
