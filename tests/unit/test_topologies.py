"""Topologies load the way `mn --custom FILE --topo NAME,k=v` loads them: the file is run on
its own (no lblab imports), then `topos[NAME](**kwargs)` describes the graph."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

TOPOLOGIES = Path(__file__).parents[2] / "topologies"


@pytest.mark.parametrize("path", sorted(TOPOLOGIES.glob("*.py")), ids=lambda p: p.name)
def test_every_topology_file_loads_standalone(path):
    if path.name == "__init__.py":
        pytest.skip("package marker")
    namespace = runpy.run_path(str(path))
    assert namespace.get("topos"), f"{path.name} defines no `topos` for mn --custom"
    for name, cls in namespace["topos"].items():
        topo = cls()
        assert topo.hosts() and topo.switches(), name


def test_two_tier_wiring():
    ns = runpy.run_path(str(TOPOLOGIES / "two_tier.py"))
    topo = ns["topos"]["twotier"](clients=2, lbs=2, backends=3)
    assert sorted(topo.hosts()) == ["b1", "b2", "b3", "c1", "c2", "lb1", "lb2"]
    assert sum(1 for a, b in topo.links() if "lb1" in (a, b)) == 2
    info = topo.linkInfo("lb1", "s2")
    assert info["params1"]["ip"] == "10.1.0.1/16"
