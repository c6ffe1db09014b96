"""Fabric config validation and each policy's predicted remapping, against the textbook
numbers computed from N."""

from __future__ import annotations

import pytest

from controllers.policies import ConfigError, Fabric, Node, moved_fraction

NODES = tuple(Node(f"lb{i}", i, f"00:00:00:00:00:0{i}", bucket_id=i) for i in range(1, 5))


def fabric(policy, active=("lb1", "lb2", "lb3"), **kw):
    nodes = tuple(Node(n.name, n.port, n.mac, active=n.name in active, bucket_id=n.bucket_id)
                  for n in NODES)
    return Fabric(1, "10.0.0.100", "02:00:00:00:00:01", nodes=nodes, policy=policy, **kw)


BAD = [
    (dict(policy="ecmp"), "policy 'ecmp' is not one of"),
    (dict(fields="mac"), "fields 'mac' is not one of"),
    (dict(policy="select15", fields="symmetric"), "select15 cannot hash on symmetric"),
    (dict(policy="select13", fields="src_ip"), "select13 cannot hash on src_ip"),
    (dict(policy="maglev", maglev_size=100), "maglev_size 100 must be prime"),
]


@pytest.mark.parametrize(("kw", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_fabric_config(kw, message):
    with pytest.raises(ConfigError, match=message):
        Fabric(1, "10.0.0.100", "02:00:00:00:00:01", nodes=NODES, **kw)


def test_unknown_node_is_named():
    with pytest.raises(ConfigError, match="no LB node named 'lb9'"):
        fabric("hrw").with_node("lb9", active=False)


N = 3


@pytest.mark.parametrize(("policy", "expected"), [
    ("modulo_n", N / (N + 1)), ("hrw", 1 / (N + 1)), ("select15", 1 / (N + 1)),
    ("maglev", 1 / (N + 1)),
])
def test_adding_a_node_moves_the_textbook_fraction(policy, expected):
    moved = moved_fraction(fabric(policy), fabric(policy, active=("lb1", "lb2", "lb3", "lb4")))
    assert moved == pytest.approx(expected, abs=0.02)


@pytest.mark.parametrize("policy", ["select15", "maglev"])
def test_stable_policies_move_only_the_removed_nodes_flows(policy):
    moved = moved_fraction(fabric(policy), fabric(policy, active=("lb1", "lb3")))
    assert moved == pytest.approx(1 / N, abs=0.02)


def test_hrw_over_link_indices_renumbers_on_a_middle_removal():
    moved = moved_fraction(fabric("hrw"), fabric("hrw", active=("lb1", "lb3")))
    # Flows of lb1 stay (r/N with r=1); lb3's flows follow its index; of the flows of the
    # vanished last index, 1/(N-1) land where lb3 now sits: 1 - 1/3 - 1/6 = 1/2 move.
    assert moved == pytest.approx(1 - 1 / N - 1 / (N * (N - 1)), abs=0.02)


def test_dp_hash_is_not_modelled():
    assert moved_fraction(fabric("select13"), fabric("select13", active=("lb1",))) is None


def test_maglev_slots_use_a_prime_table_over_100_per_node():
    f = fabric("maglev")
    assert len(f.slots()) == f.table_size > 100 * len(NODES)
