"""sticky-sessions in quick mode, end to end, on real OVS with real HAProxy and Redis:
every claim holds, and the contrasts a user would check are there (carts lost in memory,
none in Redis, fewer with draining; affinity makes hotter backends than round robin)."""

from __future__ import annotations

import pytest

from tests.integration.quick import run_quick

pytestmark = pytest.mark.integration


def test_sticky_sessions_quick(tmp_path):
    result = run_quick("sticky-sessions", tmp_path)
    v = result["variants"]
    local, redis, drain = v["cookie-local"], v["cookie-redis"], v["drain"]
    assert local["lost"] > 0 and local["lost"] == local["lost_on_failed"]
    assert redis["sessions_lost"] == 0 and redis["on_failed"] > 0
    assert 0 < drain["lost"] < local["lost"]
    assert v["hot-backends"]["max_over_mean"] > v["hot-roundrobin"]["max_over_mean"]
    assert v["recovery"]["t_up"] > v["recovery"]["t_back"]
    for png in ("lost-carts.png", "hot-backends.png", "recovery.png", "per-backend.png"):
        assert (tmp_path / "sticky-sessions" / png).exists()
