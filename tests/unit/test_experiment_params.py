"""Every registered experiment declares what the driver needs, and its default and quick
parameters pass its own validation and plan into valid variants."""

from __future__ import annotations

import pytest

from lblab import catalogue, driver
from lblab.params import apply_overrides


@pytest.mark.parametrize("name", catalogue.names())
@pytest.mark.parametrize("mode", ["default", "quick"])
def test_parameters_are_valid_and_plan(name, mode):
    exp = catalogue.load(name)
    params = exp.quick() if mode == "quick" else exp.Params()
    assert apply_overrides(name, params, []) == params
    plans = driver.plan_variants(exp, params)
    assert plans and all(v.seconds > 0 for v in plans)


@pytest.mark.parametrize("name", catalogue.names())
def test_experiment_declares_what_the_driver_needs(name):
    exp = catalogue.load(name)
    assert isinstance(exp, driver.Experiment)
    assert exp.name == name and exp.title and exp.summary and exp.needs
    for method in ("variants", "lab", "measure", "analyse", "claims", "plot"):
        assert getattr(type(exp), method) is not getattr(driver.Experiment, method) \
            or method == "plot", f"{name} does not define {method}"
