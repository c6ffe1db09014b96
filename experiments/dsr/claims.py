"""dsr's claims and notes: pure functions of the parameters and the analysis.

Predictions come from model.py (the parameters and its stated constants); the only
measurements used outside `measured` are preconditions that make a claim untestable on
this machine, and then it is skipped with the reason.
"""

from __future__ import annotations

from lblab import claims as C
from lblab.driver import Analysis

from . import model
from .model import HTB_ACCURACY, Params

RETURN_PATH_HEADROOM = 0.5
"""DSR's claim needs the offered load well inside what the machine carries without the LB:
at most half the return path's iperf3 rate (one C flow; the lab's Python client and backends
share the 2 cores with the userspace switch)."""


def claims(p: Params, a: Analysis) -> list[C.Claim]:
    v = a.variants
    return [*share_claims(v), calibration_claim(p, a), dsr_goodput_claim(p, a),
            *nat_link_claims(p, v)]


def share_claims(v: dict) -> list[C.Claim]:
    out = []
    statement = "In DSR the LB node carries at most 1 % of the response bytes clients receive"
    if why := C.missing_variants(v, "dsr"):
        out.append(C.skipped("dsr-lb-carries-no-responses", statement, why))
    else:
        out.append(C.at_most("dsr-lb-carries-no-responses", statement, 0.01,
                             v["dsr"]["lb_share_of_response_bytes"]))
    statement = ("With NAT every response byte crosses the LB node: bytes it sends toward "
                 "clients / bytes clients receive, at least 99 % (above 100 % when packets "
                 "are lost between the LB and the client and sent again)")
    routed = ("With NAT no reply takes the return router: the backends' route to the "
              "clients' subnet via rt is not used, because masquerade makes them answer the "
              "LB's back address on their own subnet (share of response bytes via rt, at "
              "most 1 %)")
    if why := C.missing_variants(v, "nat"):
        out += [C.skipped("nat-lb-carries-all-responses", statement, why),
                C.skipped("nat-replies-skip-return-router", routed, why)]
    else:
        out += [C.at_least("nat-lb-carries-all-responses", statement, 0.99,
                           v["nat"]["lb_share_of_response_bytes"]),
                C.at_most("nat-replies-skip-return-router", routed, 0.01,
                          v["nat"]["return_router_share"])]
    return out


def calibration_claim(p: Params, a: Analysis) -> C.Claim:
    return C.within(
        "htb-calibration",
        f"iperf3 through the LB's shaped link (lb1 -> c1) moves {p.lb_mbps:g} Mbit/s of wire "
        f"bytes: htb holds its rate to within {HTB_ACCURACY:.0%} here (the accuracy the NAT "
        "claims allow)", p.lb_mbps, a.summary.get("htb_mbps"), HTB_ACCURACY,
        note="wire rate = iperf3's payload rate x the wire bytes per payload byte the "
             "client's port counted; tolerance: HTB_ACCURACY (shared/PLATFORM.md)")


def dsr_goodput_claim(p: Params, a: Analysis) -> C.Claim:
    cid = "dsr-goodput-reaches-offered"
    offered, limit = model.offered_mbps(p), model.dsr_ack_limit_mbps(p)
    statement = (f"DSR's goodput reaches the offered {offered:.3g} Mbit/s: its responses "
                 f"bypass the LB's {p.lb_mbps:g} Mbit/s link, which still carries the "
                 f"requests and ACKs and would fill only at {limit:.3g} Mbit/s of goodput "
                 "(one ACK per segment); the backends' links and rt are not shaped "
                 "(Mbit/s of downloads completed in the loaded window)")
    if why := C.missing_variants(a.variants, "dsr"):
        return C.skipped(cid, statement, why)
    path = a.summary.get("return_path_mbps")
    if path is None:
        return C.skipped(cid, statement, "the return path's calibration (iperf3 b1 -> c1) "
                                         "did not run, so the machine's own limit is unknown")
    if offered > RETURN_PATH_HEADROOM * path:
        return C.skipped(cid, statement,
                         f"this machine carries {path:.0f} Mbit/s over the unshaped return "
                         f"path (iperf3); {offered:.0f} Mbit/s offered is past "
                         f"{RETURN_PATH_HEADROOM:.0%} of it, so the machine, not the LB's "
                         "link, would limit DSR")
    tol, count = model.dsr_tolerance(p), model.downloads_in_window(p)
    if tol >= model.dsr_margin(p):
        return C.skipped(cid, statement,
                         f"the loaded window holds only {count:.1f} downloads; counting "
                         f"error ±{tol:.0%} cannot tell the offered load from the LB link's "
                         "rate (run longer, or offer smaller downloads)")
    measured = a.variants["dsr"]["completed_mbps"]
    note = (f"tolerance: ({model.EDGE_DOWNLOADS} downloads at the window's edges + "
            f"{model.LATENCY_ALLOWANCE_S:g} s of latency spread x {model.rate_for(p):.3g}/s) / "
            f"{count:.3g} downloads in the window")
    if limit >= offered:
        return C.within(cid, statement, offered, measured, tol, note=note)
    return C.between(cid, statement, limit * (1 - tol), offered * (1 + tol), measured,
                     note="the ACK path through the LB binds first: between the one-ACK-per-"
                          "segment limit and the offered load; " + note)


