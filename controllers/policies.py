"""The fabric's hash policies, its typed configuration, and what each policy predicts.

Policies (how the edge switch spreads flows to the VIP over the LB nodes):
  select13        OpenFlow select group, no selection method: OVS picks dp_hash over 16 slots,
                  bucket IDs are list positions. Hashes IPs and TCP ports, not UDP ports.
  select15        OpenFlow 1.5 select group, selection_method=hash over chosen fields, stable
                  bucket IDs (OVS ranks buckets by highest random weight of their IDs).
  modulo_n, hash_threshold, hrw
                  Nicira `multipath` into a register, then a table keyed on it.
  maglev          `multipath modulo_n` into M slots, then the controller's Maglev table.
Fields: 5tuple, symmetric (same hash both directions), src_ip.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from controllers import maglev

POLICIES = ("select13", "select15", "modulo_n", "hash_threshold", "hrw", "maglev")
FIELDS = ("5tuple", "symmetric", "src_ip")

# What each policy can hash on, and what it cannot (said in results and errors).
SUPPORTED_FIELDS = {
    "select13": ("5tuple",),
    "select15": ("5tuple", "src_ip"),
    "modulo_n": FIELDS, "hash_threshold": FIELDS, "hrw": FIELDS, "maglev": FIELDS,
}
LIMITS = {
    "select13": "dp_hash: fields are OVS's choice (IPs and TCP ports, not UDP ports); bucket "
                "IDs are positions, so removing a middle bucket remaps survivors' flows",
    "select15": "no symmetric hash: a select group hashes the fields as they appear",
    "modulo_n": "multipath hashes 5-tuples symmetrically (symmetric_l3l4+udp); "
                "symmetric and 5tuple are the same hash here",
    "hash_threshold": "as modulo_n", "hrw": "multipath ranks link indices, so removing a "
                "middle node renumbers the nodes after it", "maglev": "as modulo_n",
}


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Node:
    name: str
    port: int
    mac: str
    weight: int = 1
    active: bool = True
    bucket_id: int = 0
    """Stable bucket ID (select15): given once, never reused."""
    link_up: bool = True
    """The switch reports the node's port up. A node whose link goes down is withdrawn, as a
    router withdraws a route whose next hop is gone, and comes back when the link does; this
    is separate from `active`, which only the operator changes."""


@dataclass(frozen=True)
class Fabric:
    """What the controller programs on the edge switch."""

    edge_dpid: int
    vip: str
    vmac: str
    nodes: tuple[Node, ...] = ()
    policy: str = "select15"
    fields: str = "5tuple"
    maglev_size: int = 0
    """0: the smallest prime above 100 x the number of nodes known."""
    group_id: int = 1
    match_dst: str = ""
    """What the fabric steers: IPv4 packets to `vmac` whose destination is in this prefix
    (e.g. a server subnet behind routers). Empty: the VIP itself. `vip` is always the
    address the controller answers ARP for (an anycast VIP, or a virtual gateway)."""

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ConfigError(f"policy {self.policy!r} is not one of {', '.join(POLICIES)}")
        if self.fields not in FIELDS:
            raise ConfigError(f"fields {self.fields!r} is not one of {', '.join(FIELDS)}")
        if self.fields not in SUPPORTED_FIELDS[self.policy]:
            raise ConfigError(f"policy {self.policy} cannot hash on {self.fields}: "
                              f"{LIMITS[self.policy]}")
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ConfigError("node names must be unique")
        if any(n.weight < 0 for n in self.nodes):
            raise ConfigError("node weights must be >= 0")
        if self.maglev_size and not maglev.is_prime(self.maglev_size):
            raise ConfigError(f"maglev_size {self.maglev_size} must be prime")
        try:
            ipaddress.IPv4Network(self.match_dst or self.vip)
        except ValueError:
            raise ConfigError(f"match_dst {self.match_dst!r} is not an IPv4 prefix") from None

    @property
    def destination(self) -> tuple[str, str]:
        """(address, netmask) that the fabric's flows match."""
        net = ipaddress.IPv4Network(self.match_dst or f"{self.vip}/32")
        return str(net.network_address), str(net.netmask)

    @property
    def live(self) -> list[Node]:
        """Nodes that take new flows, in a stable order."""
        return [n for n in self.nodes if n.active and n.link_up and n.weight > 0]

    @property
    def table_size(self) -> int:
        return self.maglev_size or maglev.table_size(len(self.nodes))

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise ConfigError(f"no LB node named {name!r}; known: "
                          f"{', '.join(n.name for n in self.nodes)}")

    def with_node(self, name: str, **changes: object) -> Fabric:
        self.node(name)
        nodes = tuple(replace(n, **changes) if n.name == name else n for n in self.nodes)
        return replace(self, nodes=nodes)

    def with_port_state(self, port: int, up: bool) -> Fabric:
        """The fabric after the switch said the link of `port` is up or down (unchanged when
        no node sits on that port)."""
        nodes = tuple(replace(n, link_up=up) if n.port == port else n for n in self.nodes)
        return replace(self, nodes=nodes)

    def slots(self) -> list[Node]:
        """The register-indexed table for multipath policies: slot -> node."""
        live = self.live
        if self.policy == "maglev":
            by_name = {n.name: n for n in live}
            table = maglev.build({n.name: n.weight for n in live}, self.table_size)
            return [by_name[name] for name in table]
        return [n for n in live for _ in range(n.weight)]

    def to_json(self) -> dict:
        return {"edge_dpid": self.edge_dpid, "vip": self.vip, "vmac": self.vmac,
                "match_dst": self.match_dst,
                "policy": self.policy, "fields": self.fields, "maglev_size": self.maglev_size,
                "table_size": self.table_size if self.policy == "maglev" else None,
                "nodes": [vars(n) for n in self.nodes], "limits": LIMITS[self.policy]}

    @classmethod
    def from_json(cls, data: dict) -> Fabric:
        nodes = tuple(Node(**n) for n in data.get("nodes", []))
        if len({n.bucket_id for n in nodes}) != len(nodes):
            nodes = tuple(replace(n, bucket_id=i + 1) for i, n in enumerate(nodes))
        return cls(edge_dpid=int(data["edge_dpid"]), vip=data["vip"], vmac=data["vmac"],
                   nodes=nodes, policy=data.get("policy", "select15"),
                   fields=data.get("fields", "5tuple"),
                   maglev_size=int(data.get("maglev_size", 0)),
                   match_dst=data.get("match_dst", ""))


