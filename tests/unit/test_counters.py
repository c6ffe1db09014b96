"""Interface counters over netlink (pyroute2): one RTM_GETLINK dump for every name asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from lblab.counters import KEYS, delta, link_stats


def sysfs(name: str, key: str) -> int:
    return int(Path(f"/sys/class/net/{name}/statistics/{key}").read_text())


def test_loopback_counters_match_the_kernels_between_two_reads():
    before = {k: sysfs("lo", k) for k in KEYS}
    stats = link_stats(["lo"])["lo"]
    after = {k: sysfs("lo", k) for k in KEYS}
    assert set(stats) == set(KEYS)
    assert all(before[k] <= stats[k] <= after[k] for k in KEYS)


def test_every_interface_of_the_namespace_is_read_from_one_dump():
    names = sorted(p.name for p in Path("/sys/class/net").iterdir())
    assert set(link_stats(names)) == set(names)


def test_an_unknown_interface_is_a_key_error():
    with pytest.raises(KeyError, match="no interface 'nosuch0'"):
        link_stats(["lo", "nosuch0"])


def test_delta_subtracts_per_interface():
    a = {"x": dict.fromkeys(KEYS, 1)}
    b = {"x": dict.fromkeys(KEYS, 5)}
    assert delta(a, b) == {"x": dict.fromkeys(KEYS, 4)}
