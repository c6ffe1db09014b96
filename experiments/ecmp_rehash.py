"""ecmp-rehash: an anycast VIP over N stateful LB nodes; one node is added, later one removed.

Wiring (lblab/anycast.py): c1 -> s1 (the controller spreads VIP flows over the live LB nodes
with the policy under test) -> lb1..lb(N+1) (nftables DNAT + strict conntrack) -> s2 -> b1..bK.
lb(N+1) runs from the start but is outside the membership until the "add" phase.

For each policy, two phases on K fresh long-lived connections:
  add     N live nodes, then lb(N+1) joins
  remove  N live nodes, then lb`remove_index` leaves (it keeps running)
A flow hashed to another node meets a node without its conntrack state and is reset, so the
client sees exactly the flows that moved. Each broken connection reconnects once; the final
round shows where flows land afterwards.

Predictions come from each policy's own algorithm run on ideal uniform hashes for this run's
N (controllers/policies.py): modulo_n moves about N/(N+1) on add; HRW, select15 (HRW over
stable bucket IDs) and Maglev about 1/(N+1) on add and the removed node's 1/N on remove;
hash_threshold and index-based HRW pay for renumbering on a middle removal. Tolerance: three
binomial standard errors for K connections. select13 (OVS dp_hash) is measured as it is.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from controllers.policies import POLICIES, Fabric, moved_fraction, shares
from lblab import claims as C
from lblab import plots
from lblab.experiment import Outcome, RunContext
from lblab.params import param
from lblab.results import write_csv, write_json
from lblab.workloads.conns import ConnsConfig
from lblab.workloads.handles import start_conns
from lbnodes.anycast import anycast_lab, fabric
from topologies.two_tier import ANYCAST_VIP, ROLES, lb_back_ip

NAME = "ecmp-rehash"
TITLE = "ECMP/anycast membership changes over stateful LB nodes"
SUMMARY = ("Adds and removes an LB node behind an anycast VIP under six hash policies and "
           "counts the long-lived connections each change breaks.")
NEEDS = ("root", "ovs_running", "nft", "conntrack")
PHASES = ("add", "remove")


@dataclass(frozen=True)
class Params:
    lbs: int = param(3, "N: LB nodes live before a change", min=2, max=8)
    connections: int = param(600, "K: long-lived connections per phase", min=20, max=3000)
    interval_s: float = param(1.0, "seconds between requests on one connection", min=0.2,
                              max=10)
    policies: tuple[str, ...] = param(POLICIES, "hash policies to compare", choices=POLICIES)
    fields: str = param("5tuple", "hash fields", choices=("5tuple", "src_ip"))
    remove_index: int = param(2, "which node leaves in the remove phase (lb<i>)", min=1,
                              max=8)
    backends: int = param(3, "backends behind the nodes", min=1, max=10)

    def validate(self) -> str | None:
        if self.remove_index > self.lbs:
            return f"remove_index {self.remove_index} is above lbs {self.lbs}"
        if self.fields == "src_ip":
            return "fields=src_ip needs many client addresses; this experiment has one client"
        return None


def quick() -> Params:
    return Params(connections=150, interval_s=0.5)


def _membership(p: Params, policy: str, phase: str) -> tuple[Fabric, Fabric]:
    before = fabric(p.lbs + 1, 1, policy, p.fields)
    if phase == "add":
        return before, before.with_node(f"lb{p.lbs + 1}", active=True)
    return before, before.with_node(f"lb{p.remove_index}", active=False)


def _node_of(peer: str, lbs: int) -> str:
    for i in range(1, lbs + 2):
        if peer == lb_back_ip(i):
            return f"lb{i}"
    return peer or "?"


def analyse(rows: list[dict], t_change: float, lbs: int) -> dict:
    """Broken fraction and node shares from one phase's per-request records."""
    first_gen = [r for r in rows if r["generation"] == "0"]
    alive = {r["conn"] for r in first_gen if r["outcome"] == "ok" and float(r["t"]) < t_change}
    broken = {r["conn"] for r in first_gen if r["outcome"] != "ok"
              and float(r["t"]) >= t_change} & alive
    before: dict[str, str] = {}
    after: dict[str, str] = {}
    for r in sorted(rows, key=lambda r: float(r["t"])):
        if r["outcome"] != "ok" or r["conn"] not in alive:
            continue
        node = _node_of(r["peer"], lbs)
        if float(r["t"]) < t_change:
            before[r["conn"]] = node
        else:
            after[r["conn"]] = node
    moved_alive = sum(1 for c in alive - broken if c in after and after[c] != before.get(c))

    def share(m: dict[str, str]) -> dict[str, float]:
        counts = Counter(m.values())
        return {k: counts[k] / len(m) for k in sorted(counts)} if m else {}

    return {"alive": len(alive), "broken": len(broken),
            "broken_fraction": len(broken) / len(alive) if alive else None,
            "survivors_moved": moved_alive, "share_before": share(before),
            "share_after": share(after),
            "failed_before_change": sum(1 for r in first_gen if r["outcome"] != "ok"
                                        and float(r["t"]) < t_change)}


