"""A backend for long-lived streams: gRPC (streaming and unary) and WebSocket.

    python -m lblab.workloads.stream_backend CONFIG.json

Data plane (on the backend's lab address):
  gRPC  :grpc_port  service `lblab.Streams` through generic handlers and bytes serializers
        (no protoc): `Watch` (unary -> stream: the backend's name, then a heartbeat every
        `heartbeat_s` until the stream ends) and `Call` (unary: the backend's name).
  WS    :ws_port    the same as `Watch` over a WebSocket: the name, then heartbeats.
Control plane (a unix socket in the lab's folder, mode 0600):
  GET  /stats   active streams (gRPC, WebSocket), streams opened and ended, unary calls
  POST /age     {"mode": "none" | "grpc" | "app", "age_s", "grace_s", "jitter"}

Connection age, the mitigation the experiment measures:
  grpc  gRPC's own MAX_CONNECTION_AGE / MAX_CONNECTION_AGE_GRACE (server channel arguments;
        gRPC core multiplies the age by U(0.9, 1.1) per connection and cannot be told not to):
        the gRPC server is rebuilt with those arguments. A WebSocket is closed with 1001
        (going away) at age_s x U(1 - jitter, 1 + jitter) + grace_s.
  app   the backend ends each stream itself at age_s x U(1 - jitter, 1 + jitter) + grace_s
        (jitter 0: every stream at the same age), gRPC streams with status OK, WebSockets
        with 1001: what a server does that has no jitter.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from dataclasses import asdict, dataclass

import grpc
import websockets
from aiohttp import web

from lblab.workloads.backend import run_config, serve_control

SERVICE = "lblab.Streams"
WATCH = f"/{SERVICE}/Watch"
CALL = f"/{SERVICE}/Call"
AGE_MODES = ("none", "grpc", "app")


@dataclass
class BackendConfig:
    name: str
    ip: str
    grpc_port: int = 50051
    ws_port: int = 8080
    heartbeat_s: float = 1.0
    control_socket: str = ""
    seed: int = 0


@dataclass
class Age:
    mode: str = "none"
    age_s: float = 0.0
    grace_s: float = 0.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in AGE_MODES:
            raise ValueError(f"age mode {self.mode!r} is not one of {', '.join(AGE_MODES)}")
        if self.mode != "none" and self.age_s <= 0:
            raise ValueError("age_s must be > 0 with an age mode")
        if not 0 <= self.jitter < 1 or self.grace_s < 0:
            raise ValueError("jitter must be in [0, 1) and grace_s >= 0")

    def grpc_options(self) -> list[tuple[str, int]]:
        if self.mode != "grpc":
            return []
        return [("grpc.max_connection_age_ms", int(self.age_s * 1000)),
                ("grpc.max_connection_age_grace_ms", int(self.grace_s * 1000))]


class StreamBackend:
    def __init__(self, cfg: BackendConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.age = Age()
        self.server: grpc.aio.Server | None = None
        self.counts = {"active_grpc": 0, "active_ws": 0, "opened_grpc": 0, "opened_ws": 0,
                       "ended_grpc": 0, "ended_ws": 0, "aged_out": 0, "calls": 0}

    # -- the stream's own end, when the backend ends it ---------------------------------
    def app_deadline(self) -> float | None:
        """Monotonic instant at which this stream is ended by the backend itself, or None.
        WebSockets follow the same rule in `grpc` mode (gRPC's age applies to gRPC only)."""
        if self.age.mode == "none":
            return None
        j = self.age.jitter
        return time.monotonic() + self.age.age_s * self.rng.uniform(1 - j, 1 + j) \
            + self.age.grace_s

    async def beats(self, deadline: float | None):
        """Yield each time a heartbeat is due; end at the deadline (the stream's age)."""
        while True:
            wait = self.cfg.heartbeat_s
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    self.counts["aged_out"] += 1
                    return
            await asyncio.sleep(wait)
            if deadline is None or time.monotonic() < deadline:
                yield

    # -- gRPC -----------------------------------------------------------------------------
    async def watch(self, _request: bytes, context: grpc.aio.ServicerContext):
        self.counts["active_grpc"] += 1
        self.counts["opened_grpc"] += 1
        try:
            yield self.cfg.name.encode()
            async for _ in self.beats(self.app_deadline() if self.age.mode == "app" else None):
                yield b"."
        finally:
            self.counts["active_grpc"] -= 1
            self.counts["ended_grpc"] += 1

    async def call(self, _request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.counts["calls"] += 1
        return self.cfg.name.encode()

    async def start_grpc(self) -> None:
        if self.server is not None:
            await self.server.stop(0)
        server = grpc.aio.server(options=self.age.grpc_options())
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
            "Watch": grpc.unary_stream_rpc_method_handler(self.watch),
            "Call": grpc.unary_unary_rpc_method_handler(self.call),
        }),))
        if server.add_insecure_port(f"{self.cfg.ip}:{self.cfg.grpc_port}") == 0:
            raise OSError(f"cannot listen on {self.cfg.ip}:{self.cfg.grpc_port}")
        await server.start()
        self.server = server

    # -- WebSocket ------------------------------------------------------------------------
    async def ws(self, conn: websockets.ServerConnection) -> None:
        """The name, heartbeats, and a close 1001 at the stream's age; a close by the client
        ends it at once (not at the next heartbeat), so `active_ws` is what is open."""
        self.counts["active_ws"] += 1
        self.counts["opened_ws"] += 1

        async def send() -> None:
            await conn.send(self.cfg.name)
            async for _ in self.beats(self.app_deadline()):
                await conn.send(".")
            await conn.close(1001, "max connection age")

        sender, closed = asyncio.ensure_future(send()), asyncio.ensure_future(conn.wait_closed())
        try:
            await asyncio.wait({sender, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sender, closed):
                task.cancel()
            await asyncio.gather(sender, closed, return_exceptions=True)
            self.counts["active_ws"] -= 1
            self.counts["ended_ws"] += 1

    # -- control --------------------------------------------------------------------------
    async def stats(self, _request: web.Request) -> web.Response:
        return web.json_response({"name": self.cfg.name, **self.counts,
                                  "active": self.counts["active_grpc"] + self.counts["active_ws"],
                                  "age": asdict(self.age)})

    async def set_age(self, request: web.Request) -> web.Response:
        try:
            age = Age(**(await request.json()))
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if self.counts["active_grpc"]:
            return web.json_response({"error": "streams are still open"}, status=409)
        rebuild = age.grpc_options() != self.age.grpc_options()
        self.age = age
        if rebuild:
            await self.start_grpc()
        return web.json_response(asdict(age))

    def control_app(self) -> web.Application:
        app = web.Application()
        app.add_routes([web.get("/stats", self.stats), web.post("/age", self.set_age)])
        return app


async def serve(cfg: BackendConfig) -> None:
    backend = StreamBackend(cfg)
    await backend.start_grpc()
    async with websockets.serve(backend.ws, cfg.ip, cfg.ws_port, ping_interval=None):
        control = await serve_control(backend.control_app(), cfg.control_socket)  # noqa: F841
        await asyncio.Event().wait()  # `control` lives as long as this frame waits


if __name__ == "__main__":
    # grpc.aio wants asyncio's own loop, not uvloop
    run_config(sys.argv, BackendConfig, serve, loop=asyncio.run)
