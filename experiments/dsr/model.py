"""dsr's parameters and what they predict, with the wire arithmetic the predictions use.

Every prediction here is a function of the parameters alone (and of the stated constants
below, each with where it comes from); nothing here reads a measurement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lblab.params import param
from lblab.workloads.client import ClientConfig, schedule

VARIANTS = ("nat", "dsr")
MTU = 1500
HEADERS_B = 14 + 20 + 20 + 12
"""Ethernet + IPv4 + TCP + the timestamps option: the bytes a full segment carries on the wire
besides its payload (veths count frames without preamble or FCS, and so does htb)."""
MSS = MTU - 20 - 20 - 12
FRAME_B = MSS + HEADERS_B
CONTROL_FRAME_B = HEADERS_B
"""A pure ACK (or a FIN, a request that fits one segment counts its payload on top)."""
HANDSHAKE_B = 74 + 3 * CONTROL_FRAME_B
"""Client to server per download besides the request and the ACKs: SYN (74 B with options),
the handshake's ACK, FIN and the last ACK."""
REQUEST_B = 120
"""`GET /bytes/N HTTP/1.1` with Host and Connection: close, as the lean client sends it."""
RESPONSE_HEAD_B = 200
"""The backend's status line and headers (aiohttp: Content-Type, Content-Length, Date,
Server, X-Backend, X-Peer)."""
HTB_ACCURACY = 0.10
"""How far htb on a veth may be from its configured rate here: iperf3 through TCLink(bw=10)
gave 10.7 / 9.56 Mbit/s (shared/PLATFORM.md). Checked in every run by the calibration claim
(iperf3 through the LB's shaped link), so a machine where it is wrong says so."""


@dataclass(frozen=True)
class Params:
    lb_mbps: float = param(20.0, "rate of each of the LB node's links (htb), Mbit/s", min=1,
                           max=500)
    response_kb: int = param(512, "size of each download (KiB)", min=16, max=65536)
    offered_factor: float = param(3.0, "offered download rate / LB link rate", min=1.5,
                                  max=20)
    seconds: float = param(8.0, "seconds of offered load", min=2, max=600)
    timeout_s: float = param(10.0, "client timeout", min=1, max=120)
    backends: int = param(3, "backends", min=1, max=10)
    shaped_ends: str = param("lb", "which ends of the LB's links htb shapes: lb (the LB node's "
                             "own interfaces, its queues in its own namespace) or both (also "
                             "the switch ports toward it, where Open vSwitch's userspace "
                             "datapath blocks on the shaped port and drops elsewhere)",
                             choices=("lb", "both"))
    calibration_s: float = param(3.0, "seconds of each iperf3 calibration (the shaped LB link, "
                                 "the unshaped return path)", min=1, max=30)


def quick() -> Params:
    return Params(seconds=4.0)


def size_b(p: Params) -> int:
    return p.response_kb * 1024


def rate_for(p: Params) -> float:
    """Downloads/s that offer offered_factor x the LB link rate in response bytes."""
    return p.offered_factor * p.lb_mbps * 1e6 / (8 * size_b(p))


def offered_mbps(p: Params) -> float:
    return rate_for(p) * size_b(p) * 8 / 1e6


def segments(p: Params) -> int:
    """Full-size segments of one response (body and head)."""
    return math.ceil((size_b(p) + RESPONSE_HEAD_B) / MSS)


def payload_share() -> float:
    """Payload bytes per wire byte of a full segment: what of a link's rate can be goodput."""
    return MSS / FRAME_B


def window(p: Params) -> tuple[float, float]:
    """The loaded interval the rates are read over: from when the first downloads have had
    time to fill the LB's link (a quarter of the run, at most 1 s) to the end of the offered
    load. Both variants use the same interval."""
    return min(1.0, p.seconds / 4), p.seconds


def request_side_b(p: Params, segments_per_ack: int = 1) -> float:
    """Client-to-server wire bytes per download: handshake, request, FIN and one ACK per
    `segments_per_ack` response segments (1: every segment acknowledged, the most)."""
    return HANDSHAKE_B + CONTROL_FRAME_B + REQUEST_B + \
        math.ceil(segments(p) / segments_per_ack) * CONTROL_FRAME_B


def dsr_ack_limit_mbps(p: Params) -> float:
    """DSR goodput at which the LB's link, which still carries everything the client sends
    (requests and ACKs), would be full: lb_mbps x response bytes / client-side bytes per
    download, counting one ACK per segment (the most a receiver sends)."""
    return p.lb_mbps * size_b(p) / request_side_b(p)


def dsr_goodput_mbps(p: Params) -> float:
    """DSR is not limited by the LB's link for its responses: its goodput reaches the offered
    load, unless the request direction through the LB (requests and ACKs) fills that link
    first. (The return path's own capacity is measured, and checked, separately.)"""
    return min(offered_mbps(p), dsr_ack_limit_mbps(p))


def nat_link_payload_mbps(p: Params) -> float:
    """What NAT can deliver at most: the LB link's rate times the payload share of a full
    segment (every response byte crosses that link, in full-size segments)."""
    return p.lb_mbps * payload_share()


def client_config(p: Params, url: str, seed: int) -> ClientConfig:
    """The open-loop downloads both variants are offered."""
    return ClientConfig(targets=[url], rate=rate_for(p), duration_s=p.seconds,
                        arrival="constant", timeout_s=p.timeout_s, keepalive=False, seed=seed)


def downloads_offered(p: Params) -> int:
    """How many downloads the client's constant-rate schedule sends."""
    return len(schedule(client_config(p, "http://x/", 0)))


EDGE_DOWNLOADS = 2
"""Counting completions in a window of a constant-rate schedule: one download may fall either
way at each edge."""
LATENCY_ALLOWANCE_S = 0.25
"""How much the latency of downloads that keep up may vary: 512 KiB over the ~500 Mbit/s
return path takes ~10 ms, and a segment the userspace switch drops costs one retransmission
timeout (200 ms minimum RTO) on top. More completions than that may cross an edge."""


def downloads_in_window(p: Params) -> float:
    lo, hi = window(p)
    return rate_for(p) * (hi - lo)


def dsr_tolerance(p: Params) -> float:
    """Relative counting error of DSR's completed downloads in the window, when every
    download completes at the offered rate: edge downloads plus those the latency allowance
    moves across an edge."""
    return (EDGE_DOWNLOADS + rate_for(p) * LATENCY_ALLOWANCE_S) / downloads_in_window(p)


def dsr_margin(p: Params) -> float:
    """How far below the offered load DSR would measure if the LB's link capped it (at
    its payload rate, htb up to HTB_ACCURACY fast): the claim tells the two apart only with a
    tolerance below this."""
    return 1 - p.lb_mbps * (1 + HTB_ACCURACY) * payload_share() / offered_mbps(p)
