"""hol-and-buffering's claims (pure: predictions from the parameters, measurements from the
analysis) and its notes."""

from __future__ import annotations

from experiments.hol_buffering import model
from experiments.hol_buffering.analysis import STALL_MS
from experiments.hol_buffering.params import Params, loss_variants
from lblab import claims as C
from lblab.driver import Analysis


def _loss_rate(p: Params, a: Analysis) -> C.Claim:
    statement = (f"The client's nftables rule drops p = {p.loss_pct:g} % of the proxy's "
                 "packets (its own counters, both loss variants pooled)")
    run = [a.variants[n] for n in ("loss-h2", "loss-h1") if n in a.variants]
    if not run:
        return C.skipped("loss-rate", statement,
                         C.missing_variants(a.variants, "loss-h2", "loss-h1"))
    seen = sum(m["packets_seen"] for m in run)
    dropped = sum(m["packets_dropped"] for m in run)
    q = p.loss_pct / 100
    return C.near("loss-rate", statement, q, dropped / seen if seen else None,
                  C.binomial_tolerance(q, seen),
                  note=f"tolerance: 3 binomial standard errors of {seen} packets")


def _share(p: Params, a: Analysis, name: str, mode: str, pct: float) -> C.Claim:
    q = pct / 100
    suffix = "" if pct == p.loss_pct else f"@{pct:g}"
    cid = f"{mode}-stalled-share{suffix}"
    if mode == "h2":
        ks = model.h2_segments(p.response_bytes, p.streams)
        predicted = model.stall_h2(q, p.response_bytes, p.streams)
        statement = (f"At p = {pct:g} %, on one h2 connection a stream stalls when any segment "
                     f"before its last byte is lost: the j-th of S = {p.streams} finishes in "
                     f"segment k_j = {ks[0]}..{ks[-1]}, mean of 1 - (1 - p)^k_j = "
                     f"{predicted:.3f} of streams stall (> {STALL_MS:g} ms)")
    else:
        seg = model.h1_segments(p.response_bytes)
        predicted = model.stall_h1(q, p.response_bytes)
        statement = (f"At p = {pct:g} %, on its own HTTP/1.1 connection a stream stalls only "
                     f"when one of its own {seg} segments is lost: 1 - (1 - p)^{seg} = "
                     f"{predicted:.3f} of streams")
    if why := C.missing_variants(a.variants, name):
        return C.skipped(cid, statement, why)
    m = a.variants[name]
    if mode == "h2":
        tol = model.h2_tolerance(q, p.response_bytes, p.streams, m["rounds"])
        note = (f"tolerance: 3 standard errors of the mean of {m['rounds']} rounds' stalled "
                "fractions (a round's streams stall together: the variance of #{j: k_j >= "
                "first lost segment} / S, exact for geometric losses)")
    else:
        tol = C.binomial_tolerance(predicted, m["streams"])
        note = (f"tolerance: 3 binomial standard errors of {m['streams']} streams "
                "(connections lose packets independently)")
    return C.near(cid, statement, predicted, m["stalled_share"], tol, note=note)


def _floor(p: Params, a: Analysis) -> C.Claim:
    statement = (f"Each stall lasts at least Linux's minimum RTO ({model.RTO_MIN_MS:g} ms): "
                 "the 5th percentile of stalled streams' completion times (both variants)")
    if not p.rto_only:
        return C.skipped("stall-floor", statement, "rto_only is off: fast recovery allowed")
    run = [a.variants[n] for n in ("loss-h2", "loss-h1") if n in a.variants]
    if not run:
        return C.skipped("stall-floor", statement,
                         C.missing_variants(a.variants, "loss-h2", "loss-h1"))
    lows = [m["stalled_p5_ms"] for m in run if m["stalled_p5_ms"] is not None]
    return C.at_least("stall-floor", statement, model.RTO_MIN_MS, min(lows) if lows else None)


def _slow(p: Params, a: Analysis) -> list[C.Claim]:
    upload = int(p.slow_upload_mib * (1 << 20))
    s = a.summary
    absorbed = s.get("absorbed_bytes")
    room = (f"the path absorbs at most tcp_wmem max + tcp_rmem max + bufsize + window = "
            f"{absorbed / (1 << 20):.1f} MiB" if absorbed else "the path's buffers")
    s_h2 = (f"One h2 stream uploads {p.slow_upload_mib:g} MiB to an upstream that reads nothing "
            f"for {p.slow_pause_ms:g} ms; HAProxy advertises a {model.H2_STREAM_WINDOW}-byte "
            f"stream window but holds one {p.bufsize}-byte buffer, and {room}: its demuxer "
            "stops, and every sibling sent during the pause waits for its end")
    s_h1 = "On HTTP/1.1 (own connections) no sibling waits for the pause"
    out = []
    for cid, name, statement, shared in (("slow-h2-siblings-wait", "slow-h2", s_h2, True),
                                         ("slow-h1-siblings-free", "slow-h1", s_h1, False)):
        if why := C.missing_variants(a.variants, name):
            out.append(C.skipped(cid, statement, why))
            continue
        predicted = model.siblings_blocked(upload, p.bufsize, s["proxy_wmem_max"],
                                           s["upstream_rmem_max"], shared=shared)
        out.append(C.near(cid, statement, predicted, a.variants[name]["blocked_share"], 0,
                          note="measured: the share of siblings sent before the pause's end "
                               "that were answered at or after it; exact"))
    return out


