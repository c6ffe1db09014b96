"""stream-pinning: long-lived gRPC and WebSocket streams stay on the backend that took them.

Wiring (topologies/two_tier.py): c1 -> s1 -> lb1 (HAProxy: h2 at the front, `proto h2` to
the servers, round robin per stream; lbnode.py) -> s2 -> b1..b(N+M), each a stream backend
(lblab/workloads/stream_backend.py: gRPC `Watch` streams and `Call` unary, WebSocket). The
M new backends run from the start but their servers wait in maintenance until the
scale-out at t1 sets them ready through the runtime API. c1 runs K gRPC streams (and, in
pinned and the max-age variants, `ws_streams` WebSockets through HAProxy's second
frontend), each its own connection (lblab/workloads/streams.py), recording every stream's
open, close and backend.

Variants, all on one lab:
  pinned              streams the client ends after Exp(tau): the new backends' share
                      grows as M/(N+M) (1 - e^(-(t - t1)/tau))
  unary               unary calls on one connection, balanced per call: M/(N+M) at once
  max-age             the servers' gRPC MAX_CONNECTION_AGE A (+-10 % jitter, gRPC's own)
                      and GRACE G (WebSockets: close 1001 at the same jittered age):
                      balanced by t1 + 1.1 A + G
  max-age-no-jitter   every stream ended at exactly A + G by the backend: all K reconnect
                      in one window, against K / (0.2 A) per second with jitter
  backend-loss        b1 killed at t_loss: its K/N streams break at once, immediate
                      reconnects land on the survivors within a second
  backend-loss-backoff  the same with full-jitter backoff U(0, backoff_s): a lower peak

Per-backend active streams are sampled from the backends themselves and from HAProxy
(`show stat` scur) every `sample_s`. Claims are in claims.py.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from lblab.driver import Experiment, LabPlan, Repetition, VariantPlan, VariantRun
from lblab.errors import LabError
from lblab.lab import Lab
from lblab.ready import wait_until
from lblab.workloads.streams import (
    StreamBackendHandle,
    StreamsConfig,
    run_streams,
    start_stream_backend,
)
from lbnodes.l7 import Server
from topologies.two_tier import ROLES, TwoTierTopo, backend_ip, lb_front_ip

from . import analysis, claims, plots
from .lbnode import StreamLB, StreamLBConfig
from .params import KILL, SCALE_OUT, Params, Setting, quick

GRPC_PORT, WS_PORT = 50051, 8080
"""Both on the LB's front address and on every backend."""


@dataclass
class Env:
    lab: Lab
    backends: list[StreamBackendHandle]
    lb: StreamLB
    seed: int
    killed: set[str]


def old_names(p: Params) -> list[str]:
    return [f"b{i}" for i in range(1, p.backends + 1)]


def new_names(p: Params) -> list[str]:
    return [f"b{i}" for i in range(p.backends + 1, p.backends + p.new_backends + 1)]


