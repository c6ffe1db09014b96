"""Echo backends on four different HTTP/1.1 parsers, for header-normalization.

    python -m lblab.workloads.parsers CONFIG.json

CONFIG: {"kind": "h11" | "httptools" | "httpserver" | "aiohttp", "ip", "port", "log"}.
Every request a backend reads is answered 200 with a JSON echo of what its parser made of
it (method, target, version, header names and values as the parser exposes them, body length
and bytes, which request of its connection it was, the proxy's stamp header) and appended to
the JSON-lines file `log`, with an `open` and a `close` line per connection, so a request the
client never sees an answer to (read from a body a proxy forwarded) is still on record.

  h11         h11 (pure Python, strict) over asyncio streams; names as received (raw_items)
  httptools   llhttp through httptools, an asyncio protocol
  httpserver  the standard library's http.server (ThreadingHTTPServer), its body framing
              the way handlers commonly do it: `int(Content-Length)`, 'chunked' in TE
  aiohttp     aiohttp's pure-Python parser (AIOHTTP_NO_EXTENSIONS=1 is set before import)

A parser error is answered 400 (by the library where it answers itself) and the connection
closed; what was read of the request so far is logged with complete=false.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import threading
from typing import Any

STAMP = "x-lblab-client"
"""The header the proxy sets on every request it forwards (its client's address:port)."""
KINDS = ("h11", "httptools", "httpserver", "aiohttp")
BODY_KEEP = 4096


def _s(b: bytes | str) -> str:
    return b if isinstance(b, str) else b.decode("latin-1")


class Log:
    """The backend's request log (thread-safe: http.server answers from threads)."""

    def __init__(self, path: str, kind: str) -> None:
        self.f = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
        self.kind, self.lock = kind, threading.Lock()
        self.ids = itertools.count(1)

    def write(self, row: dict) -> None:
        with self.lock:
            self.f.write(json.dumps({"backend": self.kind, **row}) + "\n")

    def conn(self, peer: Any) -> str:
        cid = f"{peer[0]}:{peer[1]}#{next(self.ids)}"
        self.write({"event": "open", "conn": cid})
        return cid


def record(log: Log, conn: str, index: int, method: Any, target: Any, version: Any,
           headers: list, body: bytes, complete: bool = True, error: str = "") -> dict:
    """What a parser read, as logged and echoed."""
    hdrs = [[_s(n), _s(v)] for n, v in headers]
    stamp = next((v for n, v in hdrs if n.lower() == STAMP), "")
    row = {"event": "request", "conn": conn, "index": index, "method": _s(method or ""),
           "target": _s(target or ""), "version": _s(version or ""), "headers": hdrs,
           "body_len": len(body), "body": _s(body[:BODY_KEEP]), "stamp": stamp,
           "complete": complete, "error": error}
    log.write(row)
    return row


def echo_bytes(row: dict, keep_alive: bool = True) -> bytes:
    body = json.dumps(row).encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n"
            + (b"" if keep_alive else b"Connection: close\r\n") + b"\r\n" + body)


