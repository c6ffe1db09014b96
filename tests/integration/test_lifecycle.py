"""The lab lifecycle: refusal of a duplicate, SIGTERM unwinds, and after SIGKILL (in the
sysctl phase, or in the middle of the build) the guardian removes everything by itself;
`lblab clean` removes what is left when the guardian is gone too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lblab import owned
from lblab.errors import LabError, UsageError
from lblab.lab import Lab
from lblab.proc import ProcRecord
from lblab.ready import wait_until
from tests.integration.conftest import machine_state
from topologies.two_tier import TwoTierTopo

pytestmark = pytest.mark.integration
CONNTRACK_MAX = Path("/proc/sys/net/netfilter/nf_conntrack_max")
GUARDIAN_DEADLINE_S = 10

CHILD = textwrap.dedent("""
    import signal, sys
    from pathlib import Path
    from lbnodes.smoke import smoke_lab
    from lblab.errors import LabInterrupted
    try:
        with smoke_lab(sys.argv[1]) as s:
            s.lab.set_global_sysctl("{cmax}", str(int(Path("{cmax}").read_text()) - 1))
            Path(sys.argv[2]).write_text("ready")
            signal.pause()
    except LabInterrupted:
        sys.exit(130)
""").format(cmax=CONNTRACK_MAX)

# A large topology (40 hosts, 20 switches, 59 links: about a second to build) that says
# when it is ready, so a kill can land in the middle of its build. Its links have 40 + 2 x 19
# interfaces in the machine's namespace (a host's end lives and dies with the host).
BUILD_HOSTS, BUILD_ROOT_INTERFACES = 40, 40 + 2 * 19
BUILDER = textwrap.dedent("""
    import signal, sys
    from pathlib import Path
    from mininet.topo import LinearTopo
    from lblab.lab import Lab
    with Lab(sys.argv[1], LinearTopo(k=20, n=2)):
        Path(sys.argv[2]).write_text("ready")
        signal.pause()
""")


def start_child(tmp_path: Path, name: str, script: str = CHILD,
                wait_ready: bool = True) -> tuple[subprocess.Popen, Path]:
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", script, name, str(ready)],
                            cwd=Path(__file__).parents[2], env=os.environ.copy())
    if wait_ready:
        wait_until(lambda: ready.exists() or proc.poll() is not None, timeout=60,
                   what="the child lab to come up")
        assert proc.poll() is None, "the child lab died while starting"
    return proc, ready


def new_since(before: dict[str, set[str]]) -> dict[str, set[str]]:
    after = machine_state()
    return {k: after[k] - before[k] for k in after if after[k] - before[k]}


def wait_gone(state: owned.Owned, before: dict[str, set[str]], *, original_max: str = ""):
    """Within the guardian's deadline, without `lblab clean`: no state file, nothing the lab
    recorded (its guardian included), no bridge, veth, named namespace or lab process the
    machine did not have before, and nf_conntrack_max as it was."""

    def gone() -> bool:
        return (not state.path.exists() and owned.leftovers(state) == []
                and not new_since(before)
                and (not original_max or CONNTRACK_MAX.read_text() == original_max))

    try:
        wait_until(gone, timeout=GUARDIAN_DEADLINE_S, what="the lab to be gone")
    except LabError:
        pytest.fail(f"{GUARDIAN_DEADLINE_S} s after the kill, lab {state.lab} left "
                    f"{owned.leftovers(state)}, {new_since(before)}, state file "
                    f"{'present' if state.path.exists() else 'gone'}, nf_conntrack_max "
                    f"{CONNTRACK_MAX.read_text().strip()}")


def test_a_second_lab_of_the_same_name_is_refused():
    topo = TwoTierTopo(clients=1, lbs=1, backends=1)
    with Lab("itest-dup", topo):
        with pytest.raises(UsageError, match="lab 'itest-dup' is already running"):
            with Lab("itest-dup", TwoTierTopo(clients=1, lbs=1, backends=1)):
                pass


def test_teardown_stops_a_process_the_lab_did_not_start_and_leaves_no_link():
    """A process started in a host behind the lab's back (its own session, so the shell's
    hangup does not reach it) would keep the host's namespace, and the veth in it, alive: the
    lab's teardown stops it, and every link it made is gone when the `with` ends."""
    with Lab("itest-stray", TwoTierTopo(clients=1, lbs=1, backends=1)) as lab:
        pid = int(lab.host("c1").cmd("setsid sleep 300 > /dev/null 2>&1 & echo $!").split()[-1])
        stray = ProcRecord.of(pid, "sleep")
        assert stray.alive()
        links = list(lab.owned.links)
    assert not stray.alive(), "the stray process outlived its lab"
    assert owned.present_links(set(links)) == set()


