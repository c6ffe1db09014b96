"""The lab's backend: an HTTP server with a capacity model and fault knobs.

    python -m lblab.workloads.backend CONFIG.json

Data plane (inside the backend's namespace, on its lab address):
  GET /            one unit of work through the capacity model; `X-Backend` names us and
                   `X-Peer` the address that reached us (behind NAT: which LB node)
  GET /bytes/N     the same, with an N-byte body (download-heavy workloads)
  GET /health      shallow check: 200 unless hung
  GET /health/deep checks the dependency: 503 while it is down
  GET|POST /cart   session state keyed by the `sid` cookie, in memory or in Redis
Control plane (a unix socket in the lab's folder, mode 0600, never a network port):
  GET /stats       counters of the capacity model and of responses
  POST /faults     {"service_ms", "added_ms", "added_fraction", "error_rate", "hang",
                    "dependency_down"}

Requests a client abandons keep their worker until their service time is over, as a real
server's would (aiohttp does not cancel handlers on disconnect).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
import uuid
import weakref
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from aiohttp import web

from lblab.workloads.capacity import CapacityModel, Overloaded, service_time
from lblab.workloads.loop import run_loop


async def update_faults(req: web.Request, faults: Any) -> web.Response:
    """The control plane's POST /faults for any server whose fault knobs are a dataclass
    with `update(changes)`: a bad knob or value is a 400 naming it, else the knobs now."""
    try:
        faults.update(await req.json())
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(asdict(faults))


@dataclass
class Faults:
    service_ms: float = 10.0
    added_ms: float = 0.0
    added_fraction: float = 1.0
    """The share of requests that get `added_ms` (1: every request)."""
    error_rate: float = 0.0
    hang: bool = False
    dependency_down: bool = False

    def update(self, changes: dict) -> None:
        known = {f.name: f.type for f in fields(self)}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown fault knob {key!r}; known: {', '.join(known)}")
            if key == "added_fraction" and not 0 <= float(value) <= 1:
                raise ValueError(f"added_fraction {value} is not in [0, 1]")
            setattr(self, key, bool(value) if known[key] in (bool, "bool") else float(value))


@dataclass
class BackendConfig:
    name: str
    ip: str
    port: int = 80
    workers: int = 8
    service_ms: float = 10.0
    service_dist: str = "exponential"
    queue_limit: int = 64
    control_socket: str = ""
    redis_url: str = ""
    seed: int = 0
    body_bytes: int = 64
    max_requests_per_conn: int = 0
    """Close a keep-alive connection after this many requests (0: never), as nginx's
    keepalive_requests does: it bounds how long one connection's state lives."""
    statuses: dict[str, int] = field(default_factory=dict)


