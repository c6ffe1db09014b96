"""Integration fixtures: each test runs with its own LBLAB_HOME and must leave the machine as
it found it (no new bridge, veth, namespace, state file or lab process)."""

from __future__ import annotations

import subprocess
import time

import pytest
from pyroute2 import IPRoute

from lblab.owned import ovs_bridges


def machine_state() -> dict[str, set[str]]:
    with IPRoute() as ipr:
        veths = {link.get("ifname") for link in ipr.get_links()
                 if (link.get(("IFLA_LINKINFO", "IFLA_INFO_KIND")) == "veth")}
    netns = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                               check=False).stdout.split())
    procs = set()
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True,
                         check=False).stdout
    for line in out.splitlines():
        if any(m in line for m in ("mininet:", "osken-manager", "haproxy -db",
                                   "lblab.workloads")):
            procs.add(line.strip())
    return {"bridges": ovs_bridges(), "veths": veths, "netns": netns, "processes": procs}


@pytest.fixture(autouse=True)
def lab_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LBLAB_HOME", str(tmp_path / "lblab-home"))
    before = machine_state()
    yield tmp_path / "lblab-home"
    deadline = time.monotonic() + 5
    while True:
        after = machine_state()
        new = {k: after[k] - before[k] for k in after if after[k] - before[k]}
        if not new or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not new, f"the test left resources behind: {new}"
    labs = tmp_path / "lblab-home" / "labs"
    assert not labs.exists() or not list(labs.glob("*.json")), "a lab state file was left"
