"""tls-termination in quick mode, end to end, on real OVS and HAProxy 2.6: every claim holds,
the contrasts a user checks are there (runtime rotation and reload lose nothing, a restart
loses handshakes; an expired certificate commits; strict-sni refuses what plain SNI serves
with the wrong name; the backends' CA rotation takes every request down only without the
bundle), and the plots are drawn."""

from __future__ import annotations

import pytest

from tests.integration.quick import run_quick

pytestmark = pytest.mark.integration


def test_tls_termination_quick(tmp_path):
    result = run_quick("tls-termination", tmp_path)
    v = result["variants"]
    assert v["rotate-runtime"]["failed"] == v["rotate-reload"]["failed"] == 0
    assert v["restart"]["failed"] > 0 and v["restart"]["gap_s"] > 0
    assert v["rotate-runtime"]["new_served_after"] == v["rotate-reload"]["new_served_after"] == 1
    assert v["expiry"]["expired_commit_success"] and v["expiry"]["after_expired_share"] == 1
    assert v["bad-rotation"]["commit_refused"] == 1 and v["bad-rotation"]["failed"] == 0
    assert v["sni"]["outcomes"].get("hostname") and v["sni-strict"]["outcomes"].get(
        "handshake_failed")
    assert v["ocsp"]["ordinary_failed"] == 0 and v["ocsp"]["dropped_must_fail_share"] == 1
    assert v["mtls-ca"]["after_503_share"] == 1 and v["mtls-bundle"]["failed"] == 0
    assert result["duration_s"] < 90
    for png in ("handshakes.png", "serials.png", "failures.png"):
        assert (tmp_path / "tls-termination" / png).exists()
