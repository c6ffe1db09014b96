"""conntrack-exhaustion in quick mode, end to end, on real OVS: result.json complete, plots drawn,
claims hold."""

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
    assert result["variants"]["keep-alive"]["reuse_factor"] > 5
    assert result["environment"]["git"]["commit"]
    assert (tmp_path / "conntrack-exhaustion" / "occupancy.png").exists()
    assert (tmp_path / "conntrack-exhaustion" / "occupancy.csv").exists()
