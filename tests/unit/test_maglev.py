"""Maglev table properties, with small prime sizes that can be checked by hand."""

from __future__ import annotations

from collections import Counter

import pytest

from controllers import maglev

NODES = {f"lb{i}": 1 for i in range(1, 6)}


def test_table_size_is_prime_and_above_100_per_node():
    for n in (1, 3, 4, 7, 10):
        m = maglev.table_size(n)
        assert maglev.is_prime(m) and m > 100 * n


def test_non_prime_size_is_refused():
    with pytest.raises(ValueError, match="must be prime"):
        maglev.build(NODES, 100)


def test_deterministic():
    assert maglev.build(NODES, 503) == maglev.build(dict(reversed(NODES.items())), 503)


def test_no_empty_slots():
    table = maglev.build(NODES, 13)
    assert len(table) == 13 and all(table)


def test_single_node_fills_the_table():
    assert set(maglev.build({"only": 1}, 7)) == {"only"}


def test_empty_membership_gives_empty_table():
    assert maglev.build({}, 7) == [] and maglev.build({"a": 0}, 7) == []


@pytest.mark.parametrize("m", [7, 13, 101, 503])
def test_equal_weights_within_one_slot_of_each_other(m):
    counts = Counter(maglev.build(NODES, m))
    assert max(counts.values()) - min(counts.values()) <= 1


def test_weights_are_respected():
    counts = Counter(maglev.build({"big": 3, "small": 1}, 401))
    assert counts["big"] / counts["small"] == pytest.approx(3, abs=0.05)


def test_zero_weight_node_gets_no_slots():
    assert "off" not in maglev.build({"a": 1, "off": 0}, 13)


def survivor_moves(m: int, removed: str) -> tuple[list[int], list[int]]:
    before = maglev.build(NODES, m)
    after = maglev.build({k: v for k, v in NODES.items() if k != removed}, m)
    moved = [i for i in range(m) if before[i] != after[i]]
    return [i for i in moved if before[i] == removed], [i for i in moved if before[i] != removed]


@pytest.mark.parametrize("removed", ["lb1", "lb3", "lb5"])
def test_removing_one_of_n_moves_all_its_slots_and_few_of_the_survivors(removed):
    # Maglev trades a little disruption for balance (NSDI 2016, section 3.4): a rebuild may
    # hand a few survivors' slots to other survivors. Every slot of the removed node moves.
    m = 503
    own, others = survivor_moves(m, removed)
    assert len(own) == maglev.build(NODES, m).count(removed)
    assert len(own) / m == pytest.approx(1 / len(NODES), abs=1 / m)
    assert len(others) / m < 0.03


def test_survivor_disruption_shrinks_as_the_table_grows():
    small = sum(len(survivor_moves(503, r)[1]) / 503 for r in NODES)
    large = sum(len(survivor_moves(5003, r)[1]) / 5003 for r in NODES)
    assert large < small / 2


def test_adding_one_moves_about_one_over_n_plus_one():
    m = 601
    before = maglev.build(NODES, m)
    after = maglev.build({**NODES, "lb6": 1}, m)
    moved = sum(b != a for b, a in zip(before, after, strict=True)) / m
    assert moved == pytest.approx(1 / 6, abs=0.03)
