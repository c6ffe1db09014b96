"""A client, like a flood, only sends to the lab's own addresses: checked before it starts."""

from __future__ import annotations

import pytest

from lblab.errors import UsageError
from lblab.workloads.client import ClientConfig
from lblab.workloads.handles import run_client


class Spawned(Exception):
    """Raised by the fake lab when run_client gets as far as starting the client."""


class FakeLab:
    name = "fake"

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.spawned: list[list[str]] = []

    def addresses(self) -> set[str]:
        return {"10.0.0.1", "10.0.0.100"}

    def file(self, name: str):
        return self.tmp_path / name

    def spawn(self, node, argv, *, name, env=None):
        self.spawned.append(argv)
        raise Spawned(name)


@pytest.mark.parametrize("url", [
    "http://192.0.2.7/",            # outside the lab
    "http://10.0.0.2:8080/x",       # the lab's subnet, but no host of it
    "http://example.com/",          # a name, not a lab address
])
def test_a_target_outside_the_lab_is_refused_before_the_client_starts(tmp_path, url):
    lab = FakeLab(tmp_path)
    cfg = ClientConfig(targets=["http://10.0.0.1/", url])
    with pytest.raises(UsageError, match=rf"client target {url}: .* is not an address "
                                         "inside lab fake"):
        run_client(lab, "c1", cfg, tmp_path / "out", "t")
    assert lab.spawned == []


def test_targets_inside_the_lab_start_the_client(tmp_path):
    lab = FakeLab(tmp_path)
    cfg = ClientConfig(targets=["http://10.0.0.1/", "http://10.0.0.100:80/bytes/10"])
    with pytest.raises(Spawned, match="client-t"):
        run_client(lab, "c1", cfg, tmp_path / "out", "t")
    assert len(lab.spawned) == 1


def test_the_connection_prober_is_held_to_the_same_rule(tmp_path):
    from lblab.workloads.conns import ConnsConfig
    from lblab.workloads.handles import start_conns

    lab = FakeLab(tmp_path)
    with pytest.raises(UsageError, match="connection prober target 192.0.2.7:80"):
        start_conns(lab, "c1", ConnsConfig(host="192.0.2.7"), tmp_path / "out", "p")
    assert lab.spawned == []
    with pytest.raises(Spawned):
        start_conns(lab, "c1", ConnsConfig(host="10.0.0.100"), tmp_path / "out", "p")
