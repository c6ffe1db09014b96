"""retry-storm in quick mode, end to end, on real OVS: result.json complete, plots drawn,
claims hold."""

from __future__ import annotations

import pytest

from tests.integration.quick import run_quick

pytestmark = pytest.mark.integration


def test_retry_storm_quick(tmp_path):
    result = run_quick("retry-storm", tmp_path)
    v = result["variants"]
    assert v["layered"]["amplification_slowdown"] > v["naive"]["amplification_slowdown"] > \
        v["budget-10"]["amplification_slowdown"] > v["breaker"]["amplification_slowdown"]
    assert (tmp_path / "retry-storm" / "amplification.png").exists()
