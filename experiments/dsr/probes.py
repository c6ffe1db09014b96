"""What dsr reads from the lab: interface counters of the switch-side ports, the LB node's
htb queue (`tc -s`), and the TCP counters (/proc/net/snmp, /proc/net/netstat) of each node.

All readers return plain dicts that go into raw data as they are; the analysis takes the
differences.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lblab.counters import link_stats
from topologies.two_tier import RETURN_ROUTER_PORT, lb_edge_port

PORTS = {"client": "s1-eth1", "lb_front": f"s1-eth{lb_edge_port(1)}",
         "lb_back": f"s2-eth{lb_edge_port(1)}", "rt_front": f"s1-eth{RETURN_ROUTER_PORT}"}
"""Switch-side ends (root namespace) of the links that matter. A switch port's tx is what its
node received: `client` tx = bytes the client received; `lb_front` rx = bytes the LB node
sent toward the clients; `rt_front` rx = what the return router sent toward them."""
SHAPED = {"lb1-eth0": "lb1", "s2-eth101": "s2", "s1-eth101": "s1", "lb1-eth1": "lb1"}
"""Every htb-shaped interface (both ends of the LB's two links) and the node it is in. NAT's
responses queue twice: at s2-eth101 (the back switch toward the LB: the first shaper they
meet) and at lb1-eth0 (the LB toward the clients); requests and ACKs at s1-eth101 and
lb1-eth1."""
RESPONSE_QUEUES = ("s2-eth101", "lb1-eth0")
TCP_KEYS = ("ActiveOpens", "PassiveOpens", "InSegs", "OutSegs", "RetransSegs", "OutRsts",
            "EstabResets", "AttemptFails")
TCPEXT_KEYS = ("TCPTimeouts", "TCPLostRetransmit", "TCPFastRetrans", "TCPSlowStartRetrans",
               "TCPSackRecovery", "TCPAbortOnData", "TCPAbortOnClose", "TCPAbortOnTimeout",
               "TCPSpuriousRTOs", "TCPDSACKRecv", "TCPDSACKOldSent", "TCPDSACKOfoSent",
               "TCPOFOQueue", "DelayedACKs", "TCPBacklogDrop", "TCPSynRetrans")


def ports() -> dict[str, dict[str, int]]:
    """{role: {rx_bytes, tx_bytes, rx_packets, tx_packets}} of every port in PORTS."""
    stats = link_stats(list(PORTS.values()))
    return {role: stats[name] for role, name in PORTS.items()}


def flat(snapshot: dict[str, dict[str, int]], base: dict[str, dict[str, int]]) -> dict:
    """A sample row: each port counter as `role_key`, counted from `base`."""
    return {f"{role}_{k}": v - base[role][k] for role, counters in snapshot.items()
            for k, v in counters.items()}


CLASS_HEAD = re.compile(r"^class (\S+) (\S+) ")
CLASS_NUMBERS = re.compile(
    r"Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+) requeues (\d+)\)"
    r"\s+backlog (\d+)b (\d+)p")
CLASS_HTB = re.compile(r"lended: (\d+) borrowed: (\d+) giants: (\d+)")


def qdisc(lab: Any, node: str, ifname: str) -> dict[str, Any]:
    """`tc -s qdisc` (tc's JSON) and `tc -s class` (its text, and the numbers parsed from
    it: iproute2 6.1 prints htb classes as text even with -j) of one interface."""
    text = lab.run(node, ["tc", "-s", "class", "show", "dev", ifname])
    return {"qdisc": json.loads(lab.run(node, ["tc", "-s", "-j", "qdisc", "show", "dev",
                                                 ifname]) or "[]"),
            "class": parse_classes(text), "class_text": text}


def parse_classes(text: str) -> list[dict[str, Any]]:
    """`tc -s class show` text -> one dict per class: kind, classid and its counters."""
    out = []
    for block in re.split(r"\n(?=class )", text.strip()):
        head, numbers = CLASS_HEAD.match(block), CLASS_NUMBERS.search(block)
        if not head or not numbers:
            continue
        htb = CLASS_HTB.search(block)
        values = numbers.groups() + (htb.groups() if htb else (0, 0, 0))
        keys = ("bytes", "packets", "drops", "overlimits", "requeues", "backlog",
                "qlen", "lended", "borrowed", "giants")
        out.append({"kind": head.group(1), "classid": head.group(2),
                    **{k: int(v) for k, v in zip(keys, values, strict=True)}})
    return out


def htb_root(stats: dict[str, Any]) -> dict[str, int] | None:
    """The htb root qdisc's counters from `qdisc(...)`: bytes, packets, drops, overlimits,
    requeues, backlog (bytes) and qlen (packets) now; None on an unshaped interface."""
    for q in stats["qdisc"]:
        if q.get("kind") == "htb":
            return {k: int(q.get(k, 0)) for k in ("bytes", "packets", "drops", "overlimits",
                                                   "requeues", "backlog", "qlen")}
    return None


def ovs_interfaces(lab: Any) -> dict[str, dict[str, int]]:
    """Open vSwitch's own statistics of every lab port (rx_dropped, tx_dropped, ...): the
    userspace datapath counts there what it lost between its ports."""
    out = json.loads(lab.run("s1", ["ovs-vsctl", "--timeout=10", "--format=json",
                                    "--columns=name,statistics", "list", "Interface"]))
    found = {}
    for name, stats in out["data"]:
        if name in PORTS.values() or name.startswith(("s1-", "s2-")):
            found[name] = {k: int(v) for k, v in stats[1]}
    return found


SKMEM_DROPS = re.compile(r"\*:(\S+)\s.*?skmem:\(.*?,d(\d+)\)")


def packet_socket_drops(lab: Any) -> dict[str, int]:
    """Packets the kernel dropped because the userspace switch did not read them in time:
    the `d` (drops) of `ss -0 -m` for each of Open vSwitch's packet sockets (one per port;
    the userspace datapath reads its ports through them). No interface counter sees these."""
    out = lab.run("s1", ["ss", "-0", "-m", "-n"])
    return {name: int(d) for name, d in SKMEM_DROPS.findall(out)
            if name.startswith(("s1-", "s2-"))}


COVERAGE = re.compile(r"^(\w+)\s.*total: (\d+)$", re.M)


def ovs_coverage(lab: Any) -> dict[str, int]:
    """ovs-vswitchd's event counters (`coverage/show`) about packets and drops: they are the
    switch's own, machine-wide (one lab runs at a time)."""
    out = lab.run("s1", ["ovs-appctl", "--timeout=10", "coverage/show"])
    return {k: int(v) for k, v in COVERAGE.findall(out)
            if "drop" in k or k.startswith(("netdev_", "upcall", "dpif_netdev"))}


def tcp_counters(lab: Any, node: str) -> dict[str, int]:
    """The node's TCP counters (its own namespace's /proc/net/snmp and netstat)."""
    found: dict[str, int] = {}
    for path, keys in (("/proc/net/snmp", TCP_KEYS), ("/proc/net/netstat", TCPEXT_KEYS)):
        lines = lab.run(node, ["cat", path]).splitlines()
        for head, values in zip(lines[::2], lines[1::2], strict=False):
            names, nums = head.split()[1:], values.split()[1:]
            if head.split(":")[0] in ("Tcp", "TcpExt"):
                found.update({k: int(v) for k, v in zip(names, nums, strict=True) if k in keys})
    return found
