"""The lab and what `measure` does in it: backends, NAT nodes, client sources, the phases.

    c1 (+ 8 source addresses) -> s1 -> lb1..lbN (nftables DNAT + masquerade) -> s2 -> b1..bK
    c2 (the SYN flood)

Routing is declared by the topology (TwoTierTopo client_gw / backend_gw): clients reach the
backends' subnet via lb1, backends the clients' via lb1. Only the flood phases use those
routes: there the client addresses a backend and lb1 forwards as a stateful router. In the
NAT phases nothing addresses the other side's subnet: the client sends to the nodes' front
addresses and masquerade makes the backends answer the nodes' back addresses, both on-link.
`setup` checks both with `ip route get` and records them (raw/_lab/routes.json), so the NAT
phases route exactly as they did when the routes were added only before the floods.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.conntrack_exhaustion.model import client_sources
from experiments.conntrack_exhaustion.params import (
    BACKEND_PORT,
    CHURN,
    CLIENT_TIMEOUT_S,
    FLOOD_PACKETS,
    FLOOD_SAMPLE_S,
    FLOODS,
    SMALL_TABLE,
    Params,
    churn_duration_s,
    targets,
    timeout_s,
)
from lblab.driver import LabPlan, Repetition, VariantPlan, VariantRun
from lblab.errors import LabError
from lblab.lab import ControllerSpec, Lab, conntrack_headroom
from lblab.links import add_addresses
from lblab.workloads.client import ClientConfig
from lblab.workloads.floods import syn_flood
from lblab.workloads.handles import start_backend
from lbnodes.l4 import CT_SYSCTL, Backend, L4Config, L4Node, conntrack_object_size
from topologies.two_tier import (
    ROLES,
    TwoTierTopo,
    backend_ip,
    client_ip,
    lb_back_ip,
    lb_front_ip,
)

CONNTRACK_MAX = CT_SYSCTL.format("max")
FLOODER = "c2"


@dataclass
class Env:
    lab: Lab
    nodes: list[L4Node]
    pool: tuple[Backend, ...]
    router: L4Node | None = None
    """lb1 as a stateful router, in the flood phases."""


def lab_plan(p: Params) -> LabPlan:
    return LabPlan(TwoTierTopo(clients=2, lbs=p.nodes, backends=p.backends,
                               client_gw=lb_front_ip(1), backend_gw=lb_back_ip(1)),
                   ControllerSpec(), ROLES)


def setup(lab: Lab, p: Params, rep: Repetition) -> Env:
    names = [f"b{i}" for i in range(1, p.backends + 1)]
    for i, n in enumerate(names, start=1):
        start_backend(lab, n, backend_ip(i), port=BACKEND_PORT, service_ms=p.service_ms,
                      max_requests_per_conn=p.keepalive_requests, seed=rep.seed + i)
    pool = tuple(Backend(n, backend_ip(i), BACKEND_PORT) for i, n in enumerate(names, start=1))
    nodes = [L4Node(lab, L4Config(f"lb{i}", lb_front_ip(i), 80, pool,
                                  backend_ifname=f"lb{i}-eth1")).start()
             for i in range(1, p.nodes + 1)]
    add_addresses(lab, "c1", "c1-eth0", client_sources(p), 16)
    rep.snapshot("kernel", {"slab_objsize": conntrack_object_size(),
                            "conntrack_max": int(Path(CONNTRACK_MAX).read_text()),
                            "conntrack_max_writable": lab.caps.conntrack_max_writable})
    rep.snapshot("routes", check_routes(lab, p))
    return Env(lab, nodes, pool)


def check_routes(lab: Lab, p: Params) -> list[dict]:
    """Every path a phase uses, as `ip route get` resolves it: the NAT phases' on-link, the
    flood phases' via lb1. A LabError if any is not (the lab is not the one planned)."""
    src = client_sources(p)[0]
    paths = [("nat", "c1", lb_front_ip(i), src, None) for i in range(1, p.nodes + 1)]
    paths += [("nat", f"b{j}", lb_back_ip(i), None, None)
              for j in range(1, p.backends + 1) for i in range(1, p.nodes + 1)]
    paths += [("flood", c, backend_ip(j), None, lb_front_ip(1))
              for c in ("c1", FLOODER) for j in range(1, p.backends + 1)]
    paths += [("flood", f"b{j}", client_ip(1), None, lb_back_ip(1))
              for j in range(1, p.backends + 1)]
    rows = []
    for phase, node, dst, source, want in paths:
        argv = ["ip", "-o", "route", "get", dst] + (["from", source] if source else [])
        route = " ".join(lab.run(node, argv).split())
        words = route.split()
        via = words[words.index("via") + 1] if "via" in words else None
        rows.append({"phase": phase, "node": node, "dst": dst, "via": via, "route": route})
        if via != want:
            raise LabError(f"{node} -> {dst}: routed {route!r}; the {phase} phases need "
                           + (f"via {want}" if want else "it on-link"))
    return rows


