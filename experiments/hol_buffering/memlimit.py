"""A memory limit for one process: a cgroup made for it, removed after.

cgroup v2 (`memory.max`, `memory.current`, `memory.events` oom_kill) where the unified
hierarchy has the memory controller, else cgroup v1 (`memory.limit_in_bytes`,
`memory.usage_in_bytes`, `memory.oom_control` oom_kill); `detect` says which. Swap is
excluded (v2 `memory.swap.max` 0, v1 `memory.memsw.limit_in_bytes` = the limit, swappiness
0), so reaching the limit means the kernel's OOM killer, not paging. Creating the cgroup is a
machine-wide change: the lab owns the directory (`Lab.cgroup` makes it, records it in the
lab's state file and removes it at the variant's end, or the guardian / `lblab clean` after a
crash) and the result names it; this class only reads and writes the controller's files.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from lblab.errors import MissingCapability

ROOT = Path("/sys/fs/cgroup")


def detect(root: Path = ROOT) -> tuple[str, Path]:
    """("v2", root) or ("v1", root/memory): where a memory cgroup can be made."""
    controllers = root / "cgroup.controllers"
    if controllers.exists() and "memory" in controllers.read_text().split():
        return "v2", root
    if (root / "memory" / "memory.limit_in_bytes").exists():
        return "v1", root / "memory"
    raise MissingCapability("no memory cgroup controller (neither cgroup v2 memory.max nor "
                            "v1 memory.limit_in_bytes)")


FILES = {
    "v1": {"limit": "memory.limit_in_bytes", "usage": "memory.usage_in_bytes",
           "peak": "memory.max_usage_in_bytes", "events": "memory.oom_control"},
    "v2": {"limit": "memory.max", "usage": "memory.current", "peak": "memory.peak",
           "events": "memory.events"},
}


@dataclass
class MemoryLimit:
    name: str
    version: str = ""
    base: Path | None = None

    def __post_init__(self) -> None:
        if not self.version:
            self.version, self.base = detect()
        assert self.base is not None
        self.dir = self.base / self.name
        self.files = FILES[self.version]

    def record(self, limit: int | None = None) -> dict:
        """How the result names this machine-wide change."""
        return {"path": str(self.dir / self.files["limit"]), "old": "(no such cgroup)",
                "new": f"{limit} (cgroup {self.version}, made for the run, then removed)"}

    def _write(self, name: str, value: str) -> None:
        (self.dir / name).write_text(value)

    def set_limit(self, limit: int) -> None:
        if self.version == "v2":
            self._write("memory.max", str(limit))
            with contextlib.suppress(OSError):
                self._write("memory.swap.max", "0")
        else:
            self._write("memory.swappiness", "0")
            self._write("memory.limit_in_bytes", str(limit))
            with contextlib.suppress(OSError):
                self._write("memory.memsw.limit_in_bytes", str(limit))

    def add(self, pid: int) -> None:
        self._write("cgroup.procs", str(pid))

    def usage(self) -> int:
        return int((self.dir / self.files["usage"]).read_text())

    def limit(self) -> int:
        text = (self.dir / self.files["limit"]).read_text().strip()
        return -1 if text == "max" else int(text)

    def oom_kills(self) -> int:
        """The kernel's own count of OOM kills in this cgroup."""
        for line in (self.dir / self.files["events"]).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0
