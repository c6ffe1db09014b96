"""sticky-sessions: cookie affinity, lost carts, carts in Redis, draining, hot backends.

Wiring (topologies/two_tier.py): c1 (the users) -> s1 -> l7 (HAProxy; also the lab's
redis-server on its back leg, 10.1.0.1:6379) -> s2 -> b1..bN. U users, each a session at a
time with its own cookie jar (lblab/workloads/users.py), add items to carts through HAProxy's
`cookie SRV insert indirect nocache` affinity, `option redispatch`, `retries` and
`retry-on conn-failure empty-response`; every reply reports the cart, so a user sees a lost
one. Carts live in the backend's memory or in Redis (lblab/workloads/backend.py).

Variants (params.VARIANTS; one lab, backends restarted once when the store changes):
  cookie-local    carts in memory; b_failed's process dies at t_fail
  recovery        ... and starts again (empty) at t_back: only new sessions reach it
  drain           b_failed is set to `drain` at t_fail and stopped drain_s later
  hot-backends    heavy-tailed users (Pareto activity), sessions for the whole variant
  cookie-redis    carts in Redis; the same failure as cookie-local
  hot-roundrobin  the hot users, plain round robin, carts in Redis

Claims (claims.py), predicted in model.py from the parameters (and the users' seed).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from lblab.driver import Experiment, LabPlan, Repetition, VariantPlan, VariantRun
from lblab.lab import Lab
from lblab.links import set_links
from lblab.ready import wait_until
from lblab.workloads.handles import BackendHandle, start_backend
from lblab.workloads.redis_store import start_redis
from lblab.workloads.users import UsersConfig, run_users
from lbnodes.anycast import anycast_controller, anycast_topo
from lbnodes.common import hold_vip_quietly
from lbnodes.l7 import L7Config, L7Node, Server
from topologies.two_tier import (
    ANYCAST_VIP,
    ROLES,
    TwoTierTopo,
    backend_ip,
    lb_back_ip,
    lb_edge_port,
)

from . import analysis, claims, plots
from .params import (
    BACK,
    BACKEND_PORT,
    DRAIN,
    FAIL,
    FAILED_LB,
    L7_VIP,
    PEERS_PORT,
    STOP,
    WITHDRAW,
    Params,
    Setting,
    quick,
)


@dataclass
class Env:
    lab: Lab
    tier: str
    redis_url: str = ""
    backends: dict[str, BackendHandle] = field(default_factory=dict)
    store: str = ""
    lbs: dict[str, L7Node] = field(default_factory=dict)


def names(p: Params) -> list[str]:
    return [f"b{i}" for i in range(1, p.backends + 1)]


def lb_names(s: Setting) -> list[str]:
    return ["lb1", "lb2"] if s.tier == "anycast" else ["l7"]


def l7_config(p: Params, s: Setting, node: str = "l7") -> L7Config:
    servers = tuple(Server(n, backend_ip(i), BACKEND_PORT)
                    for i, n in enumerate(names(p), start=1))
    tier = {"bind_ip": L7_VIP, "cookie": s.cookie}
    if s.tier == "anycast":
        peers = tuple((n, lb_back_ip(i), PEERS_PORT) for i, n in enumerate(lb_names(s), 1))
        tier = {"bind_ip": ANYCAST_VIP, "stick_on": "cookie:sid",
                "peers": peers if s.peers else ()}
    return L7Config(node, port=80, servers=servers, balance="roundrobin",
                    check=True, check_inter_ms=p.check_inter_ms, check_fall=p.check_fall,
                    check_rise=p.check_rise, retries=p.retries,
                    retry_on="conn-failure empty-response", redispatch=True,
                    timeout_connect_ms=500, **tier)


def edge_intf(i: int) -> str:
    """The front switch's side of LB node i's link (TwoTierTopo: port 100 + i of s1)."""
    return f"s1-eth{lb_edge_port(i)}"


class StickySessions(Experiment):
    name = "sticky-sessions"
    title = "Sticky sessions: lost carts, Redis-backed sessions, draining, hot backends"
    summary = ("Users with cookie jars fill carts on N backends behind HAProxy's cookie "
               "affinity: a failed backend loses 1/N of the carts unless they live in Redis "
               "or it is drained first; a returned one gets only new sessions; heavy users "
               "make hot backends; a stick table without peers forgets a withdrawn LB "
               "node's sessions.")
    needs = ("root", "ovs_running", "haproxy", "redis-server")
    Params = Params
    bring_up_s = 10.0

    quick = staticmethod(quick)

    def variants(self, p: Params) -> list[VariantPlan]:
        return [VariantPlan(n, p.setting(n).seconds + 3, lab=p.setting(n).tier,
                            setting=asdict(p.setting(n))) for n in p.variants]

    def lab(self, p: Params, key: str) -> LabPlan:
        if key == "anycast":
            return LabPlan(anycast_topo(clients=1, lbs=2, backends=p.backends),
                           anycast_controller(lbs=2, spares=0), roles=ROLES)
        return LabPlan(TwoTierTopo(clients=1, lb_names="l7", backends=p.backends),
                       roles=ROLES)

    def setup(self, lab: Lab, p: Params, rep: Repetition) -> Env:
        if "lb1" in lab.net:
            for node in ("lb1", "lb2"):
                hold_vip_quietly(lab, node, ANYCAST_VIP)
            return Env(lab, "anycast")
        return Env(lab, "l7", start_redis(lab, "l7", lb_back_ip(1)))

    def _start(self, env: Env, p: Params, name: str, seed: int) -> None:
        i = names(p).index(name) + 1
        env.backends[name] = start_backend(
            env.lab, name, backend_ip(i), port=BACKEND_PORT, workers=32, queue_limit=256,
            service_ms=p.service_ms, seed=seed + i,
            redis_url=env.redis_url if env.store == "redis" else "")

    def prepare(self, env: Env, p: Params, v: VariantPlan) -> None:
        """Every backend up on the variant's store (all restarted when it changes, else the
        ones a previous variant stopped), every LB node's link up and counted live by the
        fabric, fresh HAProxies on the variant's config, and every server UP in them."""
        s = p.setting(v.name)
        if env.store != s.store:
            for h in env.backends.values():
                h.stop()
            env.backends.clear()
            env.store = s.store
        missing = [n for n in names(p) if n not in env.backends]
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda n: self._start(env, p, n, 0), missing))
        for node in env.lbs.values():
            node.stop()
        env.lbs = {n: L7Node(env.lab, l7_config(p, s, n)).start() for n in lb_names(s)}
        if s.tier == "anycast":
            set_links([edge_intf(FAILED_LB)], up=True)
            wait_until(lambda: all(n["link_up"] and n["active"] for n in fabric_nodes(env)),
                       timeout=10, what="the fabric to count both LB nodes live")
        nodes = list(env.lbs.values())
        if s.peers:
            wait_until(lambda: all("state=EST" in n.api.command("show peers") for n in nodes),
                       timeout=10, what="each HAProxy's peers session to be established")
        wait_until(lambda: all(r["status"] == "UP" for node in nodes
                               for r in node.api.servers(node.backend).values()),
                   timeout=5 + 4 * p.check_rise * p.check_inter_ms / 1000,
                   what="HAProxy to hold every backend UP")

    def measure(self, env: Env, p: Params, v: VariantPlan, run: VariantRun) -> None:
        s = p.setting(v.name)
        failed = f"b{p.failed}"
        lbs = env.lbs
        first = next(iter(lbs.values()))

        def fail() -> None:
            env.backends.pop(failed).stop()

        tl = run.timeline()
        if FAIL in s.faults:
            tl.at(p.t_fail, FAIL, fail, slack_s=0.2)
        if BACK in s.faults:
            tl.at(p.t_back, BACK, lambda: self._start(env, p, failed, run.seed), slack_s=0.2)
        if DRAIN in s.faults:
            tl.at(p.t_fail, DRAIN, lambda: first.api.set_state(first.backend, failed, "drain"),
                  slack_s=0.2)
            tl.at(p.t_fail + p.drain_s, STOP, fail, slack_s=0.2)
        if WITHDRAW in s.faults:
            tl.at(p.t_fail, WITHDRAW, lambda: set_links([edge_intf(FAILED_LB)], up=False),
                  slack_s=0.2)

        def probe() -> dict:
            """Per server: answered requests summed over the LB nodes, and the first node's
            view of its status; with two nodes, each node's answered requests too."""
            row: dict = {}
            for lb, node in lbs.items():
                for name, c in node.server_counters().items():
                    row[f"{name}.ok"] = row.get(f"{name}.ok", 0) + c["hrsp_2xx"]
                    row.setdefault(f"{name}.status", c["status"])
                    if len(lbs) > 1:
                        row[f"{lb}:{name}.ok"] = c["hrsp_2xx"]
            return row

        vip = ANYCAST_VIP if s.tier == "anycast" else L7_VIP
        cfg = UsersConfig(url=f"http://{vip}/cart", users=p.users, duration_s=s.seconds,
                          think_s=p.think_s, tau_s=s.tau_s, alpha=s.alpha,
                          timeout_s=p.timeout_s, seed=run.seed)
        run.write_doc("setting", asdict(s))
        run.step(f"{v.name}: {p.users} users, {s.seconds:g} s, faults {', '.join(s.faults)}")
        with run.sample(probe, p.sample_s, table="haproxy"):
            cfg.start_file = str(run.start_clock().start_file)
            run_users(env.lab, "c1", cfg, run.dir)
        counters = {lb: node.server_counters() for lb, node in lbs.items()}
        run.write_doc("haproxy-after", counters["l7"] if len(lbs) == 1 else {
            name: {"hrsp_2xx": sum(c[name]["hrsp_2xx"] for c in counters.values())}
            for name in names(p)})
        if s.tier == "anycast":
            run.write_doc("lb-nodes", {lb: lb_back_ip(i) for i, lb in enumerate(lbs, 1)})
            run.write_doc("peers-after", {lb: node.api.command("show peers")
                                          for lb, node in lbs.items()})

    analyse = staticmethod(analysis.analyse)
    notes = staticmethod(claims.notes)
    plot = staticmethod(plots.plot)
    claims = staticmethod(claims.claims)


def fabric_nodes(env: Env) -> list[dict]:
    return env.lab.controller_api_call("GET", "/state")["fabric"]["nodes"]


EXPERIMENT = StickySessions()
