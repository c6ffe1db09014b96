"""The lab lifecycle: refusal of a duplicate, SIGTERM unwinds, SIGKILL + `lblab clean`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lblab import owned
from lblab.cli import main
from lblab.errors import UsageError
from lblab.lab import Lab
from lblab.ready import wait_until
from topologies.two_tier import TwoTierTopo

pytestmark = pytest.mark.integration
CONNTRACK_MAX = Path("/proc/sys/net/netfilter/nf_conntrack_max")

CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from lbnodes.smoke import smoke_lab
    from lblab.errors import LabInterrupted
    try:
        with smoke_lab(sys.argv[1]) as s:
            s.lab.set_global_sysctl("{cmax}", str(int(Path("{cmax}").read_text()) - 1))
            Path(sys.argv[2]).write_text("ready")
            time.sleep(60)
    except LabInterrupted:
        sys.exit(130)
""").format(cmax=CONNTRACK_MAX)


def start_child(tmp_path: Path, name: str) -> tuple[subprocess.Popen, Path]:
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, name, str(ready)],
                            cwd=Path(__file__).parents[2], env=os.environ.copy())
    wait_until(lambda: ready.exists() or proc.poll() is not None, timeout=60,
               what="the child lab to come up")
    assert proc.poll() is None, "the child lab died while starting"
    return proc, ready


def test_a_second_lab_of_the_same_name_is_refused():
    topo = TwoTierTopo(clients=1, lbs=1, backends=1)
    with Lab("itest-dup", topo):
        with pytest.raises(UsageError, match="lab 'itest-dup' is already running"):
            with Lab("itest-dup", TwoTierTopo(clients=1, lbs=1, backends=1)):
                pass


def test_sigterm_unwinds_the_lab_and_restores_sysctls(tmp_path):
    original = CONNTRACK_MAX.read_text()
    proc, _ = start_child(tmp_path, "itest-term")
    assert CONNTRACK_MAX.read_text() != original
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 130
    assert CONNTRACK_MAX.read_text() == original
    assert owned.existing_labs() == []


def test_sigkill_then_lblab_clean_removes_everything(tmp_path, capsys):
    original = CONNTRACK_MAX.read_text()
    proc, _ = start_child(tmp_path, "itest-kill")
    state = owned.existing_labs()[0]
    assert {"s1", "s2"} <= owned.ovs_bridges()
    proc.kill()
    proc.wait(timeout=10)
    assert owned.leftovers(state), "SIGKILL should have left something for clean to remove"
    with pytest.raises(UsageError, match="crashed and left resources behind"):
        with Lab("itest-kill", TwoTierTopo(clients=1, lbs=1, backends=1)):
            pass
    assert main(["clean"]) == 0
    assert "lab itest-kill: clean" in capsys.readouterr().out
    assert owned.leftovers(state) == []
    assert CONNTRACK_MAX.read_text() == original
    assert owned.existing_labs() == []
