"""Topologies load the way `mn --custom FILE --topo NAME,k=v` loads them: the file is run on
its own (no lblab imports), then `topos[NAME](**kwargs)` describes the graph."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

TOPOLOGIES = Path(__file__).parents[2] / "topologies"


@pytest.mark.parametrize("path", sorted(TOPOLOGIES.glob("*.py")), ids=lambda p: p.name)
def test_every_topology_file_loads_standalone(path):
    if path.name in ("__init__.py", "hosts.py"):
        pytest.skip("package marker / the host class, not a topology")
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


def test_zones_wiring():
    ns = runpy.run_path(str(TOPOLOGIES / "zones.py"))
    topo = ns["topos"]["zones"](zones=3, backends=2)
    assert sorted(topo.hosts()) == ["b11", "b12", "b21", "b22", "b31", "b32", "l1", "l2",
                                    "l3", "u1"]
    assert sorted(topo.switches()) == ["core", "edge", "z1", "z2", "z3"]
    # every zone reaches the others only through its one uplink to the core
    for z in (1, 2, 3):
        assert {a if b == f"z{z}" else b for a, b in topo.links() if f"z{z}" in (a, b)} == {
            f"l{z}", f"b{z}1", f"b{z}2", "core"}
    assert topo.linkInfo("z2", "core")["port1"] == ns["UPLINK_PORT"]
    assert topo.linkInfo("l2", "edge")["port2"] == 102
    assert ns["zone_of_backend"]("b32") == 3 and ns["zone_of_address"]("10.1.2.1") == 2


def test_zones_refuse_impossible_sizes():
    ns = runpy.run_path(str(TOPOLOGIES / "zones.py"))
    with pytest.raises(ValueError, match="zones must be 2..9"):
        ns["topos"]["zones"](zones=1)


def test_shaping_on_one_end_of_a_link_is_seen_so_the_lab_uses_tclink():
    from mininet.topo import Topo

    from lblab.lab import _topo_shapes

    class OneEnd(Topo):
        def build(self, bw=0.0):
            h, s = self.addHost("h1"), self.addSwitch("s1")
            self.addLink(h, s, params1={"bw": bw} if bw else {})

    assert _topo_shapes(OneEnd(bw=10))
    assert not _topo_shapes(OneEnd())
