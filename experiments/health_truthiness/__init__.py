"""health-truthiness: port-open and shallow checks that lie, deep checks that empty the
fleet, passive and multi-signal checks (issue #14). Skeleton: the package is being built."""

from __future__ import annotations

from dataclasses import dataclass

from lblab.driver import Experiment


@dataclass(frozen=True)
class Params:
    pass


class HealthTruthiness(Experiment):
    name = "health-truthiness"
    title = "Health checks that lie: l4, shallow, deep, passive and multi-signal"
    summary = "Skeleton."
    needs = ("root", "ovs_running", "haproxy", "redis-server", "nft")
    Params = Params

    def variants(self, p):
        return []


EXPERIMENT = HealthTruthiness()
