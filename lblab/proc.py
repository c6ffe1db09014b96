"""Processes the lab starts: each in its own process group, recorded, killed by group.

A recorded process carries its kernel start time, so `lblab clean` after a crash never kills
an unrelated process that happens to have reused the PID.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import asdict, dataclass


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = stat.rsplit(")", 1)[1].split()
    return int(rest[19])


@dataclass(frozen=True)
class ProcRecord:
    pid: int
    start: int
    name: str
    group: bool
    """True when the process leads its own process group (killed as a group)."""

    @classmethod
    def of(cls, pid: int, name: str) -> ProcRecord:
        started = start_time(pid)
        if started is None:
            raise ProcessLookupError(f"{name}: process {pid} exited before it was recorded")
        try:
            group = os.getpgid(pid) == pid
        except ProcessLookupError:
            group = False
        return cls(pid, started, name, group)

    def alive(self) -> bool:
        """Still running, and still the same process (not a reused PID, not a zombie)."""
        if start_time(self.pid) != self.start:
            return False
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("State:"):
                        return "Z" not in line.split()[1]
        except OSError:
            return False
        return True

    def signal(self, sig: int) -> None:
        if not self.alive():
            return
        try:
            if self.group:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def to_json(self) -> dict:
        return asdict(self)


def stop_all(records: list[ProcRecord], grace_s: float = 3.0, *,
             reap: bool = True) -> list[ProcRecord]:
    """SIGTERM every record, wait up to grace_s, SIGKILL the rest; return those still alive.

    reap=False leaves exited children for their Popen to collect (and report the real exit
    status); a zombie already counts as stopped.
    """
    records_to_reap = records if reap else []
    for rec in records:
        rec.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(r.alive() for r in records):
        _reap(records_to_reap)
        time.sleep(0.05)
    for rec in records:
        rec.signal(signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(r.alive() for r in records):
        _reap(records_to_reap)
        time.sleep(0.05)
    _reap(records_to_reap)
    return [r for r in records if r.alive()]


def _reap(records: list[ProcRecord]) -> None:
    """Collect those of `records` that are exited children of this process, so they do not
    linger as zombies. Only these PIDs: `waitpid(-1)` would also reap a child that another
    thread waits on through its Popen, which then reports exit status 0 whatever it was."""
    for rec in records:
        if start_time(rec.pid) != rec.start:
            continue  # gone, or its PID now belongs to another process
        try:
            os.waitpid(rec.pid, os.WNOHANG)
        except ChildProcessError:
            continue
