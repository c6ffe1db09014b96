"""cgnat-skew's parameters, policies, populations and variants."""

from __future__ import annotations

from dataclasses import dataclass

from lblab.params import param
from topologies.cgnat import user_addresses, user_host

L7_POLICIES = ("source", "roundrobin", "leastconn", "random2", "bounded", "weighted")
L4_POLICIES = ("jhash-saddr", "jhash-sport", "numgen")
ECMP_POLICIES = ("src_ip", "5tuple")
POLICIES = (tuple(f"ecmp:{p}" for p in ECMP_POLICIES) + tuple(f"l4:{p}" for p in L4_POLICIES)
            + tuple(f"l7:{p}" for p in L7_POLICIES))
SOURCE_HASHED = ("ecmp:src_ip", "l7:source", "l4:jhash-saddr")
"""A whole CGNAT is one source address: these pin it to one unit."""
MULTINOMIAL = ("ecmp:5tuple", "l4:jhash-sport")
"""Every connection hashed on its own (source port included): independent uniform picks."""
ROTATION = ("l7:roundrobin", "l4:numgen")
"""A shared counter (HAProxy's roundrobin, nftables `numgen inc`): strict rotation."""
SIMULATED = ("l7:leastconn", "l7:random2", "l7:bounded")
"""Picks that depend on the servers' concurrent connections: HAProxy's rule simulated."""
SPREADING = MULTINOMIAL + ROTATION + SIMULATED
BALANCE_FACTOR = 125
"""`hash-balance-factor` of the bounded policy (f = 1.25)."""
BACKEND_PORT = 8080
L4_VIP, L7_VIP = "10.0.0.1", "10.0.0.2"


@dataclass(frozen=True)
class Params:
    users: int = param(400, "users (distinct source addresses)", min=20, max=2000)
    cgnat_shares: tuple[float, ...] = param((0.4, 0.2), "share of users behind each CGNAT "
                                            "(the rest are direct)", min=0.01, max=0.95)
    backends: int = param(4, "backends", min=2, max=12)
    anycast: int = param(3, "anycast L4 nodes for the ECMP layer", min=2, max=8)
    rate: float = param(200.0, "requests per second, all users together", min=10, max=1000)
    seconds: float = param(8.0, "seconds of load per policy", min=1, max=600)
    service_ms: float = param(40.0, "mean backend service time, exponential (concurrency "
                              "for leastconn, random2 and bounded loads to act on)",
                              min=0, max=1000)
    weights: tuple[int, ...] = param((3, 1, 1, 1), "server weights for the weighted policy",
                                     min=1, max=256)
    policies: tuple[str, ...] = param(POLICIES, "policies to compare", choices=POLICIES)
    sweep: tuple[float, ...] = param((0.1, 0.25, 0.5, 0.75), "biggest-CGNAT shares for the "
                                     "fairness sweep (empty: none)", min=0.0, max=1.0)
    sweep_policies: tuple[str, ...] = param(("l7:source", "l7:bounded", "l7:roundrobin"),
                                            "policies swept", choices=POLICIES)

    def validate(self) -> str | None:
        if any(x.startswith("ecmp:") for x in self.sweep_policies) and self.sweep:
            return "the sweep runs L4/L7 policies only"
        if sum(self.cgnat_shares) >= 1:
            return "cgnat_shares must add up to less than 1 (some users are direct)"
        if len(self.weights) != self.backends:
            return f"weights needs one value per backend ({self.backends})"
        return None


def quick() -> Params:
    return Params(seconds=2.5, users=200, sweep=())


def user_counts(p: Params) -> tuple[int, ...]:
    """Users on u1..uK (behind the CGNATs), then on c1 (direct): the topology's `users`."""
    behind = [round(share * p.users) for share in p.cgnat_shares]
    return (*behind, p.users - sum(behind))


def user_groups(p: Params) -> dict[str, list[str]]:
    """Host -> its users' addresses: u1..uK behind CGNATs, c1 direct."""
    counts = user_counts(p)
    groups = {user_host(k): user_addresses(k, counts[k - 1])
              for k in range(1, len(p.cgnat_shares) + 1)}
    groups[user_host(0)] = user_addresses(0, counts[-1])
    return groups


def sweep_population(groups: dict[str, list[str]], share: float) -> dict[str, list[str]]:
    """A population of fixed size in which `share` of the users are behind CGNAT u1: drawn
    from u1's users and c1's direct users, so the lab needs no rebuild between points."""
    size = min(len(groups["u1"]), len(groups["c1"]))
    behind = round(share * size)
    return {"u1": groups["u1"][:behind], "c1": groups["c1"][:size - behind]}


@dataclass(frozen=True)
class Setting:
    """What a variant runs: a policy, over every user or over one sweep population."""

    policy: str
    sweep_share: float | None = None

    @property
    def layer(self) -> str:
        return self.policy.split(":")[0]

    @property
    def mechanism(self) -> str:
        return self.policy.split(":")[1]

    def to_json(self) -> dict:
        return {"policy": self.policy, "sweep_share": self.sweep_share}


def sweep_variant(policy: str, share: float) -> str:
    return f"sweep:{policy}@{share:g}"


def settings(p: Params) -> dict[str, Setting]:
    """Variant name -> setting, in run order: the policies, then the sweep."""
    out = {policy: Setting(policy) for policy in p.policies}
    for policy in p.sweep_policies if p.sweep else ():
        for share in p.sweep:
            out[sweep_variant(policy, share)] = Setting(policy, share)
    return out


def units(p: Params, layer: str) -> list[str]:
    """What a layer spreads over: the anycast nodes (ECMP) or the backends (L4, L7)."""
    if layer == "ecmp":
        return [f"a{i}" for i in range(1, p.anycast + 1)]
    return [f"b{i}" for i in range(1, p.backends + 1)]
