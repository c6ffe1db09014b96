"""What a lab created, in a state file, and how to remove exactly that.

The state file (`$LBLAB_HOME/labs/NAME.json`) is written before each thing is created and
rewritten atomically after every change, so a lab that was SIGKILLed can still be cleaned by
`lblab clean`: it kills the recorded processes (checked by start time), deletes the recorded
OVS bridges and links, restores the recorded global sysctls and removes the lab's folder.
Nothing is removed by name pattern: only what the file lists. The lab's guardian
(lblab.guardian) does the same from this file by itself when the run dies.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from lblab.errors import UsageError
from lblab.proc import ProcRecord, stop_all


def lblab_home() -> Path:
    return Path(os.environ.get("LBLAB_HOME", "/var/lib/lblab"))


def labs_dir() -> Path:
    return lblab_home() / "labs"


def guardian_log(lab: str) -> Path:
    """What the lab's guardian (lblab.guardian) did: beside the state file, kept after it."""
    return labs_dir() / f"{lab}.guardian.log"


GUARDIAN = "guardian"
"""The name of the guardian's process record."""


def runtime_dir() -> Path:
    """Where labs keep sockets and rendered configs: short, because a unix socket path must
    fit in 108 bytes (HAProxy also binds a temporary name beside its socket)."""
    return Path(os.environ.get("LBLAB_RUNTIME", "/run/lblab"))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@functools.lru_cache(maxsize=4096)
def _record_text(record: ProcRecord) -> str:
    return json.dumps(record.to_json())


def _state_text(data: dict) -> str:
    """The state file's JSON, one key a line and one process a line. The file is rewritten
    after every record (a 200-host lab: about 400 times, each time longer), so it is made by
    the C encoder (`indent` would run json's pure-Python one) and each process record is
    encoded once (a record is immutable)."""
    lines = []
    for key, value in data.items():
        if key == "processes":
            items = ",\n  ".join(map(_record_text, value))
            lines.append(f'"processes": [\n  {items}\n ]' if items else '"processes": []')
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value)}")
    return "{\n " + ",\n ".join(lines) + "\n}\n"


@dataclass
class Owned:
    """The lab's record of everything it created."""

    lab: str
    owner_pid: int
    owner_start: int | None
    bridges: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    processes: list[ProcRecord] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    """Global sysctl path -> the value to restore."""
    cgroups: list[str] = field(default_factory=list)
    """cgroup directories made for the lab's processes (a memory limit): removed after the
    processes in them are stopped."""
    path: Path = field(default=Path(), compare=False)
    """The state file; fixed when the lab is claimed, so it never moves mid-run."""
    run_dir: Path = field(default=Path(), compare=False)
    """The lab's own folder: configs, sockets. Removed with the lab."""
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)
    """Experiments spawn from several threads (a flood beside a client): one writer at a time."""

    def __post_init__(self) -> None:
        if self.path == Path():
            self.path = labs_dir() / f"{self.lab}.json"
        if self.run_dir == Path():
            self.run_dir = runtime_dir() / self.lab

    # -- persistence -------------------------------------------------------------------
    def save(self) -> None:
        with self._lock:
            self._save()

    def _save(self) -> None:
        data = {
            "lab": self.lab, "owner_pid": self.owner_pid, "owner_start": self.owner_start,
            "bridges": self.bridges, "links": self.links, "processes": self.processes,
            "sysctls": self.sysctls, "cgroups": self.cgroups, "run_dir": str(self.run_dir),
        }
        _atomic_write(self.path, _state_text(data))

    @classmethod
    def load(cls, path: Path) -> Owned:
        data = json.loads(path.read_text())
        return cls(
            lab=data["lab"], owner_pid=data["owner_pid"], owner_start=data.get("owner_start"),
            bridges=data["bridges"], links=data["links"],
            processes=[ProcRecord(**p) for p in data["processes"]], sysctls=data["sysctls"],
            cgroups=data.get("cgroups", []), path=path,
            run_dir=Path(data.get("run_dir") or runtime_dir() / data["lab"]),
        )

    def owner_alive(self) -> bool:
        from lblab.proc import start_time

        return self.owner_start is not None and start_time(self.owner_pid) == self.owner_start

    def guardian(self) -> ProcRecord | None:
        """The guardian's record, if this lab started one."""
        return next((p for p in self.processes if p.name == GUARDIAN), None)

    # -- recording ---------------------------------------------------------------------
    def add_bridges(self, names: list[str]) -> None:
        self.bridges.extend(n for n in names if n not in self.bridges)
        self.save()

    def add_links(self, names: list[str]) -> None:
        self.links.extend(n for n in names if n not in self.links)
        self.save()

    def add_process(self, record: ProcRecord) -> None:
        self.processes.append(record)
        self.save()

    def add_sysctl(self, path: str, old: str) -> None:
        self.sysctls.setdefault(path, old)
        self.save()

    def forget_sysctl(self, path: str) -> None:
        self.sysctls.pop(path, None)
        self.save()

    def add_cgroup(self, path: str) -> None:
        if path not in self.cgroups:
            self.cgroups.append(path)
        self.save()

    def forget_cgroup(self, path: str) -> None:
        if path in self.cgroups:
            self.cgroups.remove(path)
        self.save()


