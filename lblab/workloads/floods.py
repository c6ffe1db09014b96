"""Floods (hping3) and bulk transfers (iperf3), bounded in count and in time.

Every target must be an address inside the lab (a host interface, or an address the lab
registered, such as a VIP on a backend's loopback): traffic never leaves the namespaces lblab
created. Each tool runs in its own process group and is killed when its time bound passes.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from lblab.errors import LabError, UsageError

MAX_FLOOD_PACKETS = 5_000_000
MAX_SECONDS = 600


def check_target(lab: Any, ip: str, what: str = "") -> None:
    """Refuse a target that is not one of the lab's own addresses (floods, iperf3 and the
    client's URLs all go through here); `what` names the target in the message."""
    if ip not in lab.addresses():
        prefix = f"{what}: " if what else ""
        raise UsageError(f"{prefix}{ip} is not an address inside lab {lab.name}; floods and "
                         "load only go to the lab's own hosts")


def _bounded_wait(lab: Any, proc: subprocess.Popen, seconds: float, what: str) -> int:
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        lab.stop_process(proc)
        return -1


@dataclass
class FloodResult:
    sent: int | None
    """SYNs that left the flooder's namespace (its nftables counter)."""
    seconds_bound: float
    stopped_by_bound: bool
    """The time bound ended the flood (not the count, nor hping3 itself)."""
    stopped_by_count: bool = False


FLOOD_TABLE = "lblab_flood"
SYN_BYTES = 40
"""An hping3 SYN without data as the output hook counts it: 20 B IP + 20 B TCP header."""
COUNT_POLL_S = 0.25


def flood_bound_ruleset(target: str, port: int, count: int) -> str:
    """The count bound, in the flooder's own namespace: hping3's `-c` is ignored with
    `--flood`, so its output hook lets `count` SYNs to target:port out (a byte quota of
    `count` x 40 B) and drops the rest there, counting both."""
    match = f"ip daddr {target} tcp dport {port}"
    return (f"table ip {FLOOD_TABLE}\ndelete table ip {FLOOD_TABLE}\n"
            f"table ip {FLOOD_TABLE} {{\n\tcounter sent {{ }}\n\tcounter over {{ }}\n"
            f"\tchain output {{\n\t\ttype filter hook output priority filter; policy accept;\n"
            f"\t\t{match} quota over {count * SYN_BYTES} bytes counter name \"over\" drop\n"
            f"\t\t{match} counter name \"sent\"\n\t}}\n}}\n")


def _flood_sent(lab: Any, node: str) -> int:
    out = lab.run(node, ["nft", "-j", "list", "counter", "ip", FLOOD_TABLE, "sent"])
    return next(item["counter"]["packets"] for item in json.loads(out)["nftables"]
                if "counter" in item)


def syn_flood(lab: Any, node: str, target: str, port: int, *, count: int, seconds: float,
              interval_us: int = 0, spoof_sources: bool = False) -> FloodResult:
    """hping3 SYNs at `target:port`: at most `count` packets and `seconds` seconds.

    interval_us 0 sends as fast as hping3 can (--flood); spoofed sources draw random source
    addresses, whose replies have no route out of the lab and are dropped there. The count
    is enforced in `node`'s namespace (`flood_bound_ruleset`); hping3 is stopped once it is
    reached or the time bound passes, whichever is first.
    """
    check_target(lab, target)
    if not 0 < count <= MAX_FLOOD_PACKETS or not 0 < seconds <= MAX_SECONDS:
        raise UsageError(f"flood bounds: count 1..{MAX_FLOOD_PACKETS}, seconds "
                         f"1..{MAX_SECONDS}")
    rules = lab.file(f"flood-bound-{node}.nft")
    rules.write_text(flood_bound_ruleset(target, port, count))
    argv = ["hping3", "-q", "-S", "-p", str(port), "-c", str(count)]
    argv += ["--flood"] if interval_us == 0 else ["-i", f"u{interval_us}"]
    argv += ["--rand-source"] if spoof_sources else []
    lab.run(node, ["nft", "-f", str(rules)])
    by_time = by_count = False
    try:
        proc = lab.spawn(node, [*argv, target], name=f"hping3-{node}")
        deadline = time.monotonic() + seconds
        try:
            while proc.poll() is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    by_time = True
                    break
                try:
                    proc.wait(timeout=min(COUNT_POLL_S, left))
                except subprocess.TimeoutExpired:
                    if _flood_sent(lab, node) >= count:
                        by_count = True
                        break
        finally:
            if proc.poll() is None:
                lab.stop_process(proc)
        sent = _flood_sent(lab, node)
    finally:
        lab.run(node, ["nft", "delete", "table", "ip", FLOOD_TABLE], check=False)
    return FloodResult(sent=sent, seconds_bound=seconds, stopped_by_bound=by_time,
                       stopped_by_count=by_count)


def iperf3(lab: Any, server: str, server_ip: str, client: str, *, seconds: float,
           reverse: bool = False, port: int = 5201, streams: int = 1,
           connect_ip: str | None = None) -> dict:
    """One bounded iperf3 run; returns its summary (bits/s, bytes, retransmits).

    connect_ip: the address the client connects to, when it is not `server_ip` (a VIP that
    a NAT node translates to `server_ip`)."""
    check_target(lab, server_ip)
    connect_ip = connect_ip or server_ip
    check_target(lab, connect_ip)
    if not 0 < seconds <= MAX_SECONDS:
        raise UsageError(f"iperf3 seconds must be within 1..{MAX_SECONDS}")
    srv = lab.spawn(server, ["iperf3", "-s", "-1", "-B", server_ip, "-p", str(port)],
                    name=f"iperf3-server-{server}")
    lab.wait_listening(server, port, proc=srv)
    argv = ["iperf3", "-c", connect_ip, "-p", str(port), "-t", str(seconds), "-J",
            "-P", str(streams), "--connect-timeout", "3000"] + (["-R"] if reverse else [])
    out = lab.run(client, argv, timeout=seconds + 20)
    _bounded_wait(lab, srv, 10, "iperf3 server")
    data = json.loads(out)
    if "error" in data:
        raise LabError(f"iperf3 {client} -> {connect_ip}: {data['error']}")
    end = data["end"]
    received = end.get("sum_received", {})
    return {"bits_per_second": received.get("bits_per_second"),
            "bytes": received.get("bytes"),
            "retransmits": end.get("sum_sent", {}).get("retransmits"), "seconds": seconds}
