"""Floods (hping3) and bulk transfers (iperf3), bounded in count and in time.

Every target must be an address inside the lab (a host interface, or an address the lab
registered, such as a VIP on a backend's loopback): traffic never leaves the namespaces lblab
created. Each tool runs in its own process group and is killed when its time bound passes.
"""

from __future__ import annotations

import json
import subprocess
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
    seconds_bound: float
    stopped_by_bound: bool


def syn_flood(lab: Any, node: str, target: str, port: int, *, count: int, seconds: float,
              interval_us: int = 0, spoof_sources: bool = False) -> FloodResult:
    """hping3 SYNs at `target:port`: at most `count` packets and `seconds` seconds.

    interval_us 0 sends as fast as hping3 can (--flood); spoofed sources draw random source
    addresses, whose replies have no route out of the lab and are dropped there.
    """
    check_target(lab, target)
    if not 0 < count <= MAX_FLOOD_PACKETS or not 0 < seconds <= MAX_SECONDS:
        raise UsageError(f"flood bounds: count 1..{MAX_FLOOD_PACKETS}, seconds "
                         f"1..{MAX_SECONDS}")
    argv = ["hping3", "-q", "-S", "-p", str(port), "-c", str(count)]
    argv += ["--flood"] if interval_us == 0 else ["-i", f"u{interval_us}"]
    argv += ["--rand-source"] if spoof_sources else []
    proc = lab.spawn(node, [*argv, target], name=f"hping3-{node}")
    code = _bounded_wait(lab, proc, seconds, "hping3")
    return FloodResult(sent=None, seconds_bound=seconds, stopped_by_bound=code == -1)


def iperf3(lab: Any, server: str, server_ip: str, client: str, *, seconds: float,
           reverse: bool = False, port: int = 5201, streams: int = 1) -> dict:
    """One bounded iperf3 run; returns its summary (bits/s, bytes, retransmits)."""
    check_target(lab, server_ip)
    if not 0 < seconds <= MAX_SECONDS:
        raise UsageError(f"iperf3 seconds must be within 1..{MAX_SECONDS}")
    srv = lab.spawn(server, ["iperf3", "-s", "-1", "-B", server_ip, "-p", str(port)],
                    name=f"iperf3-server-{server}")
    lab.wait_listening(server, port, proc=srv)
    argv = ["iperf3", "-c", server_ip, "-p", str(port), "-t", str(seconds), "-J",
            "-P", str(streams), "--connect-timeout", "3000"] + (["-R"] if reverse else [])
    out = lab.run(client, argv, timeout=seconds + 20)
    _bounded_wait(lab, srv, 10, "iperf3 server")
    data = json.loads(out)
    if "error" in data:
        raise LabError(f"iperf3 {client} -> {server_ip}: {data['error']}")
    end = data["end"]
    received = end.get("sum_received", {})
    return {"bits_per_second": received.get("bits_per_second"),
            "bytes": received.get("bytes"),
            "retransmits": end.get("sum_sent", {}).get("retransmits"), "seconds": seconds}
