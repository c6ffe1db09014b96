"""dsr: Direct Server Return vs NAT through one LB node whose links are the bottleneck.

    c1 -- s1 -- lb1 (htb-shaped links) -- s2 -- b1..bK      requests, and NAT's responses
           \\__ rt (a plain router) ______/                DSR's responses

The VIP 10.0.0.100 sits on lb1's front interface. NAT: nftables DNAT + masquerade, so every
response returns through lb1 (the backends see lb1's back address, on their own subnet, and
answer it directly). DSR: an nftables netdev ingress chain rewrites both MACs and forwards the
frame to a backend chosen by jhash of the 5-tuple; backends hold the VIP on lo (arp_ignore)
and answer through rt (their route to the clients' subnet, declared by the topology), never
through lb1. Workload: open-loop downloads of `response_kb` each, offered at
`offered_factor` x the LB's link rate, with a client timeout: a download that has not
finished by then is abandoned (its bytes crossed the link, but count as nothing).

Before the variants, two iperf3 calibrations: through the LB's shaped link (how close htb
comes to its rate here) and over the unshaped return path (what this machine carries without
the LB). Each variant records the client's downloads, per-0.25 s counters of the switch ports
and of the LB's htb queue, `tc -s` and every node's TCP counters before and after.

Claims (experiments/dsr/claims.py): who carries the responses (DSR's LB at most 1 %, NAT's at
least 99 %); DSR's goodput reaches the offered load (it is not limited by the LB's link);
NAT fills the LB's link, two-sided, within htb's accuracy, and delivers its payload share as
goodput only for the downloads that finish: what is abandoned is measured. What DSR gives up
is a note: the LB sees no response at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lblab.driver import Experiment, LabPlan, Repetition, VariantPlan, VariantRun
from lblab.lab import Lab
from lblab.workloads.floods import iperf3
from lblab.workloads.handles import start_backend
from lbnodes.common import hold_vip_quietly
from lbnodes.l4 import Backend, L4Config, L4Node
from topologies.two_tier import (
    RETURN_ROUTER_BACK,
    RETURN_ROUTER_FRONT,
    ROLES,
    TwoTierTopo,
    backend_ip,
    backend_mac,
    client_ip,
    lb_back_mac,
)

from . import analysis, claims, plots, probes
from .model import VARIANTS, Params, client_config, rate_for, size_b
from .model import quick as quick_params

VIP = "10.0.0.100"
SAMPLE_S = 0.25


@dataclass
class Env:
    lab: Lab
    pool: tuple[Backend, ...]
    node: L4Node | None = None
    backends: list[Any] = field(default_factory=list)


class Dsr(Experiment):
    name = "dsr"
    title = "Direct Server Return vs NAT when the LB's link is the bottleneck"
    summary = ("Downloads through one shaped LB node: NAT carries every response, DSR none; "
               "measures bytes each way, goodput, what is abandoned, and what DSR cannot see.")
    needs = ("root", "ovs_running", "nft", "htb", "iperf3")
    Params = Params

    quick = staticmethod(quick_params)

    def variants(self, p: Params) -> list[VariantPlan]:
        # NAT's downloads may run to the timeout after the offered load ends.
        return [VariantPlan("nat", p.seconds + p.timeout_s),
                VariantPlan("dsr", p.seconds + 1.0)]

    def lab(self, p: Params, key: str) -> LabPlan:
        # Backends reach the clients' subnet through rt (DSR's return path); the client
        # reaches the backends' subnet through rt too, only for the return path's
        # calibration (its downloads go to the VIP, on its own subnet).
        from mininet.link import TCLink

        return LabPlan(TwoTierTopo(clients=1, lbs=1, backends=p.backends, lb_bw=p.lb_mbps,
                                   lb_bw_ends=p.shaped_ends, return_router=True,
                                   client_gw=RETURN_ROUTER_FRONT,
                                   backend_gw=RETURN_ROUTER_BACK), roles=ROLES,
                       link_class=TCLink)

    def setup(self, lab: Lab, p: Params, rep: Repetition) -> Env:
        lab.extra_addresses.add(VIP)
        lab.run("lb1", ["ip", "addr", "add", f"{VIP}/32", "dev", "lb1-eth0"])
        pool = tuple(Backend(f"b{i}", backend_ip(i), 80, mac=backend_mac(i))
                     for i in range(1, p.backends + 1))
        env = Env(lab, pool)
        for b in pool:
            hold_vip_quietly(lab, b.name, VIP)  # a DSR backend answers from the VIP
            env.backends.append(start_backend(lab, b.name, "0.0.0.0", port=80, service_ms=1,
                                              workers=64, service_dist="constant"))
        rep.progress.step(f"calibrating: iperf3 through the LB's {p.lb_mbps:g} Mbit/s link, "
                          "then over the return path")
        rep.snapshot("calibration", {
            "htb": calibrate(lab, "lb1", p.calibration_s),
            "return_path": calibrate(lab, "b1", p.calibration_s)})
        return env

    def prepare(self, env: Env, p: Params, v: VariantPlan) -> None:
        for family in ("ip", "netdev"):  # the previous variant's ruleset, either family
            env.lab.run("lb1", ["nft", "delete", "table", family, "lblab_l4"], check=False)
        env.lab.run("lb1", ["conntrack", "-F"], check=False)
        env.node = L4Node(env.lab, L4Config(
            "lb1", VIP, 80, env.pool, backend_ifname="lb1-eth1", mode=v.name,
            dispatch="jhash", hash_fields="5tuple", front_ifname="lb1-eth0",
            back_mac=lb_back_mac(1))).start()

    def measure(self, env: Env, p: Params, v: VariantPlan, run: VariantRun) -> None:
        lab, nodes = env.lab, ["c1", "lb1", *(b.name for b in env.pool)]
        run.step(f"{v.name}: {rate_for(p):.1f} downloads/s of {p.response_kb} KiB for "
                 f"{p.seconds:g} s")
        base = probes.ports()
        before = snapshot(lab, nodes)
        htb0 = {i: probes.htb_root(before["qdisc"][i]) for i in probes.RESPONSE_QUEUES
                if probes.htb_root(before["qdisc"][i]) is not None}
        drops0 = before["socket_drops"]

        def probe() -> dict:
            row = probes.flat(probes.ports(), base)
            drops = probes.packet_socket_drops(lab)
            row["switch_drops"] = sum(drops.values()) - sum(drops0.values())
            for i in htb0:
                htb = probes.htb_root(probes.qdisc(lab, probes.SHAPED[i], i)) or {}
                key = i.replace("-", "_")
                row.update({f"{key}_sent_bytes": htb["bytes"] - htb0[i]["bytes"],
                            f"{key}_drops": htb["drops"] - htb0[i]["drops"],
                            f"{key}_backlog_bytes": htb["backlog"]})
            return row

        with run.sample(probe, SAMPLE_S):
            run.client("c1", client_config(p, f"http://{VIP}/bytes/{size_b(p)}", run.seed))
        after = snapshot(lab, nodes)
        run.write_doc("ports", {"before": base, "after": probes.ports()})
        for doc in ("qdisc", "tcp", "ovs", "socket_drops", "ovs_coverage"):
            run.write_doc(doc, {"before": before[doc], "after": after[doc]})
        assert env.node is not None
        run.write_doc("lb", {"conntrack_entries": env.node.conntrack_count()
                             if v.name == "nat" else 0,
                             "counters": env.node.counters()})

    # Pure steps, in the package's modules: analysis.py, claims.py, plots.py.
    analyse = staticmethod(analysis.analyse)
    notes = staticmethod(claims.notes)
    plot = staticmethod(plots.plot)
    claims = staticmethod(claims.claims)  # last: it rebinds the name `claims` in the class


def snapshot(lab: Lab, nodes: list[str]) -> dict[str, Any]:
    """`tc -s` of every shaped interface, every node's TCP counters, OVS's port statistics."""
    return {"qdisc": {i: probes.qdisc(lab, n, i) for i, n in probes.SHAPED.items()},
            "tcp": {n: probes.tcp_counters(lab, n) for n in nodes},
            "ovs": probes.ovs_interfaces(lab),
            "socket_drops": probes.packet_socket_drops(lab),
            "ovs_coverage": probes.ovs_coverage(lab)}


def calibrate(lab: Lab, sender: str, seconds: float) -> dict:
    """iperf3 from `sender` to the client (lb1: through the LB's shaped front link; b1: over
    the return path through rt), with the wire bytes the client's switch port saw."""
    before = probes.ports()
    result = iperf3(lab, "c1", client_ip(1), sender, seconds=seconds)
    after = probes.ports()
    return {**result, "sender": sender,
            "wire": {role: {k: after[role][k] - before[role][k] for k in after[role]}
                     for role in after}}


EXPERIMENT = Dsr()
VARIANT_NAMES = VARIANTS
