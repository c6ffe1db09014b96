"""Large request bodies: a slow streaming sink, and a buffering tier in front of it.

    python -m experiments.hol_buffering.bodies CONFIG.json

role "sink" (a backend): `POST /upload` reads the body at `read_bps` bytes/s, discarding it
as it goes, then answers 200: a slow upstream, so uploads stay in flight for a while. With a
header `X-Pause-Ms: T` it reads nothing for T ms, then reads at full speed (a stalled
upstream). Any request without a body is answered at once.
role "tier" (a proxy that buffers): reads the WHOLE body into memory (one bytearray of
Content-Length bytes, filled as it arrives) before it opens the upstream connection and
forwards it; the body stays resident until the upstream has answered. Its memory is
therefore (bodies in flight) x (body size). Mitigations, each optional:
  max_body      a Content-Length above it is refused with 413 before any byte is read
  max_inflight  past this many uploads in progress a new one is refused with 503 at once
Every answer closes the connection (one upload per connection). Plain asyncio, no framework:
what is resident is exactly what this file allocates.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass

from lblab.workloads.loop import run_loop

CHUNK = 65536


@dataclass
class BodiesConfig:
    role: str
    ip: str
    port: int
    read_bps: float = 4 * 1024 * 1024
    """sink: how fast it reads each body."""
    upstream_ip: str = ""
    upstream_port: int = 0
    max_body: int = 0
    max_inflight: int = 0


async def read_head(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def response(status: int, reason: str, text: str) -> bytes:
    body = text.encode()
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode() + body


class Server:
    def __init__(self, cfg: BodiesConfig) -> None:
        self.cfg = cfg
        self.inflight = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            _line, headers = await read_head(reader)
            length = int(headers.get("content-length", "0"))
            if self.cfg.role == "sink":
                reply = await self.sink(reader, length, headers)
            elif (refusal := self.refusal(length)) is not None:
                # Answer at once, then read and discard the body (a lingering close, as
                # nginx does), so the client reads the answer instead of a reset.
                writer.write(refusal)
                await writer.drain()
                await discard(reader, length)
                return
            else:
                reply = await self.tier(reader, length)
            writer.write(reply)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def sink(self, reader: asyncio.StreamReader, length: int,
                   headers: dict[str, str]) -> bytes:
        loop = asyncio.get_running_loop()
        pause_ms = float(headers.get("x-pause-ms", "0"))
        if pause_ms:
            # A stalled upstream: it reads nothing for a while, then at full speed.
            await asyncio.sleep(pause_ms / 1000)
        rate = 0.0 if pause_ms else self.cfg.read_bps
        start, got = loop.time(), 0
        while got < length:
            got += len(await reader.readexactly(min(CHUNK, length - got)))
            ahead = start + got / rate - loop.time() if rate else 0
            if ahead > 0:
                await asyncio.sleep(ahead)  # the read rate: a slow upstream
        return response(200, "OK", f"read {got}\n")

    def refusal(self, length: int) -> bytes | None:
        cfg = self.cfg
        if cfg.max_body and length > cfg.max_body:
            return response(413, "Payload Too Large", f"limit {cfg.max_body}\n")
        if cfg.max_inflight and self.inflight >= cfg.max_inflight:
            return response(503, "Service Unavailable", f"{self.inflight} in flight\n")
        return None

    async def tier(self, reader: asyncio.StreamReader, length: int) -> bytes:
        cfg = self.cfg
        self.inflight += 1
        try:
            body = bytearray(length)  # resident as it fills: the whole body, buffered
            view, got = memoryview(body), 0
            while got < length:
                chunk = await reader.readexactly(min(CHUNK, length - got))
                view[got:got + len(chunk)] = chunk
                got += len(chunk)
            up_reader, up_writer = await asyncio.open_connection(cfg.upstream_ip,
                                                                 cfg.upstream_port)
            try:
                up_writer.write(f"POST /upload HTTP/1.1\r\nHost: upstream\r\n"
                                f"Content-Length: {length}\r\n\r\n".encode())
                for at in range(0, length, CHUNK):
                    up_writer.write(view[at:at + CHUNK])
                    await up_writer.drain()
                return await up_reader.read()
            finally:
                up_writer.close()
        finally:
            self.inflight -= 1


async def discard(reader: asyncio.StreamReader, length: int) -> None:
    got = 0
    while got < length:
        chunk = await reader.read(min(CHUNK, length - got))
        if not chunk:
            return
        got += len(chunk)


async def serve(cfg: BodiesConfig) -> None:
    server = Server(cfg)
    srv = await asyncio.start_server(server.handle, cfg.ip, cfg.port, backlog=256)
    async with srv:
        await srv.serve_forever()


def main(argv: list[str]) -> None:
    with open(argv[1]) as f:
        cfg = BodiesConfig(**json.load(f))
    if cfg.role not in ("sink", "tier"):
        sys.exit(f"bodies: role {cfg.role!r} is not sink or tier")
    try:
        run_loop(serve(cfg))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(sys.argv)
