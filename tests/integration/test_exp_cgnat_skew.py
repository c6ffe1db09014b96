"""cgnat-skew in quick mode, end to end, on real OVS: result.json complete, plots drawn,
claims hold."""

from __future__ import annotations

import pytest

from tests.integration.quick import run_quick

pytestmark = pytest.mark.integration


def test_cgnat_skew_quick(tmp_path):
    result = run_quick("cgnat-skew", tmp_path)
    v = result["variants"]
    assert v["l7:source"]["stickiness"] > v["l7:roundrobin"]["stickiness"]
    assert v["l7:roundrobin"]["jain"] > v["l7:source"]["jain"]
    assert set(v["ecmp:5tuple"]["shares"]) == {"a1", "a2", "a3"}
    assert (tmp_path / "cgnat-skew" / "shares.png").exists()
