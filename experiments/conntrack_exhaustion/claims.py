"""Claims (predictions from the parameters against the metrics) and the run's notes. Pure."""

from __future__ import annotations

from experiments.conntrack_exhaustion.model import (
    OVERLAP_LIMIT,
    keepalive_model,
    occupancy,
    predicted_entries,
)
from experiments.conntrack_exhaustion.params import (
    NOTE_BUDGET,
    NOTE_BYTES,
    NOTE_RATE,
    NOTE_TIMEOUT_S,
    SMALL_TABLE,
    TOLERANCE,
    Params,
)
from lblab import claims as C
from lblab.driver import Analysis

OCCUPANCY_NOTE = (f"tolerance ±{TOLERANCE:.0%}: the note's Little's-law model (entries live "
                  "out TIME_WAIT; the kernel's GC reclaims expired ones lazily)")


def claims(p: Params, a: Analysis) -> list[C.Claim]:
    v = a.variants
    lo, hi = NOTE_BUDGET
    out = [C.between("bytes-per-flow",
                     f"The kernel's conntrack entry fits the note's {lo}-{hi} B per-flow budget "
                     "(measured: nf_conntrack object size in /proc/slabinfo)",
                     lo, hi, a.summary.get("slab_objsize"))]
    out.append(_occupancy(
        v, "littles-law-churn", "churn",
        f"Without keep-alive, occupancy = {p.rate:g} conn/s x {p.time_wait_s} s TIME_WAIT "
        "(Little's law)", p))
    out.append(_occupancy(
        v, "short-timeout", "short-timeout",
        f"An aggressive {p.short_time_wait_s} s TIME_WAIT shrinks occupancy in proportion: "
        f"{p.rate:g} x {p.short_time_wait_s}", p))
    out.append(keepalive_claim(p, v))
    out.append(_occupancy(
        v, "spread", "spread",
        f"Spreading the churn over {p.nodes} nodes holds rate / N x TIME_WAIT = "
        f"{p.rate:g}/{p.nodes} x {p.time_wait_s} s on the busiest node", p,
        key="steady_busiest_node"))
    out.append(synproxy_claim(v))
    out.append(small_table_claim(p, v))
    return out


def _occupancy(v: dict, cid: str, variant: str, statement: str, p: Params,
               key: str = "steady_entries", note: str = OCCUPANCY_NOTE) -> C.Claim:
    if why := C.missing_variants(v, variant):
        return C.skipped(cid, statement, why)
    return C.within(cid, statement, predicted_entries(p, variant), v[variant][key],
                    rel=TOLERANCE, note=note)


def keepalive_claim(p: Params, v: dict) -> C.Claim:
    k, sources = p.keepalive_requests, p.client_addresses
    m = keepalive_model(p)
    closed = occupancy(p.rate / k, p.time_wait_s)
    return _occupancy(
        v, "keep-alive", "keep-alive",
        f"Keep-alive ({k} requests per connection) cuts occupancy by the reuse factor: "
        f"{p.rate:g}/{k} x {p.time_wait_s} s = {closed:g} closed, plus "
        f"{m['open_connections']:.2f} open ({sources} sources x {k - 1}/{k} + {p.rate:g} x "
        f"{p.service_ms:g} ms / {k})", p,
        note=f"open connections by Little's law: {p.rate / k:g} new/s x a lifetime of "
             f"({k} - 1) x {m['spacing_s'] * 1000:.1f} ms request spacing + "
             f"{p.service_ms:g} ms service = {m['lifetime_s']:.3f} s; " + OCCUPANCY_NOTE)


def synproxy_claim(v: dict) -> C.Claim:
    statement = ("With synproxy the flood leaves at most 1 % of the conntrack entries it "
                 "leaves without")
    if why := C.missing_variants(v, "syn-flood", "synproxy"):
        return C.skipped("synproxy", statement, why)
    return C.at_most("synproxy", statement, 0.01 * v["syn-flood"]["peak_entries"],
                     v["synproxy"]["peak_entries"])


def small_table_claim(p: Params, v: dict) -> C.Claim:
    statement = ("Legitimate connections fail when the table is full of ASSURED entries: "
                 "if each admitted connection holds a slot for at least TIME_WAIT, "
                 "admissions by t are at most min(offered, max + admissions by "
                 "t - TIME_WAIT), and over the phase")
    if not p.small_table:
        return C.skipped("small-table", statement, "small_table=0: the phase is not planned")
    if why := C.missing_variants(v, SMALL_TABLE):
        return C.skipped("small-table", statement, why)
    st = v[SMALL_TABLE]
    if "skipped" in st:
        return C.skipped("small-table", statement, st["skipped"])
    return C.at_most(
        "small-table",
        statement + f" {st['admission_bound']:.0f} of the {st['offered']} offered can "
                    "succeed (share)", st["bound_share"], st["success"],
        note="a bound, not an estimate: the kernel frees expired entries lazily (GC worker), "
             "so admissions may fall well below it. Its premise is not the kernel's promise: "
             "once an allocation failed, the GC worker early-drops TIME_WAIT and closing "
             "TCP entries of a namespace above 95 % of nf_conntrack_max "
             "(gc_worker_can_early_drop); slot_bound_excess > 0 measures slots freed so")


