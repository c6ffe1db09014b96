"""Every experiment's default and quick parameters pass the experiment's own validation."""

from __future__ import annotations

import pytest

import experiments
from lblab.params import apply_overrides


@pytest.mark.parametrize("name", experiments.names())
@pytest.mark.parametrize("mode", ["default", "quick"])
def test_parameters_are_valid(name, mode):
    mod = experiments.load(name)
    params = mod.quick() if mode == "quick" else mod.Params()
    assert apply_overrides(name, params, []) == params


@pytest.mark.parametrize("name", experiments.names())
def test_module_declares_what_the_runner_needs(name):
    mod = experiments.load(name)
    for attr in ("NAME", "TITLE", "SUMMARY", "NEEDS", "Params", "quick", "run", "plot"):
        assert hasattr(mod, attr), f"{name} lacks {attr}"
    assert mod.NAME == name
