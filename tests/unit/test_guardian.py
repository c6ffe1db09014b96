"""The guardian, without a lab: a run (a child process) claims a lab, starts its guardian,
records a process and changes a "global sysctl" (a file standing for one); whatever way the
run ends, nothing it recorded is left and the value is restored, without `lblab clean`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lblab import owned
from lblab.guardian import Namespaces
from lblab.proc import ProcRecord, start_time
from lblab.ready import wait_until

RUN = textwrap.dedent("""
    import os, signal, subprocess, sys
    from pathlib import Path
    from lblab import owned
    from lblab.guardian import Guardian
    from lblab.proc import ProcRecord
    from lblab.ready import wait_until

    # A Ctrl-C must reach this run as it reaches `lblab run` in a terminal, also when the
    # tests run as a background job (which starts every child with SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)

    lab, sysctl, ready, mode = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    state = owned.claim(lab)
    guardian = Guardian.start(state)
    state.add_sysctl(str(sysctl), sysctl.read_text().strip())
    sysctl.write_text("256")
    # close_fds=False: even a child that inherits every inheritable fd of the run must not
    # keep the guardian's pipe open.
    child = subprocess.Popen(["sleep", "300"], close_fds=False, start_new_session=True)
    state.add_process(ProcRecord.of(child.pid, "sleeper"))
    if mode == "finish":
        problems = owned.remove(state, keep=(guardian.record,))
        guardian.finish(done=problems == [])
        sys.exit(0 if not problems else 1)
    if mode == "abandon":  # teardown failed: the guardian takes over once the run exits
        guardian.finish(done=False)
        fds = f"/proc/{guardian.record.pid}/fd"

        def waits_on_a_pidfd():
            for fd in os.listdir(fds):
                try:  # an fd listed a moment ago may be closed by now
                    if os.readlink(f"{fds}/{fd}") == "anon_inode:[pidfd]":
                        return True
                except FileNotFoundError:
                    pass
            return False

        wait_until(waits_on_a_pidfd, timeout=10, what="the guardian to wait for this run's exit")
        assert state.path.exists() and sysctl.read_text() == "256"
        ready.write_text(f"{state.processes[-1].pid} {state.processes[-1].start}")
        sys.exit(0)
    ready.write_text(str(child.pid))
    signal.pause()
""")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LBLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LBLAB_RUNTIME", str(tmp_path / "run"))
    return tmp_path


def start_run(tmp_path: Path, lab: str, mode: str = "wait") -> tuple[subprocess.Popen, Path]:
    sysctl = tmp_path / "sysctl"
    sysctl.write_text("262144\n")
    ready = tmp_path / "ready"
    run = subprocess.Popen([sys.executable, "-c", RUN, lab, str(sysctl), str(ready), mode],
                           cwd=Path(__file__).parents[2], start_new_session=True)
    if mode == "wait":
        wait_until(lambda: ready.exists() or run.poll() is not None, timeout=20,
                   what="the run to start its guardian")
        assert run.poll() is None, "the run died while starting"
    return run, sysctl


def nothing_left(state: owned.Owned, sysctl: Path) -> bool:
    return (not state.path.exists() and sysctl.read_text().strip() == "262144"
            and not any(p.alive() for p in state.processes))


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_when_the_run_dies_the_guardian_removes_what_it_recorded(home, how):
    run, sysctl = start_run(home, f"g-{how.name}")
    (state,) = owned.existing_labs()
    guardian = state.guardian()
    assert guardian is not None and guardian.alive()
    assert os.getsid(guardian.pid) != os.getsid(run.pid), "the guardian shares the session"
    assert sysctl.read_text() == "256"
    # SIGINT to the run's whole process group, as a Ctrl-C would: the guardian is not in it.
    os.killpg(run.pid, how)
    run.wait(timeout=10)
    wait_until(lambda: nothing_left(state, sysctl), timeout=10,
               what="the guardian to remove the lab")
    text = owned.guardian_log(state.lab).read_text()
    assert "died without tearing lab" in text and "stopping process" in text
    assert f"lab {state.lab} removed" in text
    assert "sleeper" in text


def test_a_run_that_tears_down_itself_tells_the_guardian(home):
    run, sysctl = start_run(home, "g-done", mode="finish")
    assert run.wait(timeout=20) == 0
    assert owned.existing_labs() == []
    assert sysctl.read_text().strip() == "262144"
    # nothing happened that anyone needs to read: the guardian leaves no log behind
    wait_until(lambda: not owned.guardian_log("g-done").exists(), timeout=5,
               what="the guardian to exit and remove its log")


def test_a_run_that_could_not_tear_down_leaves_it_to_the_guardian_when_it_exits(home):
    run, sysctl = start_run(home, "g-abandon", mode="abandon")
    assert run.wait(timeout=20) == 0, "the guardian did not wait for the run to exit"
    pid, start = (home / "ready").read_text().split()
    sleeper = ProcRecord(int(pid), int(start), "sleeper", True)
    wait_until(lambda: owned.existing_labs() == [] and sysctl.read_text().strip() == "262144"
               and not sleeper.alive(),
               timeout=10, what="the guardian to remove the lab after the run exited")
    text = owned.guardian_log("g-abandon").read_text()
    assert "died without tearing lab g-abandon down" in text and "sleeper" in text


def test_the_guardian_never_holds_or_sweeps_the_machines_own_namespace():
    namespaces = Namespaces()
    me = ProcRecord.of(os.getpid(), "me")
    assert namespaces.hold(me.pid, me.start) == f"process {me.pid} is not in a namespace of its own"
    assert namespaces.fds == {} and namespaces.processes() == []
    assert namespaces.hold(me.pid, me.start + 1) == f"process {me.pid} is gone"
    assert start_time(me.pid) == me.start
