"""The smoke lab on real OVS: a controller-programmed fabric, an nftables L4 node and a
HAProxy node in front of three backends, with real traffic through both."""

from __future__ import annotations

import collections
import json
import urllib.request

import pytest

from lblab.ready import wait_until
from lblab.workloads.client import ClientConfig
from lblab.workloads.handles import run_client
from lbnodes import conntrack_view
from lbnodes.smoke import smoke_lab

pytestmark = pytest.mark.integration


@pytest.fixture
def smoke(tmp_path):
    with smoke_lab("itest-smoke", service_ms=2) as s:
        yield s
        assert s.lab.controller_errors == "", "the controller logged exceptions"


def load(smoke, url, tmp_path, tag, n=90, keepalive=False):
    cfg = ClientConfig(targets=[url], rate=90, duration_s=n / 90 + 0.01, arrival="constant",
                       keepalive=keepalive)
    return run_client(smoke.lab, "c1", cfg, tmp_path, tag)


def test_both_lb_nodes_spread_real_traffic_over_every_backend(smoke, tmp_path):
    for url, tag in ((smoke.l4_url, "l4"), (smoke.l7_url, "l7")):
        records, summary = load(smoke, url, tmp_path, tag)
        assert summary["counts"] == {"ok": summary["requests"]}, tag
        per_backend = collections.Counter(r["backend"] for r in records)
        assert set(per_backend) == {"b1", "b2", "b3"}, (tag, per_backend)
        assert max(per_backend.values()) - min(per_backend.values()) <= 1, (tag, per_backend)


def test_l4_node_counts_each_connection_once_and_tracks_it(smoke, tmp_path):
    before = smoke.l4.counters()["dispatched"]["packets"]
    _, summary = load(smoke, smoke.l4_url, tmp_path, "l4", n=45)
    assert smoke.l4.counters()["dispatched"]["packets"] - before == summary["requests"]
    assert smoke.l4.conntrack_count() >= summary["requests"]
    assert smoke.l4.counters()["invalid"]["packets"] == 0


def test_the_kernels_view_of_the_l4_nodes_table_agrees_with_the_conntrack_tool(smoke, tmp_path):
    pid = smoke.lab.host("l4").pid
    if not conntrack_view.available(pid):
        pytest.skip("this kernel has no conntrack proc views (CONFIG_NF_CONNTRACK_PROCFS)")
    _, summary = load(smoke, smoke.l4_url, tmp_path, "l4", n=45)
    view, tool = smoke.l4.conntrack_states(), smoke.l4.conntrack_states_by_tool()
    assert view == tool and sum(view.values()) >= summary["requests"]
    count = int(smoke.lab.run("l4", ["cat", "/proc/sys/net/netfilter/nf_conntrack_count"]))
    assert smoke.l4.conntrack_count() == count


def test_haproxy_runtime_api_takes_a_server_out(smoke, tmp_path):
    smoke.l7.api.set_state(smoke.l7.backend, "b1", "maint")
    records, summary = load(smoke, smoke.l7_url, tmp_path, "maint", n=60)
    assert summary["counts"] == {"ok": summary["requests"]}
    assert {r["backend"] for r in records} == {"b2", "b3"}
    assert smoke.l7.server_counters()["b1"]["status"] == "MAINT"


def test_haproxy_health_check_ejects_a_hung_backend(smoke):
    smoke.backends[2].set_faults(hang=True)
    wait_until(lambda: smoke.l7.server_counters()["b3"]["status"].startswith("DOWN"),
               timeout=10, what="HAProxy to mark b3 DOWN")


def test_backend_faults_change_answers(smoke, tmp_path):
    smoke.backends[0].set_faults(error_rate=1.0)
    records, _ = load(smoke, smoke.l4_url, tmp_path, "faults", n=30)
    by_backend = {r["backend"]: r["status"] for r in records}
    assert by_backend["b1"] == "500" and by_backend["b2"] == "200"
    assert smoke.backends[0].stats()["statuses"]["500"] >= 1


def test_controller_programs_both_switches(smoke):
    url = f"http://127.0.0.1:{smoke.lab.controller_api}/state"
    state = json.loads(urllib.request.urlopen(url, timeout=5).read())
    assert state["datapaths"] == [1, 2]
    smoke.lab.run("c1", ["ping", "-c", "2", "-W", "2", "10.0.0.1"])
    flows = smoke.lab.net["s1"].dpctl("dump-flows", "-O", "OpenFlow13")
    assert "CONTROLLER" in flows and "dl_dst=" in flows
