"""Long-lived connections, each probed on an interval: who breaks when the path changes.

    python -m lblab.workloads.conns CONFIG.json

Opens K keep-alive HTTP/1.1 connections (at a bounded rate), then sends one request on each
every `interval_s`, each connection at its own phase so the load is even. A connection whose
request fails (reset, timeout, EOF) is recorded as broken and replaced by a new one, as a
client would reconnect; the new connection's requests show where flows land afterwards.
The file `ready` appears once every connection has answered one request (it holds that
wall-clock instant, so a caller can use it as a clock origin); the run ends when the file
`stop` appears or `max_s` passes. Optionally, once the caller writes the file `mark` with a
wall-clock instant T (say, when a path change completed), the prober writes `settled` as
soon as every connection has answered a request sent at or after T: a broken connection
only on its replacement. That is the condition "every connection has been probed since
the change, and the broken ones have reconnected", to wait on instead of a sleep.

This uses asyncio streams rather than a pooling HTTP client on purpose: the point is the
identity of each TCP connection (its local port), which a pool would hide by reconnecting.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lblab.results import atomic_write
from lblab.workloads.loop import run_loop

FIELDS = ["conn", "generation", "t", "outcome", "status", "peer", "local_port"]
"""One row per request; `t` is wall-clock time, so it lines up with the experiment's events."""


@dataclass
class ConnsConfig:
    host: str
    port: int = 80
    connections: int = 100
    interval_s: float = 1.0
    timeout_s: float = 1.0
    open_rate: float = 500.0
    max_s: float = 60.0
    local_addrs: list[str] = field(default_factory=list)
    records: str = "conns.csv"
    ready: str = "ready"
    stop: str = "stop"
    mark: str = ""
    settled: str = ""
    """Both empty: no settling watch (see the module docstring)."""


class Broken(Exception):
    pass


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   host: str) -> tuple[int, str]:
    writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise Broken("eof")
    status = int(status_line.split()[1])
    length, peer = 0, ""
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
        elif name.lower() == "x-peer":
            peer = value.strip()
    await reader.readexactly(length)
    return status, peer


class Prober:
    def __init__(self, cfg: ConnsConfig) -> None:
        self.cfg = cfg
        self.rows: list[dict] = []
        self.t0 = time.time()
        self.start = time.monotonic() + cfg.connections / cfg.open_rate
        """Round r of connection c is sent at start + r * interval + phase(c)."""
        self.answered: set[int] = set()
        self.last_ok_sent: dict[int, float] = {}
        """Connection -> wall-clock send time of its latest answered request."""

    def record(self, conn: int, gen: int, outcome: str, status: int | str = "",
               peer: str = "", local_port: int | str = "") -> None:
        self.rows.append({"conn": conn, "generation": gen, "t": round(time.time(), 4),
                          "outcome": outcome, "status": status, "peer": peer,
                          "local_port": local_port})

    async def connection(self, conn: int, start_delay: float) -> None:
        cfg = self.cfg
        await asyncio.sleep(start_delay)
        local = cfg.local_addrs[conn % len(cfg.local_addrs)] if cfg.local_addrs else None
        generation, rnd = 0, 0
        phase = (conn / max(1, cfg.connections)) * cfg.interval_s
        while not self.done():
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(
                    cfg.host, cfg.port, local_addr=(local, 0) if local else None),
                    cfg.timeout_s)
            except (TimeoutError, OSError):
                self.record(conn, generation, "connect_failed")
                generation += 1
                await asyncio.sleep(cfg.interval_s)
                continue
            port = writer.get_extra_info("sockname")[1]
            try:
                while not self.done():
                    at = self.start + rnd * cfg.interval_s + phase
                    rnd += 1
                    if at > time.monotonic():
                        await asyncio.sleep(at - time.monotonic())
                    sent = time.time()
                    status, peer = await asyncio.wait_for(_request(reader, writer, cfg.host),
                                                          cfg.timeout_s)
                    self.record(conn, generation, "ok", status, peer, port)
                    self.answered.add(conn)
                    self.last_ok_sent[conn] = sent
            except (TimeoutError, OSError, Broken, ValueError, RuntimeError,
                    asyncio.IncompleteReadError) as exc:
                # RuntimeError: uvloop's answer to a write on a transport the peer reset.
                outcome = "timeout" if isinstance(exc, asyncio.TimeoutError) else "reset"
                self.record(conn, generation, outcome, local_port=port)
                generation += 1
            finally:
                writer.close()

    def done(self) -> bool:
        return Path(self.cfg.stop).exists() or time.time() - self.t0 > self.cfg.max_s

    async def watch_ready(self) -> None:
        while len(self.answered) < self.cfg.connections and not self.done():
            await asyncio.sleep(0.05)
        if not self.done():
            atomic_write(Path(self.cfg.ready), repr(time.time()))

    async def watch_settled(self) -> None:
        if not (self.cfg.mark and self.cfg.settled):
            return
        mark = Path(self.cfg.mark)
        while not mark.exists():
            if self.done():
                return
            await asyncio.sleep(0.02)
        since = float(mark.read_text())
        conns = range(self.cfg.connections)
        while not self.done():
            if all(self.last_ok_sent.get(c, 0.0) >= since for c in conns):
                atomic_write(Path(self.cfg.settled), repr(time.time()))
                return
            await asyncio.sleep(0.02)

    async def run(self) -> None:
        gap = 1.0 / self.cfg.open_rate
        tasks = [asyncio.create_task(self.connection(i, i * gap))
                 for i in range(self.cfg.connections)]
        await asyncio.gather(self.watch_ready(), self.watch_settled(), *tasks)

    def write(self) -> None:
        tmp = Path(self.cfg.records + ".tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(self.rows)
        tmp.replace(self.cfg.records)


def main(argv: list[str]) -> None:
    with open(argv[1]) as f:
        cfg = ConnsConfig(**json.load(f))
    prober = Prober(cfg)
    try:
        run_loop(prober.run())
    finally:
        prober.write()


if __name__ == "__main__":
    main(sys.argv)
