"""health-truthiness: port-open and shallow checks that lie, deep checks that empty the
fleet, passive and multi-signal checks (issue #14).

Wiring (topologies/two_tier.py): c1 -> s1 -> five HAProxy nodes, one per check type
(l4, shallow, deep, passive, multi; 10.0.0.1-5) -> s2 -> b1..bN (the app,
experiments/health_truthiness/app.py, each with its own redis-server) and b(N+1), which
runs only the fleet's shared redis-server. Every node balances round robin over the same
backends, so one fault is seen by the five check types at once; one client sends each
request to a node and route drawn at random (Poisson at `rate` per node).

Variants are faults (each on the timeline at fault_at_s, undone after its duration):
  gray          b1 answers 500 on /cart; its port is open and /healthz is 200
  shared-blip   the shared Redis is paused (CLIENT PAUSE) for D s: every deep check fails
  dep-down      b1's own Redis is stopped (or its port dropped by nftables in b1)
  intermittent  b1's /cart errs with probability p
  flapping      every health answer is too slow for the check timeout with probability q

Claims (claims.py) are computed from the parameters: the errors served by checks that
never eject, the deep and agent eject bounds, the passive check's L / r_b and its
(1 - p^L) / ((1 - p) p^L) blind spot, the fleet emptied by deep checks for about
D + rise x inter while the multi-signal node keeps serving /static, and false ejections
per check from HAProxy's fall/rise state machine; measured on HAProxy's stats socket,
the backends' own check counters and the client's records.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lblab.driver import Experiment, LabPlan, Repetition, VariantPlan, VariantRun
from lblab.lab import Lab
from lblab.ready import wait_answering, wait_until
from lblab.workloads.client import ClientConfig
from lblab.workloads.handles import BackendHandle
from lblab.workloads.redis_store import REDIS_PORT, start_redis
from lbnodes.l7 import L7Config, L7Node, Server
from topologies.two_tier import TwoTierTopo, backend_ip, lb_front_ip

from . import analysis, claims, plots
from .app import AppConfig
from .params import (
    AGENT_PORT,
    APP_PORT,
    CHECKS,
    FAULT_END,
    FAULT_START,
    FAULTY,
    Params,
    quick,
    routes,
)

ROLES = {"c": "client", "s1": "switch-front", "s2": "switch-back", "l4": "lb", "shallow": "lb",
         "deep": "lb", "passive": "lb", "multi": "lb", "b": "backend"}
NFT_TABLE = "lblab_health"
SERVER_FIELDS = ("status", "weight", "chkdown", "hanafail", "stot", "hrsp_5xx")


@dataclass
class Env:
    lab: Lab
    apps: dict[str, BackendHandle]
    nodes: dict[str, L7Node]
    shared_node: str
    dep_down: dict[str, bool] = field(default_factory=dict)


def lb_config(p: Params, check: str, i: int) -> L7Config:
    """The HAProxy node of one check type."""
    servers = tuple(Server(f"b{k}", backend_ip(k), APP_PORT, weight=100)
                    for k in range(1, p.backends + 1))
    common = dict(check=True, check_inter_ms=p.inter_ms, check_fall=p.fall,
                  check_rise=p.rise, check_fastinter_ms=p.fastinter_ms,
                  check_downinter_ms=p.downinter_ms, timeout_check_ms=p.timeout_check_ms)
    kind = {
        "l4": dict(check_http=False),
        "shallow": dict(check_path="/healthz"),
        "deep": dict(check_path="/ready"),
        "passive": dict(check_path="/healthz", observe_layer7=True,
                        check_inter_ms=p.passive_inter_ms,
                        error_limit=p.error_limit, on_error="mark-down"),
        "multi": dict(check_http=False, agent_port=AGENT_PORT, agent_inter_ms=p.inter_ms),
    }[check]
    return L7Config(check, lb_front_ip(i), 80, servers, **{**common, **kind})


def start_app(lab: Lab, node: str, cfg: AppConfig) -> BackendHandle:
    cfg_path = lab.file(f"{node}-app.json")
    cfg_path.write_text(json.dumps(asdict(cfg)))
    Path(cfg.control_socket).unlink(missing_ok=True)
    proc = lab.spawn(node, [sys.executable, "-m", "experiments.health_truthiness.app",
                            str(cfg_path)], name=f"app-{node}")
    lab.wait_listening(node, cfg.port, proc=proc)
    lab.wait_listening(node, cfg.agent_port, proc=proc)
    wait_answering(cfg.control_socket)
    return BackendHandle(lab, node, cfg, proc)


class HealthTruthiness(Experiment):
    name = "health-truthiness"
    title = "Health checks that lie: l4, shallow, deep, passive and multi-signal"
    summary = ("Five HAProxy nodes (TCP connect, /healthz, /ready, observe layer7, agent) in "
               "front of the same Redis-backed apps through a gray failure, a shared "
               "dependency blip, a dependency down, intermittent errors and slow checks.")
    needs = ("root", "ovs_running", "haproxy", "redis-server", "nft")
    Params = Params
    bring_up_s = 12.0

    quick = staticmethod(quick)

    def variants(self, p: Params) -> list[VariantPlan]:
        return [VariantPlan(f, p.end(f) + 2, setting=f) for f in p.faults]

    def lab(self, p: Params, key: str) -> LabPlan:
        return LabPlan(TwoTierTopo(clients=1, lb_names=",".join(CHECKS),
                                   backends=p.backends + 1), roles=ROLES)

    def setup(self, lab: Lab, p: Params, rep: Repetition) -> Env:
        shared = f"b{p.backends + 1}"
        shared_url = start_redis(lab, shared, backend_ip(p.backends + 1))
        apps = {}
        for k in range(1, p.backends + 1):
            node = f"b{k}"
            local = start_redis(lab, node, backend_ip(k))
            apps[node] = start_app(lab, node, AppConfig(
                name=node, ip=backend_ip(k), port=APP_PORT, agent_port=AGENT_PORT,
                control_socket=str(lab.file(f"{node}-app.sock")), local_redis=local,
                shared_redis=shared_url, dep_deadline_ms=p.dep_deadline_ms,
                error_window_s=p.error_window_s, error_threshold=p.error_threshold,
                seed=rep.seed + k))
        nodes = {c: L7Node(lab, lb_config(p, c, i)).start()
                 for i, c in enumerate(CHECKS, start=1)}
        rep.snapshot("haproxy-configs", {c: n.config_path.read_text() for c, n in nodes.items()})
        return Env(lab, apps, nodes, shared)

    # -- faults ------------------------------------------------------------------------
    def _redis_cli(self, env: Env, node: str, ip: str, *args: str) -> str:
        return env.lab.run(node, ["redis-cli", "-h", ip, "-p", str(REDIS_PORT), *args],
                           check=False)

    def _dep(self, env: Env, p: Params, up: bool) -> None:
        ip = backend_ip(1)
        if p.dep_fault == "drop":
            if up:
                env.lab.run(FAULTY, ["nft", "delete", "table", "inet", NFT_TABLE], check=False)
            else:
                for cmd in (["add", "table", "inet", NFT_TABLE],
                            ["add", "chain", "inet", NFT_TABLE, "out",
                             "{ type filter hook output priority 0 ; }"],
                            ["add", "rule", "inet", NFT_TABLE, "out", "ip", "daddr", ip,
                             "tcp", "dport", str(REDIS_PORT), "drop"]):
                    env.lab.run(FAULTY, ["nft", *cmd])
        elif up:
            start_redis(env.lab, FAULTY, ip)
        else:
            self._redis_cli(env, FAULTY, ip, "SHUTDOWN", "NOSAVE")
            wait_until(lambda: "PONG" not in self._redis_cli(env, FAULTY, ip, "PING"),
                       timeout=5, what="b1's Redis to stop")
        env.dep_down[FAULTY] = not up

    def _fault(self, env: Env, p: Params, fault: str, on: bool) -> None:
        b1 = env.apps[FAULTY]
        if fault == "gray":
            b1.set_faults(cart_error_rate=1.0 if on else 0.0)
        elif fault == "intermittent":
            b1.set_faults(cart_error_rate=p.intermittent_p if on else 0.0)
        elif fault == "flapping":
            for h in env.apps.values():
                h.set_faults(check_slow_p=p.timeout_q if on else 0.0,
                             check_slow_ms=2 * p.timeout_check_ms)
        elif fault == "shared-blip":
            ip = backend_ip(p.backends + 1)
            # A paused Redis also holds a new client's CLIENT UNPAUSE until the pause
            # ends (measured, 7.0), so the pause lasts exactly D; the restore event's PING
            # returns when Redis answers again.
            if on:
                self._redis_cli(env, env.shared_node, ip, "CLIENT", "PAUSE",
                                str(int(p.blip_s * 1000)), "ALL")
            else:
                self._redis_cli(env, env.shared_node, ip, "PING")
        elif fault == "dep-down":
            self._dep(env, p, up=not on)

    def prepare(self, env: Env, p: Params, v: VariantPlan) -> None:
        """No fault anywhere, and every node has every server up at full weight."""
        for h in env.apps.values():
            h.set_faults(cart_error_rate=0.0, check_slow_p=0.0, check_slow_ms=0.0)
        self._redis_cli(env, env.shared_node, backend_ip(p.backends + 1), "PING")
        if env.dep_down.get(FAULTY):
            self._dep(env, p, up=True)

        def all_up() -> bool:
            return all(r["status"] == "UP" and r["weight"] == "100"
                       for n in env.nodes.values() for r in n.api.servers(n.backend).values())

        wait_until(all_up, timeout=30, what="every node to have every server up")

    def measure(self, env: Env, p: Params, v: VariantPlan, run: VariantRun) -> None:
        fault = v.setting
        apps: dict[str, list] = {"start": [], "end": []}

        def switch(on: bool) -> None:
            if not on:
                apps["end"] = [h.stats() for h in env.apps.values()]
            self._fault(env, p, fault, on)
            if on:
                apps["start"] = [h.stats() for h in env.apps.values()]

        def probe() -> dict:
            row: dict = {}
            for check, node in env.nodes.items():
                for name, srv in node.api.servers(node.backend).items():
                    for key in SERVER_FIELDS:
                        value = srv.get(key, "")
                        row[f"{check}.{name}.{key}"] = (int(value) if value.isdigit()
                                                        else value)
            return row

        tl = run.timeline()
        tl.at(p.fault_at_s, FAULT_START, lambda: switch(True), slack_s=p.sample_s * 2)
        tl.at(p.fault_at_s + p.duration(fault), FAULT_END, lambda: switch(False),
              slack_s=p.sample_s * 2)
        share = dict(routes(p, fault))
        targets = []
        for i in range(1, len(CHECKS) + 1):
            for path, fraction in share.items():
                targets += [f"http://{lb_front_ip(i)}{path}"] * round(fraction * 10)
        run.step(f"{fault}: {p.rate:g} req/s to each of {len(CHECKS)} nodes, fault "
                 f"{p.fault_at_s:g}-{p.fault_at_s + p.duration(fault):g} s of {p.end(fault):g}")
        started = time.monotonic()
        with run.sample(probe, p.sample_s, table="haproxy"):
            run.client("c1", ClientConfig(
                targets=targets, rate=p.rate * len(CHECKS), duration_s=p.end(fault),
                arrival="poisson", timeout_s=2.0, keepalive=True, seed=run.seed,
                target_choice="random"))
        run.write_doc("apps", {**apps, "after": [h.stats() for h in env.apps.values()],
                               "measure_s": round(time.monotonic() - started, 2)})

    analyse = staticmethod(analysis.analyse)
    notes = staticmethod(claims.notes)
    plot = staticmethod(plots.plot)
    claims = staticmethod(claims.claims)


EXPERIMENT = HealthTruthiness()
