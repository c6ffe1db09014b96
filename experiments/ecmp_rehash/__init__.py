"""ecmp-rehash: an anycast VIP over N stateful LB nodes; one node is added, or one removed.

Wiring (lbnodes/anycast.py): c1 -> s1 (the controller spreads VIP flows over the live LB
nodes with the policy under test) -> lb1..lb(N+1) (nftables DNAT + strict conntrack) -> s2 ->
b1..bK. lb(N+1) runs from the start but is outside the membership until an "add".

Variants, on one lab: `POLICY-add` and `POLICY-remove` for each policy, each on K fresh
long-lived connections (lblab/workloads/conns.py: one request per connection per interval):
  add     N live nodes, then lb(N+1) joins
  remove  N live nodes, then lb`remove_index` leaves (it keeps running)
A flow the fabric sends to another node meets a node without its conntrack state and is
reset, so the client sees exactly the flows that moved; each broken connection reconnects
once, and its new node shows where flows land afterwards.

The clock: t = 0 is the instant the prober measured every connection answering once (its
`ready` file, relayed to the variant's timeline as its start, since the prober is not the
open-loop client); the change is a timeline event at t = interval_s, and its real time
bounds the analysis. The measurement ends on a condition, not a sleep: once every
connection has answered a request sent after the change completed (the prober's `settled`).

Modules: model.py (Params, the change, each policy's prediction), analysis.py (pure, raw
tables -> metrics), claims.py, plots.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lblab.driver import Experiment, LabPlan, VariantPlan, VariantRun
from lblab.errors import LabError
from lblab.lab import Lab
from lblab.ready import wait_until
from lblab.results import atomic_write
from lblab.workloads.handles import start_conns
from lbnodes.anycast import AnycastLab, anycast_controller, anycast_topo, start_tier
from topologies.two_tier import ROLES

from .analysis import PROBER, analyse
from .claims import claims as claims_of
from .claims import notes as notes_of
from .model import (
    PHASES,
    Params,
    change,
    membership,
    prober_config,
    settle_bound_s,
    variant_name,
    variant_seconds,
)
from .plots import plot as draw

__all__ = ["EXPERIMENT", "Params"]


@dataclass
class Env:
    tier: AnycastLab


class EcmpRehash(Experiment):
    name = "ecmp-rehash"
    title = "ECMP/anycast membership changes over stateful LB nodes"
    summary = ("Adds and removes an LB node behind an anycast VIP under six hash policies and "
               "counts the long-lived connections each change breaks.")
    needs = ("root", "ovs_running", "nft", "conntrack")
    Params = Params
    bring_up_s = 8.0

    def quick(self) -> Params:
        return Params(connections=150, interval_s=0.5)

    def variants(self, p: Params) -> list[VariantPlan]:
        return [VariantPlan(variant_name(policy, phase), round(variant_seconds(p), 1),
                            setting={"policy": policy, "phase": phase})
                for policy in p.policies for phase in PHASES]

    def lab(self, p: Params, key: str) -> LabPlan:
        return LabPlan(anycast_topo(clients=1, lbs=p.lbs + 1, backends=p.backends),
                       anycast_controller(lbs=p.lbs + 1, spares=1, policy=p.policies[0],
                                          fields=p.fields), ROLES)

    def setup(self, lab: Lab, p: Params, rep: object) -> Env:
        return Env(start_tier(lab, lbs=p.lbs + 1, backends=p.backends, service_ms=1))

    def prepare(self, env: Env, p: Params, v: VariantPlan) -> None:
        """The policy, N live nodes (lb(N+1) outside), no conntrack state left."""
        policy, phase = v.setting["policy"], v.setting["phase"]
        env.tier.set_policy(policy, p.fields)
        env.tier.set_membership(membership(p, policy, phase)[0])
        env.tier.flush_state()

    def measure(self, env: Env, p: Params, v: VariantPlan, run: VariantRun) -> None:
        phase = v.setting["phase"]
        what, node = change(p, phase)
        tier, lab = env.tier, env.tier.lab
        cfg = prober_config(p)
        cfg.mark = str(lab.file(f"{v.name}.mark"))
        cfg.settled = str(lab.file(f"{v.name}.settled"))
        for marker in (cfg.mark, cfg.settled):
            Path(marker).unlink(missing_ok=True)
        ready_s = 30 + p.connections / cfg.open_rate
        tl = run.timeline(start_timeout_s=ready_s + 5)
        apply = tier.add if phase == "add" else tier.remove
        tl.at(p.interval_s, what, lambda: apply(node), slack_s=p.interval_s)
        run.step(f"{p.connections} long-lived connections; {what} at t = {p.interval_s:g} s")
        run.start_clock()
        prober = start_conns(lab, "c1", cfg, run.dir, PROBER)
        prober.wait_ready(timeout=ready_s)
        ready_wall = float(Path(cfg.ready).read_text())
        tl.announce(ready_wall)  # the prober's ready instant is t = 0
        event = tl.events[0]
        wait_until(lambda: event.done is not None, timeout=p.interval_s + 30,
                   what=f"{what} to be applied")
        mark_wall = ready_wall + event.done
        atomic_write(Path(cfg.mark), repr(mark_wall))

        def settled() -> bool:
            if prober.proc.poll() is not None:
                raise LabError(f"connection prober exited ({prober.proc.returncode}) early")
            return Path(cfg.settled).exists()

        wait_until(settled, timeout=settle_bound_s(cfg) + 10,
                   what="every connection to answer a request sent after the change")
        settled_wall = float(Path(cfg.settled).read_text())
        prober.stop()
        run.write_doc(PROBER, {
            "ready_wall": ready_wall, "mark_wall": mark_wall, "settled_wall": settled_wall,
            "fabric_after": tier.api("GET", "/state").get("fabric")})

    # The steps live in the package's modules; the class names them.
    claims = staticmethod(claims_of)
    notes = staticmethod(notes_of)
    plot = staticmethod(draw)
    analyse = staticmethod(analyse)


EXPERIMENT = EcmpRehash()
