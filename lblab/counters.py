"""Interface byte and packet counters, read over netlink with pyroute2.

The switch-side end of every lab link lives in the root namespace, so one IPRoute socket
reads what each node sent and received without entering any namespace. One RTM_GETLINK dump
answers for every interface: asking pyroute2 for each name (`get_links(ifname=...)`) dumps
and parses every link once per name, and samplers call this every 200 ms.
"""

from __future__ import annotations

from pyroute2 import IPRoute

KEYS = ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "rx_dropped", "tx_dropped")


def link_stats(names: list[str]) -> dict[str, dict[str, int]]:
    """{ifname: {rx/tx_bytes, rx/tx_packets, rx/tx_dropped}} from IFLA_STATS64 (IFLA_STATS
    where a driver has no 64-bit counters)."""
    wanted = set(names)
    found: dict[str, dict[str, int]] = {}
    with IPRoute() as ipr:
        for link in ipr.get_links():
            name = link.get("IFLA_IFNAME")
            if name in wanted:
                stats = link.get("IFLA_STATS64") or link.get("IFLA_STATS") or {}
                found[name] = {k: int(stats.get(k, 0)) for k in KEYS}
    missing = [n for n in names if n not in found]
    if missing:
        raise KeyError(f"no interface {missing[0]!r} in the root namespace")
    return {name: found[name] for name in names}


def delta(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
          ) -> dict[str, dict[str, int]]:
    return {name: {k: after[name][k] - before[name][k] for k in KEYS} for name in after}
