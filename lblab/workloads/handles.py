"""Starting workloads in a lab and talking to them.

Backends run as `python -m lblab.workloads.backend` in their node; their control endpoint is
a unix socket in the lab's folder, reached here with a few lines of HTTP over AF_UNIX.
Clients run to completion in their node and leave a records CSV and a summary JSON.
"""

from __future__ import annotations

import csv
import http.client
import json
import socket
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lblab.errors import LabError
from lblab.ready import wait_answering, wait_until
from lblab.workloads.backend import BackendConfig
from lblab.workloads.client import ClientConfig
from lblab.workloads.conns import ConnsConfig
from lblab.workloads.floods import check_target


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 5.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class BackendHandle:
    def __init__(self, lab: Any, node: str, cfg: BackendConfig, proc: Any = None) -> None:
        self.lab, self.node, self.cfg, self.proc = lab, node, cfg, proc
        self._stats_conn: _UnixHTTP | None = None
        self._stats_lock = threading.Lock()

    def stop(self) -> None:
        """Stop this backend now, as a crash or a power loss would (another may start)."""
        if self.proc is not None:
            self.lab.stop_process(self.proc)
            self.proc = None
        with self._stats_lock:
            self._close_stats()
        Path(self.cfg.control_socket).unlink(missing_ok=True)

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        conn = _UnixHTTP(self.cfg.control_socket)
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = json.loads(resp.read() or b"{}")
        finally:
            conn.close()
        return self._checked(method, path, resp.status, data)

    def _checked(self, method: str, path: str, status: int, data: dict) -> dict:
        if status != 200:
            raise LabError(f"backend {self.node}: {method} {path}: {data.get('error', data)}")
        return data

    def stats(self) -> dict:
        """GET /stats on one kept-alive connection: samplers call it every few tens of ms,
        and a connection per call doubled its CPU, the backend's included. A connection the
        backend closed while idle is opened again (the GET is safe to repeat)."""
        with self._stats_lock:
            try:
                return self._stats_once()
            except (http.client.RemoteDisconnected, http.client.BadStatusLine,
                    ConnectionError):
                return self._stats_once()  # on a new connection

    def _stats_once(self) -> dict:
        if self._stats_conn is None:
            self._stats_conn = _UnixHTTP(self.cfg.control_socket)
        try:
            self._stats_conn.request("GET", "/stats")
            resp = self._stats_conn.getresponse()
            data = json.loads(resp.read() or b"{}")
        except BaseException:
            self._close_stats()
            raise
        if resp.will_close:
            self._close_stats()
        return self._checked("GET", "/stats", resp.status, data)

    def _close_stats(self) -> None:
        if self._stats_conn is not None:
            self._stats_conn.close()
            self._stats_conn = None

    def set_faults(self, **changes: Any) -> dict:
        return self._call("POST", "/faults", changes)


def start_backend(lab: Any, node: str, ip: str, **settings: Any) -> BackendHandle:
    """Start a backend in `node`, listening on `ip`, and wait until it answers."""
    sock = lab.file(f"{node}-backend.sock")
    sock.unlink(missing_ok=True)
    cfg = BackendConfig(name=node, ip=ip, control_socket=str(sock), **settings)
    cfg_path = lab.file(f"{node}-backend.json")
    cfg_path.write_text(json.dumps(asdict(cfg)))
    proc = lab.spawn(node, [sys.executable, "-m", "lblab.workloads.backend", str(cfg_path)],
                     name=f"backend-{node}")
    lab.wait_listening(node, cfg.port, proc=proc)
    wait_answering(sock)
    return BackendHandle(lab, node, cfg, proc)


def run_client(lab: Any, node: str, cfg: ClientConfig, out_dir: Path,
               tag: str, *, read: bool = True) -> tuple[list[dict], dict]:
    """Run an open-loop client in `node` to completion; return (records, summary).
    read=False leaves the records in their CSV (the driver reads raw data back itself).

    The run is bounded: it is killed if it outlives its schedule plus the longest retry chain.
    Every target URL's host must be an address inside the lab (as for floods).
    """
    for url in cfg.targets:
        check_target(lab, urlsplit(url).hostname or url, f"client target {url}")
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg.records = str(out_dir / f"{tag}-records.csv")
    cfg.summary = str(out_dir / f"{tag}-summary.json")
    cfg_path = lab.file(f"client-{tag}.json")
    cfg_path.write_text(json.dumps(asdict(cfg)))
    proc = lab.spawn(node, [sys.executable, "-m", "lblab.workloads.client", str(cfg_path)],
                     name=f"client-{tag}")
    retries = int(cfg.retry.get("retries", 0)) + 1
    bound = cfg.duration_s + cfg.timeout_s * retries + 30
    try:
        code = proc.wait(timeout=bound)
    except subprocess.TimeoutExpired:
        raise LabError(f"client {tag} in {node} outlived its bound of {bound:.0f} s") from None
    if code != 0 or not Path(cfg.summary).exists():
        raise LabError(f"client {tag} in {node} failed (exit {code}); see its log")
    records = read_records(Path(cfg.records)) if read else []
    return records, json.loads(Path(cfg.summary).read_text())


def read_records(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class ConnsHandle:
    """A running long-lived-connections prober (lblab.workloads.conns)."""

    def __init__(self, lab: Any, proc: Any, cfg: ConnsConfig) -> None:
        self.lab, self.proc, self.cfg = lab, proc, cfg

    def wait_ready(self, timeout: float) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise LabError(f"connection prober exited ({self.proc.returncode}) early")
            return Path(self.cfg.ready).exists()

        wait_until(ready, timeout=timeout,
                   what=f"{self.cfg.connections} connections to answer once")

    def stop(self) -> list[dict]:
        Path(self.cfg.stop).write_text("stop")
        try:
            code = self.proc.wait(timeout=self.cfg.timeout_s * 2 + self.cfg.interval_s + 10)
        except subprocess.TimeoutExpired:
            raise LabError("connection prober did not stop") from None
        if code != 0:
            raise LabError(f"connection prober failed (exit {code}); see its log")
        return read_records(Path(self.cfg.records))


def start_conns(lab: Any, node: str, cfg: ConnsConfig, out_dir: Path, tag: str) -> ConnsHandle:
    check_target(lab, cfg.host, f"connection prober target {cfg.host}:{cfg.port}")
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg.records = str(out_dir / f"{tag}-conns.csv")
    cfg.ready = str(lab.file(f"conns-{tag}.ready"))
    cfg.stop = str(lab.file(f"conns-{tag}.stop"))
    for marker in (cfg.ready, cfg.stop):
        Path(marker).unlink(missing_ok=True)
    cfg_path = lab.file(f"conns-{tag}.json")
    cfg_path.write_text(json.dumps(asdict(cfg)))
    proc = lab.spawn(node, [sys.executable, "-m", "lblab.workloads.conns", str(cfg_path)],
                     name=f"conns-{tag}")
    return ConnsHandle(lab, proc, cfg)
