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
    assert (tmp_path / "dsr" / "dsr.png").exists()