def notes(p: Params, a: Analysis) -> list[str]:
    out = []
    s, v = a.summary, a.variants
    objsize, cmax = s.get("slab_objsize"), s.get("conntrack_max")
    if objsize:
        ex = s["note_example"]
        out.append(
            f"The note's example recomputed: {NOTE_RATE:,} new flows/s x {NOTE_TIMEOUT_S} s = "
            f"{ex['slots']:,} slots; at the note's {NOTE_BYTES} B that is "
            f"{ex['note_gb']:.2f} GB, at this kernel's {objsize} B it is "
            f"{ex['kernel_gb']:.2f} GB.")
        if cmax:
            out.append(f"This machine's table: nf_conntrack_max = {cmax:,} entries x "
                       f"{objsize} B = {cmax * objsize / 2**20:.0f} MiB; it would be full "
                       f"at {cmax / NOTE_TIMEOUT_S:,.0f} new flows/s with a 30 s timeout.")
    flood = v.get("syn-flood")
    if flood:
        full = flood["table_max"] and flood["peak_entries"] >= 0.99 * flood["table_max"]
        out.append(
            f"SYN flood, measured as it is: entries rose at up to {flood['fill_rate_per_s']:,.0f}"
            f"/s to {flood['peak_entries']:,} (table {flood['table_max']:,}: "
            f"{'full' if full else 'not full'}) in {flood['flood_s']} s of flood; "
            f"{flood['legit_success']:.1%} of legitimate connections succeeded meanwhile"
            + (f", the kernel early-dropping {flood['early_drop']:,} unassured (SYN-only) "
               "entries to make room." if full else "."))
    st = v.get(SMALL_TABLE)
    if st and "skipped" in st:
        out.append(f"small-table skipped: {st['skipped']}.")
    elif st:
        out.append(f"small-table lowered the global nf_conntrack_max from "
                   f"{st['conntrack_max_before']} to {st['conntrack_max_lowered_to']} for its "
                   f"phase only; afterwards it read {st['conntrack_max_after']}. A full table "
                   "admits a new connection only once conntrack's GC worker has freed an "
                   "entry; the worker paces itself by the average timeout of the entries it "
                   "scans (1-60 s), so admissions come in bursts, and after a flood of "
                   "long-lived SYN_SENT entries they nearly stop (seen in development: 3/s "
                   "instead of 64/s), which is why this phase runs first.")
        if st["slot_bound_excess"] > 0:
            out.append(
                f"small-table: by {st['slot_bound_exceeded_at_s']:g} s, "
                f"{st['slot_bound_excess']} more connections had been answered than slots "
                "held for TIME_WAIT allow: the kernel freed slots early. After an allocation "
                "fails on a full table, conntrack's GC worker early-drops entries of a "
                "namespace above 95 % of nf_conntrack_max that are unassured or in TIME_WAIT, "
                "FIN_WAIT, CLOSE_WAIT, LAST_ACK or CLOSE (gc_worker_can_early_drop, "
                "tcp_can_early_drop), ASSURED or not; only the allocation-time early_drop "
                "spares ASSURED entries. So the bound is not guaranteed; it held over the "
                "phase because the worker runs seldom.")
    ka = s["keepalive_model"]
    if "keep-alive" in v and v["keep-alive"]["steady_established"] is not None:
        overlap = ("" if ka["overlap_probability"] <= OVERLAP_LIMIT else
                   " That is above the model's limit: sources then hold two connections at "
                   "times, which it does not count.")
        out.append(
            f"keep-alive, open connections: {ka['open_connections']:.2f} predicted (a "
            f"lifetime of {ka['lifetime_s']:.3f} s at {ka['new_connections_per_s']:g} new/s), "
            f"{v['keep-alive']['steady_established']:.2f} ESTABLISHED entries in the "
            f"samples. Not a claim of its own: with constant arrivals the {p.client_addresses}"
            f" sources' connections open and close in step, every {p.keepalive_requests} x "
            f"{ka['spacing_s'] * 1000:.1f} ms, so samples every {p.sample_s:g} s see a "
            "few phases of that cycle, not its time average. A response outlives the "
            f"request spacing with probability {ka['overlap_probability']:.2g} "
            f"(exponential service).{overlap}")
    if s.get("nat_paths_on_link"):
        out.append("Routes to the other side's subnet via lb1 are declared by the topology for "
                   "the flood phases; every NAT-phase path was checked on-link (ip route get, "
                   "raw/_lab/routes.json), so the NAT phases do not use them.")
    per_source = s["connections_per_source_in_time_wait"]
    out.append(f"The churning client spread over {p.client_addresses} source address(es): "
               f"{per_source:,.0f} connections per address within TIME_WAIT. Linux advances "
               "a source port by a random even step (2-16), so an address wraps its 28,232 "
               "ephemeral ports every ~3,100 connections; past that, new connections reuse "
               "TIME_WAIT entries' 5-tuples, which conntrack replaces in place (fewer "
               "entries than Little's law, admissions without a free slot)."
               + (" That is the case in this run." if per_source > 3100 else ""))
    return out
