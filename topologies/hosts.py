"""The host class lblab topologies use: a Mininet Host that also takes its static routes.

    self.addHost("c1", cls=LabHost, ip="10.0.1.1/16", routes=[("10.1.0.0/16", "10.0.0.1")])

Routes are part of the lab's wiring, so the topology declares them (and `mn --custom` gets
them too) instead of every experiment adding them by hand after the network is up.
"""

from __future__ import annotations

from mininet.node import Host


class LabHost(Host):
    def config(self, routes=(), **params):
        result = super().config(**params)
        for prefix, via in routes:
            out = self.cmd(f"ip route replace {prefix} via {via}")
            if out.strip():
                raise RuntimeError(f"{self.name}: route {prefix} via {via}: {out.strip()}")
        return result
