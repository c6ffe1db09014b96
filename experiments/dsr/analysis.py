"""dsr's analysis: raw data -> metrics, pure (it reads only `raw`).

Rates are read over the loaded window (model.window) from the sampled port counters. Three
rates per variant, in Mbit/s:

- `lb_link_mbps`: wire bytes the LB node sent toward the clients (what its htb shapes);
- `goodput_mbps`: response payload the client received, each byte once (wire bytes minus
  headers, minus the duplicate segments the client reported with D-SACK), whether or not its
  download went on to finish;
- `completed_mbps`: bytes of the downloads that finished inside the window.

Where the bytes that are not completed downloads went is accounted over the whole variant
from the before/after snapshots: lost after the LB's link (LB sent, client never got),
dropped by the LB's own htb queue (and retransmitted by the backends), and delivered to
downloads the client abandoned at its timeout.
"""

from __future__ import annotations

import statistics
from typing import Any

from lblab import metrics as M
from lblab.driver import Analysis
from lblab.raw import Raw, RawVariant

from . import model
from .model import HEADERS_B, MSS, RESPONSE_HEAD_B, Params

QUEUE_KEYS = ("bytes", "packets", "drops", "overlimits")


def mbps(nbytes: float, seconds: float) -> float:
    return nbytes * 8 / seconds / 1e6


def grew(doc: dict, *path: str) -> dict[str, int]:
    """after - before of the counters at `path` in a {before, after} document (a counter
    absent before counts from 0)."""
    a, b = doc["after"], doc["before"]
    for key in path:
        a, b = a.get(key, {}), b.get(key, {})
    return {k: v - b.get(k, 0) for k, v in a.items()}


def htb_counters(stats: dict) -> dict[str, int]:
    """The htb root qdisc's counters in a `tc -s qdisc` snapshot; zeros if unshaped."""
    for q in stats["qdisc"]:
        if q.get("kind") == "htb":
            return {k: int(q.get(k, 0)) for k in QUEUE_KEYS}
    return dict.fromkeys(QUEUE_KEYS, 0)


def queues(doc: dict) -> dict[str, dict[str, int]]:
    """What each shaped interface's htb sent and dropped during the variant."""
    return {i: {k: htb_counters(doc["after"][i])[k] - htb_counters(doc["before"][i])[k]
                for k in QUEUE_KEYS} for i in doc["after"]}


def calibration(doc: dict | None) -> dict[str, Any]:
    """The iperf3 calibrations as wire rates: iperf3's payload rate x the wire bytes per
    payload byte that the client's port saw during it (htb counts wire frames)."""
    out: dict[str, Any] = {}
    for name in ("htb", "return_path"):
        c = (doc or {}).get(name) or {}
        if not c.get("bits_per_second") or not c.get("bytes"):
            out.update({f"{name}_mbps": None, f"{name}_payload_mbps": None})
            continue
        per_payload = c["wire"]["client"]["tx_bytes"] / c["bytes"]
        out[f"{name}_payload_mbps"] = c["bits_per_second"] / 1e6
        out[f"{name}_mbps"] = c["bits_per_second"] / 1e6 * per_payload
        out[f"{name}_retransmits"] = c.get("retransmits")
    return out


