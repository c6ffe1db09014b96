"""hol-and-buffering: HTTP/2 head-of-line blocking under loss, and proxy buffering of large
bodies under a memory limit.

Wiring (lab.py, on topologies/two_tier.py): c1 -> l7 (HAProxy 2.6; cleartext h2 with prior
knowledge on :81 `proto h2`, HTTP/1.1 on :80) -> b1 (capacity-model backend, GET /bytes/N);
c1 -> l7s (HAProxy, streaming) -> b1's slow sink; c1 -> lbuf (a tier that buffers whole
bodies, in a memory cgroup made for it) -> b1's slow sink.

Variants:
  loss-h2            S concurrent streams on ONE h2 connection, in rounds, while nftables in
                     c1 drops p of the proxy's packets; per-stream completion times
  loss-h1            the same S requests on S HTTP/1.1 connections
  slow-h2            one h2 stream uploads to an upstream that stops reading for a while;
                     sibling GETs on the same connection (through l7s)
  slow-h1            the same with the upload and each sibling on its own connection
  buffer-haproxy     C uploads of B bytes (a ramp) through HAProxy: memory bounded by buffers
  buffer-tier        the same through the buffering tier: OOM-killed at the predicted upload
  buffer-max-body    the tier with a maximum body size (413)
  buffer-conc-limit  the tier with a limit of floor(H / B) uploads in flight (503)

Modules: params, model (every prediction), lab (topology, nodes, loss, loads), bodies (the
sink and the tier), uploads (the upload ramp), memlimit (the cgroup), analysis, claims, plots.
The h2/h1 stream client is lblab/workloads/h2_client.py.
"""

from __future__ import annotations

from typing import Any

from lblab.driver import Experiment, LabPlan, VariantPlan, VariantRun
from lblab.lab import Lab

from . import analysis, claims, model, plots
from .params import LOSS_VARIANTS, SLOW_VARIANTS, Params, loss_variants, quick


class HolBuffering(Experiment):
    name = "hol-and-buffering"
    title = "HTTP/2 head-of-line blocking under loss; proxy buffering and OOM under a limit"
    summary = ("S streams on one h2 connection vs S HTTP/1.1 connections under random loss; "
               "large uploads through streaming HAProxy vs a buffering tier that the kernel "
               "OOM-kills at the predicted concurrency, and its mitigations.")
    needs = ("root", "ovs_running", "haproxy")
    Params = Params
    bring_up_s = 8.0

    quick = staticmethod(quick)

    def variants(self, p: Params) -> list[VariantPlan]:
        plans = []
        # loss-free rounds take ms; a stalled round at least the minimum RTO
        rounds_s = p.rounds * (p.gap_ms / 1000 + 0.7 * model.RTO_MIN_MS / 1000)
        for name, mode, pct in loss_variants(p):
            plans.append(VariantPlan(name, round(rounds_s + 2, 1),
                                     setting={"mode": mode, "loss_pct": pct}))
        for name in p.variants:
            if name in LOSS_VARIANTS:
                continue
            if name in SLOW_VARIANTS:
                plans.append(VariantPlan(name, round(p.slow_pause_ms / 1000 + 1.5, 1),
                                         setting=name))
            else:
                plans.append(VariantPlan(name, round(p.uploads * p.every_s + p.hold_s + 2, 1),
                                         setting=name))
        return plans

    def lab(self, p: Params, key: str) -> LabPlan:
        from .lab import lab_plan

        return lab_plan(p)

    def setup(self, lab: Lab, p: Params, rep: Any) -> Any:
        from .lab import Env

        return Env(lab, p, rep.seed)

    def measure(self, env: Any, p: Params, v: VariantPlan, run: VariantRun) -> None:
        if v.name.partition("@")[0] in LOSS_VARIANTS:
            run.step(f"{v.name}: {p.rounds} rounds of {p.streams} streams, loss "
                     f"{v.setting['loss_pct']:g} %")
            env.measure_loss(v.setting["mode"], run, v.setting["loss_pct"])
        elif v.name in SLOW_VARIANTS:
            run.step(f"{v.name}: a {p.slow_upload_mib:g} MiB upload whose upstream pauses "
                     f"{p.slow_pause_ms:g} ms, {p.siblings} siblings beside it")
            env.measure_slow(v.name, run)
        else:
            run.step(f"{v.name}: {p.uploads} uploads of {p.body_mib:g} MiB, one every "
                     f"{p.every_s:g} s")
            env.measure_uploads(v.name, run)

    analyse = staticmethod(analysis.analyse)
    notes = staticmethod(claims.notes)
    plot = staticmethod(plots.plot)
    claims = staticmethod(claims.claims)


EXPERIMENT = HolBuffering()
