"""cgnat-skew's lab: the topology, the nodes, each variant's LB configuration, and the load
(one open-loop client per user host, all at once)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from controllers.policies import Fabric, Node
from lblab.driver import LabPlan
from lblab.errors import LabError
from lblab.lab import ControllerSpec, Lab
from lblab.workloads.client import ClientConfig
from lblab.workloads.handles import start_backend
from lbnodes.cgnat import start_cgnat
from lbnodes.l4 import Backend, L4Config, L4Node
from lbnodes.l7 import L7Config, L7Node, Server
from topologies.cgnat import (
    ANYCAST_VIP,
    ANYCAST_VMAC,
    ROLES,
    CgnatTopo,
    anycast_mac,
    anycast_port,
)

from .params import (
    BACKEND_PORT,
    BALANCE_FACTOR,
    L4_VIP,
    L7_VIP,
    Params,
    Setting,
    sweep_population,
    user_counts,
    user_groups,
)

TARGET = {"ecmp": ANYCAST_VIP, "l4": L4_VIP, "l7": L7_VIP}
CLIENT_TIMEOUT_S = 5.0


def has_ecmp(p: Params) -> bool:
    return any(x.startswith("ecmp:") for x in p.policies)


def fabric(p: Params) -> Fabric:
    nodes = tuple(Node(f"a{i}", anycast_port(i), anycast_mac(i), bucket_id=i)
                  for i in range(1, p.anycast + 1))
    return Fabric(1, ANYCAST_VIP, ANYCAST_VMAC, nodes=nodes, policy="select15",
                  fields="src_ip")


def lab_plan(p: Params) -> LabPlan:
    ecmp = has_ecmp(p)
    topo = CgnatTopo(cgnats=len(p.cgnat_shares), backends=p.backends,
                     anycast=p.anycast if ecmp else 0, users=user_counts(p))
    spec = ControllerSpec(config={"fabrics": [fabric(p).to_json()]}) if ecmp else None
    return LabPlan(topo, spec, ROLES)


def servers(p: Params) -> tuple[Server, ...]:
    return tuple(Server(f"b{i}", f"10.1.1.{i}", BACKEND_PORT) for i in range(1, p.backends + 1))


@dataclass
class Env:
    lab: Lab
    groups: dict[str, list[str]]
    l7: L7Node | None = None
    l4: L4Node | None = None


def setup(lab: Lab, p: Params, rep: Any) -> Env:
    """CGNATs, backends and (with ECMP policies) the anycast nodes; the users' addresses and
    routes are the topology's."""
    groups = user_groups(p)
    for k in range(1, len(p.cgnat_shares) + 1):
        start_cgnat(lab, f"g{k}", f"g{k}-eth0")
    for i, s in enumerate(servers(p), start=1):
        start_backend(lab, s.name, s.ip, port=s.port, service_ms=p.service_ms, workers=64,
                      seed=rep.seed + i)
    pool = tuple(Backend(s.name, s.ip, s.port) for s in servers(p))
    for i in range(1, (p.anycast if has_ecmp(p) else 0) + 1):
        L4Node(lab, L4Config(f"a{i}", ANYCAST_VIP, 80, pool, backend_ifname=f"a{i}-eth1",
                             vip_on_loopback=True)).start()
    rep.snapshot("population", {host: len(addrs) for host, addrs in groups.items()})
    return Env(lab, groups)


def l7_config(p: Params, name: str) -> L7Config:
    base = {"name": "l7", "bind_ip": L7_VIP, "port": 80}
    if name == "weighted":
        weighted = tuple(Server(s.name, s.ip, s.port, w) for s, w in
                         zip(servers(p), p.weights, strict=True))
        return L7Config(servers=weighted, balance="roundrobin", **base)
    if name == "bounded":
        return L7Config(servers=servers(p), balance="source", hash_type="consistent",
                        hash_balance_factor=BALANCE_FACTOR, **base)
    if name == "random2":
        return L7Config(servers=servers(p), balance="random(2)", **base)
    return L7Config(servers=servers(p), balance=name, **base)


