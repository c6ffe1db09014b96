"""cgnat-skew: many users behind a few CGNAT addresses, balanced at L4 and L7.

Wiring (topologies/cgnat.py): users on u1..uK (one source address each) behind CGNAT nodes
g1..gK (masquerade to one public address each), direct users on c1 -> s1 -> l4 (nftables
NAT) and l7 (HAProxy) -> s2 -> b1..bB (capacity model: W workers, `service_ms`).
By default one CGNAT holds 40 % of the users, a second 20 %, the rest are direct. Every user
sends the same request rate; each request is a new connection from the user's address.

Policies:
  L7  source (hash of the client address), roundrobin, leastconn, random(2) (power of two
      choices), bounded (consistent hashing of the source with hash-balance-factor 125),
      weighted (roundrobin, weights `weights`)
  L4  jhash-saddr (source address), jhash-sport (source address and port), numgen
  ECMP the fabric controller spreading an anycast VIP over `anycast` stateful L4 nodes
      (select15 over the source address, or over the 5-tuple); the "backends" are the nodes

Metrics per policy: per-backend share of requests, max/mean, Jain's fairness index, p99 per
backend, stickiness (the share of a user's requests that land on its most-used backend).

Claims (from this run's parameters): with source-address hashing the busiest backend carries
at least the biggest CGNAT's share of the requests; 5-tuple hashing, power of two choices,
round robin and bounded loads keep max/mean at or below 1.25; weights are respected within
10 %.
"""

from __future__ import annotations

import json
import statistics
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from controllers.policies import Fabric, Node
from lblab import claims as C
from lblab import plots
from lblab.experiment import Outcome, RunContext
from lblab.lab import ControllerSpec, Lab
from lblab.links import add_addresses
from lblab.params import param
from lblab.results import write_csv
from lblab.workloads.client import ClientConfig
from lblab.workloads.handles import run_client, start_backend
from lbnodes.cgnat import start_cgnat
from lbnodes.l4 import Backend, L4Config, L4Node
from lbnodes.l7 import L7Config, L7Node, Server
from topologies.cgnat import (
    ANYCAST_VIP,
    ANYCAST_VMAC,
    ROLES,
    CgnatTopo,
    anycast_back_ip,
    anycast_mac,
    anycast_port,
    cgnat_inside_ip,
    user_ip,
)

NAME = "cgnat-skew"
TITLE = "CGNAT skew: source hashing vs 5-tuple, power of two choices, bounded loads"
SUMMARY = ("Puts 40 % of the users behind one CGNAT address and compares L4 and L7 balancing "
           "policies by per-backend share, max/mean, Jain's index and stickiness.")
NEEDS = ("root", "ovs_running", "nft", "haproxy")
L7_POLICIES = ("source", "roundrobin", "leastconn", "random(2)", "bounded", "weighted")
L4_POLICIES = ("jhash-saddr", "jhash-sport", "numgen")
ECMP_POLICIES = ("src_ip", "5tuple")
POLICIES = (tuple(f"ecmp:{p}" for p in ECMP_POLICIES) + tuple(f"l4:{p}" for p in L4_POLICIES)
            + tuple(f"l7:{p}" for p in L7_POLICIES))
SPREADING = ("ecmp:5tuple", "l7:roundrobin", "l7:random(2)", "l7:bounded", "l4:jhash-sport",
             "l4:numgen")
SOURCE_HASHED = ("ecmp:src_ip", "l7:source", "l4:jhash-saddr")
MAX_OVER_MEAN = 1.25


@dataclass(frozen=True)
class Params:
    users: int = param(400, "users (distinct source addresses)", min=20, max=2000)
    cgnat_shares: tuple[float, ...] = param((0.4, 0.2), "share of users behind each CGNAT "
                                            "(the rest are direct)", min=0.01, max=0.95)
    backends: int = param(4, "backends", min=2, max=12)
    anycast: int = param(3, "anycast L4 nodes for the ECMP layer", min=2, max=8)
    rate: float = param(200.0, "requests per second, all users together", min=10, max=1000)
    seconds: float = param(8.0, "seconds of load per policy", min=1, max=600)
    service_ms: float = param(40.0, "mean backend service time (concurrency for leastconn "
                              "and bounded loads to act on)", min=0, max=1000)
    weights: tuple[int, ...] = param((3, 1, 1, 1), "server weights for the weighted policy",
                                     min=1, max=256)
    policies: tuple[str, ...] = param(POLICIES, "policies to compare", choices=POLICIES)
    sweep: tuple[float, ...] = param((0.1, 0.25, 0.5, 0.75), "biggest-CGNAT shares for the "
                                     "fairness sweep (empty: none)", min=0.0, max=1.0)
    sweep_policies: tuple[str, ...] = param(("l7:source", "l7:bounded", "l7:roundrobin"),
                                            "policies swept", choices=POLICIES)

    def validate(self) -> str | None:
        if any(x.startswith("ecmp:") for x in self.sweep_policies) and self.sweep:
            return "the sweep runs L4/L7 policies only"
        if sum(self.cgnat_shares) >= 1:
            return "cgnat_shares must add up to less than 1 (some users are direct)"
        if len(self.weights) != self.backends:
            return f"weights needs one value per backend ({self.backends})"
        return None


