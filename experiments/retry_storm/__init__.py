"""retry-storm: backends slow from 100 ms to 2 s; clients with a 1 s timeout retry.

Wiring (topologies/two_tier.py): c1 -> s1 -> l7 (HAProxy, no retries) or l7r (HAProxy that
itself retries on response-timeout and 503) -> s2 -> b1..bB. Backends have W workers, a
queue of Q, and keep working on requests their clients abandoned. The client is open loop at
`rate` requests/s. At t1 every backend's service time becomes `slow_ms`; at t2 it returns
(both on the variant's timeline, at the client's measured clock).

Variants (client retry policy, and which proxy), all on one lab:
  none          no retries
  naive         up to k immediate retries on timeout or 5xx
  layered       naive client retries through the retrying proxy: the layers multiply
  backoff       exponential backoff with full jitter
  budget-10     retries limited to 10 % of recent requests (Finagle/Envoy style)
  budget-20     ... 20 %
  token-bucket  gRPC retry throttling (maxTokens 10, tokenRatio 0.1)
  breaker       circuit breaker: open after 5 consecutive failures, half-open after a cooldown

Claims (claims.py), from this run's parameters and measured at the backends (their arrival
counter sampled every `sample_s`): amplification during the slowdown is 1 + k for naive
retries and (1 + k)(1 + k_proxy) for layered ones; a budget admits, in every trailing window
ending at a retry, at most ratio x the window's requests + the floor; the backends stop
receiving the breaker's client after `breaker_threshold` consecutive failures and then get at
most one probe per cooldown; with budgets, token bucket and breaker, load and latency are
normal again within the backends' drain time (plus the cooldown for the breaker).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lblab.driver import Experiment, LabPlan, Repetition, VariantPlan, VariantRun
from lblab.lab import Lab
from lblab.ready import wait_until
from lblab.workloads.client import ClientConfig
from lblab.workloads.handles import BackendHandle, start_backend
from lbnodes.l7 import L7Config, L7Node, Server
from topologies.two_tier import ROLES, TwoTierTopo, backend_ip, lb_front_ip

from . import analysis, claims, plots
from .params import RESTORE, SLOW, Params, policy_for, proxy_timeout_ms, quick

BACKEND_PORT = 8080


@dataclass
class Env:
    lab: Lab
    backends: list[BackendHandle]


class RetryStorm(Experiment):
    name = "retry-storm"
    title = "Retry storms: amplification, budgets, breakers and recovery"
    summary = ("Slows every backend from 100 ms to 2 s under clients with a 1 s timeout and "
               "compares naive, layered, backoff, budgeted, token-bucket and breaker retries.")
    needs = ("root", "ovs_running", "haproxy")
    Params = Params

    quick = staticmethod(quick)

    def variants(self, p: Params) -> list[VariantPlan]:
        return [VariantPlan(name, p.end + p.timeout_s * (1 + p.retries),
                            setting=policy_for(p, name)) for name in p.variants]

    def lab(self, p: Params, key: str) -> LabPlan:
        return LabPlan(TwoTierTopo(clients=1, lb_names="l7,l7r", backends=p.backends),
                       roles=ROLES)

    def setup(self, lab: Lab, p: Params, rep: Repetition) -> Env:
        handles = [start_backend(lab, f"b{i}", backend_ip(i), port=BACKEND_PORT,
                                 workers=p.workers, queue_limit=p.queue,
                                 service_ms=p.normal_ms, service_dist="constant",
                                 seed=rep.seed + i)
                   for i in range(1, p.backends + 1)]
        servers = tuple(Server(f"b{i}", backend_ip(i), BACKEND_PORT)
                        for i in range(1, p.backends + 1))
        L7Node(lab, L7Config("l7", lb_front_ip(1), 80, servers)).start()
        L7Node(lab, L7Config("l7r", lb_front_ip(2), 80, servers, retries=p.proxy_retries,
                             retry_on="response-timeout 503", redispatch=True,
                             timeout_server_ms=proxy_timeout_ms(p))).start()
        return Env(lab, handles)

    def prepare(self, env: Env, p: Params, v: VariantPlan) -> None:
        """Normal service, and no work left from the previous variant."""
        for h in env.backends:
            h.set_faults(service_ms=p.normal_ms)

        def idle() -> bool:
            return all(h.stats()["capacity"]["busy"] == 0
                       and h.stats()["capacity"]["queued"] == 0 for h in env.backends)

        wait_until(idle, timeout=p.slow_ms / 1000 * (p.queue / p.workers + 2) + 10,
                   what="backends to finish the previous variant's work")

    def measure(self, env: Env, p: Params, v: VariantPlan, run: VariantRun) -> None:
        handles = env.backends

        def service(ms: float) -> None:
            for h in handles:
                h.set_faults(service_ms=ms)

        def probe() -> dict:
            started = time.monotonic()
            caps = [h.stats()["capacity"] for h in handles]
            return {**{key: sum(c[key] for c in caps)
                       for key in ("arrived", "rejected", "busy", "queued")},
                    "read_ms": round((time.monotonic() - started) * 1000, 3)}

        tl = run.timeline()
        # Analysis uses the measured fault times; a fault later than half a timeout would
        # move the windows the params were validated for.
        tl.at(p.t1, SLOW, lambda: service(p.slow_ms), slack_s=p.timeout_s / 2)
        tl.at(p.t2, RESTORE, lambda: service(p.normal_ms), slack_s=p.timeout_s / 2)
        target = lb_front_ip(2 if v.name == "layered" else 1)
        run.step(f"{v.name}: {p.rate:g} req/s, slowdown {p.t1:g}-{p.t2:g} s of {p.end:g} s")
        before = probe()
        run.write_doc("backends-before", before)
        with run.sample(probe, p.sample_s):
            run.client("c1", ClientConfig(
                targets=[f"http://{target}/"], rate=p.rate, duration_s=p.end,
                arrival="poisson", timeout_s=p.timeout_s, retry=v.setting, seed=run.seed,
                keepalive=True))
        run.write_doc("backends-after", [h.stats() for h in handles])

    # The steps live in the package's modules; the class names them.
    analyse = staticmethod(analysis.analyse)
    notes = staticmethod(claims.notes)
    plot = staticmethod(plots.plot)
    claims = staticmethod(claims.claims)


EXPERIMENT = RetryStorm()
