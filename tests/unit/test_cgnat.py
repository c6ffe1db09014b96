from __future__ import annotations

import ipaddress

import pytest

from experiments.cgnat_skew import Params, jain, user_groups
from topologies.cgnat import cgnat_inside_ip, inside_network


def test_jain_index_bounds():
    assert jain([5, 5, 5, 5]) == pytest.approx(1.0)
    assert jain([20, 0, 0, 0]) == pytest.approx(0.25)
    assert jain([0, 0]) == 0.0


@pytest.mark.parametrize(("users", "shares"), [(400, (0.4, 0.2)), (2000, (0.5, 0.1)),
                                               (2000, (0.05, 0.05, 0.05))])
def test_users_are_valid_unique_addresses_in_their_own_network(users, shares):
    groups = user_groups(Params(users=users, cgnat_shares=shares))
    assert len(groups["u1"]) == round(shares[0] * users)
    every = [ipaddress.IPv4Address(a) for addrs in groups.values() for a in addrs]
    assert len(set(every)) == users
    for k in range(1, len(shares) + 1):
        net = inside_network(k)
        assert all(ipaddress.IPv4Address(a) in net for a in groups[f"u{k}"])
        assert cgnat_inside_ip(k) not in groups[f"u{k}"]
    front = ipaddress.IPv4Network("10.0.0.0/16")
    assert all(ipaddress.IPv4Address(a) in front for a in groups["c1"])
    assert "10.0.2.250" not in groups["c1"] and "10.0.0.1" not in groups["c1"]


def test_sweep_population_has_a_fixed_size_and_the_asked_share():
    from experiments.cgnat_skew import sweep_population

    groups = user_groups(Params(users=400, cgnat_shares=(0.4, 0.2)))
    for share in (0.0, 0.25, 0.5, 1.0):
        pop = sweep_population(groups, share)
        assert len(pop["u1"]) + len(pop["c1"]) == 160
        assert len(pop["u1"]) == round(share * 160)
