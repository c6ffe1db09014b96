"""ecmp-rehash's parameters and model: what each change is and what each policy predicts.

Predictions run the policy's own algorithm on ideal uniform hashes for this run's N
(controllers/policies.py), so they follow `--set lbs=...`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from controllers.policies import POLICIES, Fabric, moved_fraction, shares
from lblab.params import param
from lblab.workloads.conns import ConnsConfig
from lbnodes.anycast import fabric
from topologies.two_tier import ANYCAST_VIP

PHASES = ("add", "remove")


@dataclass(frozen=True)
class Params:
    lbs: int = param(3, "N: LB nodes live before a change", min=2, max=8)
    connections: int = param(600, "K: long-lived connections per variant", min=20, max=3000)
    interval_s: float = param(1.0, "seconds between requests on one connection", min=0.2,
                              max=10)
    policies: tuple[str, ...] = param(POLICIES, "hash policies to compare", choices=POLICIES)
    fields: str = param("5tuple", "hash fields", choices=("5tuple", "src_ip"))
    remove_index: int = param(2, "which node leaves in the remove variants (lb<i>)", min=1,
                              max=8)
    backends: int = param(3, "backends behind the nodes", min=1, max=10)

    def validate(self) -> str | None:
        if self.remove_index > self.lbs:
            return f"remove_index {self.remove_index} is above lbs {self.lbs}"
        if self.fields == "src_ip":
            return "fields=src_ip needs many client addresses; this experiment has one client"
        return None


def variant_name(policy: str, phase: str) -> str:
    """`maglev-add`: policies have no "-" in their names, so `rsplit("-", 1)` undoes it."""
    return f"{policy}-{phase}"


def variant_of(name: str) -> tuple[str, str]:
    policy, phase = name.rsplit("-", 1)
    return policy, phase


def change(p: Params, phase: str) -> tuple[str, str]:
    """(timeline event name, node) of a phase's membership change."""
    node = f"lb{p.lbs + 1}" if phase == "add" else f"lb{p.remove_index}"
    return f"{phase} {node}", node


def membership(p: Params, policy: str, phase: str) -> tuple[Fabric, Fabric]:
    """The fabric before the change (N live nodes, lb(N+1) outside) and after it."""
    before = fabric(p.lbs + 1, 1, policy, p.fields)
    return before, before.with_node(change(p, phase)[1], active=phase == "add")


@functools.lru_cache(maxsize=64)
def predicted(p: Params, policy: str, phase: str) -> float | None:
    """Share of flows the change moves to another node (None: select13, not modelled)."""
    return moved_fraction(*membership(p, policy, phase))


@functools.lru_cache(maxsize=64)
def model_share_after(p: Params, policy: str, phase: str) -> dict[str, float]:
    """Where new connections go after the change (the model's per-node share)."""
    return shares(membership(p, policy, phase)[1])


def textbook(p: Params, policy: str, phase: str) -> str:
    """The prediction in the words of the literature, where it has some."""
    n = p.lbs
    return {("modulo_n", "add"): f"about N/(N+1) = {n / (n + 1):.3f}",
            ("hrw", "add"): f"about 1/(N+1) = {1 / (n + 1):.3f}",
            ("select15", "add"): f"about 1/(N+1) = {1 / (n + 1):.3f}",
            ("maglev", "add"): f"about 1/(N+1) = {1 / (n + 1):.3f}",
            ("select15", "remove"): f"the removed node's 1/N = {1 / n:.3f}",
            ("maglev", "remove"): f"about the removed node's 1/N = {1 / n:.3f}",
            }.get((policy, phase), "as its algorithm predicts")


def prober_config(p: Params) -> ConnsConfig:
    open_s = p.connections / ConnsConfig.open_rate
    return ConnsConfig(host=ANYCAST_VIP, connections=p.connections, interval_s=p.interval_s,
                       timeout_s=min(1.0, p.interval_s), max_s=120 + 10 * p.interval_s + open_s)


def settle_bound_s(cfg: ConnsConfig) -> float:
    """After the change: a survivor's next request comes within one interval; a broken one
    fails within the timeout, reconnects and answers at its next slot."""
    return 2 * cfg.interval_s + cfg.timeout_s


def variant_seconds(p: Params) -> float:
    """Opening K connections, the first round, the change at t = interval, settling, the
    prober's last round."""
    cfg = prober_config(p)
    return p.connections / cfg.open_rate + 3 * p.interval_s + settle_bound_s(cfg) + 1.0
