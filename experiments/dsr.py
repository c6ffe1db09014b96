"""dsr: Direct Server Return vs NAT through one LB node whose links are the bottleneck.

    c1 -- s1 -- lb1 (htb-shaped links) -- s2 -- b1..bK      requests, and NAT's responses
           \\__ rt (a plain router) ______/                DSR's responses

The VIP 10.0.0.100 sits on lb1's front interface. NAT: nftables DNAT + masquerade, so every
response returns through lb1. DSR: an nftables netdev ingress chain rewrites both MACs and
forwards the frame to a backend chosen by jhash of the 5-tuple; backends hold the VIP on lo
(arp_ignore) and answer through rt, never through lb1. Workload: open-loop downloads of
`response_kb` each, offered at `offered_factor` x the LB's link rate.

Claims: in DSR the LB carries at most 1 % of the response bytes the client receives (NAT:
at least 99 %, more when the bottleneck makes TCP retransmit); DSR goodput exceeds the LB
link's rate at least twice (the backends' links are not shaped); NAT goodput stays at the LB
link's rate. What DSR gives up is measured: the LB
sees no response at all (no response-based health checks, no latency or status metrics).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lblab import claims as C
from lblab import plots
from lblab.counters import delta, link_stats
from lblab.experiment import Outcome, RunContext
from lblab.lab import Lab
from lblab.params import param
from lblab.workloads.client import ClientConfig
from lblab.workloads.handles import run_client, start_backend
from lbnodes.common import hold_vip_quietly
from lbnodes.l4 import Backend, L4Config, L4Node
from topologies.two_tier import (
    RETURN_ROUTER_BACK,
    ROLES,
    TwoTierTopo,
    backend_ip,
    backend_mac,
    lb_back_mac,
    lb_edge_port,
)

NAME = "dsr"
TITLE = "Direct Server Return vs NAT when the LB's link is the bottleneck"
SUMMARY = ("Downloads through one shaped LB node: NAT carries every response, DSR none; "
           "measures bytes each way, goodput, and what DSR cannot see.")
NEEDS = ("root", "ovs_running", "nft", "htb")
VARIANTS = ("nat", "dsr")
VIP = "10.0.0.100"
HTB_ACCURACY = 0.10
"""htb on veths here delivered 10.7 Mbit/s for 10 (shared/PLATFORM.md): the NAT cap's slack."""


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


def quick() -> Params:
    return Params(seconds=4.0)


def rate_for(p: Params) -> float:
    """Requests/s that offer offered_factor x the LB link rate in response bytes."""
    return p.offered_factor * p.lb_mbps * 1e6 / (8 * p.response_kb * 1024)


