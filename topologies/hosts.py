"""The host class lblab topologies use: a Mininet Host that also takes its static routes.

    self.addHost("c1", cls=LabHost, ip="10.0.1.1/16", routes=[("10.1.0.0/16", "10.0.0.1")])
    self.addHost("rt", cls=LabHost, ip="10.0.0.250/16", forward=True)

Routes, and whether a host forwards (a router), are part of the lab's wiring, so the topology
declares them (and `mn --custom` gets them too) instead of every experiment adding them by
hand after the network is up. Both are per-namespace settings, gone with the host.
"""

from __future__ import annotations

from mininet.node import Host


class LabHost(Host):
    def config(self, routes=(), forward=False, **params):
        result = super().config(**params)
        if forward:
            self.cmd("sysctl -q -w net.ipv4.ip_forward=1")
        for prefix, via in routes:
            out = self.cmd(f"ip route replace {prefix} via {via}")
            if out.strip():
                raise RuntimeError(f"{self.name}: route {prefix} via {via}: {out.strip()}")
        return result
