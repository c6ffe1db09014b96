"""health-truthiness's backend: an app whose route needs real Redis dependencies, with the
three kinds of health endpoint the experiment compares, and an agent for HAProxy.

    python -m experiments.health_truthiness.app CONFIG.json

Data plane (on the backend's lab address):
  GET /cart     needs both dependencies: its own Redis (INCR of a cart counter) and the
                fleet's shared Redis (GET of the inventory), each within `dep_deadline_ms`;
                500 on an injected app error (`cart_error_rate`), 503 when a dependency
                fails (the body says which)
  GET /static   needs nothing: 200
  GET /healthz  shallow: 200 while the process runs
  GET /ready    deep: 200 when both dependencies answer PING within the deadline and the
                recent error rate of /cart (every 5xx of the last `error_window_s`, at least
                `error_min` requests) is below `error_threshold`; else 503 naming why
Agent port (HAProxy `agent-check`): one line per connection, from several signals, with
dependency-aware gating: the shared dependency's failure is the same on every backend, so
it lowers the weight (`up 50%`) instead of ejecting (the fleet keeps serving what does not
need it: fail-open, as AWS ALB does when every target is unhealthy); the own dependency
failing, or an error rate (not counting errors the shared dependency caused) at or above
the threshold, is `down`; otherwise `up 100%`.
Control plane (unix socket, mode 0600): GET /stats, POST /faults with
  {"cart_error_rate", "check_slow_p", "check_slow_ms"}: /cart answers 500 with probability
  cart_error_rate (1: the gray failure, p: intermittent errors); each health answer
  (/healthz, /ready, agent) is delayed check_slow_ms with probability check_slow_p.
Every health request is counted per kind and per peer address (each LB node has its own),
so checks are counted at the backend, not from the proxy's bookkeeping.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, fields

from aiohttp import web

from lblab.workloads.backend import run_config, serve_apps, update_faults

SHARED_KEY = "inventory"
LOCAL, SHARED = "local", "shared"


@dataclass
class Faults:
    cart_error_rate: float = 0.0
    check_slow_p: float = 0.0
    check_slow_ms: float = 0.0

    def update(self, changes: dict) -> None:
        known = {f.name for f in fields(self)}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown fault knob {key!r}; known: {', '.join(known)}")
            setattr(self, key, float(value))


@dataclass
class AppConfig:
    name: str
    ip: str
    port: int = 8080
    agent_port: int = 8081
    control_socket: str = ""
    local_redis: str = ""
    shared_redis: str = ""
    dep_deadline_ms: float = 100.0
    error_window_s: float = 1.0
    error_threshold: float = 0.2
    error_min: int = 5
    seed: int = 0


@dataclass
class Verdict:
    """What the backend's signals say right now."""

    local_ok: bool
    shared_ok: bool
    error_rate: float | None
    """5xx share of /cart over the window (None: fewer than error_min requests)."""
    own_error_rate: float | None
    """The same, not counting the errors the shared dependency caused."""


def ready_reply(v: Verdict, threshold: float) -> tuple[int, str]:
    """The deep check's answer: any failing signal fails it."""
    why = [name for name, bad in (
        ("local dependency", not v.local_ok), ("shared dependency", not v.shared_ok),
        ("error rate", v.error_rate is not None and v.error_rate >= threshold)) if bad]
    return (503, "not ready: " + ", ".join(why) + "\n") if why else (200, "ready\n")


def agent_reply(v: Verdict, threshold: float) -> str:
    """The agent's line, with dependency-aware gating (see the module docstring)."""
    if not v.local_ok or (v.own_error_rate is not None and v.own_error_rate >= threshold):
        return "down\n"
    if not v.shared_ok:
        return "up 50%\n"
    return "up 100%\n"


class ErrorWindow:
    """(time, failed, caused by the shared dependency) of the last `seconds` of /cart."""

    def __init__(self, seconds: float, minimum: int) -> None:
        self.seconds, self.minimum = seconds, minimum
        self.rows: deque[tuple[float, bool, bool]] = deque()

    def add(self, now: float, failed: bool, shared: bool = False) -> None:
        self.rows.append((now, failed, shared))

    def rates(self, now: float) -> tuple[float | None, float | None]:
        while self.rows and self.rows[0][0] < now - self.seconds:
            self.rows.popleft()
        n = len(self.rows)
        if n < self.minimum:
            return None, None
        failed = sum(1 for _, f, _ in self.rows if f)
        own = sum(1 for _, f, s in self.rows if f and not s)
        return failed / n, own / n