def run(ctx: RunContext) -> Outcome:
    p: Params = ctx.params
    variants: dict[str, dict] = {}
    summary_rows: list[dict] = []
    ctx.step(f"bringing up {p.lbs + 1} LB nodes behind the anycast VIP")
    with anycast_lab(ctx.lab_name, lbs=p.lbs + 1, spares=1, backends=p.backends,
                     policy=p.policies[0], fields=p.fields, service_ms=1,
                     log_dir=ctx.folder.path("logs")) as any_lab:
        topology = plots.topology_of(any_lab.lab.topo, ROLES)
        for policy in p.policies:
            for phase in PHASES:
                ctx.step(f"{policy}: {phase} with {p.connections} connections")
                before, after = _membership(p, policy, phase)
                any_lab.api("POST", "/fabric/policy", {"policy": policy, "fields": p.fields})
                _set_membership(any_lab, before)
                any_lab.flush_state()
                cfg = ConnsConfig(host=ANYCAST_VIP, connections=p.connections,
                                  interval_s=p.interval_s, timeout_s=min(1.0, p.interval_s),
                                  max_s=120)
                prober = start_conns(any_lab.lab, "c1", cfg, ctx.folder.path("raw"),
                                     f"{policy}-{phase}")
                prober.wait_ready(timeout=30 + p.connections / cfg.open_rate)
                time.sleep(p.interval_s)
                t_change = time.time()
                _set_membership(any_lab, after)
                time.sleep(2 * p.interval_s + cfg.timeout_s)
                rows = prober.stop()
                result = analyse(rows, t_change, p.lbs)
                result["predicted"] = moved_fraction(before, after)
                result["share_steady_after"] = shares(after)
                variants[f"{policy}/{phase}"] = result
                summary_rows.append({"policy": policy, "phase": phase,
                                     **{k: v for k, v in result.items()
                                        if not isinstance(v, dict)}})
        errors = any_lab.lab.controller_errors
    write_csv(ctx.folder.path("broken.csv"), summary_rows)
    write_json(ctx.folder.path("snapshot.json"), {"controller_errors": errors})
    notes = [f"select13 (OVS dp_hash, positional bucket IDs) is measured, not predicted: "
             f"add {variants.get('select13/add', {}).get('broken_fraction')}, remove "
             f"{variants.get('select13/remove', {}).get('broken_fraction')}."
             if "select13" in p.policies else "",
             "Maglev rebuilds its table on a change; a few survivor slots may move (NSDI 2016, "
             "3.4), so its prediction is the table's own difference, slightly above 1/(N+1).",
             "Published anchors: Maglev uses a prime table M > 100 x N; Beamer (NSDI 2018) "
             "keeps moved flows alive by daisy-chaining to the previous owner, which no "
             "policy here does."]
    return Outcome(variants=variants, claims=_claims(p, variants), notes=[n for n in notes if n],
                   topology=topology)


def _set_membership(any_lab, target: Fabric) -> None:
    for node in target.nodes:
        any_lab.api("POST", "/fabric/nodes/" + ("add" if node.active else "remove"),
                    {"name": node.name})


