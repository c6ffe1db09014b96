"""Interface byte and packet counters, read over netlink with pyroute2.

The switch-side end of every lab link lives in the root namespace, so one IPRoute socket
reads what each node sent and received without entering any namespace.
"""

from __future__ import annotations

from pyroute2 import IPRoute

KEYS = ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "rx_dropped", "tx_dropped")


def link_stats(names: list[str]) -> dict[str, dict[str, int]]:
    """{ifname: {rx/tx_bytes, rx/tx_packets, rx/tx_dropped}} from IFLA_STATS64."""
    out: dict[str, dict[str, int]] = {}
    with IPRoute() as ipr:
        for name in names:
            links = ipr.get_links(ifname=name)
            if not links:
                raise KeyError(f"no interface {name!r} in the root namespace")
            stats = links[0].get("IFLA_STATS64") or links[0].get("IFLA_STATS")
            out[name] = {k: int(stats.get(k, 0)) for k in KEYS}
    return out


def delta(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
          ) -> dict[str, dict[str, int]]:
    return {name: {k: after[name][k] - before[name][k] for k in KEYS} for name in after}
