"""ecmp-rehash in quick mode, end to end, on real OVS: result.json complete, plots drawn,
claims hold."""

from __future__ import annotations

import pytest

from tests.integration.quick import run_quick

pytestmark = pytest.mark.integration


def test_ecmp_rehash_quick(tmp_path):
    result = run_quick("ecmp-rehash", tmp_path)
    v = result["variants"]
    assert v["modulo_n-add"]["broken_fraction"] > v["maglev-add"]["broken_fraction"]
    for name, m in v.items():
        assert m["alive"] == result["params"]["connections"], (name, m)
        assert m["unprobed_after_change"] == 0 and m["failed_before_change"] == 0, name
        assert m["t_change_s"] >= result["params"]["interval_s"], name
    for png in ("broken-fraction.png", "node-share.png", "failures.png"):
        assert (tmp_path / "ecmp-rehash" / png).exists(), png
