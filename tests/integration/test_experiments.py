"""Each experiment in quick mode, end to end: result.json complete, plots drawn, claims hold."""

from __future__ import annotations

import json

import pytest

from lblab.runner import run

pytestmark = pytest.mark.integration


def run_quick(name, out):
    """Run `name` in quick mode; every claim must hold, exit 0, and plots be drawn."""
    code = run([name], [], quick=True, seed=1, out=out, repeat=1, lab=f"it-{name[:12]}",
               progress=lambda *_: None)
    result = json.loads((out / name / "result.json").read_text())
    failing = [f"{c['id']}: predicted {c['predicted']}, measured {c['measured']}"
               for c in result["claims"] if not c["holds"]]
    assert not failing, failing
    assert code == 0
    assert list((out / name).glob("*.png")), "no plot was drawn"
    return result


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


def test_ecmp_rehash_quick(tmp_path):
    result = run_quick("ecmp-rehash", tmp_path)
    assert result["variants"]["modulo_n/add"]["broken_fraction"] > \
        result["variants"]["maglev/add"]["broken_fraction"]
    assert (tmp_path / "ecmp-rehash" / "broken-fraction.png").exists()


def test_retry_storm_quick(tmp_path):
    result = run_quick("retry-storm", tmp_path)
    v = result["variants"]
    assert v["layered"]["amplification_slowdown"] > v["naive"]["amplification_slowdown"] > \
        v["budget-10"]["amplification_slowdown"] > v["breaker"]["amplification_slowdown"]
    assert (tmp_path / "retry-storm" / "amplification.png").exists()


def test_asymmetric_routing_quick(tmp_path):
    result = run_quick("asymmetric-routing", tmp_path)
    assert sum(result["variants"]["symmetric"]["invalid_drops"].values()) == 0
    assert (tmp_path / "asymmetric-routing" / "asymmetric.png").exists()


def test_dsr_quick(tmp_path):
    result = run_quick("dsr", tmp_path)
    v = result["variants"]
    assert v["dsr"]["lb_conntrack_entries"] == 0 and v["nat"]["lb_conntrack_entries"] > 0
    assert (tmp_path / "dsr" / "dsr.png").exists()


def test_cgnat_skew_quick(tmp_path):
    result = run_quick("cgnat-skew", tmp_path)
    v = result["variants"]
    assert v["l7:source"]["stickiness"] > v["l7:roundrobin"]["stickiness"]
    assert v["l7:roundrobin"]["jain"] > v["l7:source"]["jain"]
    assert set(v["ecmp:5tuple"]["shares"]) == {"a1", "a2", "a3"}
    assert (tmp_path / "cgnat-skew" / "shares.png").exists()


def test_az_failover_quick(tmp_path):
    result = run_quick("az-failover", tmp_path)
    v = result["variants"]
    assert set(v) == {"naive@0.5", "zone-aware@0.5", "zone-aware@0.9", "surge@0.5", "surge@0.9"}
    # the controller withdrew the failed zone's LB node on its own, from the link going down
    assert all(m["time_to_withdraw_s"] is not None for m in v.values())
    # without admission control the saturated survivors' p99 is far above surge's
    assert v["zone-aware@0.9"]["p99_ms_after"] > 2 * v["surge@0.9"]["p99_ms_after"]
    assert v["naive@0.5"]["cross_zone_gb"] > 10 * v["zone-aware@0.5"]["cross_zone_gb"]
    for plot in ("timeline.png", "sweep.png", "cross-zone-cost.png"):
        assert (tmp_path / "az-failover" / plot).exists()
