"""The guardian: a small process that tears a lab down when its run dies, however it dies.

`Lab.__enter__` starts one right after claiming the state file (`Guardian.start`). The
guardian holds the read end of a pipe whose write end only the run holds: the pipe is made
with O_CLOEXEC and only its read end is passed on (to the guardian alone), so no process the
run starts keeps it open. The run writes lines to it:

    netns PID START   a lab host's shell: hold its network namespace open, so the lab's
                      namespaces can still be found (and their ids are not reused) however
                      their processes die
    release           the run has stopped the lab's processes and shells: stop whatever
                      else still runs in the held namespaces, then let them go (the kernel
                      removes a dead namespace's devices in one batch)
    done              the run finished its own teardown: exit

End of file without `done` means the run died (SIGKILL included). The guardian then waits
until the run is really gone (a zombie counts as gone), stops every process in the lab's
network namespaces and every recorded process, and removes the rest with
`lblab.owned.remove` (bridges, links, every global sysctl restored, the state file). It logs
each step to `LAB.guardian.log` beside the state file. It runs in its own session (setsid),
so a Ctrl-C to the run's process group does not reach it, and it is recorded in the state
file, so `lblab clean` sees (and stops) it; `lblab clean` stays for what it could not do.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from lblab import owned as owned_mod
from lblab.errors import LabError
from lblab.proc import ProcRecord, start_time, stop_all

DONE = "done"
NETNS = "netns"
RELEASE = "release"
EXIT_WAIT_S = 5.0


class Guardian:
    """The run's end of the pipe to the lab's guardian process."""

    def __init__(self, proc: subprocess.Popen, fd: int, record: ProcRecord) -> None:
        self.proc, self.record = proc, record
        self._fd: int | None = fd
        self._lock = threading.Lock()

    @classmethod
    def start(cls, owned: owned_mod.Owned) -> Guardian:
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        log_path = owned_mod.guardian_log(owned.lab)
        try:
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "lblab.guardian", str(owned.path), str(read_end)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    pass_fds=(read_end,), close_fds=True, start_new_session=True,
                    cwd=str(Path(__file__).parent.parent))
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        try:
            record = ProcRecord.of(proc.pid, owned_mod.GUARDIAN)
        except ProcessLookupError:
            os.close(write_end)
            raise LabError(f"lab {owned.lab}: its guardian exited at once "
                           f"(log {log_path})") from None
        owned.add_process(record)
        return cls(proc, write_end, record)

    def _send(self, line: str) -> None:
        with self._lock:
            if self._fd is None:
                return
            try:
                os.write(self._fd, f"{line}\n".encode())
            except OSError as exc:
                print(f"lblab: the lab's guardian is gone ({exc}); after a crash, "
                      "run `lblab clean`", file=sys.stderr)
                os.close(self._fd)
                self._fd = None

    def watch_netns(self, pid: int, start: int) -> None:
        """Have the guardian hold the network namespace of process `pid` (a host's shell)."""
        self._send(f"{NETNS} {pid} {start}")

    def release_namespaces(self) -> None:
        """The run has stopped every process of the lab it knows of: the guardian stops any
        other process still in the lab's namespaces and stops holding them. (If the run dies
        after this, the guardian holds again what is left: see `tear_down`.)"""
        self._send(RELEASE)

    def finish(self, *, done: bool) -> None:
        """Close the pipe. done=True: the run removed the lab itself, the guardian exits (and
        is waited for). done=False: the guardian removes the lab once the run has exited."""
        if done:
            self._send(DONE)
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        if done:
            try:
                self.proc.wait(timeout=EXIT_WAIT_S)
            except subprocess.TimeoutExpired:
                stop_all([self.record], reap=False)
                self.proc.wait(timeout=EXIT_WAIT_S)


# -- the guardian process ------------------------------------------------------------------
def log(text: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}", flush=True)


def netns_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Namespaces:
    """The lab's network namespaces, held open by file descriptor. Never the guardian's own
    (the machine's): what runs there is not the lab's."""

    def __init__(self) -> None:
        self.fds: dict[tuple[int, int], int] = {}
        self.own = netns_id("/proc/self/ns/net")

    def hold(self, pid: int, start: int) -> str | None:
        """Hold the namespace of `pid` if it is still that process; returns why not."""
        if start_time(pid) != start:
            return f"process {pid} is gone"
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            return f"process {pid}: {exc}"
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        if start_time(pid) != start or key == self.own or key in self.fds:
            os.close(fd)
            return None if key in self.fds else f"process {pid} is not in a namespace of its own"
        self.fds[key] = fd
        return None

    def processes(self) -> list[ProcRecord]:
        """Every process now in one of the held namespaces."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            if netns_id(f"/proc/{entry}/ns/net") in self.fds:
                try:
                    with open(f"/proc/{entry}/comm") as f:
                        name = f.read().strip()
                    found.append(ProcRecord.of(int(entry), name))
                except (OSError, ProcessLookupError):
                    continue
        return found

    def release(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


def listen(fd: int, namespaces: Namespaces) -> bool:
    """Read the run's messages until end of file; True if the run said it was done."""
    buf = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            return False
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            words = line.decode(errors="replace").split()
            if words == [DONE]:
                return True
            if words == [RELEASE]:
                strays = namespaces.processes()
                for p in strays:
                    log(f"stopping process {p.pid} ({p.name}), left in a lab namespace")
                stop_all(strays)
                namespaces.release()
            if len(words) == 3 and words[0] == NETNS:
                why_not = namespaces.hold(int(words[1]), int(words[2]))
                if why_not:
                    log(f"cannot hold a namespace: {why_not}")


def wait_for_exit(pid: int, start: int | None) -> None:
    """Block until process `pid` (if it is still the one that started at `start`) exits; a
    zombie has exited."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if start is not None and start_time(pid) == start:
            select.select([pidfd], [], [])  # readable once the process has terminated
    finally:
        os.close(pidfd)


def tear_down(state: Path, namespaces: Namespaces) -> int:
    if not state.exists():
        log("the state file is gone: the run had finished its teardown")
        return 0
    owned = owned_mod.Owned.load(state)
    # The pipe can also close with the run alive (it could not tear down and said so, or it
    # exec'd): the lab stays the run's until it has exited.
    wait_for_exit(owned.owner_pid, owned.owner_start)
    log(f"the run (pid {owned.owner_pid}) died without tearing lab {owned.lab} down: "
        "removing it")
    me = tuple(p for p in owned.processes if p.pid == os.getpid())
    for p in owned.processes:  # namespaces the run did not get to report
        if p not in me and p.alive():
            namespaces.hold(p.pid, p.start)
    recorded = [p for p in reversed(owned.processes) if p not in me and p.alive()]
    known = {(p.pid, p.start) for p in recorded}
    strays = [p for p in namespaces.processes() if (p.pid, p.start) not in known]
    for p in recorded + strays:
        log(f"stopping process {p.pid} ({p.name})")
    survivors = stop_all(recorded + strays)
    for p in survivors:
        log(f"process {p.pid} ({p.name}) survived SIGKILL")
    for item in owned_mod.leftovers(owned, keep=me):
        log(f"removing {item}")
    for path, old in owned.sysctls.items():
        log(f"restoring {path} to {old}")
    problems = owned_mod.remove(owned, keep=me)
    namespaces.release()
    for p in problems:
        log(f"problem: {p}")
    if problems or survivors:
        log(f"left for `lblab clean {owned.lab}`")
        return 1
    log(f"lab {owned.lab} removed: no process, bridge or link of it is left")
    return 0


def main(argv: list[str] | None = None) -> int:
    state, fd = argv or sys.argv[1:]
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    try:
        run = f"pid {owned_mod.Owned.load(Path(state)).owner_pid}"
    except (OSError, ValueError, KeyError):
        run = "state file unreadable"
    log(f"guarding {state} for the run ({run})")
    namespaces = Namespaces()
    if listen(int(fd), namespaces):
        # Nothing happened that anyone needs to read: leave no file behind.
        owned_mod.guardian_log(Path(state).stem).unlink(missing_ok=True)
        return 0
    return tear_down(Path(state), namespaces)


if __name__ == "__main__":
    sys.exit(main())
