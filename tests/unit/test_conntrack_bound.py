"""The small table's admission bound: slots held at least TIME_WAIT, arrivals at a rate."""

from __future__ import annotations

import pytest

from experiments.conntrack_exhaustion.model import admission_bound


def test_a_table_filled_at_a_constant_rate_frees_its_first_generation_in_order():
    # 4096 slots fill in 20.5 s at 200/s; each frees 30 s after admission, so by 53 s every
    # slot has been admitted twice: 8192, not 4096 x (1 + 23/30) = 7236.
    assert admission_bound(200, 10_199, 4096, 30, 53) == 8192


def test_arrivals_limit_the_bound_when_the_table_is_not_the_constraint():
    assert admission_bound(150, 1125, 256, 4, 9.5) == 256 + 256 + 225
    assert admission_bound(10, 95, 4096, 30, 9.5) == 95


def test_a_second_generation_is_reached_only_after_two_hold_times():
    assert admission_bound(1000, 10**6, 100, 10, 19.9) == 200
    assert admission_bound(1000, 10**6, 100, 10, 20.1) == 300


@pytest.mark.parametrize("window", [0, -1])
def test_nothing_is_admitted_before_the_schedule_starts(window):
    assert admission_bound(200, 100, 50, 30, window) == 0
