"""conntrack-exhaustion in quick mode, end to end, on real OVS: result.json complete, plots drawn,
claims hold, the global nf_conntrack_max restored and recorded."""

from __future__ import annotations

import pytest

from tests.integration.quick import run_quick

pytestmark = pytest.mark.integration


def test_conntrack_exhaustion_quick(tmp_path):
    result = run_quick("conntrack-exhaustion", tmp_path)
    assert {"churn", "short-timeout", "keep-alive", "spread", "syn-flood", "synproxy",
            "small-table"} == set(result["variants"])
    changed = result["environment"]["sysctls_changed"]
    assert changed and changed[0]["path"].endswith("nf_conntrack_max")
    assert open("/proc/sys/net/netfilter/nf_conntrack_max").read().strip() == changed[0]["old"]
    small = result["variants"]["small-table"]
    assert small["conntrack_max_after"] == small["conntrack_max_before"] == int(changed[0]["old"])
    assert result["variants"]["keep-alive"]["reuse_factor"] > 5
    assert result["analysis"]["nat_paths_on_link"] is True
    assert all(result["variants"][f]["flood_s"] > 0 for f in ("syn-flood", "synproxy"))
    assert result["environment"]["git"]["commit"]
    folder = tmp_path / "conntrack-exhaustion"
    for name in ("occupancy.png", "steady-state.png", "floods.png", "small-table.png",
                 "occupancy.csv", "small-table-admissions.csv"):
        assert (folder / name).exists(), name
