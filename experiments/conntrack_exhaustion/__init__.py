"""conntrack-exhaustion: how much state an L4 NAT node holds, and what shrinks it.

Wiring (lab.py): c1 -> s1 -> lb1..lbN (nftables DNAT + masquerade, conntrack) -> s2 ->
b1..bK; c2 floods. The client opens HTTP/1.1 connections at a fixed rate (open loop) from
`client_addresses` sources.

Variants, all on one lab, every node's table flushed before each:
  churn          no keep-alive: one connection per request; entries live out TIME_WAIT
  short-timeout  the same churn with an aggressive TIME_WAIT timeout in the node
  keep-alive     connections reused for `keepalive_requests` requests each (the backend
                 closes them after that many)
  spread         the same churn over `nodes` NAT nodes (the client round-robins over them)
  small-table    churn into a table made small by lowering the global nf_conntrack_max
                 (checked for headroom first, restored after, recorded in the result): it
                 fills with ASSURED TIME_WAIT entries, which the allocation-time early_drop
                 cannot evict (the GC worker can, once an allocation failed). It runs
                 before the floods: conntrack's GC worker paces itself by the average timeout
                 of what it scans, and after a flood of SYN_SENT entries it frees slowly.
  syn-flood      lb1 as a stateful router in front of the servers; c2 floods spoofed SYNs
                 (hping3, bounded, an event on the variant's timeline) while c1 keeps opening
                 legitimate connections
  synproxy       the same flood with SYNs answered by nftables synproxy

Claims (claims.py; predictions from the parameters, model.py):
  bytes-per-flow     the kernel's conntrack object size (/proc/slabinfo) is in 200-500 B
  littles-law-churn  steady occupancy = rate x TIME_WAIT (within 15 %)
  short-timeout      rate x short timeout (within 15 %)
  keep-alive         rate / k x TIME_WAIT + the open connections, rate / k x lifetime,
                     a lifetime of (k - 1) x request spacing + service time (within 15 %)
  spread             the busiest of N nodes holds rate / N x TIME_WAIT (within 15 %)
  synproxy           the flood leaves at most 1 % of the entries it leaves without synproxy
  small-table        admissions by t at most min(offered, max + admissions by t - TIME_WAIT);
                     skipped, with why, when nf_conntrack_max cannot or must not be lowered
"""

from __future__ import annotations

from experiments.conntrack_exhaustion import analysis, claims, params, plots
from experiments.conntrack_exhaustion import lab as wiring
from experiments.conntrack_exhaustion.params import (
    CHURN,
    CLIENT_TIMEOUT_S,
    FLOODS,
    SMALL_TABLE,
    Params,
    churn_duration_s,
    targets,
    timeout_s,
)
from lblab.driver import Experiment, LabPlan, VariantPlan


class ConntrackExhaustion(Experiment):
    name = "conntrack-exhaustion"
    title = "Conntrack state on an L4 NAT node: Little's law, timeouts, keep-alive"
    summary = ("Measures bytes per flow and table occupancy under connection churn on an "
               "nftables NAT node; shows aggressive timeouts and keep-alive shrinking it.")
    needs = ("root", "ovs_running", "nft", "conntrack", "hping3")
    Params = Params

    quick = staticmethod(params.quick)

    def variants(self, p: Params) -> list[VariantPlan]:
        churn_s = churn_duration_s(p) + CLIENT_TIMEOUT_S
        plans = [VariantPlan(n, churn_s, setting={
            "time_wait_s": timeout_s(p, n), "nodes": targets(p, n),
            "keepalive_requests": p.keepalive_requests if n == "keep-alive" else 1})
            for n in CHURN]
        if p.small_table:
            plans.append(VariantPlan(SMALL_TABLE, churn_s,
                                     setting={"nf_conntrack_max": p.small_table}))
        plans += [VariantPlan(n, p.flood_s + CLIENT_TIMEOUT_S,
                              setting={"synproxy": n == "synproxy"}) for n in FLOODS]
        return plans

    def lab(self, p: Params, key: str) -> LabPlan:
        return wiring.lab_plan(p)

    # The steps live in the package's modules; the class names them.
    setup = staticmethod(wiring.setup)
    prepare = staticmethod(wiring.prepare)
    measure = staticmethod(wiring.measure)
    analyse = staticmethod(analysis.analyse)
    notes = staticmethod(claims.notes)
    plot = staticmethod(plots.plot)
    claims = staticmethod(claims.claims)


EXPERIMENT = ConntrackExhaustion()