class Backend:
    def __init__(self, cfg: BackendConfig) -> None:
        self.cfg = cfg
        self.faults = Faults(service_ms=cfg.service_ms)
        self.capacity = CapacityModel(cfg.workers, cfg.queue_limit)
        self.rng = random.Random(cfg.seed)
        self.statuses: dict[str, int] = {}
        self.sessions: dict[str, list[str]] = {}
        self.redis = None
        self.started = time.time()
        self.per_conn: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    # -- data plane ------------------------------------------------------------------------
    def _reply(self, status: int, body: bytes | str, **headers: str) -> web.Response:
        self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
        return web.Response(status=status, body=body,
                            headers={"X-Backend": self.cfg.name, **headers})

    @web.middleware
    async def conn_limit(self, req: web.Request, handler) -> web.StreamResponse:
        resp = await handler(req)
        resp.headers["X-Peer"] = req.remote or ""
        limit = self.cfg.max_requests_per_conn
        if limit and req.transport is not None:
            served = self.per_conn.get(req.transport, 0) + 1
            self.per_conn[req.transport] = served
            if served >= limit:
                resp.force_close()
        return resp

    async def _work(self) -> web.Response | None:
        """Run one unit of work; a Response when the work itself failed."""
        if self.faults.hang:
            await asyncio.Event().wait()
        seconds = service_time(self.cfg.service_dist, self.faults.service_ms / 1000, self.rng)
        try:
            await self.capacity.serve(seconds + self._added_s())
        except Overloaded:
            return self._reply(503, "overloaded\n")
        if self.faults.error_rate and self.rng.random() < self.faults.error_rate:
            return self._reply(500, "injected error\n")
        return None

    def _added_s(self) -> float:
        f = self.faults
        if not f.added_ms or f.added_fraction >= 1 or self.rng.random() < f.added_fraction:
            return f.added_ms / 1000
        return 0.0

    async def root(self, _req: web.Request) -> web.Response:
        return await self._work() or self._reply(200, b"x" * self.cfg.body_bytes)

    async def sized(self, req: web.Request) -> web.Response:
        try:
            size = int(req.match_info["n"])
        except ValueError:
            return self._reply(400, "size must be an integer\n")
        return await self._work() or self._reply(200, b"x" * min(size, 64 << 20))

    async def health(self, _req: web.Request) -> web.Response:
        if self.faults.hang:
            await asyncio.Event().wait()
        return self._reply(200, "ok\n")

    async def health_deep(self, _req: web.Request) -> web.Response:
        if self.faults.hang:
            await asyncio.Event().wait()
        if self.faults.dependency_down:
            return self._reply(503, "dependency down\n")
        return self._reply(200, "ok\n")

    async def cart(self, req: web.Request) -> web.Response:
        failed = await self._work()
        if failed:
            return failed
        if self.faults.dependency_down:
            return self._reply(500, "dependency down\n")
        sid = req.cookies.get("sid") or uuid.uuid4().hex
        if req.method == "POST":
            item = (await req.text()) or "item"
            await self._cart_add(sid, item)
        items = await self._cart_get(sid)
        resp = self._reply(200, json.dumps({"sid": sid, "items": items}),
                           **{"Content-Type": "application/json"})
        resp.set_cookie("sid", sid)
        return resp

    async def _cart_add(self, sid: str, item: str) -> None:
        if self.redis is not None:
            await self.redis.rpush(f"cart:{sid}", item)
        else:
            self.sessions.setdefault(sid, []).append(item)

    async def _cart_get(self, sid: str) -> list[str]:
        if self.redis is not None:
            return [x.decode() for x in await self.redis.lrange(f"cart:{sid}", 0, -1)]
        return list(self.sessions.get(sid, []))

    # -- control plane ---------------------------------------------------------------------
    async def stats(self, _req: web.Request) -> web.Response:
        body = {"name": self.cfg.name, "uptime_s": time.time() - self.started,
                "capacity": asdict(self.capacity.stats), "statuses": self.statuses,
                "faults": asdict(self.faults), "sessions": len(self.sessions)}
        return web.json_response(body)

    async def set_faults(self, req: web.Request) -> web.Response:
        return await update_faults(req, self.faults)

    # -- wiring ----------------------------------------------------------------------------
    def data_app(self) -> web.Application:
        app = web.Application(middlewares=[self.conn_limit])
        app.add_routes([web.get("/", self.root), web.get("/bytes/{n}", self.sized),
                        web.get("/health", self.health), web.get("/health/deep", self.health_deep),
                        web.get("/cart", self.cart), web.post("/cart", self.cart)])
        return app

    def control_app(self) -> web.Application:
        app = web.Application()
        app.add_routes([web.get("/stats", self.stats), web.post("/faults", self.set_faults)])
        return app


async def serve_apps(data_app: web.Application, ip: str, port: int,
                     control_app: web.Application, control_socket: str) -> None:
    """Serve a workload's data plane on ip:port and its control plane on a unix socket
    (mode 0600; none when the path is empty), until the process is stopped."""
    data = web.AppRunner(data_app, access_log=None)
    await data.setup()
    await web.TCPSite(data, ip, port, backlog=1024).start()
    control = await serve_control(control_app, control_socket)  # noqa: F841 - kept alive
    await asyncio.Event().wait()  # the runners above live as long as this frame waits


async def serve_control(control_app: web.Application, control_socket: str
                        ) -> web.AppRunner | None:
    """Start a workload's control plane on a unix socket only root can reach (mode 0600);
    nothing when the path is empty. The caller keeps the runner it returns for as long as
    it serves: a runner nothing refers to is collected, and its socket closed with it."""
    if not control_socket:
        return None
    control = web.AppRunner(control_app, access_log=None)
    await control.setup()
    await web.UnixSite(control, control_socket).start()
    os.chmod(control_socket, 0o600)
    return control


def run_config(argv: list[str], config: type, serve_fn, loop=run_loop) -> None:
    """`python -m MODULE CONFIG.json`: build `config` from the JSON file, run serve_fn on
    `loop` (uvloop by default)."""
    with open(argv[1]) as f:
        cfg = config(**json.load(f))
    try:
        loop(serve_fn(cfg))
    except KeyboardInterrupt:
        pass


async def serve(cfg: BackendConfig) -> None:
    backend = Backend(cfg)
    if cfg.redis_url:
        import redis.asyncio as aioredis

        backend.redis = aioredis.from_url(cfg.redis_url)
    await serve_apps(backend.data_app(), cfg.ip, cfg.port, backend.control_app(),
                     cfg.control_socket)


def main(argv: list[str]) -> None:
    run_config(argv, BackendConfig, serve)


if __name__ == "__main__":
    main(sys.argv)