class StreamPinning(Experiment):
    name = "stream-pinning"
    title = "Streams pinned to their backends: scale-out, max connection age, reconnect storms"
    summary = ("K long-lived gRPC streams (h2 end to end) and WebSockets through HAProxy: "
               "after a scale-out the new backends get only new streams; unary calls "
               "rebalance at once; a maximum connection age with jitter rebalances without a "
               "reconnect storm; "
               "a dead backend's streams all reconnect at once unless the clients back off.")
    needs = ("root", "ovs_running", "haproxy")
    Params = Params
    bring_up_s = 8.0

    quick = staticmethod(quick)

    def variants(self, p: Params) -> list[VariantPlan]:
        return [VariantPlan(name, p.seconds(name) + 1, setting=p.setting(name))
                for name in p.variants]

    def lab(self, p: Params, key: str) -> LabPlan:
        return LabPlan(TwoTierTopo(clients=1, lbs=1, backends=p.backends + p.new_backends),
                       roles=ROLES)

    def setup(self, lab: Lab, p: Params, rep: Repetition) -> Env:
        n = p.backends + p.new_backends
        handles = [self._start_backend(lab, i, rep.seed) for i in range(1, n + 1)]
        servers = tuple(Server(f"b{i}", backend_ip(i), GRPC_PORT) for i in range(1, n + 1))
        lb = StreamLB(lab, StreamLBConfig("lb1", lb_front_ip(1), GRPC_PORT, WS_PORT, servers,
                                          grpc_port=GRPC_PORT, ws_backend_port=WS_PORT,
                                          standby=tuple(new_names(p)))).start()
        rep.snapshot("haproxy-config", {"text": lb.config_path.read_text()})
        return Env(lab, handles, lb, rep.seed, set())

    @staticmethod
    def _start_backend(lab: Lab, i: int, seed: int) -> StreamBackendHandle:
        return start_stream_backend(lab, f"b{i}", backend_ip(i), grpc_port=GRPC_PORT,
                                    ws_port=WS_PORT, seed=seed + i)

    def prepare(self, env: Env, p: Params, v: VariantPlan) -> None:
        """Every backend running and idle, with the variant's connection age; the N old
        servers in service and UP, the M new ones in maintenance."""
        s: Setting = v.setting
        for i, h in enumerate(env.backends, start=1):
            if not h.running:
                env.backends[i - 1] = self._start_backend(env.lab, i, env.seed)
        env.killed.clear()
        wait_until(lambda: all(h.stats()["active"] == 0 for h in env.backends), timeout=15,
                   what="the previous variant's streams to close at the backends")
        age = {"mode": s.age_mode, "age_s": p.age_s, "grace_s": p.grace_s,
               "jitter": s.jitter} if s.age_mode != "none" else {"mode": "none"}
        for h in env.backends:
            h.set_age(**age)
        env.lb.set_servers(ready=old_names(p), maint=new_names(p))

        def old_up() -> bool:
            rows = env.lb.api.servers(env.lb.backend)
            return all(rows[n]["status"] == "UP" for n in old_names(p))

        wait_until(old_up, timeout=10, what="HAProxy to see the old servers UP")

    def measure(self, env: Env, p: Params, v: VariantPlan, run: VariantRun) -> None:
        s: Setting = v.setting
        tl = run.timeline()
        if s.fault == SCALE_OUT:
            tl.at(p.t1, SCALE_OUT, lambda: env.lb.set_servers(ready=new_names(p), maint=[]),
                  slack_s=min(0.5, p.sample_s))
        elif s.fault == KILL:
            def kill() -> None:
                env.killed.add("b1")
                env.backends[0].stop()

            tl.at(p.t_loss, KILL, kill, slack_s=min(0.5, p.sample_s))

        def probe() -> dict:
            started = time.monotonic()
            row: dict = {}
            for h in env.backends:
                try:
                    st = h.stats() if h.node not in env.killed else None
                except (OSError, LabError):
                    if h.node not in env.killed:
                        raise
                    st = None
                for key in ("active", "active_grpc", "active_ws", "calls", "aged_out"):
                    row[f"{h.node}_{key}"] = st[key] if st else None
            row.update(env.lb.sessions())
            row["read_ms"] = round((time.monotonic() - started) * 1000, 3)
            return row

        run.write_doc("setting", asdict(s))
        run.write_doc("backends-before", probe())
        cfg = StreamsConfig(host=lb_front_ip(1), port=GRPC_PORT, kind=s.kind,
                            streams=p.streams, ws_streams=p.ws_streams if s.ws else 0,
                            ws_port=WS_PORT, open_rate=p.open_rate, lifetime_s=s.lifetime_s,
                            reconnect=s.reconnect, backoff_s=p.backoff_s, rate=p.rate,
                            duration_s=p.seconds(v.name), seed=run.seed)
        run.step(f"{v.name}: {p.streams if s.kind != 'unary' else p.rate:g} "
                 f"{'streams' if s.kind != 'unary' else 'calls/s'} for {cfg.duration_s:g} s")
        with run.sample(probe, p.sample_s, table="samples"):
            cfg.start_file = str(run.start_clock().start_file)
            run_streams(run.lab, "c1", cfg, run.dir, "calls" if s.kind == "unary" else "streams")

    analyse = staticmethod(analysis.analyse)
    notes = staticmethod(claims.notes)
    plot = staticmethod(plots.plot)
    claims = staticmethod(claims.claims)


EXPERIMENT = StreamPinning()
