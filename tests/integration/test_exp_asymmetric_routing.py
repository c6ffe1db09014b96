"""asymmetric-routing in quick mode, end to end, on real OVS: result.json complete, plots drawn,
claims hold."""

from __future__ import annotations

import pytest

from tests.integration.quick import run_quick

pytestmark = pytest.mark.integration


def test_asymmetric_routing_quick(tmp_path):
    result = run_quick("asymmetric-routing", tmp_path)
    assert sum(result["variants"]["symmetric"]["invalid_drops"].values()) == 0
    assert (tmp_path / "asymmetric-routing" / "asymmetric.png").exists()
