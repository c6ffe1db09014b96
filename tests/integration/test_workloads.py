"""Workload tools in a real lab: bounded floods and transfers, Redis-backed sessions."""

from __future__ import annotations

import json
import time

import pytest

from lblab.errors import UsageError
from lblab.lab import Lab
from lblab.workloads.floods import iperf3, syn_flood
from lblab.workloads.handles import start_backend
from lblab.workloads.redis_store import start_redis
from topologies.two_tier import TwoTierTopo, backend_ip, client_ip, lb_back_ip

pytestmark = pytest.mark.integration


@pytest.fixture
def lab():
    with Lab("itest-work", TwoTierTopo(clients=1, lbs=1, backends=2)) as lab:
        yield lab


def test_floods_refuse_targets_outside_the_lab(lab):
    with pytest.raises(UsageError, match="not an address inside lab itest-work"):
        syn_flood(lab, "c1", "192.0.2.1", 80, count=10, seconds=1)


def test_syn_flood_stops_at_its_time_bound(lab):
    t0 = time.monotonic()
    result = syn_flood(lab, "b1", backend_ip(2), 80, count=5_000_000, seconds=1.5)
    assert result.stopped_by_bound
    assert time.monotonic() - t0 < 6


def test_iperf3_measures_a_bounded_transfer(lab):
    result = iperf3(lab, "b2", backend_ip(2), "b1", seconds=1)
    assert result["bits_per_second"] > 1e6 and result["bytes"] > 0


def test_sessions_in_redis_survive_the_backend_that_made_them(lab):
    url = start_redis(lab, "lb1", lb_back_ip(1))
    for i, node in enumerate(("b1", "b2"), start=1):
        start_backend(lab, node, backend_ip(i), port=8080, redis_url=url, service_ms=0)
    add = lab.run("b1", ["curl", "-s", "-X", "POST", "-d", "book",
                         f"http://{backend_ip(1)}:8080/cart"])
    sid = json.loads(add)["sid"]
    read = lab.run("b2", ["curl", "-s", "-b", f"sid={sid}", f"http://{backend_ip(2)}:8080/cart"])
    assert json.loads(read)["items"] == ["book"]
    assert client_ip(1) in lab.addresses()
