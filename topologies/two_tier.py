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
every byte between them crosses an LB node (NAT, or a full proxy such as HAProxy). LB node i
has the fixed MAC 00:00:00:00:01:i and sits on port 100+i of s1, so a controller can be told
where each node is before the network exists (anycast: the edge spreads a VIP over them).
`lb_bw` (Mbit/s) shapes each LB node's links with htb to make the LB the bottleneck.

Plain Mininet can load it:  mn --custom topologies/two_tier.py --topo twotier,clients=2
(add --switch ovs,datapath=user where the kernel has no openvswitch module).
"""

from mininet.topo import Topo

FRONT_PREFIX = 16
BACK_PREFIX = 16


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


def lb_edge_port(i: int) -> int:
    return 100 + i


ANYCAST_VIP = "10.0.0.100"
ANYCAST_VMAC = "02:00:00:00:00:64"


class TwoTierTopo(Topo):
    """N clients, M LB nodes with a front and a back leg, K backends."""

    def build(self, clients: int = 2, lbs: int = 1, backends: int = 3,
              lb_names: str = "", lb_bw: float = 0.0) -> None:
        names = [n for n in lb_names.split(",") if n] or [f"lb{i}" for i in range(1, lbs + 1)]
        front, back = self.addSwitch("s1", dpid="1"), self.addSwitch("s2", dpid="2")
        shaping = {"bw": lb_bw} if lb_bw else {}
        for i in range(1, clients + 1):
            self.addLink(self.addHost(f"c{i}", ip=f"{client_ip(i)}/{FRONT_PREFIX}"), front,
                         port2=i)
        for i, name in enumerate(names, start=1):
            node = self.addHost(name, ip=f"{lb_front_ip(i)}/{FRONT_PREFIX}", mac=lb_mac(i))
            self.addLink(node, front, port2=lb_edge_port(i), **shaping)
            self.addLink(node, back, params1={"ip": f"{lb_back_ip(i)}/{BACK_PREFIX}"}, **shaping)
        for i in range(1, backends + 1):
            self.addLink(self.addHost(f"b{i}", ip=f"{backend_ip(i)}/{BACK_PREFIX}"), back)


topos = {"twotier": TwoTierTopo}
