"""Stopping recorded processes must not steal the exit status of other children."""

from __future__ import annotations

import subprocess
import threading

from lblab.proc import ProcRecord, start_time, stop_all
from lblab.ready import wait_until


def _exited(pid: int) -> bool:
    """Exited: a zombie not yet waited for (or already reaped by someone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _stubborn() -> subprocess.Popen:
    """A child that ignores SIGTERM, so stop_all has to wait (and reap) before SIGKILL."""
    proc = subprocess.Popen(["sh", "-c", "trap '' TERM; echo ready; exec sleep 30"],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout.readline() == "ready\n"
    return proc


def test_stop_all_leaves_another_childs_exit_status_to_its_popen():
    crashed = subprocess.Popen(["sh", "-c", "exit 3"])
    wait_until(lambda: _exited(crashed.pid), timeout=10, what="the child to exit")
    stubborn = _stubborn()
    record = ProcRecord.of(stubborn.pid, "stubborn")
    assert stop_all([record], grace_s=0.3) == []
    assert crashed.wait(timeout=5) == 3
    assert start_time(stubborn.pid) is None  # its own record was reaped: no zombie left


def test_a_child_exiting_while_stop_all_runs_keeps_its_status():
    """The race of the bug: a client exits (3) while another thread stops a different
    process; the client's own thread then waits on its Popen."""
    gate = subprocess.Popen(["sh", "-c", "read line; exit 3"], stdin=subprocess.PIPE)
    stubborn = _stubborn()
    record = ProcRecord.of(stubborn.pid, "stubborn")
    stopper = threading.Thread(target=stop_all, args=([record],), kwargs={"grace_s": 1.0})
    stopper.start()
    gate.stdin.close()  # the client exits now, during stop_all's grace period
    wait_until(lambda: _exited(gate.pid), timeout=10, what="the client to exit")
    stopper.join()
    assert gate.wait(timeout=5) == 3
    assert not record.alive()


def test_stop_all_without_reaping_lets_popen_report_the_signal():
    stubborn = _stubborn()
    record = ProcRecord.of(stubborn.pid, "stubborn")
    assert stop_all([record], grace_s=0.2, reap=False) == []
    assert start_time(stubborn.pid) == record.start  # a zombie, left to its Popen
    assert stubborn.wait(timeout=5) == -9