def quick() -> Params:
    return Params(seconds=2.5, users=200, sweep=())


def user_groups(p: Params) -> dict[str, list[str]]:
    """Host -> its users' addresses: u1..uK behind CGNATs, c1 direct."""
    groups: dict[str, list[str]] = {}
    placed = 0
    for k, share in enumerate(p.cgnat_shares, start=1):
        n = round(share * p.users)
        groups[f"u{k}"] = [user_ip(k, j) for j in range(1, n + 1)]
        placed += n
    groups["c1"] = [user_ip(0, j) for j in range(1, p.users - placed + 1)]
    return groups


def run(ctx: RunContext) -> Outcome:
    p: Params = ctx.params
    ecmp = any(x.startswith("ecmp:") for x in p.policies)
    topo = CgnatTopo(cgnats=len(p.cgnat_shares), backends=p.backends,
                     anycast=p.anycast if ecmp else 0)
    spec = ControllerSpec(config={"fabrics": [_fabric(p).to_json()]}) if ecmp else None
    groups = user_groups(p)
    servers = tuple(Server(f"b{i}", f"10.1.1.{i}", 8080) for i in range(1, p.backends + 1))
    variants: dict[str, dict] = {}
    share_rows: list[dict] = []
    ctx.step(f"{p.users} users: " + ", ".join(f"{h} {len(a)}" for h, a in groups.items()))
    with Lab(ctx.lab_name, topo, controller=spec, log_dir=ctx.folder.path("logs")) as lab:
        for k in range(1, len(p.cgnat_shares) + 1):
            start_cgnat(lab, f"g{k}", f"g{k}-eth0")
            add_addresses(lab, f"u{k}", f"u{k}-eth0", groups[f"u{k}"], 15)
            lab.run(f"u{k}", ["ip", "route", "add", "default", "via", cgnat_inside_ip(k)])
        add_addresses(lab, "c1", "c1-eth0", groups["c1"], 16)
        for i in range(1, p.backends + 1):
            start_backend(lab, f"b{i}", f"10.1.1.{i}", port=8080, service_ms=p.service_ms,
                          workers=64, seed=ctx.seed + i)
        pool = tuple(Backend(s.name, s.ip, s.port) for s in servers)
        for i in range(1, (p.anycast if ecmp else 0) + 1):
            L4Node(lab, L4Config(f"a{i}", ANYCAST_VIP, 80, pool, backend_ifname=f"a{i}-eth1",
                                 vip_on_loopback=True)).start()
        l7: L7Node | None = None
        for policy in p.policies:
            layer, name = policy.split(":")
            ctx.step(f"{policy}: {p.rate:g} req/s for {p.seconds:g} s")
            if layer == "ecmp":
                lab.controller_api_call("POST", "/fabric/policy",
                                        {"policy": "select15", "fields": name})
                target = ANYCAST_VIP
            elif layer == "l7":
                if l7 is not None:
                    l7.stop()
                l7 = L7Node(lab, _l7_config(p, name, servers)).start()
                target = "10.0.0.2"
            else:
                L4Node(lab, _l4_config(p, name, servers)).start()
                target = "10.0.0.1"
            records = _load(ctx, lab, p, groups, target, policy)
            if layer == "ecmp":  # the units the fabric spreads over are the anycast nodes
                nodes = {anycast_back_ip(i): f"a{i}" for i in range(1, p.anycast + 1)}
                records = [dict(r, backend=nodes.get(r["peer"], r["peer"])) for r in records]
            variants[policy] = _metrics(p, records, groups, _units(p, layer))
        if l7 is not None:
            l7.stop()
            share_rows += [{"policy": policy, "backend": b, "share": s}
                           for b, s in variants[policy]["shares"].items()]
        sweep_rows = _sweep(ctx, lab, p, groups, servers) if p.sweep else []
    write_csv(ctx.folder.path("shares.csv"), share_rows)
    if sweep_rows:
        write_csv(ctx.folder.path("sweep.csv"), sweep_rows)
    return Outcome(variants=variants, claims=_claims(p, variants),
                   topology=plots.topology_of(topo, ROLES))