def run(ctx: RunContext) -> Outcome:
    p: Params = ctx.params
    topo = TwoTierTopo(clients=1, lbs=1, backends=p.backends, lb_bw=p.lb_mbps,
                       return_router=True)
    size = p.response_kb * 1024
    variants: dict[str, dict] = {}
    ctx.step(f"bringing the lab up (LB links shaped to {p.lb_mbps:g} Mbit/s)")
    with Lab(ctx.lab_name, topo, log_dir=ctx.folder.path("logs")) as lab:
        lab.extra_addresses.add(VIP)
        lab.run("lb1", ["ip", "addr", "add", f"{VIP}/32", "dev", "lb1-eth0"])
        lab.run("rt", ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        for i in range(1, p.backends + 1):
            hold_vip_quietly(lab, f"b{i}", VIP)  # a DSR backend answers from the VIP
            lab.run(f"b{i}", ["ip", "route", "add", "10.0.0.0/16", "via", RETURN_ROUTER_BACK])
            start_backend(lab, f"b{i}", "0.0.0.0", port=80, service_ms=1, workers=64,
                          service_dist="constant")
        pool = tuple(Backend(f"b{i}", backend_ip(i), 80, mac=backend_mac(i))
                     for i in range(1, p.backends + 1))
        ports = {"lb_front": f"s1-eth{lb_edge_port(1)}", "client": "s1-eth1",
                 "lb_back": f"s2-eth{lb_edge_port(1)}"}
        for variant in VARIANTS:
            ctx.step(f"{variant}: {rate_for(p):.1f} downloads/s of {p.response_kb} KiB "
                     f"for {p.seconds:g} s")
            cfg = L4Config("lb1", VIP, 80, pool, backend_ifname="lb1-eth1", mode=variant,
                           dispatch="jhash", hash_fields="5tuple", front_ifname="lb1-eth0",
                           back_mac=lb_back_mac(1))
            _clear(lab)
            node = L4Node(lab, cfg).start()
            before = link_stats(list(ports.values()))
            client = ClientConfig(targets=[f"http://{VIP}/bytes/{size}"], rate=rate_for(p),
                                  duration_s=p.seconds, arrival="constant",
                                  timeout_s=p.timeout_s, keepalive=False, seed=ctx.seed)
            records, summary = run_client(lab, "c1", client, ctx.folder.path("raw"), variant)
            moved = delta(before, link_stats(list(ports.values())))
            done = [float(r["done_s"]) for r in records if r["outcome"] == "ok"]
            ok = summary["counts"].get("ok", 0)
            to_client = moved[ports["client"]]["tx_bytes"]
            from_lb = moved[ports["lb_front"]]["rx_bytes"]
            variants[variant] = {
                "requests": summary["requests"], "ok": ok,
                "goodput_mbps": ok * size * 8 / max(done) / 1e6 if done else 0.0,
                "offered_mbps": rate_for(p) * size * 8 / 1e6,
                "bytes_to_client": to_client, "bytes_lb_to_client_side": from_lb,
                "bytes_client_side_to_lb": moved[ports["lb_front"]]["tx_bytes"],
                "lb_share_of_response_bytes": from_lb / to_client if to_client else None,
                "lb_packets_toward_clients": moved[ports["lb_front"]]["rx_packets"],
                "lb_conntrack_entries": node.conntrack_count() if variant == "nat" else 0,
                "p99_ms": summary["latency_ms"].get("p99"), "outcomes": summary["counts"],
            }
    return Outcome(variants=variants, claims=_claims(p, variants), notes=[
        "What DSR gives up, measured: the LB node sent "
        f"{variants['dsr']['lb_packets_toward_clients']} packets toward clients and saw no "
        "response, so it can neither health-check on responses nor report status codes or "
        "latency; with NAT it tracked every connection in conntrack."],
        topology=plots.topology_of(topo, ROLES))


def _clear(lab: Lab) -> None:
    """Remove the previous variant's ruleset (either family) before loading the next."""
    for family in ("ip", "netdev"):
        lab.run("lb1", ["nft", "delete", "table", family, "lblab_l4"], check=False)
    lab.run("lb1", ["conntrack", "-F"], check=False)


def _claims(p: Params, v: dict) -> list[C.Claim]:
    return [
        C.at_most("dsr-lb-carries-no-responses",
                  "In DSR the LB node carries at most 1 % of the response bytes clients "
                  "receive", 0.01, v["dsr"]["lb_share_of_response_bytes"]),
        C.at_least("nat-lb-carries-all-responses",
                   "With NAT every response byte crosses the LB node: bytes it sends toward "
                   "clients / bytes clients receive, at least 99 % (retransmissions at the "
                   "bottleneck push it above 100 %)", 0.99,
                   v["nat"]["lb_share_of_response_bytes"]),
        C.at_least("dsr-goodput-beyond-lb-link",
                   f"DSR goodput exceeds the LB link's {p.lb_mbps:g} Mbit/s at least twice "
                   "(Mbit/s)", 2 * p.lb_mbps, v["dsr"]["goodput_mbps"]),
        C.at_most("nat-goodput-capped-by-lb-link",
                  f"NAT goodput stays at the LB link's {p.lb_mbps:g} Mbit/s (Mbit/s; slack: "
                  f"htb's {HTB_ACCURACY:.0%} accuracy here)", p.lb_mbps,
                  v["nat"]["goodput_mbps"], slack=HTB_ACCURACY * p.lb_mbps),
    ]


def plot(folder: Path) -> list[Path]:
    result = json.loads((folder / "result.json").read_text())
    v, p = result["variants"], result["params"]
    fig, axes = plots.figure(10, 3.8, ncols=2)
    xs = range(len(VARIANTS))
    colours = [plots.colour(list(VARIANTS), k) for k in VARIANTS]
    mb = 1 / 2**20
    axes[0].bar([x - 0.2 for x in xs], [v[k]["bytes_to_client"] * mb for k in VARIANTS], 0.4,
                label="response bytes to the client", color="#bbbbbb")
    axes[0].bar([x + 0.2 for x in xs], [v[k]["bytes_lb_to_client_side"] * mb for k in VARIANTS],
                0.4, label="bytes the LB sent toward clients", color=colours)
    axes[0].set_xticks(list(xs), VARIANTS)
    axes[0].set_ylabel("MiB")
    axes[0].set_title("Who carries the responses")
    axes[0].legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    axes[1].bar(list(xs), [v[k]["goodput_mbps"] for k in VARIANTS], color=colours)
    axes[1].axhline(p["lb_mbps"], color="black", ls="--", lw=1, label="LB link rate")
    axes[1].axhline(v["dsr"]["offered_mbps"], color="#777777", ls=":", lw=1, label="offered")
    axes[1].set_xticks(list(xs), VARIANTS)
    axes[1].set_ylabel("goodput (Mbit/s)")
    axes[1].set_title(f"Downloads of {p['response_kb']} KiB")
    axes[1].legend(fontsize=8)
    return [plots.save(fig, folder / "dsr.png")]
