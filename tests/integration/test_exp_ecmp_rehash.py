"""ecmp-rehash in quick mode, end to end, on real OVS: result.json complete, plots drawn,
claims hold."""

from __future__ import annotations

import pytest

from tests.integration.quick import run_quick

pytestmark = pytest.mark.integration


def test_ecmp_rehash_quick(tmp_path):
    result = run_quick("ecmp-rehash", tmp_path)
    assert result["variants"]["modulo_n/add"]["broken_fraction"] > \
        result["variants"]["maglev/add"]["broken_fraction"]
    assert (tmp_path / "ecmp-rehash" / "broken-fraction.png").exists()