def _haproxy(p: Params, a: Analysis) -> list[C.Claim]:
    bound = model.haproxy_bound_bytes(p.uploads, p.bufsize)
    s_mem = (f"HAProxy streams bodies: its RSS grows by at most 2 C connections x 2 x "
             f"tune.bufsize = {bound / 1024:.0f} KiB for C = {p.uploads} uploads of "
             f"{p.body_mib:g} MiB (C x B would be {p.uploads * p.body_mib:g} MiB)")
    s_ok = f"... and answers every one of the C = {p.uploads} uploads (200)"
    if why := C.missing_variants(a.variants, "buffer-haproxy"):
        return [C.skipped("haproxy-memory", s_mem, why), C.skipped("haproxy-uploads", s_ok, why)]
    m = a.variants["buffer-haproxy"]
    return [C.at_most("haproxy-memory", s_mem, bound, m["rss_growth_bytes"],
                      note="measured: peak VmRSS of the HAProxy process during the ramp "
                           "minus its VmRSS before"),
            C.at_least("haproxy-uploads", s_ok, p.uploads, m["answered_200"])]


def _tier(p: Params, a: Analysis) -> list[C.Claim]:
    k = model.tier_kill_upload(p.headroom_bytes, p.body_bytes)
    s_at = (f"The buffering tier holds k x B after k uploads; with its limit H = "
            f"{p.headroom_bodies:g} B above rest the kernel kills it during upload "
            f"floor(H / B) + 1 = {k}: {k} uploads in flight die with it")
    s_oom = "... killed by the kernel's OOM killer (the cgroup's own oom_kill counter)"
    if why := C.missing_variants(a.variants, "buffer-tier"):
        return [C.skipped("tier-oom-at", s_at, why), C.skipped("tier-oom-kill", s_oom, why)]
    m = a.variants["buffer-tier"]
    return [C.near("tier-oom-at", s_at, k, m["in_flight_at_kill"], 0,
                   note="measured: uploads whose connection was reset by the tier's death "
                        "(uploads after it find nothing listening); exact count"),
            C.at_least("tier-oom-kill", s_oom, 1, m["oom_kills"])]


def _mitigation(p: Params, a: Analysis, name: str) -> list[C.Claim]:
    if name == "buffer-max-body":
        cid, status, refused = "max-body", 413, p.uploads
        what = (f"A maximum body of {p.max_body / (1 << 20):g} MiB refuses all C = "
                f"{p.uploads} uploads of {p.body_mib:g} MiB with 413 before reading them")
        key = "refused_413"
    else:
        cid, status, refused = "conc-limit", 503, p.uploads - p.conc_limit
        what = (f"A limit of {p.conc_limit} uploads in flight (floor(H / B): what fits the "
                f"headroom) refuses C - {p.conc_limit} = {refused} with 503")
        key = "refused_503"
    s_no = f"... and the tier survives: no OOM kill ({cid})"
    if why := C.missing_variants(a.variants, name):
        return [C.skipped(f"{cid}-refuses", what, why), C.skipped(f"{cid}-no-oom", s_no, why)]
    m = a.variants[name]
    return [C.near(f"{cid}-refuses", what, refused, m[key], 0,
                   note=f"measured: uploads the client saw answered {status}; exact count"),
            C.at_most(f"{cid}-no-oom", s_no, 0, m["oom_kills"])]


def claims(p: Params, a: Analysis) -> list[C.Claim]:
    out: list[C.Claim] = []
    if {"loss-h2", "loss-h1"} & set(p.variants):
        out.append(_loss_rate(p, a))
        out += [_share(p, a, name, mode, pct) for name, mode, pct in loss_variants(p)]
        out.append(_floor(p, a))
    if {"slow-h2", "slow-h1"} & set(p.variants):
        out += _slow(p, a)
    if "buffer-haproxy" in p.variants:
        out += _haproxy(p, a)
    if "buffer-tier" in p.variants:
        out += _tier(p, a)
    for name in ("buffer-max-body", "buffer-conc-limit"):
        if name in p.variants:
            out += _mitigation(p, a, name)
    return out


def notes(p: Params, a: Analysis) -> list[str]:
    out = [f"Loss is an nftables `numgen random mod 10000 < {round(p.loss_pct * 100)}` drop "
           "in the client's namespace on packets from the proxy (no netem on this kernel); "
           f"Linux's minimum RTO, {model.RTO_MIN_MS:g} ms, bounds each stall from below."]
    if p.rto_only:
        out.append("The proxy's namespace (l7 only) has net.ipv4.tcp_sack=0, tcp_reordering="
                   "127, tcp_early_retrans=0, tcp_recovery=0: every lost segment is recovered "
                   "by the RTO (its TCPTimeouts counter is in raw/<variant>/proxy-tcp.json). "
                   "With SACK on, this kernel still recovered most losses by fast retransmit "
                   "in about one RTT, which at the lab's sub-millisecond RTT is a stall too "
                   "short to see; on a WAN that RTT is itself tens of ms.")
    out.append("The buffering tier runs in a memory cgroup made for it (v2 memory.max or v1 "
               "memory.limit_in_bytes, whichever the machine has; swap excluded) and removed "
               "after its variant; environment.sysctls_changed lists it.")
    return out
