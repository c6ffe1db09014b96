"""header-normalization: a corpus of ambiguous requests through strict and lenient HAProxy
to backends with different HTTP/1.1 parsers (skeleton; the experiment lands next)."""

from __future__ import annotations

from dataclasses import dataclass

from lblab.driver import Experiment, VariantPlan
from lblab.params import param


@dataclass(frozen=True)
class Params:
    timeout_s: float = param(1.0, "how long the raw client waits for more bytes", min=0.1,
                             max=10)


class HeaderNormalization(Experiment):
    name = "header-normalization"
    title = "Header normalization: strict and lenient HAProxy over different parsers"
    summary = ("A corpus of ambiguous requests (duplicate Content-Length, CL + TE, obs-fold, "
               "bare LF...) through strict and lenient HAProxy to h11, llhttp, http.server "
               "and aiohttp: who rejects, who accepts, who reads it differently.")
    needs = ("root", "ovs_running", "haproxy")
    Params = Params

    def variants(self, p: Params) -> list[VariantPlan]:
        return [VariantPlan("direct", seconds=5)]

    def lab(self, p, key):
        raise NotImplementedError

    def measure(self, env, p, v, run):
        raise NotImplementedError

    def analyse(self, p, raw):
        raise NotImplementedError

    def claims(self, p, a):
        raise NotImplementedError


EXPERIMENT = HeaderNormalization()
