"""A lean HTTP/1.1 GET client on asyncio protocols, for the open-loop load generator.

Why not aiohttp here: a general client spends most of a request's CPU on things a load
generator never uses (cookie jars, redirects, tracing hooks, a timeout context per request),
and on a 2-core machine every CPU-second the client burns is taken from the stack under test.
This one does only what the records need: send a GET on a pooled keep-alive connection, parse
the response with httptools (llhttp, the parser Node.js uses), keep the status and the
`X-Backend`/`X-Peer` headers, and drop the body.

Each attempt learns its connection's local port, even when the connection never completes
(a SYN whose answer is dropped): the port is assigned by the kernel's connect(), exactly as
for any client, and read right after it, so records can be matched to flows that routers and
conntrack saw.

Errors map onto the client's outcome classes: `ConnectFailed` (the TCP connection could not be
opened), `TimeoutError` (the total time ran out, connect included) and `ConnectionResetError`
(the connection ended before a complete response: RST, FIN, or garbage).
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

import httptools


class ConnectFailed(OSError):
    """The TCP connection could not be opened (refused, unreachable)."""


class _Connection(asyncio.Protocol):
    """One TCP connection carrying one request at a time."""

    def __init__(self, pool: Pool, local_port: int = 0) -> None:
        self.pool = pool
        self.local_port = local_port
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.backend = self.peer = ""
        self._header = b""

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionResetError(f"bad HTTP response: {exc}"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.forget(self)
        self._fail(ConnectionResetError("connection closed before the response ended"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"x-backend":
            self.backend = value.decode()
        elif name == b"x-peer":
            self.peer = value.decode()

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        result = (self.parser.get_status_code(), self.backend, self.peer)
        if self.pool.keepalive and self.parser.should_keep_alive():
            self.pool.release(self)
        else:
            self.transport.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(result)

    # used by the pool
    def send(self, request: bytes) -> asyncio.Future:
        self.backend = self.peer = ""
        self.waiter = self.pool.loop.create_future()
        self.transport.write(request)
        return self.waiter

    def abort(self) -> None:
        self.pool.forget(self)
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class Pool:
    """Connections to one URL from one source address: idle ones are reused (keep-alive),
    more are opened when all are busy, as many as the open-loop schedule needs."""

    def __init__(self, url: str, local_addr: str = "", keepalive: bool = True) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http:// URLs with a host are supported, not {url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        close = b"" if keepalive else b"Connection: close\r\n"
        self.request = (f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n".encode()
                        + close + b"\r\n")
        self.local_addr = (local_addr, 0) if local_addr else None
        self.keepalive = keepalive
        self.loop = asyncio.get_running_loop()
        self.idle: list[_Connection] = []
        self.open: set[_Connection] = set()

    async def get(self, timeout_s: float, meta: dict | None = None) -> tuple[int, str, str]:
        """One GET: (status, X-Backend, X-Peer). Raises TimeoutError, ConnectFailed or
        ConnectionResetError. `meta["sport"]` is set to the connection's local port as soon
        as it is known, failed attempts included."""
        conn = None
        meta = {} if meta is None else meta
        try:
            async with asyncio.timeout(timeout_s):
                if self.idle:
                    conn = self.idle.pop()
                    meta["sport"] = conn.local_port
                else:
                    conn = await self._connect(meta)
                return await conn.send(self.request)
        except BaseException:
            if conn is not None:
                conn.abort()  # a response may still be on its way: never reuse it
            raise

    async def _connect(self, meta: dict) -> _Connection:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            if self.local_addr:
                # Bind the address only; the port is still chosen by connect(), for this
                # destination, as an unbound socket's would be.
                sock.setsockopt(socket.SOL_IP, socket.IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind(self.local_addr)
            address = (self.host, self.port)
            sock.connect_ex(address)
            meta["sport"] = sock.getsockname()[1]
            await self.loop.sock_connect(sock, address)
            _, conn = await self.loop.create_connection(
                lambda: _Connection(self, meta["sport"]), sock=sock)
        except OSError as exc:
            sock.close()
            raise ConnectFailed(exc.errno, f"connect to {self.host}:{self.port}: "
                                f"{exc.strerror or exc}") from exc
        except BaseException:
            sock.close()
            raise
        self.open.add(conn)
        return conn

    def release(self, conn: _Connection) -> None:
        self.idle.append(conn)

    def forget(self, conn: _Connection) -> None:
        self.open.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    def close(self) -> None:
        for conn in list(self.open):
            conn.abort()