def sweep_population(groups: dict[str, list[str]], share: float) -> dict[str, list[str]]:
    """A population of fixed size in which `share` of the users are behind CGNAT u1: drawn
    from u1's users and c1's direct users, so the lab needs no rebuild between points."""
    size = min(len(groups["u1"]), len(groups["c1"]))
    behind = round(share * size)
    return {"u1": groups["u1"][:behind], "c1": groups["c1"][:size - behind]}


def _sweep(ctx: RunContext, lab: Lab, p: Params, groups: dict[str, list[str]],
           servers: tuple) -> list[dict]:
    rows = []
    l7: L7Node | None = None
    for policy in p.sweep_policies:
        layer, name = policy.split(":")
        if layer == "l7":
            l7 = L7Node(lab, _l7_config(p, name, servers)).start()
            target = "10.0.0.2"
        else:
            L4Node(lab, _l4_config(p, name, servers)).start()
            target = "10.0.0.1"
        for share in p.sweep:
            ctx.step(f"sweep {policy}: {share:.0%} of the users behind one CGNAT")
            population = sweep_population(groups, share)
            users = sum(len(a) for a in population.values())
            point = Params(**{**vars(p), "users": users})
            records = _load(ctx, lab, point, population, target, f"sweep-{policy}-{share}")
            m = _metrics(p, records, population, _units(p, layer))
            rows.append({"policy": policy, "cgnat_share": share, "jain": m["jain"],
                         "max_over_mean": m["max_over_mean"], "stickiness": m["stickiness"]})
        if l7 is not None:
            l7.stop()
            l7 = None
    return rows


def _fabric(p: Params) -> Fabric:
    nodes = tuple(Node(f"a{i}", anycast_port(i), anycast_mac(i), bucket_id=i)
                  for i in range(1, p.anycast + 1))
    return Fabric(1, ANYCAST_VIP, ANYCAST_VMAC, nodes=nodes, policy="select15",
                  fields="src_ip")


def _units(p: Params, layer: str) -> list[str]:
    if layer == "ecmp":
        return [f"a{i}" for i in range(1, p.anycast + 1)]
    return [f"b{i}" for i in range(1, p.backends + 1)]


def _l7_config(p: Params, name: str, servers: tuple) -> L7Config:
    base = {"name": "l7", "bind_ip": "10.0.0.2", "port": 80}
    if name == "weighted":
        weighted = tuple(Server(s.name, s.ip, s.port, w) for s, w in
                         zip(servers, p.weights, strict=True))
        return L7Config(servers=weighted, balance="roundrobin", **base)
    if name == "bounded":
        return L7Config(servers=servers, balance="source", hash_type="consistent",
                        hash_balance_factor=125, **base)
    return L7Config(servers=servers, balance=name, **base)


def _l4_config(p: Params, name: str, servers: tuple) -> L4Config:
    pool = tuple(Backend(s.name, s.ip, s.port) for s in servers)
    dispatch, fields = {"jhash-saddr": ("jhash", "saddr"), "jhash-sport": ("jhash", "saddr_sport"),
                        "numgen": ("numgen", "saddr")}[name]
    return L4Config("l4", "10.0.0.1", 80, pool, backend_ifname="l4-eth1", dispatch=dispatch,
                    hash_fields=fields)


def _load(ctx: RunContext, lab: Lab, p: Params, groups: dict[str, list[str]], target: str,
          policy: str) -> list[dict]:
    """Every user host runs its own open-loop client at its users' share of the rate."""
    results: dict[str, list[dict]] = {}
    errors: list[BaseException] = []
    tag = policy.replace(":", "-").replace("(", "").replace(")", "")

    def one(host: str, addrs: list[str]) -> None:
        cfg = ClientConfig(targets=[f"http://{target}/"], rate=p.rate * len(addrs) / p.users,
                           duration_s=p.seconds, arrival="poisson", timeout_s=5.0,
                           keepalive=False, local_addrs=addrs, seed=ctx.seed)
        try:
            records, _ = run_client(lab, host, cfg, ctx.folder.path("raw"), f"{tag}-{host}")
            results[host] = records
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(h, a)) for h, a in groups.items() if a]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [dict(r, host=h) for h, rows in results.items() for r in rows]


def jain(values: list[float]) -> float:
    """Jain's fairness index: 1 when all equal, 1/n when one takes everything."""
    total = sum(values)
    squares = sum(v * v for v in values)
    return total * total / (len(values) * squares) if squares else 0.0


