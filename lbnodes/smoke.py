"""The smoke lab: a controller-programmed fabric, one nftables L4 node and one HAProxy node in
front of three backends. `lblab up` lands in the Mininet CLI with it; the integration tests
send real traffic through it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from lblab.lab import ControllerSpec, Lab
from lblab.workloads.handles import BackendHandle, start_backend
from lbnodes.l4 import Backend, L4Config, L4Node
from lbnodes.l7 import L7Config, L7Node, Server
from topologies.two_tier import TwoTierTopo, backend_ip, lb_front_ip

BACKEND_PORT = 8080
VIP_PORT = 80


@dataclass
class SmokeLab:
    lab: Lab
    l4: L4Node
    l7: L7Node
    backends: list[BackendHandle]

    @property
    def l4_url(self) -> str:
        return f"http://{lb_front_ip(1)}:{VIP_PORT}/"

    @property
    def l7_url(self) -> str:
        return f"http://{lb_front_ip(2)}:{VIP_PORT}/"

    def banner(self) -> list[str]:
        """What `lblab up` tells the user about this lab."""
        return [f"smoke lab up: L4 VIP {self.l4_url}  L7 VIP {self.l7_url}  controller API "
                f"http://127.0.0.1:{self.lab.controller_api}/state",
                f"try: c1 curl -s -D- -o /dev/null {self.l7_url}"]


@contextlib.contextmanager
def smoke_lab(name: str = "smoke", backends: int = 3, **backend_settings) -> Iterator[SmokeLab]:
    topo = TwoTierTopo(clients=1, lb_names="l4,l7", backends=backends)
    names = [f"b{i}" for i in range(1, backends + 1)]
    with Lab(name, topo, controller=ControllerSpec()) as lab:
        handles = [start_backend(lab, n, backend_ip(i), port=BACKEND_PORT, **backend_settings)
                   for i, n in enumerate(names, start=1)]
        l4 = L4Node(lab, L4Config("l4", lb_front_ip(1), VIP_PORT,
                                  tuple(Backend(n, backend_ip(i), BACKEND_PORT)
                                        for i, n in enumerate(names, start=1)),
                                  backend_ifname="l4-eth1")).start()
        l7 = L7Node(lab, L7Config("l7", lb_front_ip(2), VIP_PORT,
                                  tuple(Server(n, backend_ip(i), BACKEND_PORT)
                                        for i, n in enumerate(names, start=1)),
                                  check=True)).start()
        yield SmokeLab(lab, l4, l7, handles)