def prepare(env: Env, p: Params, v: VariantPlan) -> None:
    """NAT phases: every node with the variant's TIME_WAIT and an empty table. Floods: lb1
    as a stateful router (with synproxy for `synproxy`), its table empty."""
    if v.name in FLOODS:
        env.router = L4Node(env.lab, L4Config("lb1", lb_front_ip(1), BACKEND_PORT, env.pool,
                                              mode="router", backend_ifname="lb1-eth1",
                                              synproxy=v.name == "synproxy")).start()
        env.router.flush_conntrack()
        return
    if env.router is not None:
        env.nodes[0].start()  # back to NAT
        env.router = None
    for n in env.nodes:
        n.set_ct_timeouts({"tcp_timeout_time_wait": timeout_s(p, v.name)})
        n.flush_conntrack()


def measure(env: Env, p: Params, v: VariantPlan, run: VariantRun) -> None:
    if v.name in CHURN:
        _churn(env, p, v, run)
    elif v.name == SMALL_TABLE:
        _small_table(env, p, run)
    else:
        _flood(env, p, v, run)


def _churn_client(p: Params, variant: str, seed: int) -> ClientConfig:
    return ClientConfig(targets=[f"http://{lb_front_ip(i)}/"
                                 for i in range(1, targets(p, variant) + 1)],
                        rate=p.rate, duration_s=churn_duration_s(p), arrival="constant",
                        timeout_s=CLIENT_TIMEOUT_S, keepalive=variant == "keep-alive",
                        seed=seed, local_addrs=client_sources(p))


def _churn(env: Env, p: Params, v: VariantPlan, run: VariantRun) -> None:
    used = env.nodes[:targets(p, v.name)]
    run.step(f"{p.rate:g} req/s over {len(used)} node(s) for {churn_duration_s(p):g} s, "
             f"TIME_WAIT {timeout_s(p, v.name)} s")

    def probe() -> dict:
        per_node = [n.conntrack_states() for n in used]
        states = per_node[0]
        return {"entries": sum(states.values()), "time_wait": states.get("TIME_WAIT", 0),
                "established": states.get("ESTABLISHED", 0),
                "max_node_entries": max(sum(st.values()) for st in per_node)}

    before = _node_counters(used)
    run.timeline()  # samples on the client's clock
    with run.sample(probe, p.sample_s):
        run.client("c1", _churn_client(p, v.name, run.seed))
    run.write_doc("nodes", {"before": before, "after": _node_counters(used)})


def _node_counters(nodes: list[L4Node]) -> dict:
    return {n.cfg.name: {"dispatched": n.counters()["dispatched"]["packets"],
                         "conntrack": n.conntrack_stats()} for n in nodes}


