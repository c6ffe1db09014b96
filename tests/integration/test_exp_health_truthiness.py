"""health-truthiness in quick mode, end to end, on real OVS, HAProxy and Redis: every claim
holds, and the contrasts a user would look for are there."""

from __future__ import annotations

import pytest

from tests.integration.quick import run_quick

pytestmark = pytest.mark.integration


def test_health_truthiness_quick(tmp_path):
    result = run_quick("health-truthiness", tmp_path)
    v = result["variants"]
    gray = v["gray"]["checks"]
    # The checks that lie never eject the gray-failed backend; the others do, and serve
    # fewer of its errors.
    assert gray["l4"]["eject_s"] is None and gray["shallow"]["eject_s"] is None
    for check in ("deep", "passive", "multi"):
        assert gray[check]["eject_s"] is not None
        assert gray[check]["b1_errors_before_eject"] < gray["l4"]["b1_errors_fault"]
    blip = v["shared-blip"]["checks"]
    assert blip["deep"]["fleet_empty_s"] > 1.0 and blip["multi"]["fleet_empty_s"] is None
    assert blip["multi"]["static_ok_share_fault"] == 1.0
    assert blip["deep"]["static_ok_share_fault"] < 0.9
    assert v["intermittent"]["checks"]["passive"]["passive_ejections"] >= 1
    assert v["flapping"]["checks"]["l4"]["ejections_all"] == 0
    folder = tmp_path / "health-truthiness"
    for png in ("ejections.png", "timeline-gray.png", "timeline-shared-blip.png"):
        assert (folder / png).exists()
