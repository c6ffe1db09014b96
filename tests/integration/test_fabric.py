"""The fabric controller on real OVS: policies spread flows, membership changes take effect,
and a controller killed and restarted under traffic breaks no connection."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from controllers.policies import POLICIES
from lblab.ready import wait_until
from lblab.workloads.client import ClientConfig
from lblab.workloads.conns import ConnsConfig
from lblab.workloads.handles import run_client, start_conns
from lbnodes.anycast import anycast_lab
from topologies.two_tier import ANYCAST_VIP, lb_back_ip

pytestmark = pytest.mark.integration
NODE_OF = {lb_back_ip(i): f"lb{i}" for i in range(1, 5)}


@pytest.fixture
def fabric_lab():
    with anycast_lab("itest-fabric", lbs=4, spares=1, service_ms=0) as lab:
        yield lab
        assert lab.lab.controller_errors == "", lab.lab.controller_errors


def spread(lab, tmp_path, tag, n=120):
    cfg = ClientConfig(targets=[lab.url], rate=120, duration_s=n / 120 + 0.001,
                       arrival="constant", keepalive=False)
    records, summary = run_client(lab.lab, "c1", cfg, tmp_path, tag)
    assert summary["counts"] == {"ok": summary["requests"]}, (tag, summary["counts"])
    return Counter(NODE_OF[r["peer"]] for r in records)


def test_every_policy_spreads_new_flows_over_exactly_the_live_nodes(fabric_lab, tmp_path):
    for policy in POLICIES:
        fabric_lab.set_policy(policy, "5tuple")
        counts = spread(fabric_lab, tmp_path, policy)
        assert set(counts) == {"lb1", "lb2", "lb3"}, (policy, counts)
        assert min(counts.values()) >= 120 * 0.1, (policy, counts)


def test_membership_changes_through_the_api_take_effect(fabric_lab, tmp_path):
    fabric_lab.set_policy("maglev", "5tuple")
    fabric_lab.add("lb4")
    assert "lb4" in spread(fabric_lab, tmp_path, "added")
    fabric_lab.remove("lb2")
    counts = spread(fabric_lab, tmp_path, "removed")
    assert "lb2" not in counts and set(counts) == {"lb1", "lb3", "lb4"}
    state = fabric_lab.api("GET", "/state")["fabric"]
    assert [n["active"] for n in state["nodes"]] == [True, False, True, True]


def test_counters_report_per_node_ports_and_buckets(fabric_lab, tmp_path):
    fabric_lab.set_policy("select15", "5tuple")
    spread(fabric_lab, tmp_path, "counted", n=60)
    counters = fabric_lab.api("GET", "/fabric/counters")
    assert sum(counters["buckets"].values()) >= 60
    assert all(counters["ports"][str(100 + i)]["tx_packets"] > 0 for i in (1, 2, 3))


def test_controller_restart_under_traffic_breaks_no_connection(fabric_lab, tmp_path):
    fabric_lab.set_policy("select15", "5tuple")
    fabric_lab.add("lb4")
    cfg = ConnsConfig(host=ANYCAST_VIP, connections=60, interval_s=0.3, timeout_s=1.0,
                      max_s=60)
    prober = start_conns(fabric_lab.lab, "c1", cfg, tmp_path, "restart")
    prober.wait_ready(timeout=20)
    fabric_lab.lab.stop_controller()
    time.sleep(1.0)  # traffic keeps flowing on the flows the switch holds (fail mode secure)
    fabric_lab.lab.start_controller()
    fabric_lab.lab.wait_connected()
    wait_until(lambda: fabric_lab.api("GET", "/state")["datapaths"] == [1, 2], timeout=10,
               what="both switches to reconnect")
    time.sleep(1.0)
    rows = prober.stop()
    failures = [r for r in rows if r["outcome"] != "ok"]
    assert not failures, failures[:5]
    assert fabric_lab.api("GET", "/state")["fabric"]["nodes"][3]["active"] is True
    assert "lb4" in spread(fabric_lab, tmp_path, "after-restart")
