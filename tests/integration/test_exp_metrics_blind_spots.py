"""metrics-blind-spots in quick mode, end to end, on real OVS, nftables, HAProxy and wrk:
every claim holds, and each view contrasts with the truth as a user would check it."""

from __future__ import annotations

import pytest

from tests.integration.quick import run_quick

pytestmark = pytest.mark.integration


def test_metrics_blind_spots_quick(tmp_path):
    result = run_quick("metrics-blind-spots", tmp_path)
    v, p = result["variants"], result["params"]
    l4 = v["l4-view"]
    # the L4 node and HAProxy in tcp mode see nothing wrong while HTTP shows the errors
    assert l4["l4_connection_success"] == 1.0 and l4["tcp_normal_share"] == 1.0
    assert l4["l7_5xx_share"] > 0 and l4["client_5xx_share"] > 0
    tail = v["tail-regression"]
    assert tail["p99_shift_ms"] > 10 * tail["rtime_shift_ms"]
    assert tail["rtime_max_ms"] < p["slo_ms"] <= tail["p99_window_ms"]
    assert tail["slo_hidden_seconds"] >= 1
    s = v["sampling"]
    assert s["full_p99_ms"] < s["slow_threshold_ms"] <= s["full_p999_ms"]
    assert s["sampled_p999_miss_share"] > 0.5
    co = v["coordinated-omission"]
    assert co["closed_affected"] == p["connections"]
    assert co["closed_p99_ms"] * 20 < co["open_p99_ms"]
    assert co["corrected_p99_ms"] > co["closed_p99_ms"] * 20
    for png in ("l4-vs-l7-errors.png", "tail-per-second.png", "sampling.png",
                "co-percentile-spectrum.png"):
        assert (tmp_path / "metrics-blind-spots" / png).exists()