class App:
    def __init__(self, cfg: AppConfig) -> None:
        self.cfg = cfg
        self.faults = Faults()
        self.rng = random.Random(cfg.seed)
        self.window = ErrorWindow(cfg.error_window_s, cfg.error_min)
        self.counts: dict[str, int] = {}
        self.checks: dict[str, dict[str, int]] = {}
        """kind (healthz, ready, agent) -> peer -> count."""
        self.replies: dict[str, int] = {}
        self.deps = {}
        self.started = time.time()

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def _reply(self, route: str, status: int, body: str) -> web.Response:
        self._count(f"{route}:{status}")
        return web.Response(status=status, text=body, headers={"X-Backend": self.cfg.name})

    async def _dep(self, which: str, op: str, *args: str) -> bool:
        client = self.deps.get(which)
        if client is None:
            return False
        try:
            await asyncio.wait_for(getattr(client, op)(*args),
                                   self.cfg.dep_deadline_ms / 1000)
        except Exception:  # noqa: BLE001 - any failure of the dependency is a failure
            self._count(f"dep:{which}:fail")
            return False
        return True

    async def verdict(self) -> Verdict:
        local, shared = await asyncio.gather(self._dep(LOCAL, "ping"),
                                             self._dep(SHARED, "ping"))
        rate, own = self.window.rates(time.monotonic())
        return Verdict(local, shared, rate, own)

    async def _check(self, kind: str, peer: str) -> None:
        per = self.checks.setdefault(kind, {})
        per[peer] = per.get(peer, 0) + 1
        if self.faults.check_slow_p and self.rng.random() < self.faults.check_slow_p:
            self._count(f"{kind}:slowed")
            await asyncio.sleep(self.faults.check_slow_ms / 1000)

    # -- data plane ------------------------------------------------------------------------
    async def cart(self, _req: web.Request) -> web.Response:
        now = time.monotonic()
        if self.faults.cart_error_rate and self.rng.random() < self.faults.cart_error_rate:
            self.window.add(now, True)
            return self._reply("cart", 500, "app error\n")
        if not await self._dep(LOCAL, "incr", f"cart:{self.cfg.name}"):
            self.window.add(now, True)
            return self._reply("cart", 503, "local dependency failed\n")
        if not await self._dep(SHARED, "get", SHARED_KEY):
            self.window.add(now, True, shared=True)
            return self._reply("cart", 503, "shared dependency failed\n")
        self.window.add(now, False)
        return self._reply("cart", 200, "cart ok\n")

    async def static(self, _req: web.Request) -> web.Response:
        return self._reply("static", 200, "static\n")

    async def healthz(self, req: web.Request) -> web.Response:
        await self._check("healthz", req.remote or "")
        return self._reply("healthz", 200, "ok\n")

    async def ready(self, req: web.Request) -> web.Response:
        await self._check("ready", req.remote or "")
        status, body = ready_reply(await self.verdict(), self.cfg.error_threshold)
        return self._reply("ready", status, body)

    async def agent(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = (writer.get_extra_info("peername") or ("",))[0]
        try:
            await self._check("agent", peer)
            line = agent_reply(await self.verdict(), self.cfg.error_threshold)
            self.replies[line.strip()] = self.replies.get(line.strip(), 0) + 1
            writer.write(line.encode())
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    # -- control plane ---------------------------------------------------------------------
    async def stats(self, _req: web.Request) -> web.Response:
        return web.json_response({
            "name": self.cfg.name, "uptime_s": time.time() - self.started,
            "counts": self.counts, "checks": self.checks, "agent_replies": self.replies,
            "faults": asdict(self.faults)})

    async def set_faults(self, req: web.Request) -> web.Response:
        return await update_faults(req, self.faults)

    def data_app(self) -> web.Application:
        app = web.Application()
        app.add_routes([web.get("/cart", self.cart), web.get("/static", self.static),
                        web.get("/healthz", self.healthz), web.get("/ready", self.ready)])
        return app

    def control_app(self) -> web.Application:
        app = web.Application()
        app.add_routes([web.get("/stats", self.stats), web.post("/faults", self.set_faults)])
        return app


async def serve(cfg: AppConfig) -> None:
    import redis.asyncio as aioredis

    app = App(cfg)
    deadline = cfg.dep_deadline_ms / 1000
    for which, url in ((LOCAL, cfg.local_redis), (SHARED, cfg.shared_redis)):
        if url:
            app.deps[which] = aioredis.from_url(url, socket_timeout=deadline,
                                                socket_connect_timeout=deadline)
    await asyncio.start_server(app.agent, cfg.ip, cfg.agent_port)
    await serve_apps(app.data_app(), cfg.ip, cfg.port, app.control_app(), cfg.control_socket)


if __name__ == "__main__":
    run_config(sys.argv, AppConfig, serve)
