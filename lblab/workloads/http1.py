"""A lean HTTP/1.1 GET client on asyncio protocols, for the open-loop load generator.

Why not aiohttp here: a general client spends most of a request's CPU on things a load
generator never uses (cookie jars, redirects, tracing hooks, a timeout context per request),
and on a 2-core machine every CPU-second the client burns is taken from the stack under test.
This one does only what the records need: send a GET on a pooled keep-alive connection, parse
the response with httptools (llhttp, the parser Node.js uses), keep the status and the
`X-Backend`/`X-Peer` headers, and drop the body.

The hot path is callbacks, not coroutines: `Pool.start` writes the request on an idle
connection and arms one timer; the parser's completion callback hands the answer to the
caller's callback. No task, future or timeout context is made per request on a reused
connection (a profile showed those, not the parsing, were most of the client's CPU). Opening a
connection still runs as a task. `Pool.get` is the same thing as a coroutine.

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
import os
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import httptools

Answer = Callable[[int | None, str, str, BaseException | None], None]
"""callback(status, X-Backend, X-Peer, error): exactly one of status and error is None."""


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


class ConnectFailed(OSError):
    """The TCP connection could not be opened (refused, unreachable)."""


class _Connection(asyncio.Protocol):
    """One TCP connection carrying one request at a time."""

    def __init__(self, pool: Pool, local_port: int = 0) -> None:
        self.pool = pool
        self.local_port = local_port
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: Answer | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.backend = self.peer = ""

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
        if name[0] | 0x20 != 0x78:  # not x-...: most headers stop here
            return
        name = name.lower()
        if name == b"x-backend":
            self.backend = value.decode()
        elif name == b"x-peer":
            self.peer = value.decode()

    def on_message_complete(self) -> None:
        answer, self.answer = self.answer, None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.pool.keepalive and self.parser.should_keep_alive():
            self.pool.idle.append(self)
        else:
            self.transport.close()
        if answer is not None:
            answer(self.parser.get_status_code(), self.backend, self.peer, None)

    # used by the pool
    def send(self, request: bytes, answer: Answer, deadline: float) -> None:
        self.backend = self.peer = ""
        self.answer = answer
        self.timer = self.pool.loop.call_at(deadline, self._expire)
        self.transport.write(request)

    def _expire(self) -> None:
        self.timer = None
        self._fail(TimeoutError())
        self.abort()  # a response may still be on its way: never reuse it

    def abort(self) -> None:
        self.pool.forget(self)
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: BaseException) -> None:
        answer, self.answer = self.answer, None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if answer is not None:
            answer(None, "", "", exc)


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
        self.connecting: set[asyncio.Task] = set()

    def start(self, timeout_s: float, answer: Answer) -> int | None:
        """Send one GET; `answer` is called exactly once, later, from the loop, with
        (status, X-Backend, X-Peer, None) or (None, "", "", TimeoutError | ConnectFailed |
        ConnectionResetError). Returns the connection's local port (None when no socket
        could be made)."""
        deadline = self.loop.time() + timeout_s
        while self.idle:
            conn = self.idle.pop()
            if not conn.transport.is_closing():  # the server's FIN may be in already
                conn.send(self.request, answer, deadline)
                return conn.local_port
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as exc:  # out of descriptors, say: not a connect failure
            self.loop.call_soon(answer, None, "", "", exc)
            return None
        address = (self.host, self.port)
        try:
            sock.setblocking(False)
            if self.local_addr:
                # Bind the address only; the port is still chosen by connect(), for this
                # destination, as an unbound socket's would be.
                sock.setsockopt(socket.SOL_IP, socket.IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind(self.local_addr)
            sock.connect_ex(address)
            sport = sock.getsockname()[1]
        except OSError as exc:
            sock.close()
            self.loop.call_soon(answer, None, "", "", self._connect_failed(exc))
            return None
        task = self.loop.create_task(self._open(sock, address, sport, deadline, answer))
        self.connecting.add(task)
        task.add_done_callback(self.connecting.discard)
        return sport

    async def _open(self, sock: socket.socket, address: tuple[str, int], sport: int,
                    deadline: float, answer: Answer) -> None:
        failure: BaseException | None = None
        try:
            async with asyncio.timeout_at(deadline):
                try:
                    await self._connected(sock)
                    _, conn = await self.loop.create_connection(
                        lambda: _Connection(self, sport), sock=sock)
                except OSError as exc:  # the kernel's answer (ETIMEDOUT included)
                    failure = self._connect_failed(exc)
        except TimeoutError as exc:  # our deadline
            failure = exc
        except BaseException:
            sock.close()
            raise
        if failure is not None:
            sock.close()
            answer(None, "", "", failure)
            return
        self.open.add(conn)
        conn.send(self.request, answer, deadline)

    async def _connected(self, sock: socket.socket) -> None:
        """Wait for the connect() that start() began; raise its error. (The loop's
        sock_connect would connect again, resolve the address and check the socket's
        family and type first: a third of the connection's CPU on loopback.)"""
        fd = sock.fileno()
        ready = self.loop.create_future()
        self.loop.add_writer(fd, _resolve, ready)
        try:
            await ready
        finally:
            self.loop.remove_writer(fd)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))

    def _connect_failed(self, exc: OSError) -> ConnectFailed:
        failed = ConnectFailed(exc.errno, f"connect to {self.host}:{self.port}: "
                               f"{exc.strerror or exc}")
        failed.__cause__ = exc
        return failed

    async def get(self, timeout_s: float, meta: dict | None = None) -> tuple[int, str, str]:
        """One GET: (status, X-Backend, X-Peer). Raises TimeoutError, ConnectFailed or
        ConnectionResetError. `meta["sport"]` is set to the connection's local port as soon
        as it is known, failed attempts included."""
        done = self.loop.create_future()

        def answer(status: int | None, backend: str, peer: str,
                   error: BaseException | None) -> None:
            if done.done():
                return
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result((status, backend, peer))

        sport = self.start(timeout_s, answer)
        if meta is not None and sport is not None:
            meta["sport"] = sport
        return await done

    def release(self, conn: _Connection) -> None:
        self.idle.append(conn)

    def forget(self, conn: _Connection) -> None:
        self.open.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    def close(self) -> None:
        for task in list(self.connecting):
            task.cancel()
        for conn in list(self.open):
            conn.abort()