BAD_REQUEST = (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


# -- h11 ----------------------------------------------------------------------------------
async def serve_h11(cfg: dict, log: Log) -> None:
    import h11

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cid = log.conn(writer.get_extra_info("peername"))
        conn = h11.Connection(h11.SERVER)
        index, head, body = 0, None, b""
        try:
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as exc:
                    if head is not None:
                        record(log, cid, index, *head, body, False, str(exc))
                    writer.write(BAD_REQUEST)
                    break
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    if not data and head is not None:
                        record(log, cid, index, *head, body, False, "eof")
                        head = None
                    conn.receive_data(data)
                    if not data and conn.their_state is h11.CLOSED:
                        break
                    continue
                if isinstance(event, h11.Request):
                    index += 1
                    head, body = (event.method, event.target, b"HTTP/" + event.http_version,
                                  list(event.headers.raw_items())), b""
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    row = record(log, cid, index, *head, body)
                    head = None
                    data = json.dumps(row).encode()
                    writer.write(conn.send(h11.Response(status_code=200, headers=[
                        ("Content-Type", "application/json"),
                        ("Content-Length", str(len(data)))])) + conn.send(h11.Data(data=data))
                        + conn.send(h11.EndOfMessage()))
                    await writer.drain()
                    if conn.our_state is h11.MUST_CLOSE:
                        break
                    conn.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    break
        except (ConnectionError, h11.LocalProtocolError):
            pass
        finally:
            log.write({"event": "close", "conn": cid})
            writer.close()

    server = await asyncio.start_server(handle, cfg["ip"], cfg["port"])
    async with server:
        await server.serve_forever()


# -- httptools (llhttp) -------------------------------------------------------------------
async def serve_httptools(cfg: dict, log: Log) -> None:
    import httptools

    class Proto(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.t = transport
            self.cid = log.conn(transport.get_extra_info("peername"))
            self.p = httptools.HttpRequestParser(self)
            self.index, self.head = 0, None

        def on_message_begin(self) -> None:
            self.index += 1
            self.url, self.hdrs, self.body, self.head = b"", [], b"", None

        def on_url(self, url: bytes) -> None:
            self.url += url

        def on_header(self, name: bytes, value: bytes) -> None:
            self.hdrs.append((name, value))

        def on_headers_complete(self) -> None:
            self.head = (self.p.get_method(), self.url, "HTTP/" + self.p.get_http_version(),
                         self.hdrs)

        def on_body(self, body: bytes) -> None:
            self.body += body

        def on_message_complete(self) -> None:
            row = record(log, self.cid, self.index, *self.head, self.body)
            self.head = None
            self.t.write(echo_bytes(row, self.p.should_keep_alive()))
            if not self.p.should_keep_alive():
                self.t.close()

        def data_received(self, data: bytes) -> None:
            try:
                self.p.feed_data(data)
            except httptools.HttpParserError as exc:
                if self.head is not None:
                    record(log, self.cid, self.index, *self.head, self.body, False, str(exc))
                    self.head = None
                self.t.write(BAD_REQUEST)
                self.t.close()

        def eof_received(self) -> None:
            if self.head is not None:
                record(log, self.cid, self.index, *self.head, self.body, False, "eof")
                self.head = None

        def connection_lost(self, exc: Any) -> None:
            self.eof_received()
            log.write({"event": "close", "conn": self.cid})

    server = await asyncio.get_running_loop().create_server(Proto, cfg["ip"], cfg["port"])
    async with server:
        await server.serve_forever()


# -- http.server --------------------------------------------------------------------------
def serve_httpserver(cfg: dict, log: Log) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.cid, self.index = log.conn(self.client_address), 0

        def finish(self) -> None:
            super().finish()
            log.write({"event": "close", "conn": self.cid})

        def log_message(self, *args: Any) -> None:
            pass

        def parse_request(self) -> bool:
            ok = super().parse_request()
            if ok:
                self.index += 1
            return ok

        def _body(self) -> bytes:
            te = self.headers.get("Transfer-Encoding", "")
            if "chunked" in te.lower():
                body = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return body
                    body += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _echo(self) -> None:
            head = (self.command, self.path, self.request_version, list(self.headers.items()))
            try:
                body = self._body()
            except ValueError as exc:
                record(log, self.cid, self.index, *head, b"", False, str(exc))
                self.send_error(400)
                self.close_connection = True
                return
            row = record(log, self.cid, self.index, *head, body)
            if self.request_version == "HTTP/0.9":
                self.wfile.write(json.dumps(row).encode())
                return
            data = echo_bytes(row)
            self.wfile.write(data)

        def __getattr__(self, name: str) -> Any:
            if name.startswith("do_"):
                return self._echo
            raise AttributeError(name)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128
        """socketserver's default backlog of 5 delays a corpus sent at once by a SYN retry."""

    server = Server((cfg["ip"], cfg["port"]), Handler)
    server.serve_forever()


# -- aiohttp (pure-Python parser) ---------------------------------------------------------
async def serve_aiohttp(cfg: dict, log: Log) -> None:
    from aiohttp import http_parser, web, web_protocol

    assert http_parser.HttpRequestParser is http_parser.HttpRequestParserPy, \
        "AIOHTTP_NO_EXTENSIONS=1 did not select the pure-Python parser"

    class Conn(web_protocol.RequestHandler):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.cid, self.index = log.conn(transport.get_extra_info("peername")), 0

        def connection_lost(self, exc: Any) -> None:
            log.write({"event": "close", "conn": self.cid})
            super().connection_lost(exc)

    class Server(web.Server):
        def __call__(self) -> Conn:
            return Conn(self, loop=self._loop, **self._kwargs)

    async def handler(request: web.BaseRequest) -> web.Response:
        conn = request.protocol
        conn.index += 1
        body = await request.read()
        row = record(log, conn.cid, conn.index, request.method, request.raw_path,
                     f"HTTP/{request.version.major}.{request.version.minor}",
                     list(request.raw_headers), body)
        return web.Response(body=json.dumps(row).encode(), content_type="application/json")

    server = await asyncio.get_running_loop().create_server(Server(handler), cfg["ip"],
                                                            cfg["port"])
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> None:
    with open(argv[1]) as f:
        cfg = json.load(f)
    if cfg["kind"] not in KINDS:
        raise SystemExit(f"parsers: kind {cfg['kind']!r} is not one of {', '.join(KINDS)}")
    log = Log(cfg["log"], cfg["kind"])
    if cfg["kind"] == "httpserver":
        serve_httpserver(cfg, log)
        return
    if cfg["kind"] == "aiohttp":
        os.environ["AIOHTTP_NO_EXTENSIONS"] = "1"
    serve = {"h11": serve_h11, "httptools": serve_httptools, "aiohttp": serve_aiohttp}
    asyncio.run(serve[cfg["kind"]](cfg, log))


if __name__ == "__main__":
    main(sys.argv)
