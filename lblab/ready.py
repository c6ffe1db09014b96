"""Readiness checks on real conditions, polled with a deadline instead of sleeping."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from lblab.errors import LabError

TCP_LISTEN = "0A"


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str,
               interval: float = 0.05) -> None:
    """Poll `predicate` until it is true; raise LabError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise LabError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state in the network namespace of process `pid`.

    /proc/PID/net/tcp shows the sockets of that process's namespace, so this needs no command
    inside the namespace.
    """
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] == TCP_LISTEN:
                        ports.add(int(cols[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for control planes)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tcp_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def unix_answers(path: str | object, timeout: float = 0.5) -> bool:
    """Something listens on the unix socket `path`. Its file is not enough: a server binds
    (the file appears) before it listens, and a connect in between is refused."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


def wait_answering(path: str | object, timeout: float = 10.0) -> None:
    """Wait until the unix socket `path` answers (see unix_answers)."""
    wait_until(lambda: unix_answers(path), timeout=timeout, what=f"{path} to answer")
