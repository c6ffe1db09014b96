"""Availability zones: users reach an anycast VIP served by one LB node per zone; each zone
has its own backends, and the zones are joined by counted inter-zone links.

            u1 ... uN   users (10.0.1.k/16)
                 \\ |
                 edge    the anycast edge: the controller spreads VIP flows over live LB nodes
               /  |   \\
            l1   l2 ... lZ   LB node of zone z: front 10.0.0.z/16 (port 100+z, MAC ..:01:z),
            |     |     |    back 10.1.z.1/16; the VIP 10.0.0.100 on its loopback
            z1   z2 ... zZ   zone switch z
           /|    |\\    |\\
        b11 b12  b21 ...     backend k of zone z: b{z}{k}, 10.1.z.(10+k)/16, port k of zZ
            \\    |    /
               core          inter-zone links: port 250 of each zone switch <-> port z here

The back side is one L2 network (10.1.0.0/16), so an LB node can use any zone's backend;
traffic between zones crosses `core`, and the counters of core's ports are the bytes that
left each zone (what a cloud bills as inter-zone transfer). Setting a zone's links down
(its LB node's edge port and its uplink) cuts it off as a zone failure does.

Plain Mininet can load it:  mn --custom topologies/zones.py --topo zones,zones=3
(add --switch ovs,datapath=user where the kernel has no openvswitch module).
"""

from mininet.topo import Topo

PREFIX = 16
EDGE_DPID = 0x100
CORE_DPID = 0x200
UPLINK_PORT = 250
ANYCAST_VIP = "10.0.0.100"
ANYCAST_VMAC = "02:00:00:00:00:64"
MAX_ZONES = 9
MAX_BACKENDS = 9

ROLES = {"u": "client", "edge": "switch-front", "l": "lb", "z": "switch-back",
         "b": "backend", "core": "other"}
"""Node name prefix -> role, for drawing the topology in reports."""


def user_ip(k: int) -> str:
    return f"10.0.1.{k}"


def lb_front_ip(z: int) -> str:
    return f"10.0.0.{z}"


def lb_back_ip(z: int) -> str:
    return f"10.1.{z}.1"


def lb_mac(z: int) -> str:
    return f"00:00:00:00:01:{z:02x}"


def lb_edge_port(z: int) -> int:
    return 100 + z


def lb_name(z: int) -> str:
    return f"l{z}"


def zone_switch(z: int) -> str:
    return f"z{z}"


def backend_name(z: int, k: int) -> str:
    return f"b{z}{k}"


def backend_ip(z: int, k: int) -> str:
    return f"10.1.{z}.{10 + k}"


def zone_of_backend(name: str) -> int:
    """The zone of a backend from its name (b{z}{k}); 0 when it is not one."""
    return int(name[1]) if len(name) == 3 and name[0] == "b" and name[1:].isdigit() else 0


def zone_of_address(ip: str) -> int:
    """The zone of a back-side address (10.1.z.x); 0 when it is not one."""
    parts = ip.split(".")
    return int(parts[2]) if len(parts) == 4 and parts[:2] == ["10", "1"] else 0


def edge_intf(z: int) -> str:
    """The edge switch's side of LB node z's front link."""
    return f"edge-eth{lb_edge_port(z)}"


def uplink_intf(z: int) -> str:
    """The zone switch's side of zone z's inter-zone link."""
    return f"{zone_switch(z)}-eth{UPLINK_PORT}"


def core_intf(z: int) -> str:
    """The core's side of zone z's inter-zone link: its rx bytes left zone z."""
    return f"core-eth{z}"


class ZonesTopo(Topo):
    """Z zones of one LB node and B backends each, U users on the anycast edge."""

    def build(self, zones: int = 3, backends: int = 2, users: int = 1) -> None:
        if not 2 <= zones <= MAX_ZONES or not 1 <= backends <= MAX_BACKENDS:
            raise ValueError(f"zones must be 2..{MAX_ZONES} and backends 1..{MAX_BACKENDS}")
        edge = self.addSwitch("edge", dpid=f"{EDGE_DPID:x}")
        core = self.addSwitch("core", dpid=f"{CORE_DPID:x}")
        for k in range(1, users + 1):
            self.addLink(self.addHost(f"u{k}", ip=f"{user_ip(k)}/{PREFIX}"), edge, port2=k)
        for z in range(1, zones + 1):
            switch = self.addSwitch(zone_switch(z), dpid=f"{z:x}")
            lb = self.addHost(lb_name(z), ip=f"{lb_front_ip(z)}/{PREFIX}", mac=lb_mac(z))
            self.addLink(lb, edge, port2=lb_edge_port(z))
            self.addLink(lb, switch, port2=100, params1={"ip": f"{lb_back_ip(z)}/{PREFIX}"})
            for k in range(1, backends + 1):
                host = self.addHost(backend_name(z, k), ip=f"{backend_ip(z, k)}/{PREFIX}")
                self.addLink(host, switch, port2=k)
            self.addLink(switch, core, port1=UPLINK_PORT, port2=z)


topos = {"zones": ZonesTopo}