def variant_metrics(p: Params, data: RawVariant) -> dict[str, Any]:
    lo, hi = model.window(p)
    span = hi - lo
    size = model.size_b(p)
    reqs = M.requests(data.table("client-records"))
    ok = [r for r in reqs if r["outcome"] == "ok"]
    outcomes: dict[str, int] = {}
    for r in reqs:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    samples = data.table("samples")

    def grown(key: str) -> float:
        return M.counter_delta(samples, key, lo, hi)

    ports = {role: grew(data.doc("ports"), role) for role in data.doc("ports")["after"]}
    tcp = data.doc("tcp")
    client_tcp = grew(tcp, "c1")
    backends = [n for n in tcp["after"] if n.startswith("b")]
    retrans = sum(grew(tcp, n)["RetransSegs"] for n in backends)
    sent_segs = sum(grew(tcp, n)["OutSegs"] for n in backends) + retrans
    q = queues(data.doc("qdisc"))
    lb_out = q.get("lb1-eth0", dict.fromkeys(QUEUE_KEYS, 0))
    switch_q = q.get("s2-eth101", dict.fromkeys(QUEUE_KEYS, 0))
    coverage = grew(data.doc("ovs_coverage"))
    socket_drops = sum(grew(data.doc("socket_drops")).values())

    to_client = ports["client"]["tx_bytes"]
    payload = to_client - HEADERS_B * ports["client"]["tx_packets"]
    duplicates = (client_tcp.get("TCPDSACKOldSent", 0)
                  + client_tcp.get("TCPDSACKOfoSent", 0)) * MSS
    dup_share = min(1.0, duplicates / payload) if payload > 0 else 0.0
    completed = len(ok) * (size + RESPONSE_HEAD_B)
    abandoned = max(0, payload - duplicates - completed)
    lb_sent = ports["lb_front"]["rx_bytes"]
    window_payload = grown("client_tx_bytes") - HEADERS_B * grown("client_tx_packets")
    loaded = M.window(samples, lo, hi, key="t")
    peers = {r["peer"] for r in ok if r.get("peer")}
    return {
        "requests": len(reqs), "ok": len(ok), "outcomes": outcomes,
        "ok_fraction": M.share(reqs, lambda r: r["outcome"] == "ok"),
        "abandoned_downloads": outcomes.get("timeout", 0),
        "offered_mbps": model.offered_mbps(p),
        # rates over the loaded window
        "lb_link_mbps": mbps(grown("lb_front_rx_bytes"), span),
        "goodput_mbps": mbps(window_payload * (1 - dup_share), span),
        "completed_mbps": mbps(len(M.window(ok, lo, hi, key="done_s")) * size, span),
        "completed_in_window": len(M.window(ok, lo, hi, key="done_s")),
        "client_wire_mbps": mbps(grown("client_tx_bytes"), span),
        "return_router_mbps": mbps(grown("rt_front_rx_bytes"), span),
        "cpu_busy_mean": statistics.fmean(s["cpu_busy"] for s in loaded) if loaded else None,
        "cpu_busy_max": max((s["cpu_busy"] for s in loaded), default=None),
        "latency_ms": M.latency_percentiles(M.ok_latencies(reqs), (50, 99)),
        "backends_saw": sorted(peers),
        # who carried the responses (whole variant)
        "bytes_to_client": to_client,
        "bytes_lb_to_client_side": lb_sent,
        "bytes_client_side_to_lb": ports["lb_front"]["tx_bytes"],
        "bytes_return_router_to_client_side": ports["rt_front"]["rx_bytes"],
        "lb_share_of_response_bytes": lb_sent / to_client if to_client else None,
        "return_router_share": ports["rt_front"]["rx_bytes"] / to_client if to_client else None,
        "lb_packets_toward_clients": ports["lb_front"]["rx_packets"],
        "lb_conntrack_entries": data.doc("lb")["conntrack_entries"],
        # where the bytes went (whole variant)
        "payload_to_client_bytes": payload,
        "completed_bytes": completed,
        "abandoned_bytes": abandoned,
        "duplicate_bytes": duplicates,
        "abandoned_share": abandoned / payload if payload > 0 else None,
        "lost_after_lb_bytes": max(0, lb_sent - to_client) if lb_sent else 0,
        "lost_after_lb_share": max(0, lb_sent - to_client) / lb_sent if lb_sent else 0.0,
        "lb_queue_drops": lb_out["drops"],
        "lb_queue_backlog_max_bytes": max((s.get("lb1_eth0_backlog_bytes") or 0
                                           for s in samples), default=0),
        "switch_queue_drops": switch_q["drops"],
        "switch_queue_backlog_max_bytes": max((s.get("s2_eth101_backlog_bytes") or 0
                                               for s in samples), default=0),
        "switch_socket_drops": socket_drops,
        "switch_unforwarded_packets": coverage.get("netdev_received", 0)
        - coverage.get("netdev_sent", 0),
        "backend_segments_sent": sent_segs, "backend_retransmits": retrans,
        "backend_retransmit_share": retrans / sent_segs if sent_segs else None,
        "backend_rtos": sum(grew(tcp, n).get("TCPTimeouts", 0) for n in backends),
        "queues": q,
        "client_tcp": {k: v for k, v in client_tcp.items() if v},
    }


def rate_rows(name: str, samples: list[dict]) -> list[dict]:
    """Per-interval rates of the sampled counters: the time series the plot draws."""
    rows = []
    for a, b in zip(samples, samples[1:], strict=False):
        dt = b["t"] - a["t"]
        if dt <= 0 or b["t"] <= 0:
            continue
        rows.append({"variant": name, "t": round(b["t"], 3),
                     "lb_to_clients_mbps": mbps(b["lb_front_rx_bytes"] - a["lb_front_rx_bytes"],
                                                dt),
                     "to_client_mbps": mbps(b["client_tx_bytes"] - a["client_tx_bytes"], dt),
                     "rt_to_clients_mbps": mbps(b["rt_front_rx_bytes"] - a["rt_front_rx_bytes"],
                                                dt),
                     "lb_queue_bytes": b.get("lb1_eth0_backlog_bytes") or 0,
                     "cpu_busy": b["cpu_busy"]})
    return rows


def analyse(p: Params, raw: Raw) -> Analysis:
    variants = {name: variant_metrics(p, data) for name, data in raw.items()}
    lo, hi = model.window(p)
    summary = {**calibration(raw.lab.get("calibration")),
               "offered_mbps": model.offered_mbps(p),
               "offered_downloads_per_s": model.rate_for(p),
               "dsr_ack_limit_mbps": model.dsr_ack_limit_mbps(p),
               "dsr_predicted_mbps": model.dsr_goodput_mbps(p),
               "nat_payload_predicted_mbps": model.nat_link_payload_mbps(p),
               "payload_share": model.payload_share(),
               "htb_accuracy": model.HTB_ACCURACY,
               "window_s": [lo, hi]}
    series = {"rates": [row for name, data in raw.items()
                        for row in rate_rows(name, data.table("samples"))]}
    return Analysis(variants, series, summary)