def l4_config(p: Params, name: str) -> L4Config:
    pool = tuple(Backend(s.name, s.ip, s.port) for s in servers(p))
    dispatch, fields = {"jhash-saddr": ("jhash", "saddr"), "jhash-sport": ("jhash", "saddr_sport"),
                        "numgen": ("numgen", "saddr")}[name]
    return L4Config("l4", L4_VIP, 80, pool, backend_ifname="l4-eth1", dispatch=dispatch,
                    hash_fields=fields)


def prepare(env: Env, p: Params, s: Setting) -> None:
    """Configure the layer the variant's policy lives in (a fresh HAProxy, a fresh ruleset)."""
    if s.layer == "ecmp":
        env.lab.controller_api_call("POST", "/fabric/policy",
                                    {"policy": "select15", "fields": s.mechanism})
    elif s.layer == "l7":
        if env.l7 is not None:
            env.l7.stop()
            env.l7 = None
        env.l7 = L7Node(env.lab, l7_config(p, s.mechanism)).start()
    else:
        # A new ruleset, but the node's conntrack is kept: flushing it makes the node forget
        # which backend-side tuples are still in TIME_WAIT, masquerade reuses them, and
        # `numgen inc` took 1-3 extra turns per 508 connections (its rotation broke).
        env.l4 = L4Node(env.lab, l4_config(p, s.mechanism)).start()


def population(env: Env, s: Setting) -> dict[str, list[str]]:
    if s.sweep_share is None:
        return env.groups
    return sweep_population(env.groups, s.sweep_share)


def client_configs(p: Params, s: Setting, users: dict[str, list[str]],
                   seed: int) -> dict[str, ClientConfig]:
    """One client per user host: its users' share of the rate, each request a new connection
    from the next of its users' addresses."""
    total = sum(len(a) for a in users.values())
    return {host: ClientConfig(targets=[f"http://{TARGET[s.layer]}/"],
                               rate=p.rate * len(addrs) / total, duration_s=p.seconds,
                               arrival="poisson", timeout_s=CLIENT_TIMEOUT_S, keepalive=False,
                               local_addrs=list(addrs), seed=seed * 100 + i)
            for i, (host, addrs) in enumerate(users.items()) if addrs}


def run_clients(run: Any, configs: dict[str, ClientConfig]) -> dict[str, dict]:
    """Run every client at once, each through `run.client` with its host as its tag (raw
    tables HOST-records, documents HOST-summary); returns the summaries. A client that fails
    fails the variant: once every client has ended its exception is raised here (several:
    one LabError naming each)."""
    pool = ThreadPoolExecutor(max_workers=len(configs), thread_name_prefix="client")
    try:
        futures = {host: pool.submit(run.client, host, cfg, tag=host)
                   for host, cfg in configs.items()}
        wait(futures.values())
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    failed = {host: f.exception() for host, f in futures.items() if f.exception() is not None}
    if len(failed) == 1:
        raise next(iter(failed.values()))
    if failed:
        raise LabError(f"{len(failed)} clients failed: "
                       + "; ".join(f"{host}: {exc}" for host, exc in failed.items())) \
            from next(iter(failed.values()))
    return {host: f.result() for host, f in futures.items()}


def measure(env: Env, p: Params, s: Setting, run: Any) -> None:
    users = population(env, s)
    run.write_doc("population", {host: len(addrs) for host, addrs in users.items()})
    run.step(f"{s.policy}: {p.rate:g} req/s from {sum(len(a) for a in users.values())} users "
             f"for {p.seconds:g} s")
    before = env.l4.counters() if s.layer == "l4" else None
    run_clients(run, client_configs(p, s, users, run.seed))
    if before is not None:
        after = env.l4.counters()
        run.write_doc("l4-counters", {name: {k: after[name][k] - before.get(name, {}).get(k, 0)
                                             for k in after[name]} for name in after})
