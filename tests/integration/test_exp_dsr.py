"""dsr in quick mode, end to end, on real OVS: result.json complete, plots drawn,
claims hold."""

from __future__ import annotations

import pytest

from tests.integration.quick import run_quick

pytestmark = pytest.mark.integration


def test_dsr_quick(tmp_path):
    result = run_quick("dsr", tmp_path)
    v = result["variants"]
    assert v["dsr"]["lb_conntrack_entries"] == 0 and v["nat"]["lb_conntrack_entries"] > 0
    # NAT's backends saw the LB's back address (masquerade), DSR's the client itself, though
    # both have the topology's route to the clients via rt
    assert v["nat"]["backends_saw"] == ["10.1.0.1"] and v["dsr"]["backends_saw"] == ["10.0.1.1"]
    assert v["nat"]["lost_after_lb_share"] < 0.01
    assert result["analysis"]["htb_mbps"] and result["analysis"]["return_path_mbps"]
    for doc in ("ports", "qdisc", "tcp", "socket_drops", "ovs_coverage"):
        assert (tmp_path / "dsr" / "raw" / "nat" / f"{doc}.json").exists()
    assert (tmp_path / "dsr" / "dsr.png").exists()
