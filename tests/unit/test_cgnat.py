from __future__ import annotations

import ipaddress

import pytest

from experiments.cgnat_skew import Params, user_groups
from experiments.cgnat_skew.lab import lab_plan
from experiments.cgnat_skew.params import user_counts
from topologies.cgnat import CgnatTopo, UserHost, cgnat_inside_ip, inside_network


def test_the_topology_declares_the_users_and_their_routes():
    topo = CgnatTopo(cgnats=2, users=(3, 2, 4))
    u1, u2, c1 = (topo.nodeInfo(h) for h in ("u1", "u2", "c1"))
    assert u1["cls"] is UserHost and c1["cls"] is UserHost
    assert u1["routes"] == [("default", cgnat_inside_ip(1))]
    assert u2["routes"] == [("default", cgnat_inside_ip(2))]
    assert u1["addresses"] == ["100.64.0.3/15", "100.64.0.4/15", "100.64.0.5/15"]
    assert c1["addresses"] == ["10.0.3.1/16", "10.0.3.2/16", "10.0.3.3/16", "10.0.3.4/16"]
    assert "routes" not in c1  # direct users share the LB nodes' subnet
    assert CgnatTopo().nodeInfo("u1")["addresses"] == []  # mn --custom: no users
    with pytest.raises(ValueError, match="one count per CGNAT"):
        CgnatTopo(cgnats=2, users=(3, 2))


def test_the_experiment_lab_declares_every_user():
    p = Params(users=400, cgnat_shares=(0.4, 0.2))
    assert user_counts(p) == (160, 80, 160)
    topo = lab_plan(p).topo
    groups = user_groups(p)
    for host in ("u1", "u2", "c1"):
        declared = [a.split("/")[0] for a in topo.nodeInfo(host)["addresses"]]
        assert declared == groups[host]


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
