"""The lab's state file under concurrent writers (experiments spawn from several threads)."""

from __future__ import annotations

import json
import os
import threading

from lblab import owned
from lblab.proc import ProcRecord


def test_concurrent_records_are_all_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("LBLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LBLAB_RUNTIME", str(tmp_path / "run"))
    state = owned.claim("race")
    me = ProcRecord.of(os.getpid(), "me")
    errors = []

    def add(i: int) -> None:
        try:
            for j in range(25):
                state.add_process(ProcRecord(me.pid, me.start, f"p{i}-{j}", False))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    saved = json.loads(state.path.read_text())
    assert len(saved["processes"]) == 100
    state.path.unlink()


def test_a_second_claim_of_a_live_lab_is_refused(tmp_path, monkeypatch):
    import pytest

    from lblab.errors import UsageError

    monkeypatch.setenv("LBLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LBLAB_RUNTIME", str(tmp_path / "run"))
    state = owned.claim("twice")
    with pytest.raises(UsageError, match="lab 'twice' is already running"):
        owned.claim("twice")
    state.path.unlink()


def _memory_cgroup_base():
    from pathlib import Path

    root = Path("/sys/fs/cgroup")
    controllers = root / "cgroup.controllers"
    if controllers.exists() and "memory" in controllers.read_text().split():
        return root
    if (root / "memory" / "memory.limit_in_bytes").exists():
        return root / "memory"
    return None


def test_a_recorded_cgroup_goes_with_its_lab_also_when_a_process_still_lives_in_it(
        tmp_path, monkeypatch):
    """What the guardian and `lblab clean` do after a SIGKILL: stop the lab's processes,
    then remove the cgroup made for them (a memory limit), leaving nothing."""
    import subprocess

    import pytest

    base = _memory_cgroup_base()
    if base is None or os.geteuid() != 0:
        pytest.skip("needs root and a memory cgroup controller")
    monkeypatch.setenv("LBLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LBLAB_RUNTIME", str(tmp_path / "run"))
    state = owned.claim("cg")
    cgroup = base / f"lblab-test-{os.getpid()}"
    state.add_cgroup(str(cgroup))
    cgroup.mkdir()
    proc = subprocess.Popen(["sleep", "60"])
    try:
        state.add_process(ProcRecord.of(proc.pid, "sleeper"))
        (cgroup / "cgroup.procs").write_text(str(proc.pid))
        reloaded = owned.Owned.load(state.path)  # what a guardian or `lblab clean` reads
        assert reloaded.cgroups == [str(cgroup)]
        assert f"cgroup {cgroup}" in owned.leftovers(reloaded)
        assert owned.remove(reloaded) == []
        assert not cgroup.exists() and proc.poll() is not None
        assert owned.leftovers(reloaded) == []
    finally:
        proc.kill()
        proc.wait()
        if cgroup.exists():
            owned.remove_cgroup(cgroup)


def test_the_state_file_reads_back_what_was_recorded_one_process_a_line(tmp_path, monkeypatch):
    monkeypatch.setenv("LBLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LBLAB_RUNTIME", str(tmp_path / "run"))
    state = owned.claim("lines")
    assert owned.Owned.load(state.path).processes == []
    for i in range(3):
        state.add_process(ProcRecord(100 + i, 7, f'h"{i}', i % 2 == 0))
        state.add_links([f"s1-eth{i}"])
    state.add_sysctl("/proc/sys/x", "1")
    back = owned.Owned.load(state.path)
    assert back == state
    text = state.path.read_text()
    assert text.count('"pid"') == 3 and text.count("\n") > 10
    state.path.unlink()


def test_offloads_command_reports_its_exit_status():
    from lblab.lab import OFFLOADS_DONE, offloads_command

    line = offloads_command(["h1-eth0", "h1-eth1"])
    assert line.count("ethtool -K") == 2 and " && " in line
    assert line.endswith(f"echo {OFFLOADS_DONE}$?")
