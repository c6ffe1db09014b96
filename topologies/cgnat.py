"""Users behind carrier-grade NAT, in front of LB nodes and backends.

    u1 (users 100.64.1.x) -- g1 (CGNAT: masquerade to 10.0.2.1) --\\
    u2 (users 100.64.2.x) -- g2 (CGNAT: masquerade to 10.0.2.2) ---- s1 -- lb nodes -- s2 -- b1..bB
    c1 (direct users 10.0.3.x) ------------------------------------/

Each user is one source address on its user host (u_k or c1), added at run time; a CGNAT node
rewrites all of its users to its single public address, as a carrier's NAT does. LB nodes are
as in two_tier.py (front leg 10.0.0.i/16 on s1, back leg 10.1.0.i/16 on s2); backends 10.1.1.i.

Plain Mininet can load it:  mn --custom topologies/cgnat.py --topo cgnat,cgnats=2
"""

from mininet.topo import Topo


def cgnat_public_ip(k: int) -> str:
    return f"10.0.2.{k}"


def cgnat_inside_ip(k: int) -> str:
    return f"100.64.{k}.254"


def user_ip(k: int, j: int) -> str:
    """User j (1-based) behind CGNAT k; k = 0 means a direct user on c1."""
    if k == 0:
        return f"10.0.{3 + (j - 1) // 250}.{(j - 1) % 250 + 1}"
    return f"100.64.{k}.{j}" if j < 254 else f"100.65.{k}.{j - 253}"


class CgnatTopo(Topo):
    def build(self, cgnats: int = 2, lb_names: str = "l4,l7", backends: int = 4) -> None:
        front, back = self.addSwitch("s1", dpid="1"), self.addSwitch("s2", dpid="2")
        for k in range(1, cgnats + 1):
            users = self.addHost(f"u{k}", ip=f"100.64.{k}.250/15")
            nat = self.addHost(f"g{k}", ip=f"{cgnat_public_ip(k)}/16")
            self.addLink(nat, front)
            self.addLink(nat, users, params1={"ip": f"{cgnat_inside_ip(k)}/15"})
        self.addLink(self.addHost("c1", ip="10.0.3.250/16"), front)
        for i, name in enumerate(n for n in lb_names.split(",") if n):
            node = self.addHost(name, ip=f"10.0.0.{i + 1}/16")
            self.addLink(node, front)
            self.addLink(node, back, params1={"ip": f"10.1.0.{i + 1}/16"})
        for i in range(1, backends + 1):
            self.addLink(self.addHost(f"b{i}", ip=f"10.1.1.{i}/16"), back)


topos = {"cgnat": CgnatTopo}
