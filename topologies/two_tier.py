"""Clients -> front switch -> LB nodes -> back switch -> backends.

    c1 ... cN                       (10.0.1.k/16)
        \\  |  /
          s1  front switch
        /  |  \\
    lb1 ... lbM   eth0 10.0.0.k/16 (front), eth1 10.1.0.k/16 (back)
        \\  |  /
          s2  back switch
        /  |  \\
    b1 ... bK                       (10.1.1.k/16)

LB nodes have one leg on each side; clients and backends never see each other's subnet, so
every byte between them crosses an LB node (NAT, or a full proxy such as HAProxy) unless
`return_router` adds `rt` (10.0.0.250 / 10.1.0.250, port 200 on both switches), a plain
forwarding router for replies that bypass the LB (DSR). LB node i has the fixed MACs
00:00:00:00:01:i (front) and 00:00:00:00:01:8i (back) and sits on port 100+i of both
switches; backend i has 00:00:00:00:02:i on port i of s2. So a controller can be told where
each node is before the network exists.
`lb_bw` (Mbit/s) shapes each LB node's links with htb to make the LB the bottleneck: both
ends of each link (`lb_bw_ends="both"`), or only the LB node's own interfaces ("lb": what
the node transmits, which is everything that crosses it; the queue is then the node's, not
a switch port's, and a lab that shapes only one end needs `link=TCLink` given explicitly).
`client_gw` / `backend_gw` route each side's hosts to the other side's subnet through an
address (an LB node's leg, a virtual gateway the controller answers ARP for, `rt`).

Plain Mininet can load it:  mn --custom topologies/two_tier.py --topo twotier,clients=2
(add --switch ovs,datapath=user where the kernel has no openvswitch module).
"""

from mininet.topo import Topo

from topologies.hosts import LabHost

FRONT_PREFIX = 16
BACK_PREFIX = 16
FRONT_NET = "10.0.0.0/16"
BACK_NET = "10.1.0.0/16"


def client_ip(i: int) -> str:
    return f"10.0.1.{i}"


def lb_front_ip(i: int) -> str:
    return f"10.0.0.{i}"


def lb_back_ip(i: int) -> str:
    return f"10.1.0.{i}"


def backend_ip(i: int) -> str:
    return f"10.1.1.{i}"


def lb_mac(i: int) -> str:
    return f"00:00:00:00:01:{i:02x}"


def lb_back_mac(i: int) -> str:
    return f"00:00:00:00:01:{0x80 + i:02x}"


def backend_mac(i: int) -> str:
    return f"00:00:00:00:02:{i:02x}"


RETURN_ROUTER_FRONT = "10.0.0.250"
RETURN_ROUTER_BACK = "10.1.0.250"
RETURN_ROUTER_PORT = 200


def lb_edge_port(i: int) -> int:
    return 100 + i


ROLES = {"c": "client", "s1": "switch-front", "l": "lb", "rt": "other", "s2": "switch-back",
         "b": "backend"}
"""Node name prefix -> role, for drawing the topology in reports."""

ANYCAST_VIP = "10.0.0.100"
ANYCAST_VMAC = "02:00:00:00:00:64"


class TwoTierTopo(Topo):
    """N clients, M LB nodes with a front and a back leg, K backends."""

    def build(self, clients: int = 2, lbs: int = 1, backends: int = 3,
              lb_names: str = "", lb_bw: float = 0.0, return_router: bool = False,
              client_gw: str = "", backend_gw: str = "", lb_bw_ends: str = "both") -> None:
        names = [n for n in lb_names.split(",") if n] or [f"lb{i}" for i in range(1, lbs + 1)]
        front, back = self.addSwitch("s1", dpid="1"), self.addSwitch("s2", dpid="2")
        if lb_bw_ends not in ("both", "lb"):
            raise ValueError(f"lb_bw_ends {lb_bw_ends!r}: use both or lb")
        both = {"bw": lb_bw} if lb_bw and lb_bw_ends == "both" else {}
        own = {"bw": lb_bw} if lb_bw and lb_bw_ends == "lb" else {}
        to_back = {"routes": [(BACK_NET, client_gw)]} if client_gw else {}
        to_front = {"routes": [(FRONT_NET, backend_gw)]} if backend_gw else {}
        for i in range(1, clients + 1):
            self.addLink(self.addHost(f"c{i}", cls=LabHost, ip=f"{client_ip(i)}/{FRONT_PREFIX}",
                                      **to_back), front, port2=i)
        for i, name in enumerate(names, start=1):
            node = self.addHost(name, ip=f"{lb_front_ip(i)}/{FRONT_PREFIX}", mac=lb_mac(i))
            self.addLink(node, front, port2=lb_edge_port(i), params1=own, **both)
            self.addLink(node, back, port2=lb_edge_port(i), addr1=lb_back_mac(i),
                         params1={"ip": f"{lb_back_ip(i)}/{BACK_PREFIX}", **own}, **both)
        for i in range(1, backends + 1):
            self.addLink(self.addHost(f"b{i}", cls=LabHost, ip=f"{backend_ip(i)}/{BACK_PREFIX}",
                                      mac=backend_mac(i), **to_front), back, port2=i)
        if return_router:
            rt = self.addHost("rt", cls=LabHost, ip=f"{RETURN_ROUTER_FRONT}/{FRONT_PREFIX}",
                              forward=True)
            self.addLink(rt, front, port2=RETURN_ROUTER_PORT)
            self.addLink(rt, back, port2=RETURN_ROUTER_PORT,
                         params1={"ip": f"{RETURN_ROUTER_BACK}/{BACK_PREFIX}"})


topos = {"twotier": TwoTierTopo}