def claim(lab: str) -> Owned:
    """Create the state file of a new lab, refusing a second lab of the same name."""
    from lblab.proc import start_time

    labs_dir().mkdir(parents=True, exist_ok=True)
    owned = Owned(lab=lab, owner_pid=os.getpid(), owner_start=start_time(os.getpid()))
    try:
        fd = os.open(owned.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        other = Owned.load(owned.path)
        if other.owner_alive():
            raise UsageError(f"lab {lab!r} is already running (pid {other.owner_pid}); "
                             "stop it first or pick another --lab name") from None
        guardian = other.guardian()
        if guardian is not None and guardian.alive():
            raise UsageError(f"lab {lab!r} crashed and its guardian (pid {guardian.pid}) is "
                             "removing what it left; retry in a few seconds") from None
        raise UsageError(f"lab {lab!r} crashed and left resources behind; "
                         f"run `lblab clean {lab}` first") from None
    os.close(fd)
    owned.save()
    owned.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return owned


def existing_labs() -> list[Owned]:
    if not labs_dir().is_dir():
        return []
    return [Owned.load(p) for p in sorted(labs_dir().glob("*.json"))]


def ovs_bridges() -> set[str]:
    out = subprocess.run(["ovs-vsctl", "--timeout=5", "list-br"], capture_output=True,
                         text=True, check=False)
    return set(out.stdout.split()) if out.returncode == 0 else set()


def remove(owned: Owned, keep: tuple[ProcRecord, ...] = ()) -> list[str]:
    """Remove everything `owned` lists (but the processes in `keep`: the guardian, while the
    run or the guardian itself removes the lab). Returns the problems (empty when all went)."""
    problems: list[str] = []
    survivors = stop_all([p for p in reversed(owned.processes) if p not in keep])
    problems += [f"process {p.pid} ({p.name}) survived SIGKILL" for p in survivors]

    for path, old in owned.sysctls.items():
        try:
            Path(path).write_text(old)
        except OSError as exc:
            problems.append(f"could not restore {path} to {old}: {exc}")

    for cgroup in owned.cgroups:
        problem = remove_cgroup(Path(cgroup))
        if problem:
            problems.append(problem)

    problems += remove_bridges(owned.bridges)
    problems += remove_links(owned.links)

    shutil.rmtree(owned.run_dir, ignore_errors=True)
    if not problems:
        owned.path.unlink(missing_ok=True)
    return problems


def remove_bridges(names: list[str]) -> list[str]:
    """Delete the OVS bridges `names` that exist, in one ovs-vsctl transaction (one wait for
    ovs-vswitchd, not one per bridge). Returns the problems."""
    present = ovs_bridges() if names else set()
    gone = [b for b in names if b in present]
    if not gone:
        return []
    argv = ["ovs-vsctl", "--timeout=10"]
    for br in gone:
        argv += ["--", "--if-exists", "del-br", br]
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    return [] if res.returncode == 0 else [f"ovs-vsctl del-br {' '.join(gone)}: "
                                           f"{res.stderr.strip()}"]


def remove_links(names: list[str]) -> list[str]:
    """Delete the links `names` of this namespace that exist, over one netlink socket (a veth
    goes with its peer). Returns the problems."""
    from pyroute2 import IPRoute

    problems: list[str] = []
    if not names:
        return problems
    with IPRoute() as ipr:
        present = _link_indexes(ipr)
        for name in names:
            idx = present.get(name)
            if idx is not None:
                try:
                    ipr.link("del", index=idx)
                except Exception as exc:  # noqa: BLE001 - report, keep cleaning
                    if ipr.link_lookup(ifname=name):
                        problems.append(f"link {name}: {exc}")
    return problems


def remove_cgroup(path: Path, wait_s: float = 2.0) -> str | None:
    """Remove a cgroup directory whose processes were stopped; None when it is gone. A killed
    process leaves its cgroup only as it exits: rmdir answers EBUSY until then."""
    import errno

    from lblab.errors import LabError
    from lblab.ready import wait_until

    failure: list[OSError] = []

    def gone() -> bool:
        try:
            path.rmdir()
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                failure.append(exc)
                return True
            return False
        return True

    try:
        wait_until(gone, timeout=wait_s, what=f"cgroup {path} to empty", interval=0.01)
    except LabError as exc:
        return str(exc)
    return f"cgroup {path}: {failure[0]}" if failure else None


def leftovers(owned: Owned, keep: tuple[ProcRecord, ...] = ()) -> list[str]:
    """What of `owned` is still on the machine (for tests and for `lblab clean --check`)."""
    found = [f"process {p.pid} ({p.name})" for p in owned.processes
             if p not in keep and p.alive()]
    bridges = ovs_bridges() if owned.bridges else set()
    found += [f"bridge {b}" for b in owned.bridges if b in bridges]
    found += [f"cgroup {c}" for c in owned.cgroups if Path(c).is_dir()]
    present = present_links(set(owned.links))
    found += [f"link {n}" for n in owned.links if n in present]
    return found


def present_links(names: set[str]) -> set[str]:
    """Which of `names` are links of this namespace now (one netlink dump)."""
    from pyroute2 import IPRoute

    if not names:
        return set()
    with IPRoute() as ipr:
        return names & set(_link_indexes(ipr))


def _link_indexes(ipr: object) -> dict[str, int]:
    """Every link of this namespace by name, from one netlink dump instead of one request
    per recorded link (a 200-host lab records 200)."""
    return {link.get_attr("IFLA_IFNAME"): link["index"] for link in ipr.get_links()}