def _metrics(p: Params, records: list[dict], groups: dict[str, list[str]],
             names: list[str]) -> dict:
    ok = [r for r in records if r["outcome"] == "ok"]
    counts = Counter(r["backend"] for r in ok)
    per = [counts.get(n, 0) for n in names]
    mean = statistics.fmean(per) if per else 0
    by_user: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for r in ok:
        by_user[(r["host"], r["source"])][r["backend"]] += 1
    sticky = [max(c.values()) / sum(c.values()) for c in by_user.values() if sum(c.values())]
    lat: dict[str, list[float]] = defaultdict(list)
    for r in ok:
        lat[r["backend"]].append(float(r["latency_ms"]))
    return {
        "requests": len(records), "ok": len(ok),
        "shares": {n: counts.get(n, 0) / len(ok) if ok else 0 for n in names},
        "max_over_mean": max(per) / mean if mean else None,
        "jain": jain(per), "stickiness": statistics.fmean(sticky) if sticky else None,
        "p99_ms_per_backend": {n: sorted(v)[int(0.99 * (len(v) - 1))] for n, v in lat.items()},
        "biggest_cgnat_request_share": (sum(1 for r in ok if r["host"] == "u1") / len(ok)
                                        if ok else None),
    }


def _claims(p: Params, v: dict) -> list[C.Claim]:
    out = []
    big = p.cgnat_shares[0]
    for policy in SOURCE_HASHED:
        if policy in v:
            out.append(C.at_least(
                f"{policy}-pins-the-cgnat",
                f"{policy}: the busiest backend carries at least the biggest CGNAT's "
                f"{big:.0%} of the requests (a whole CGNAT is one source address)",
                big, max(v[policy]["shares"].values()),
                note="predicted: the CGNAT's share of users (every user sends at one rate); "
                     f"measured request share of u1: {v[policy]['biggest_cgnat_request_share']}"))
    for policy in SPREADING:
        if policy in v:
            out.append(C.at_most(
                f"{policy}-max-over-mean",
                f"{policy} keeps the busiest backend within {MAX_OVER_MEAN} x the mean",
                MAX_OVER_MEAN, v[policy]["max_over_mean"]))
    if "l7:weighted" in v:
        w0 = p.weights[0] / sum(p.weights)
        out.append(C.within("l7:weighted-respected",
                            f"Weights {list(p.weights)}: b1 gets {p.weights[0]}/{sum(p.weights)} "
                            "of the requests", w0, v["l7:weighted"]["shares"]["b1"], rel=0.10))
    return out


def plot(folder: Path) -> list[Path]:
    result = json.loads((folder / "result.json").read_text())
    v, p = result["variants"], result["params"]
    names = [k for k in POLICIES if k in v]
    made = []
    fig, ax = plots.figure(11, 4.2)
    bottom = [0.0] * len(names)
    ranked = {n: sorted(v[n]["shares"].values(), reverse=True) for n in names}
    for i in range(max(len(r) for r in ranked.values())):
        vals = [ranked[n][i] if i < len(ranked[n]) else 0 for n in names]
        ax.bar(range(len(names)), vals, bottom=bottom, color=plots.PALETTE[i % 8],
               label="busiest" if i == 0 else f"#{i + 1}", edgecolor="white")
        bottom = [x + y for x, y in zip(bottom, vals, strict=True)]
    ax.axhline(p["cgnat_shares"][0], color="black", ls="--", lw=1,
               label=f"biggest CGNAT {p['cgnat_shares'][0]:.0%}")
    ax.set_xticks(range(len(names)), names, rotation=25, fontsize=8)
    ax.set_ylabel("share of requests, busiest unit first")
    ax.set_title(f"{p['users']} users, CGNAT shares {p['cgnat_shares']}: {p['backends']} "
                 f"backends (L4, L7), {p['anycast']} anycast nodes (ECMP)")
    ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    made.append(plots.save(fig, folder / "shares.png"))

    sweep = folder / "sweep.csv"
    if sweep.exists():
        from lblab.results import read_csv

        rows = read_csv(sweep)
        fig, ax = plots.figure(7.5, 4.2)
        for i, policy in enumerate(dict.fromkeys(r["policy"] for r in rows)):
            pts = [(float(r["cgnat_share"]), float(r["jain"])) for r in rows
                   if r["policy"] == policy]
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=policy,
                    color=plots.PALETTE[i % 8])
        ax.set_xlabel("share of users behind the biggest CGNAT")
        ax.set_ylabel("Jain's fairness index over backends")
        ax.set_ylim(0, 1.05)
        ax.set_title("Fairness as one CGNAT grows")
        ax.legend(fontsize=8)
        made.append(plots.save(fig, folder / "fairness-sweep.png"))

    fig, ax = plots.figure(8.5, 4.5)
    markers = "osD^vP*Xh"
    for i, n in enumerate(names):
        ax.scatter(v[n]["stickiness"], v[n]["jain"], s=90, color=plots.PALETTE[i % 8],
                   marker=markers[i % len(markers)], label=n, alpha=0.85)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_xlabel("stickiness (share of a user's requests on its main backend)")
    ax.set_ylabel("Jain's fairness index over backends")
    ax.set_title("The stickiness / fairness trade-off")
    made.append(plots.save(fig, folder / "stickiness-fairness.png"))
    return made
