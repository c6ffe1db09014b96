"""cgnat-skew's claims, from the parameters and the models of model.py. Pure."""

from __future__ import annotations

from lblab import claims as C
from lblab.driver import Analysis

from .params import SOURCE_HASHED, SPREADING, Params


def claims(p: Params, a: Analysis) -> list[C.Claim]:
    v = a.variants
    out: list[C.Claim] = []
    big = p.cgnat_shares[0]
    for policy in (x for x in SOURCE_HASHED if x in p.policies):
        pins = (f"{policy}: the busiest unit carries at least the biggest CGNAT's {big:.0%} "
                "of the requests (a whole CGNAT is one source address)")
        whole = f"{policy}: every request of the biggest CGNAT (u1) lands on one unit"
        if why := C.missing_variants(v, policy):
            out += [C.skipped(f"{policy}-pins-the-cgnat", pins, why),
                    C.skipped(f"{policy}-cgnat-on-one-unit", whole, why)]
            continue
        m = v[policy]
        slack = C.binomial_tolerance(big, m["attributed"])
        out.append(C.at_least(
            f"{policy}-pins-the-cgnat", pins, big, max(m["shares"].values()), slack,
            note=f"predicted: the CGNAT's share of the users (every user sends at one rate); "
                 f"slack: 3 binomial standard errors of that share over {m['attributed']} "
                 f"requests; u1 sent {m['biggest_cgnat_request_share']} of them"))
        out.append(C.at_least(
            f"{policy}-cgnat-on-one-unit", whole, 1.0, m["biggest_cgnat_on_one_unit"],
            note="one source address, one hash: exact"))
    for policy in (x for x in SPREADING if x in p.policies):
        statement = f"{policy} keeps the busiest unit's requests at or below the max/mean " \
                    "its mechanism allows for this run's request count"
        if why := C.missing_variants(v, policy):
            out.append(C.skipped(f"{policy}-max-over-mean", statement, why))
            continue
        m = v[policy]
        out.append(C.at_most(f"{policy}-max-over-mean", statement,
                             m["predicted_max_over_mean"], m["max_over_mean"],
                             note=m["prediction"]))
    if "l7:weighted" in p.policies:
        w0, total = p.weights[0], sum(p.weights)
        statement = (f"Weights {list(p.weights)}: b1 gets {w0}/{total} of the requests "
                     "(weighted round robin)")
        if why := C.missing_variants(v, "l7:weighted"):
            out.append(C.skipped("l7:weighted-respected", statement, why))
        else:
            m = v["l7:weighted"]
            n, failed = m["attributed"], m["requests"] - m["attributed"]
            out.append(C.near(
                "l7:weighted-respected", statement, w0 / total, m["shares"]["b1"],
                (w0 + failed) / max(n, 1),
                note=f"HAProxy's weighted round robin is a deterministic stride schedule (each "
                     f"pick moves a server {total}/w positions on): after n picks b1 is within "
                     f"{w0} picks (one round's worth) of n x {w0}/{total}, plus the {failed} "
                     f"requests that failed; tolerance ({w0} + {failed}) / {n} requests"))
    return out
