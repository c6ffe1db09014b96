"""az-failover: one of Z zones fails; who carries its load, at what cost, and what breaks.

Wiring (topologies/zones.py): users on u1 send to an anycast VIP; the fabric controller spreads
new connections over the Z zones' LB nodes (HAProxy, one per zone) and withdraws a node the
moment its link goes down (OpenFlow port status). Each zone has B backends with a capacity
model (W workers, exponential service of mean S, a long queue); the zones share one back-side
L2 network through `core`, whose port counters are the bytes that crossed zones.

The load is open loop at u x (the whole fleet's capacity), so every zone runs at utilization
u. At t0 on the variant's clock (the client's measured start) one zone fails: its LB node's
edge link and its uplink go down, and its HAProxy and backends stop. Analysis windows start
from when that fault really fired.

Variants `KIND@u` (how each zone's HAProxy picks backends, at each utilization of the sweep):
  naive       round robin over every zone's backends
  zone-aware  its own zone's backends; other zones' are `backup` servers, used only when
              health checks find every local one down
  surge       zone-aware, plus admission control: each server takes at most W + 1 requests
              at once (its workers, and one in hand-over so a freed worker never idles while
              HAProxy sends it the next), at most `surge_queue` more wait in the LB node's
              queue, and the rest are refused at once with a 503 instead of queueing on the
              survivors

Modules: params (Params, quick, timing), model (every prediction), lab (topology, HAProxy
configs, the running zones and the fault), analysis (pure), claims (pure), plots (from the
folder alone).
"""

from __future__ import annotations

from typing import Any

from experiments.az_failover import analysis, claims, plots
from experiments.az_failover.lab import Zones, lab_plan
from experiments.az_failover.params import (
    FAILURE,
    FAULT_SLACK_S,
    SAMPLE_S,
    Params,
    planned,
    rate_for,
    variant_name,
)
from experiments.az_failover.params import quick as quick_params
from lblab.driver import Experiment, LabPlan, VariantPlan, VariantRun
from lblab.lab import Lab
from lblab.workloads.client import ClientConfig
from topologies.zones import ANYCAST_VIP


class AzFailover(Experiment):
    name = "az-failover"
    title = "Zone failure: survivors' load, zone-aware routing, surge protection, cross-zone cost"
    summary = ("Fails one of Z zones under load at several utilizations and compares naive "
               "global balancing, zone-aware routing and zone-aware with surge protection.")
    needs = ("root", "ovs_running", "haproxy")
    Params = Params
    bring_up_s = 8.0

    quick = staticmethod(quick_params)

    def variants(self, p: Params) -> list[VariantPlan]:
        # One lab for all: prepare() reconfigures the LB nodes and restores the failed zone.
        return [VariantPlan(variant_name(kind, u), p.end + 2.0,
                            setting={"kind": kind, "utilization": u})
                for kind, u in planned(p)]

    def lab(self, p: Params, key: str) -> LabPlan:
        return lab_plan(p)

    def setup(self, lab: Lab, p: Params, rep: Any) -> Zones:
        return Zones(lab, p, rep.seed)

    def prepare(self, env: Zones, p: Params, v: VariantPlan) -> None:
        env.prepare(v.setting["kind"])

    def measure(self, env: Zones, p: Params, v: VariantPlan, run: VariantRun) -> None:
        u = v.setting["utilization"]
        run.step(f"{v.name}: {rate_for(p, u):.0f} req/s, zone {p.failed_zone} fails at "
                 f"{p.t0:g} s of {p.end:g} s")
        run.timeline().at(p.t0, FAILURE, env.fail, slack_s=FAULT_SLACK_S)
        body = int(p.response_kb * 1024)
        cfg = ClientConfig(targets=[f"http://{ANYCAST_VIP}/bytes/{body}"],
                           rate=rate_for(p, u), duration_s=p.end, arrival="poisson",
                           timeout_s=p.timeout_s, keepalive=False, seed=run.seed)
        with run.sample(env.probe(), SAMPLE_S):
            run.client("u1", cfg)

    # The steps live in the package's modules; the class names them.
    analyse = staticmethod(analysis.analyse)
    notes = staticmethod(claims.notes)
    plot = staticmethod(plots.plot)
    claims = staticmethod(claims.claims)


EXPERIMENT = AzFailover()