def _claims(p: Params, v: dict) -> list[C.Claim]:
    n = p.lbs
    textbook = {("modulo_n", "add"): f"about N/(N+1) = {n / (n + 1):.3f}",
                ("hrw", "add"): f"about 1/(N+1) = {1 / (n + 1):.3f}",
                ("select15", "add"): f"about 1/(N+1) = {1 / (n + 1):.3f}",
                ("maglev", "add"): f"about 1/(N+1) = {1 / (n + 1):.3f}",
                ("select15", "remove"): f"the removed node's 1/N = {1 / n:.3f}",
                ("maglev", "remove"): f"about the removed node's 1/N = {1 / n:.3f}"}
    claims = []
    for key, result in v.items():
        policy, phase = key.split("/")
        if result["predicted"] is None:
            continue
        words = textbook.get((policy, phase), "as its algorithm predicts")
        change = f"adding lb{n + 1}" if phase == "add" else f"removing lb{p.remove_index}"
        claims.append(C.near(
            f"{policy}-{phase}",
            f"{policy}: {change} to N={n} breaks {words} of long-lived connections",
            result["predicted"], result["broken_fraction"],
            C.binomial_tolerance(result["predicted"], result["alive"] or p.connections),
            note="tolerance: 3 binomial standard errors for the connections alive at the "
                 "change"))
    survivors = [r["survivors_moved"] for r in v.values()]
    claims.append(C.at_most("stateful-nodes-reset-moved-flows",
                            "Every connection that moved to another node broke (stateful nodes "
                            "keep none alive): surviving connections that changed node",
                            0, sum(survivors)))
    return claims


def plot(folder: Path) -> list[Path]:
    result = json.loads((folder / "result.json").read_text())
    v, p = result["variants"], result["params"]
    policies = [pol for pol in p["policies"] if f"{pol}/add" in v]
    made = []
    fig, axes = plots.figure(10, 4, ncols=2)
    for ax, phase in zip(axes, PHASES, strict=True):
        xs = range(len(policies))
        measured = [v[f"{pol}/{phase}"]["broken_fraction"] or 0 for pol in policies]
        predicted = [v[f"{pol}/{phase}"]["predicted"] for pol in policies]
        ax.bar(list(xs), measured, 0.6, color=[plots.colour(list(POLICIES), pol)
                                               for pol in policies], label="measured")
        for x, pred, pol in zip(xs, predicted, policies, strict=True):
            if pred is not None:
                alive = v[f"{pol}/{phase}"]["alive"] or p["connections"]
                tol = C.binomial_tolerance(pred, alive)
                ax.errorbar(x, pred, yerr=tol, fmt="_", color="black", markersize=18,
                            capsize=4, label="predicted ± 3 SE" if x == 0 else None)
        ax.set_xticks(list(xs), policies, rotation=25)
        ax.set_ylim(0, 1)
        ax.set_ylabel("fraction of connections broken")
        change = f"add lb{p['lbs'] + 1}" if phase == "add" else f"remove lb{p['remove_index']}"
        ax.set_title(f"{change} (N={p['lbs']}, K={p['connections']})")
        ax.legend(fontsize=8)
    made.append(plots.save(fig, folder / "broken-fraction.png"))

    fig, axes = plots.figure(3.0 * len(policies), 3.4, ncols=len(policies))
    axes = axes if len(policies) > 1 else [axes]
    nodes = [f"lb{i}" for i in range(1, p["lbs"] + 2)]
    for ax, pol in zip(axes, policies, strict=True):
        res = v[f"{pol}/add"]
        xs = range(len(nodes))
        ax.bar([x - 0.2 for x in xs], [res["share_before"].get(n, 0) for n in nodes], 0.4,
               label="before", color="#9ab")
        ax.bar([x + 0.2 for x in xs], [res["share_after"].get(n, 0) for n in nodes], 0.4,
               label="after: survivors + reconnected", color=plots.colour(list(POLICIES), pol))
        steady = res.get("share_steady_after") or {}
        if steady:
            ax.scatter([x + 0.2 for x in xs], [steady.get(n, 0) for n in nodes], marker="_",
                       s=300, color="black", zorder=3,
                       label="new connections' share (model)")
        ax.set_xticks(list(xs), nodes)
        ax.set_title(pol)
        ax.set_ylim(0, 0.7)
    axes[0].set_ylabel("share of long-lived connections")
    fig.suptitle(f"Adding lb{p['lbs'] + 1}: only the connections that broke reconnect, so the "
                 "new node starts under-loaded", fontsize=10)
    axes[0].legend(fontsize=8)
    made.append(plots.save(fig, folder / "node-share.png"))
    return made


