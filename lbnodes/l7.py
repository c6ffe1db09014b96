"""The L7 node: HAProxy in a lab host, configured from a typed config and driven through
its runtime API (the stats socket), as an operator would.

The stats socket lives in the lab's folder with mode 0600, so it is reachable from the
controlling process without any network listener, and it disappears with the lab's folder
(also after a crash: `lblab clean` removes that folder).
"""

from __future__ import annotations

import csv
import io
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lblab.errors import LabError, UsageError
from lblab.ready import wait_until
from lbnodes.common import TEMPLATES, Backend

BALANCES = ("roundrobin", "static-rr", "leastconn", "first", "source", "random", "random(2)",
            "uri", "hdr(host)")


@dataclass(frozen=True)
class Server(Backend):
    """A backend as HAProxy's `server` line sees it (HAProxy calls a backend a server)."""

    backup: bool = False
    """Used only while every non-backup server is down (e.g. another zone's servers)."""
    maxconn: int = 0
    """At most this many requests at the server at once (0: no limit); the rest wait in
    the backend's queue, which `max_queued` and `timeout queue` bound."""


@dataclass(frozen=True)
class L7Config:
    name: str
    bind_ip: str
    port: int
    servers: tuple[Server, ...]
    balance: str = "roundrobin"
    hash_type: str = ""
    """'consistent' or 'map-based' for hashed balances."""
    hash_balance_factor: int = 0
    """Bounded-load consistent hashing: no server above factor/100 x the average (>100)."""
    cookie: bool = False
    check: bool = False
    check_path: str = "/health"
    check_inter_ms: int = 500
    check_fall: int = 2
    check_rise: int = 2
    retries: int = 0
    retry_on: str = ""
    redispatch: bool = False
    keepalive_to_servers: bool = True
    maxconn: int = 4096
    timeout_connect_ms: int = 1000
    timeout_client_ms: int = 30000
    timeout_server_ms: int = 30000
    timeout_queue_ms: int = 0
    """How long a request may wait in HAProxy's queue before a 503 (0: HAProxy's default,
    the connect timeout)."""
    timeout_check_ms: int = 0
    """A health check's read timeout; its connect timeout is min(connect, inter) (0: unset,
    `inter` is the whole check's timeout)."""
    allbackups: bool = False
    """When the backups take over, use all of them rather than the first."""
    max_queued: int = 0
    """Admission control: refuse a request at once (503) when this many already wait in the
    backend's queue for a server under its maxconn (0: no bound but `timeout queue`)."""

    def __post_init__(self) -> None:
        problems = []
        if not self.servers:
            problems.append("needs at least one server")
        if self.balance not in BALANCES:
            problems.append(f"balance {self.balance!r} is not one of {', '.join(BALANCES)}")
        if self.hash_type not in ("", "consistent", "map-based"):
            problems.append(f"hash_type {self.hash_type!r} is not consistent or map-based")
        if self.hash_balance_factor and (self.hash_balance_factor <= 100
                                         or self.hash_type != "consistent"):
            problems.append("hash_balance_factor needs hash_type consistent and a value > 100")
        if len({s.name for s in self.servers}) != len(self.servers):
            problems.append("server names must be unique")
        for s in self.servers:
            if not 0 <= s.weight <= 256:
                problems.append(f"server {s.name}: weight {s.weight} outside 0..256")
        if self.max_queued and not all(s.maxconn for s in self.servers):
            problems.append("max_queued needs maxconn on every server (no queue without)")
        if problems:
            raise UsageError(f"L7 node {self.name}: " + "; ".join(problems))


def render(cfg: L7Config, stats_socket: str) -> str:
    return TEMPLATES.get_template("haproxy.cfg.j2").render(cfg=cfg, stats_socket=stats_socket)


class RuntimeAPI:
    """HAProxy's runtime API over its stats socket: one command per connection."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def command(self, line: str, timeout: float = 5.0) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.path))
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def show_stat(self) -> list[dict[str, str]]:
        text = self.command("show stat").lstrip("# ")
        return [row for row in csv.DictReader(io.StringIO(text)) if row.get("pxname")]

    def servers(self, backend: str) -> dict[str, dict[str, str]]:
        return {r["svname"]: r for r in self.show_stat()
                if r["pxname"] == backend and r["svname"] not in ("BACKEND", "FRONTEND")}

    def set_state(self, backend: str, server: str, state: str) -> None:
        if state not in ("ready", "drain", "maint"):
            raise UsageError(f"server state {state!r} is not ready, drain or maint")
        self._expect_empty(f"set server {backend}/{server} state {state}")

    def set_weight(self, backend: str, server: str, weight: int) -> None:
        self._expect_empty(f"set server {backend}/{server} weight {weight}")

    def _expect_empty(self, line: str) -> None:
        reply = self.command(line).strip()
        if reply:
            raise LabError(f"haproxy runtime API: {line!r}: {reply}")


class L7Node:
    """HAProxy running in a lab host."""

    def __init__(self, lab: Any, cfg: L7Config) -> None:
        self.lab, self.cfg = lab, cfg
        self.socket = lab.file(f"{cfg.name}-haproxy.sock")
        self.config_path = lab.file(f"{cfg.name}-haproxy.cfg")
        self.api = RuntimeAPI(self.socket)
        self.backend = f"be_{cfg.name}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> L7Node:
        self.config_path.write_text(render(self.cfg, str(self.socket)))
        check = subprocess.run(["haproxy", "-c", "-q", "-f", str(self.config_path)],
                               capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise LabError(f"haproxy rejected {self.config_path}: "
                           f"{(check.stderr or check.stdout).strip()[:300]}")
        self.proc = self.lab.spawn(self.cfg.name, ["haproxy", "-db", "-f", str(self.config_path)],
                                   name=f"haproxy-{self.cfg.name}")
        self.lab.on_teardown(lambda: self.socket.unlink(missing_ok=True))
        self.lab.wait_listening(self.cfg.name, self.cfg.port, proc=self.proc, timeout=timeout)
        wait_until(self.socket.exists, timeout=timeout, what=f"{self.socket} to appear")
        return self

    def stop(self) -> None:
        """Stop this HAProxy now (another config may take its place on the same node)."""
        if self.proc is not None:
            self.lab.stop_process(self.proc)
            self.proc = None
        self.socket.unlink(missing_ok=True)

    def server_counters(self) -> dict[str, dict[str, int | str]]:
        """Per server: requests answered (by status class), sessions, status, weight."""
        keep = ("stot", "hrsp_2xx", "hrsp_4xx", "hrsp_5xx", "econ", "eresp", "wretr", "wredis",
                "qcur", "scur", "weight")
        rows = {}
        for name, row in self.api.servers(self.backend).items():
            rows[name] = {k: int(row[k]) if row.get(k, "").isdigit() else row.get(k, "")
                          for k in keep}
            rows[name]["status"] = row["status"]
        return rows