def small_table_refusal(env: Env, new_max: int) -> str | None:
    """Why nf_conntrack_max must not be lowered to `new_max` here, or None."""
    if not env.lab.caps.conntrack_max_writable:
        return ("nf_conntrack_max is not writable here (only root in the initial network "
                "namespace may change it)")
    return _headroom(env, new_max)


def _headroom(env: Env, new_max: int) -> str | None:
    """The limit holds in every namespace: the machine's own count (lblab.lab's check) and
    each of this lab's nodes must be well below it."""
    problem = conntrack_headroom(new_max)
    for n in env.nodes:
        if problem:
            break
        found = conntrack_headroom(new_max, n.conntrack_count())
        problem = found and f"in node {n.cfg.name}'s namespace, {found}"
    return problem


def _small_table(env: Env, p: Params, run: VariantRun) -> None:
    why = small_table_refusal(env, p.small_table)
    if why:
        run.step(f"skipped: {why}")
        run.write_doc("skipped", {"why": why})
        return
    node, new = env.nodes[0], str(p.small_table)
    run.step(f"nf_conntrack_max {new} (global, restored after), {p.rate:g} req/s for "
             f"{churn_duration_s(p):g} s")
    before = _node_counters([node])
    run.timeline()
    with env.lab.global_sysctl(CONNTRACK_MAX, new,
                               check=lambda: _headroom(env, p.small_table)) as old:
        with run.sample(lambda: {"entries": node.conntrack_count()}, p.sample_s):
            run.client("c1", _churn_client(p, SMALL_TABLE, run.seed))
    after = Path(CONNTRACK_MAX).read_text().strip()
    run.write_doc("sysctl", {"path": CONNTRACK_MAX, "old": old, "new": new, "after": after})
    run.write_doc("nodes", {"before": before, "after": _node_counters([node])})
    if after != old:
        raise LabError(f"{CONNTRACK_MAX} is {after} after the small-table phase, not its "
                       f"old {old}")


def flood_event(lab: Any, p: Params) -> Callable[[], None]:
    """The flood as a timeline event: hping3 from c2 for `flood_s`. It raises when the flood
    did not run its whole time bound (hping3 failed, or ran out of packets early), so the
    Timeline records it as a problem of the measurement; the timeline document keeps when
    it fired and when it ended."""

    def flood() -> None:
        started = time.monotonic()
        result = syn_flood(lab, FLOODER, backend_ip(1), BACKEND_PORT, count=FLOOD_PACKETS,
                           seconds=p.flood_s, spoof_sources=True)
        if not result.stopped_by_bound:
            raise LabError(f"hping3 in {FLOODER} ended after {time.monotonic() - started:.2f}"
                           f" s, before its {p.flood_s:g} s bound (see its log "
                           f"hping3-{FLOODER}.log)")

    return flood


def _flood(env: Env, p: Params, v: VariantPlan, run: VariantRun) -> None:
    router = env.router
    assert router is not None, "prepare() makes lb1 a router for the flood phases"
    run.step(f"{p.flood_s:g} s of spoofed SYNs at {backend_ip(1)}, {p.legit_rate:g} "
             "legitimate connections/s")
    stats0 = router.conntrack_stats()
    run.timeline().at(0.0, "syn-flood", flood_event(env.lab, p), slack_s=0.5)
    legit = ClientConfig(targets=[f"http://{backend_ip(min(2, p.backends))}:{BACKEND_PORT}/"],
                         rate=p.legit_rate, duration_s=p.flood_s, arrival="constant",
                         timeout_s=CLIENT_TIMEOUT_S, keepalive=False, seed=run.seed)
    with run.sample(lambda: {"entries": router.conntrack_count()}, FLOOD_SAMPLE_S):
        run.client("c1", legit)
    run.write_doc("node", {"conntrack_before": stats0, "conntrack_after":
                           router.conntrack_stats(), "counters": router.counters(),
                           "table_max": int(Path(CONNTRACK_MAX).read_text())})
