"""ecmp-rehash's claims: pure, predictions from the parameters, measured from the analysis."""

from __future__ import annotations

from lblab import claims as C
from lblab.driver import Analysis

from .model import PHASES, Params, predicted, textbook, variant_name

SURVIVORS = "stateful-nodes-reset-moved-flows"


def claims(p: Params, a: Analysis) -> list[C.Claim]:
    n, v = p.lbs, a.variants
    out: list[C.Claim] = []
    for policy in p.policies:
        for phase in PHASES:
            pred = predicted(p, policy, phase)
            if pred is None:  # select13: measured and reported in the notes
                continue
            name = variant_name(policy, phase)
            what = f"adding lb{n + 1}" if phase == "add" else f"removing lb{p.remove_index}"
            statement = (f"{policy}: {what} to N={n} breaks {textbook(p, policy, phase)} of "
                         "long-lived connections")
            if why := C.missing_variants(v, name):
                out.append(C.skipped(f"{name}-broken", statement, why))
                continue
            alive = v[name]["alive"] or p.connections
            out.append(C.near(
                f"{name}-broken", statement, pred, v[name]["broken_fraction"],
                C.binomial_tolerance(pred, alive),
                note=f"model: the policy's algorithm on ideal hashes; tolerance: 3 binomial "
                     f"standard errors of {pred:.3f} for the {alive} connections alive at "
                     "the change"))
    statement = ("Every connection that moved to another node broke (stateful nodes keep none "
                 "alive): surviving connections that changed node, over all variants")
    ran = [variant_name(pol, ph) for pol in p.policies for ph in PHASES
           if variant_name(pol, ph) in v]
    if not ran:
        out.append(C.skipped(SURVIVORS, statement, "no variant was run"))
    else:
        out.append(C.at_most(SURVIVORS, statement, 0,
                             sum(v[k]["survivors_moved"] for k in ran),
                             note="strict conntrack (tcp_loose=0): a node never adopts a "
                                  f"flow it did not see open; over {len(ran)} variants"))
    return out


def notes(p: Params, a: Analysis) -> list[str]:
    v = a.variants
    out = []
    if any(k.startswith("select13-") for k in v):
        got = {ph: v.get(variant_name("select13", ph), {}).get("broken_fraction")
               for ph in PHASES}
        out.append("select13 (OVS dp_hash, positional bucket IDs) is measured, not "
                   f"predicted: add {got['add']}, remove {got['remove']}.")
    unprobed = {k: m["unprobed_after_change"] for k, m in v.items()
                if m.get("unprobed_after_change")}
    opening = {k: m["failed_while_opening"] for k, m in v.items()
               if m.get("failed_while_opening")}
    if opening:
        out.append("connects that failed while the connections were opening, before t = 0 "
                   "(each retried; the generation up at t = 0 is the one measured): "
                   f"{opening}")
    if unprobed:
        out.append("connections alive at the change but never answered after it (their fate "
                   f"is unknown, so those broken fractions are low bounds): {unprobed}")
    return out + [
        "Maglev rebuilds its table on a change; a few survivor slots may move (NSDI 2016, "
        "3.4), so its prediction is the table's own difference, slightly above 1/(N+1).",
        "Published anchors: Maglev uses a prime table M > 100 x N; Beamer (NSDI 2018) keeps "
        "moved flows alive by daisy-chaining to the previous owner, which no policy here "
        "does."]
