from __future__ import annotations

import pytest

from lblab import claims as C


@pytest.mark.parametrize(("predicted", "measured", "rel", "holds"), [
    (100, 114.9, 0.15, True), (100, 115.1, 0.15, False), (100, 85.1, 0.15, True),
    (100, 84.9, 0.15, False), (0, 0.0, 0.0, True), (0, 0.5, 0.0, False), (100, None, 0.5, False),
])
def test_within_is_relative_to_the_prediction(predicted, measured, rel, holds):
    assert C.within("c", "s", predicted, measured, rel).holds is holds


def test_bounds():
    assert C.at_most("c", "s", 1.25, 1.25).holds
    assert not C.at_most("c", "s", 1.25, 1.26).holds
    assert C.at_least("c", "s", 2.0, 2.1).holds
    assert not C.at_least("c", "s", 2.0, 1.9).holds
    assert not C.at_least("c", "s", 2.0, float("nan")).holds


def test_json_carries_verdict_and_tolerance_text():
    data = C.within("a", "stmt", 10, 11, 0.15).to_json()
    assert data["holds"] is True and data["tolerance"] == "within ±15%"
    assert set(data) >= {"id", "statement", "predicted", "measured", "tolerance", "holds"}


def test_near_is_absolute_and_binomial_tolerance_shrinks_with_n():
    assert C.near("c", "s", 0.25, 0.29, 0.05).holds
    assert not C.near("c", "s", 0.25, 0.31, 0.05).holds
    assert C.near("c", "s", 0.25, 0.29, 0.05).tolerance_text == "±0.05"
    assert C.binomial_tolerance(0.25, 1000) < C.binomial_tolerance(0.25, 100)
    assert C.binomial_tolerance(0.25, 600) == pytest.approx(3 * (0.25 * 0.75 / 600) ** 0.5)
    assert C.binomial_tolerance(0.0, 50) == pytest.approx(1 / 50)