# -- what a policy predicts: its algorithm run on ideal uniform hashes -----------------------
def _score(h: int, key: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{h}:{key}".encode(), digest_size=8).digest(), "big")


def chooser(fabric: Fabric) -> Callable[[int], str | None]:
    """The policy as a function: ideal hash value (uniform on 0..2^64) -> node name.

    None for select13: OVS's dp_hash allocation of its 16 slots is not modelled.
    """
    live = fabric.live
    if not live or fabric.policy == "select13":
        return lambda _h: None
    if fabric.policy == "select15":
        return lambda h: max(live, key=lambda n: (_score(h, n.bucket_id) / 2**64)
                             ** (1 / n.weight)).name
    names = [n.name for n in fabric.slots()]
    size = len(names)
    if fabric.policy in ("modulo_n", "maglev"):
        return lambda h: names[h % size]
    if fabric.policy == "hash_threshold":
        return lambda h: names[h * size >> 64]
    return lambda h: names[max(range(size), key=lambda i: _score(h, i))]  # hrw


def moved_fraction(before: Fabric, after: Fabric, samples: int = 20_000,
                   seed: int = 0) -> float | None:
    """Share of flows whose node changes between two memberships (None: not modelled)."""
    if before.policy == "select13":
        return None
    old, new = chooser(before), chooser(after)
    rng = random.Random(seed)
    moved = 0
    for _ in range(samples):
        h = rng.getrandbits(64)
        moved += old(h) != new(h)
    return moved / samples


def shares(fabric: Fabric, samples: int = 20_000, seed: int = 0) -> dict[str, float]:
    rng = random.Random(seed)
    pick = chooser(fabric)
    counts: dict[str, int] = {}
    for _ in range(samples):
        name = pick(rng.getrandbits(64))
        if name:
            counts[name] = counts.get(name, 0) + 1
    return {k: v / samples for k, v in sorted(counts.items())}