def test_sigterm_unwinds_the_lab_and_restores_sysctls(tmp_path):
    original = CONNTRACK_MAX.read_text()
    proc, _ = start_child(tmp_path, "itest-term")
    assert CONNTRACK_MAX.read_text() != original
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 130
    assert CONNTRACK_MAX.read_text() == original
    assert owned.existing_labs() == []
    # the run tore the lab down itself: its guardian had nothing to do and leaves no log
    wait_until(lambda: not owned.guardian_log("itest-term").exists(), timeout=5,
               what="the guardian to exit without a log")


def test_sigkill_in_the_sysctl_phase_is_cleaned_up_by_the_guardian(tmp_path):
    before = machine_state()
    original = CONNTRACK_MAX.read_text()
    proc, _ = start_child(tmp_path, "itest-kill")
    (state,) = owned.existing_labs()
    assert {"s1", "s2"} <= owned.ovs_bridges()
    assert CONNTRACK_MAX.read_text() != original
    assert state.guardian() is not None and state.guardian().alive()
    proc.kill()
    proc.wait(timeout=10)
    wait_gone(state, before, original_max=original)
    log = owned.guardian_log("itest-kill").read_text()
    assert "died without tearing lab itest-kill down" in log
    assert f"restoring {CONNTRACK_MAX} to {original.strip()}" in log
    assert "lab itest-kill removed" in log


def test_sigkill_in_the_middle_of_the_build_leaves_nothing(tmp_path):
    before = machine_state()
    proc, ready = start_child(tmp_path, "itest-build", BUILDER, wait_ready=False)
    path = owned.labs_dir() / "itest-build.json"

    def building() -> dict | None:
        assert proc.poll() is None, "the builder died on its own"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return data if len(data["links"]) >= 10 else None

    wait_until(lambda: building() is not None, timeout=60,
               what="the builder to record its first links")
    seen = building()
    proc.kill()
    proc.wait(timeout=10)
    assert not ready.exists(), "the kill came after the build, not during it"
    hosts = [p for p in seen["processes"] if p["name"].startswith("mininet:h")]
    assert len(hosts) == BUILD_HOSTS, "the hosts' shells were not all recorded as made"
    assert len(seen["links"]) < BUILD_ROOT_INTERFACES, "the kill was not in the middle"
    state = owned.Owned(lab="itest-build", owner_pid=proc.pid, owner_start=None,
                        bridges=seen["bridges"], links=seen["links"],
                        processes=[ProcRecord(**p) for p in seen["processes"]], path=path)
    wait_gone(state, before)
    assert "lab itest-build removed" in owned.guardian_log("itest-build").read_text()


def test_sigkill_of_the_run_and_its_guardian_then_lblab_clean_removes_everything(
        tmp_path, capsys):
    from lblab.cli import main

    original = CONNTRACK_MAX.read_text()
    proc, _ = start_child(tmp_path, "itest-clean")
    (state,) = owned.existing_labs()
    guardian = state.guardian()
    os.kill(guardian.pid, signal.SIGKILL)
    wait_until(lambda: not guardian.alive(), timeout=5, what="the guardian to die")
    proc.kill()
    proc.wait(timeout=10)
    assert owned.leftovers(state), "SIGKILL should have left something for clean to remove"
    with pytest.raises(UsageError, match="crashed and left resources behind"):
        with Lab("itest-clean", TwoTierTopo(clients=1, lbs=1, backends=1)):
            pass
    assert main(["clean"]) == 0
    assert "lab itest-clean: clean" in capsys.readouterr().out
    assert owned.leftovers(state) == []
    assert CONNTRACK_MAX.read_text() == original
    assert owned.existing_labs() == []
