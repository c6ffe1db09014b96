"""The anycast LB tier: stateful L4 nodes that share a VIP, spread over by the fabric.

    c1..cC -> s1 (edge: the controller hashes VIP flows over the live LB nodes)
           -> lb1..lbN (nftables DNAT + conntrack, VIP on lo, strict conntrack)
           -> s2 -> b1..bK

Nodes listed in `spares` are built and running but start outside the membership, ready to
be added through the controller's API. Experiments and tests share this instead of wiring
the controller's fabric config and the nodes by hand: `anycast_lab` brings up a whole lab;
an experiment on the driver declares `anycast_topo` and `anycast_controller` in its LabPlan
and calls `start_tier` in its setup, on the lab the driver brought up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from controllers.policies import Fabric, Node
from lblab.lab import ControllerSpec, Lab
from lblab.workloads.handles import BackendHandle, start_backend
from lbnodes.l4 import Backend, L4Config, L4Node
from topologies.two_tier import (
    ANYCAST_VIP,
    ANYCAST_VMAC,
    TwoTierTopo,
    backend_ip,
    lb_edge_port,
    lb_mac,
)

EDGE_DPID = 1
BACKEND_PORT = 8080
VIP_PORT = 80


def fabric(lbs: int, spares: int, policy: str, fields: str = "5tuple") -> Fabric:
    nodes = tuple(Node(f"lb{i}", lb_edge_port(i), lb_mac(i), active=i <= lbs - spares,
                       bucket_id=i) for i in range(1, lbs + 1))
    return Fabric(EDGE_DPID, ANYCAST_VIP, ANYCAST_VMAC, nodes=nodes, policy=policy,
                  fields=fields)


@dataclass
class AnycastLab:
    lab: Lab
    nodes: list[L4Node]
    backends: list[BackendHandle]

    @property
    def url(self) -> str:
        return f"http://{ANYCAST_VIP}:{VIP_PORT}/"

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        return self.lab.controller_api_call(method, path, body)

    def set_policy(self, policy: str, fields: str) -> dict:
        return self.api("POST", "/fabric/policy", {"policy": policy, "fields": fields})

    def add(self, name: str) -> dict:
        return self.api("POST", "/fabric/nodes/add", {"name": name})

    def remove(self, name: str) -> dict:
        return self.api("POST", "/fabric/nodes/remove", {"name": name})

    def set_membership(self, target: Fabric) -> None:
        """Make each node of `target` a member or not, as `target` has it."""
        for node in target.nodes:
            (self.add if node.active else self.remove)(node.name)

    def flush_state(self) -> None:
        for node in self.nodes:
            node.flush_conntrack()


def anycast_topo(*, clients: int = 1, lbs: int = 4, backends: int = 3) -> TwoTierTopo:
    return TwoTierTopo(clients=clients, lbs=lbs, backends=backends)


def anycast_controller(*, lbs: int = 4, spares: int = 1, policy: str = "select15",
                       fields: str = "5tuple") -> ControllerSpec:
    """The fabric controller, told where every node is (the last `spares` outside)."""
    return ControllerSpec(config={"fabrics": [fabric(lbs, spares, policy, fields).to_json()]})


def start_tier(lab: Lab, *, lbs: int = 4, backends: int = 3,
               **backend_settings: Any) -> AnycastLab:
    """Start the backends and the LB nodes in a lab built from `anycast_topo`."""
    handles = [start_backend(lab, f"b{i}", backend_ip(i), port=BACKEND_PORT,
                             **backend_settings) for i in range(1, backends + 1)]
    pool = tuple(Backend(f"b{i}", backend_ip(i), BACKEND_PORT)
                 for i in range(1, backends + 1))
    nodes = [L4Node(lab, L4Config(f"lb{i}", ANYCAST_VIP, VIP_PORT, pool,
                                  backend_ifname=f"lb{i}-eth1", vip_on_loopback=True,
                                  tcp_loose=False)).start()
             for i in range(1, lbs + 1)]
    return AnycastLab(lab, nodes, handles)


@contextlib.contextmanager
def anycast_lab(name: str, *, clients: int = 1, lbs: int = 4, spares: int = 1,
                backends: int = 3, policy: str = "select15", fields: str = "5tuple",
                log_dir: Any = None, **backend_settings: Any) -> Iterator[AnycastLab]:
    topo = anycast_topo(clients=clients, lbs=lbs, backends=backends)
    spec = anycast_controller(lbs=lbs, spares=spares, policy=policy, fields=fields)
    with Lab(name, topo, controller=spec, log_dir=log_dir) as lab:
        yield start_tier(lab, lbs=lbs, backends=backends, **backend_settings)
