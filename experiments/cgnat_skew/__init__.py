"""cgnat-skew: many users behind a few CGNAT addresses, balanced by ECMP, at L4 and at L7.

Wiring (topologies/cgnat.py, which declares the users' addresses and the user hosts' default
routes): users on u1..uK (one source address each) behind CGNAT nodes g1..gK (masquerade to
one public address each), direct users on c1 -> s1 -> l4 (nftables NAT) and l7 (HAProxy) ->
s2 -> b1..bB (capacity model: 64 workers, exponential service of mean `service_ms`), and an
anycast VIP that the fabric controller spreads over `anycast` stateful L4 nodes. By default
one CGNAT holds 40 % of the users, a second 20 %, the rest are direct. Every user sends the
same request rate (one open-loop client per user host, all at once); each request is a new
connection from the user's address.

Variants (one lab), one per policy, then the fairness sweep:
  ECMP ecmp:src_ip, ecmp:5tuple    select15 over the source address / the 5-tuple; the units
                                   are the anycast nodes
  L4   l4:jhash-saddr, l4:jhash-sport, l4:numgen    jhash of the address / address and port,
                                   `numgen inc` (rotation)
  L7   l7:source, l7:roundrobin, l7:leastconn, l7:random2 (power of two choices),
       l7:bounded (consistent source hashing, hash-balance-factor 125), l7:weighted
  sweep:POLICY@SHARE               a fixed population drawn from u1's and c1's users with SHARE
                                   of them behind u1 (default runs; no rebuild)

Metrics per variant: per-unit counts and shares, max/mean, Jain's index (lblab.metrics.jain),
p99 per unit, stickiness (the share of a user's requests on its most-used unit).

Claims (model.py has the derivations): with source-address hashing the busiest unit carries at
least the biggest CGNAT's share (3 binomial standard errors of slack) and all of that CGNAT's
requests land on one unit; each spreading policy keeps max/mean at or below what its
mechanism allows for this run's request count (multinomial 99.7th percentile for 5-tuple
hashing, ceil(n/U) for rotation, HAProxy's leastconn / random(2) / bounded-load rules
simulated, bounded in the worst case); weighted round robin gives b1 w1/W of the requests
within one round's picks.
"""

from __future__ import annotations

from typing import Any

from lblab.driver import Analysis, Experiment, LabPlan, VariantPlan

from . import lab as L
from .analysis import analyse
from .claims import claims
from .params import Params, Setting, quick, settings, sweep_population, user_groups
from .plots import plot

__all__ = ["EXPERIMENT", "Params", "sweep_population", "user_groups"]


class CgnatSkew(Experiment):
    name = "cgnat-skew"
    title = "CGNAT skew: source hashing vs 5-tuple, power of two choices, bounded loads"
    summary = ("Puts 40 % of the users behind one CGNAT address and compares ECMP, L4 and L7 "
               "balancing policies by per-unit share, max/mean against each mechanism's "
               "bound, Jain's index and stickiness.")
    needs = ("root", "ovs_running", "nft", "haproxy")
    Params = Params
    bring_up_s = 10.0

    quick = staticmethod(quick)

    def variants(self, p: Params) -> list[VariantPlan]:
        return [VariantPlan(name, p.seconds + 1.0, setting=s.to_json())
                for name, s in settings(p).items()]

    def lab(self, p: Params, key: str) -> LabPlan:
        return L.lab_plan(p)

    def prepare(self, env: L.Env, p: Params, v: VariantPlan) -> None:
        L.prepare(env, p, Setting(**v.setting))

    def measure(self, env: L.Env, p: Params, v: VariantPlan, run: Any) -> None:
        L.measure(env, p, Setting(**v.setting), run)

    def notes(self, p: Params, a: Analysis) -> list[str]:
        return ["hash-balance-factor bounds concurrent requests per server, not request "
                "counts: with few requests in flight its ceilings allow well above f x the "
                "mean share (see the bounded claim's prediction)",
                "l7:random2 draws on HAProxy's consistent-hash ring, 16 points per server: "
                f"ring shares {[round(x, 3) for x in a.summary['haproxy_ring_shares']]}"]

    # The steps live in the package's modules; the class names them.
    setup = staticmethod(L.setup)
    analyse = staticmethod(analyse)
    claims = staticmethod(claims)
    plot = staticmethod(plot)


EXPERIMENT = CgnatSkew()
