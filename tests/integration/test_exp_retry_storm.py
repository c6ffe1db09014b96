"""retry-storm in quick mode, end to end, on real OVS: result.json complete, plots drawn,
claims hold, and the breaker and budget were measured at the backends."""

from __future__ import annotations

import pytest

from tests.integration.quick import run_quick

pytestmark = pytest.mark.integration


def test_retry_storm_quick(tmp_path):
    result = run_quick("retry-storm", tmp_path)
    v = result["variants"]
    assert v["layered"]["amplification_slowdown"] > v["naive"]["amplification_slowdown"] > \
        v["budget-10"]["amplification_slowdown"] > v["breaker"]["amplification_slowdown"]
    assert v["budget-10"]["budget_windows"] > 0
    assert v["budget-10"]["budget_client_windows_over"] == 0
    assert v["breaker"]["open_intervals"] and v["breaker"]["arrivals_stop_s"] is not None
    assert result["analysis"]["drain_bound_s"]["breaker"] > \
        result["analysis"]["drain_bound_s"]["budget-10"]
    for png in ("amplification.png", "goodput-latency-recovery.png", "breaker-budget.png"):
        assert (tmp_path / "retry-storm" / png).exists()
