"""metrics-blind-spots (skeleton; being built)."""

from __future__ import annotations

from lblab.driver import Experiment, VariantPlan

from .params import Params, quick


class MetricsBlindSpots(Experiment):
    name = "metrics-blind-spots"
    title = "Metrics blind spots: L4 counters, averages, sampling and coordinated omission"
    summary = ("L4 counters miss an L7 error spike; averaged and sampled latency hide a tail "
               "regression the full HDR histogram shows; a closed-loop load tool hides a stall.")
    needs = ("root", "ovs_running", "haproxy", "wrk")
    Params = Params

    def quick(self) -> Params:
        return quick()

    def variants(self, p: Params) -> list[VariantPlan]:
        return [VariantPlan(name, p.end + 2) for name in p.variants]


EXPERIMENT = MetricsBlindSpots()
