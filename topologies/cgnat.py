"""Users behind carrier-grade NAT, in front of LB nodes and backends.

    u1 (users in 100.64.0.0/15) -- g1 (CGNAT: masquerade to 10.0.2.1) --\\
    u2 (users in 100.66.0.0/15) -- g2 (CGNAT: masquerade to 10.0.2.2) ---- s1 -- lbs -- s2 -- bB
    c1 (direct users from 10.0.3.1) --------------------------------------/

Each user is one source address on its user host (u_k or c1): `users=(n1, ..., nK, n_direct)`
declares how many each host holds (UserHost adds them with one `ip -batch` as the host is
configured), and each u_k routes by default via its CGNAT's inside address. A CGNAT node
rewrites all of its users to its single public address, as a carrier's NAT does. LB nodes are
as in two_tier.py (front leg 10.0.0.i/16 on s1, back leg 10.1.0.i/16 on s2); backends 10.1.1.i.
`anycast=N` adds a1..aN (MAC 00:00:00:00:03:i on port 100+i of s1, back leg 10.1.0.(10+i)):
stateful nodes sharing the VIP 10.0.0.100 that a controller spreads flows over (ECMP).

Plain Mininet can load it:  mn --custom topologies/cgnat.py --topo cgnat,cgnats=2
"""

import ipaddress
import subprocess

from mininet.topo import Topo

from topologies.hosts import LabHost

ROLES = {"u": "client", "c": "client", "g": "cgnat", "s1": "switch-front", "l": "lb",
         "a": "lb", "s2": "switch-back", "b": "backend"}
"""Node name prefix -> role, for drawing the topology in reports."""


def cgnat_public_ip(k: int) -> str:
    return f"10.0.2.{k}"


def inside_network(k: int) -> ipaddress.IPv4Network:
    """CGNAT k's users: a /15 of the shared address space 100.64.0.0/10 (RFC 6598)."""
    return ipaddress.IPv4Network(f"100.{64 + 2 * (k - 1)}.0.0/15")


def cgnat_inside_ip(k: int) -> str:
    return str(inside_network(k)[1])


def user_host_ip(k: int) -> str:
    return str(inside_network(k)[2])


DIRECT_BASE = ipaddress.IPv4Address("10.0.3.0")
ANYCAST_VIP = "10.0.0.100"
ANYCAST_VMAC = "02:00:00:00:00:64"


def anycast_mac(i: int) -> str:
    return f"00:00:00:00:03:{i:02x}"


def anycast_port(i: int) -> int:
    return 100 + i


def anycast_back_ip(i: int) -> str:
    return f"10.1.0.{10 + i}"


DIRECT_PREFIX = 16
"""Direct users share c1's front /16."""


def user_ip(k: int, j: int) -> str:
    """User j (1-based) behind CGNAT k; k = 0 means a direct user on c1 (10.0.3.1 on)."""
    if k == 0:
        return str(DIRECT_BASE + j)
    return str(inside_network(k)[2 + j])


def user_host(k: int) -> str:
    """The host holding CGNAT k's users (k = 0: the direct users' host)."""
    return f"u{k}" if k else "c1"


def user_addresses(k: int, n: int) -> list[str]:
    """The n users of host `user_host(k)`, as addresses."""
    return [user_ip(k, j) for j in range(1, n + 1)]


class UserHost(LabHost):
    """A lab host that also holds its users' source addresses on its first interface,
    added in one `ip -batch` when Mininet configures the host (before the lab is up)."""

    def config(self, addresses=(), **params):
        result = super().config(**params)
        if addresses:
            batch = "".join(f"addr add {a} dev {self.defaultIntf()}\n" for a in addresses)
            proc = self.popen(["ip", "-batch", "-"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            out, _ = proc.communicate(batch.encode())
            if proc.returncode:
                raise RuntimeError(f"{self.name}: adding {len(addresses)} user addresses: "
                                   f"{out.decode().strip()}")
        return result


class CgnatTopo(Topo):
    def build(self, cgnats: int = 2, lb_names: str = "l4,l7", backends: int = 4,
              anycast: int = 0, users: tuple[int, ...] = ()) -> None:
        """`users`: how many users each of u1..uK and then c1 holds (empty: none)."""
        if users and len(users) != cgnats + 1:
            raise ValueError(f"users needs one count per CGNAT and one for c1 ({cgnats + 1})")
        count = dict(zip([*range(1, cgnats + 1), 0], users or [0] * (cgnats + 1),
                         strict=True))
        front, back = self.addSwitch("s1", dpid="1"), self.addSwitch("s2", dpid="2")
        for k in range(1, cgnats + 1):
            prefix = inside_network(k).prefixlen
            users_k = self.addHost(
                user_host(k), cls=UserHost, ip=f"{user_host_ip(k)}/{prefix}",
                routes=[("default", cgnat_inside_ip(k))],
                addresses=[f"{a}/{prefix}" for a in user_addresses(k, count[k])])
            nat = self.addHost(f"g{k}", ip=f"{cgnat_public_ip(k)}/16")
            self.addLink(nat, front)
            self.addLink(nat, users_k, params1={"ip": f"{cgnat_inside_ip(k)}/{prefix}"})
        self.addLink(self.addHost(
            user_host(0), cls=UserHost, ip=f"10.0.2.250/{DIRECT_PREFIX}",
            addresses=[f"{a}/{DIRECT_PREFIX}" for a in user_addresses(0, count[0])]), front)
        for i, name in enumerate(n for n in lb_names.split(",") if n):
            node = self.addHost(name, ip=f"10.0.0.{i + 1}/16")
            self.addLink(node, front)
            self.addLink(node, back, params1={"ip": f"10.1.0.{i + 1}/16"})
        for i in range(1, anycast + 1):
            node = self.addHost(f"a{i}", ip=f"10.0.0.{10 + i}/16", mac=anycast_mac(i))
            self.addLink(node, front, port2=anycast_port(i))
            self.addLink(node, back, params1={"ip": f"{anycast_back_ip(i)}/16"})
        for i in range(1, backends + 1):
            self.addLink(self.addHost(f"b{i}", ip=f"10.1.1.{i}/16"), back)


topos = {"cgnat": CgnatTopo}