def nat_link_claims(p: Params, v: dict) -> list[C.Claim]:
    fills = (f"NAT fills the LB's link: it sends {p.lb_mbps:g} Mbit/s of wire bytes toward "
             f"the clients while loaded, two-sided within htb's {HTB_ACCURACY:.0%}")
    payload = model.nat_link_payload_mbps(p)
    goodput = (f"NAT's goodput is the LB link's payload rate, {p.lb_mbps:g} x "
               f"{model.MSS}/{model.FRAME_B} = {payload:.3g} Mbit/s, within htb's "
               f"{HTB_ACCURACY:.0%}: every response byte the client receives, once, whether "
               "or not its download finishes (what the abandoned downloads took is reported "
               "beside it)")
    if why := C.missing_variants(v, "nat"):
        return [C.skipped("nat-fills-lb-link", fills, why),
                C.skipped("nat-goodput-at-lb-link", goodput, why)]
    note = "tolerance: HTB_ACCURACY, checked by htb-calibration"
    return [C.within("nat-fills-lb-link", fills, p.lb_mbps, v["nat"]["lb_link_mbps"],
                     HTB_ACCURACY, note=note),
            C.within("nat-goodput-at-lb-link", goodput, payload, v["nat"]["goodput_mbps"],
                     HTB_ACCURACY, note=note + "; payload = wire bytes - 66 B of headers per "
                                               "packet - D-SACKed duplicates")]


def notes(p: Params, a: Analysis) -> list[str]:
    v, out = a.variants, []
    if "dsr" in v:
        out.append(
            f"What DSR gives up, measured: the LB node sent {v['dsr']['lb_packets_toward_clients']}"
            " packets toward clients and saw no response, so it can neither health-check on "
            "responses nor report status codes or latency"
            + (f"; with NAT it tracked every connection in conntrack "
               f"({v['nat']['lb_conntrack_entries']} entries)." if "nat" in v else "."))
    if "nat" in v:
        n = v["nat"]
        out.append(
            f"Where NAT's link went: the LB sent {n['lb_link_mbps']:.3g} Mbit/s toward the "
            f"client and it received {n['goodput_mbps']:.3g} Mbit/s of payload, but only "
            f"{n['completed_mbps']:.3g} Mbit/s as downloads that finished in the window: "
            f"{n['abandoned_downloads']} of {n['requests']} downloads ran into the "
            f"{p.timeout_s:g} s timeout and were abandoned, and "
            f"{(n['abandoned_share'] or 0):.0%} of the payload delivered belonged to them. "
            f"The LB's htb queue held up to {n['lb_queue_backlog_max_bytes'] / 1024:.0f} KiB "
            f"({n['lb_queue_backlog_max_bytes'] * 8 / (p.lb_mbps * 1e3):.0f} ms at the link "
            f"rate) and dropped {n['lb_queue_drops']} packets; the backends retransmitted "
            f"{n['backend_retransmits']} segments; {n['lost_after_lb_share']:.1%} of what the "
            f"LB sent was lost before the client.")
    if p.shaped_ends == "both":
        out.append("shaped_ends=both: the switch ports toward the LB are shaped too. Open "
                   "vSwitch's userspace datapath then blocks sending into the shaped port "
                   "(its socket's send buffer, ~140 KiB of queue) and meanwhile drops what "
                   "arrives on its other ports, uncounted by any interface or qdisc "
                   "(switch_unforwarded_packets = netdev_received - netdev_sent): losses the "
                   "lab adds, not NAT.")
    return out
