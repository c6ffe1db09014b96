"""cgnat-skew in quick mode, end to end, on real OVS: result.json complete, plots drawn,
claims hold, shares.csv holds every policy."""

from __future__ import annotations

import pytest

from lblab.raw import read_table
from tests.integration.quick import run_quick

pytestmark = pytest.mark.integration


def test_cgnat_skew_quick(tmp_path):
    result = run_quick("cgnat-skew", tmp_path)
    v = result["variants"]
    assert v["l7:source"]["stickiness"] > v["l7:roundrobin"]["stickiness"]
    assert v["l7:roundrobin"]["jain"] > v["l7:source"]["jain"]
    assert set(v["ecmp:5tuple"]["shares"]) == {"a1", "a2", "a3"}
    folder = tmp_path / "cgnat-skew"
    assert {r["policy"] for r in read_table(folder / "shares.csv")} == set(v)
    assert (folder / "shares.png").exists()
