"""A results folder: one per experiment, written so an interrupted run never looks complete.

`begin` removes any previous result.json and drops a RUNNING marker; raw series and
snapshots are written atomically as they are produced; `finish` writes result.json last
(atomically) and removes the marker. A folder with RUNNING or without result.json is
incomplete, and `lblab report` says so.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from lblab.errors import UsageError

RESULT = "result.json"
RUNNING = "RUNNING"
ERROR = "error.json"


def atomic_write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(data, str):
        tmp.write_text(data)
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=1, default=str) + "\n")


def write_csv(path: Path, rows: list[dict], fields: list[str] | None = None) -> None:
    fields = fields or (list(rows[0]) if rows else [])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buf.getvalue())


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class RunFolder:
    def __init__(self, root: Path, experiment: str) -> None:
        self.root = root
        self.dir = root / experiment

    def begin(self) -> None:
        """Start from an empty folder: a rerun must not mix its logs and series with the
        previous run's. Only a folder lblab made (or an empty one) is cleared."""
        if self.dir.exists() and any(self.dir.iterdir()):
            if not any((self.dir / marker).exists() for marker in (RESULT, RUNNING, ERROR)):
                raise UsageError(f"{self.dir} exists and is not an lblab results folder; "
                                 "pick another --out")
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / RUNNING, f"pid {os.getpid()} started {time.ctime()}\n")

    def path(self, name: str) -> Path:
        return self.dir / name

    def finish(self, result: dict) -> None:
        self.finish_at(self.dir, result)

    @staticmethod
    def finish_at(folder: Path, result: dict) -> None:
        """Write result.json last, atomically, and drop the folder's RUNNING marker."""
        write_json(folder / RESULT, result)
        (folder / RUNNING).unlink(missing_ok=True)


def load_result(folder: Path) -> dict | None:
    path = folder / RESULT
    if not path.exists() or (folder / RUNNING).exists():
        return None
    return json.loads(path.read_text())


def experiment_folders(root: Path) -> list[Path]:
    """The experiment folders under a results root (or the root itself if it is one)."""
    if (root / RESULT).exists() or (root / RUNNING).exists():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir()
                  and ((p / RESULT).exists() or (p / RUNNING).exists())) if root.is_dir() else []


def git_state(repo: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", "-C", str(repo), *args], capture_output=True,
                                 text=True, timeout=5, check=False)
        except OSError:
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def provenance(caps: Any, sysctls_changed: list[dict[str, str]],
               argv: list[str]) -> dict[str, Any]:
    repo = Path(__file__).resolve().parent.parent
    return {
        "git": git_state(repo),
        "argv": argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "datapath": caps.datapath,
        "capabilities": caps.to_json(),
        "sysctls_changed": sysctls_changed,
        "cpus": os.cpu_count(),
    }
