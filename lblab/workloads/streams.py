"""Long-lived stream clients (gRPC streams, WebSockets) and unary gRPC calls, through an LB.

    python -m lblab.workloads.streams CONFIG.json

`kind` grpc or ws: K stream slots (and `ws_streams` more WebSocket slots beside gRPC ones),
slot k opened at k / open_rate. Each stream is its own
connection (a gRPC channel with a private subchannel pool, or a WebSocket), so an L7 proxy
picks a backend once per stream and the stream stays there. A stream ends when the server
ends it (max connection age), when it breaks (the backend died), or, with `lifetime_s`, when
the client ends it after an exponential lifetime of that mean; the slot then opens a new
stream: at once after its own end, and after a server end or break by the reconnect
policy: `immediate`, or `backoff` (full jitter: a delay drawn from U(0, backoff_s)).
Every stream is one row: slot, generation, when it was opened and established (its first
message, which names the backend), when it ended, how, and on which backend.

`kind` unary: open-loop gRPC unary calls at `rate` per second over one connection (the
proxy balances each call), one row per call with the backend that answered.

Times are seconds on the client's clock: t = 0 is the instant written to `start_file` (the
variant's clock, lblab.timeline) when the schedule starts.
"""

from __future__ import annotations

import asyncio
import csv
import json
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

KINDS = ("grpc", "ws", "unary")
RECONNECTS = ("immediate", "backoff")
STREAM_FIELDS = ["slot", "gen", "kind", "open_s", "established_s", "close_s", "backend",
                 "outcome", "reconnect_delay_s"]
CALL_FIELDS = ["id", "intended_s", "sent_s", "latency_ms", "backend", "outcome"]
FAILED_RETRY_S = 0.05
"""After a stream that never got its first message, wait at least this long (no hot loop
while the proxy has no server to give)."""


@dataclass
class StreamsConfig:
    host: str
    port: int
    kind: str = "grpc"
    streams: int = 60
    open_rate: float = 500.0
    ws_streams: int = 0
    """WebSocket slots beside K gRPC ones (kind grpc), to `ws_port`."""
    ws_port: int = 0
    lifetime_s: float = 0.0
    """Mean of the client's own exponential stream lifetime (0: the client never ends one)."""
    reconnect: str = "immediate"
    backoff_s: float = 0.0
    rate: float = 0.0
    """unary: calls per second."""
    duration_s: float = 10.0
    timeout_s: float = 2.0
    seed: int = 0
    records: str = "streams.csv"
    summary: str = "streams-summary.json"
    start_file: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.reconnect not in RECONNECTS:
            raise ValueError(f"reconnect {self.reconnect!r} is not one of "
                             f"{', '.join(RECONNECTS)}")
        if self.kind == "unary" and self.rate <= 0:
            raise ValueError("unary calls need rate > 0")
        if self.ws_streams and (self.kind != "grpc" or not self.ws_port):
            raise ValueError("ws_streams go beside gRPC streams and need ws_port")


class Streams:
    def __init__(self, cfg: StreamsConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.rows: list[dict] = []
        self.t0 = 0.0

    def now(self) -> float:
        return time.time() - self.t0

    async def at(self, t: float) -> None:
        if (wait := t - self.now()) > 0:
            await asyncio.sleep(wait)

    # -- one stream -----------------------------------------------------------------------
    async def grpc_stream(self, until: float, row: dict) -> str:
        import grpc

        from lblab.workloads.stream_backend import WATCH

        channel = grpc.aio.insecure_channel(f"{self.cfg.host}:{self.cfg.port}",
                                            options=[("grpc.use_local_subchannel_pool", 1)])
        call = channel.unary_stream(WATCH)(b"")
        try:
            async with asyncio.timeout(max(0.0, until - self.now())):
                async for msg in call:
                    if not row["backend"]:
                        row["backend"], row["established_s"] = msg.decode(), self.now()
            return "ended"
        except TimeoutError:
            call.cancel()
            return "client"
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        finally:
            await channel.close()

    async def ws_stream(self, until: float, row: dict) -> str:
        import websockets

        port = self.cfg.ws_port if self.cfg.kind == "grpc" else self.cfg.port
        try:
            async with asyncio.timeout(max(0.0, until - self.now())):
                async with websockets.connect(f"ws://{self.cfg.host}:{port}/",
                                              ping_interval=None,
                                              open_timeout=self.cfg.timeout_s) as conn:
                    async for msg in conn:
                        if not row["backend"]:
                            row["backend"], row["established_s"] = msg, self.now()
                    code = conn.close_code
                    return "ended" if code in (1000, 1001) else f"closed_{code}"
        except TimeoutError:
            return "client"
        except websockets.ConnectionClosedError as exc:
            return f"closed_{exc.rcvd.code if exc.rcvd else 'abnormal'}"
        except (OSError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
            return type(exc).__name__

    async def slot(self, k: int, kind: str) -> None:
        cfg = self.cfg
        end = cfg.duration_s
        await self.at(k / cfg.open_rate)
        gen, delay = 0, 0.0
        while self.now() < end:
            until = end
            if cfg.lifetime_s > 0:
                until = min(end, self.now() + self.rng.expovariate(1 / cfg.lifetime_s))
            row = {"slot": k, "gen": gen, "kind": kind, "open_s": self.now(),
                   "established_s": None, "close_s": None, "backend": "", "outcome": "",
                   "reconnect_delay_s": round(delay, 4)}
            opened = self.grpc_stream if kind == "grpc" else self.ws_stream
            outcome = await opened(until, row)
            row["close_s"] = self.now()
            if outcome == "client" and until >= end:
                outcome = "run_end"
            row["outcome"] = outcome
            self.rows.append(row)
            gen += 1
            delay = 0.0
            if outcome != "client" and cfg.reconnect == "backoff":
                delay = self.rng.uniform(0, cfg.backoff_s)
            if row["established_s"] is None:
                delay = max(delay, FAILED_RETRY_S)
            await asyncio.sleep(delay)

    # -- unary ----------------------------------------------------------------------------
    async def unary(self) -> None:
        import grpc

        from lblab.workloads.stream_backend import CALL

        cfg = self.cfg
        channel = grpc.aio.insecure_channel(f"{cfg.host}:{cfg.port}")
        stub = channel.unary_unary(CALL)

        async def one(i: int, intended: float) -> None:
            await self.at(intended)
            sent = self.now()
            row = {"id": i, "intended_s": intended, "sent_s": sent, "backend": ""}
            try:
                row["backend"] = (await stub(b"", timeout=cfg.timeout_s)).decode()
                row["outcome"] = "ok"
            except grpc.aio.AioRpcError as exc:
                row["outcome"] = exc.code().name
            row["latency_ms"] = (self.now() - sent) * 1000
            self.rows.append(row)

        n = int(cfg.duration_s * cfg.rate)
        await asyncio.gather(*(one(i, i / cfg.rate) for i in range(n)))
        await channel.close()

    async def run(self) -> None:
        self.t0 = time.time()
        if self.cfg.start_file:
            tmp = Path(self.cfg.start_file).with_name(f".{Path(self.cfg.start_file).name}.tmp")
            tmp.write_text(repr(self.t0))
            tmp.replace(self.cfg.start_file)
        if self.cfg.kind == "unary":
            await self.unary()
        else:
            k, w = self.cfg.streams, self.cfg.ws_streams
            await asyncio.gather(*(self.slot(i, self.cfg.kind) for i in range(k)),
                                 *(self.slot(k + j, "ws") for j in range(w)))

    def write(self) -> None:
        fields = CALL_FIELDS if self.cfg.kind == "unary" else STREAM_FIELDS
        rows = sorted(self.rows, key=lambda r: (r.get("open_s", r.get("intended_s")),))
        tmp = Path(self.cfg.records + ".tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            for r in rows:
                writer.writerow({k: round(v, 4) if isinstance(v, float) else
                                 ("" if v is None else v) for k, v in r.items()})
        tmp.replace(self.cfg.records)
        outcomes: dict[str, int] = {}
        for r in self.rows:
            outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
        Path(self.cfg.summary).write_text(json.dumps({"rows": len(self.rows),
                                                      "outcomes": outcomes}))


def main(argv: list[str]) -> None:
    with open(argv[1]) as f:
        cfg = StreamsConfig(**json.load(f))
    client = Streams(cfg)
    try:
        asyncio.run(client.run())  # grpc.aio wants asyncio's own loop, not uvloop
    finally:
        client.write()


# -- in a lab -----------------------------------------------------------------------------
def run_streams(lab: Any, node: str, cfg: StreamsConfig, out_dir: Path, tag: str) -> dict:
    """Run the stream client in `node` to completion, its rows into `TAG.csv` in out_dir;
    returns its summary. Bounded: killed if it outlives its duration by 30 s."""
    from lblab.errors import LabError
    from lblab.workloads.floods import check_target

    check_target(lab, cfg.host, f"stream client target {cfg.host}:{cfg.port}")
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg.records = str(out_dir / f"{tag}.csv")
    cfg.summary = str(lab.file(f"streams-{tag}-summary.json"))
    cfg_path = lab.file(f"streams-{tag}.json")
    cfg_path.write_text(json.dumps(asdict(cfg)))
    proc = lab.spawn(node, [sys.executable, "-m", "lblab.workloads.streams", str(cfg_path)],
                     name=f"streams-{tag}")
    try:
        code = proc.wait(timeout=cfg.duration_s + 30)
    except subprocess.TimeoutExpired:
        raise LabError(f"stream client {tag} in {node} outlived {cfg.duration_s + 30:g} s") \
            from None
    if code != 0 or not Path(cfg.summary).exists():
        raise LabError(f"stream client {tag} in {node} failed (exit {code}); see its log")
    return json.loads(Path(cfg.summary).read_text())



class StreamBackendHandle:
    """A running stream backend (lblab.workloads.stream_backend) and its control socket."""

    def __init__(self, lab: Any, node: str, cfg: Any, proc: Any) -> None:
        from lblab.workloads.handles import BackendHandle

        self.node, self.cfg = node, cfg
        self._control = BackendHandle(lab, node, cfg, proc)

    @property
    def running(self) -> bool:
        return self._control.proc is not None

    def stats(self) -> dict:
        return self._control.stats()

    def set_age(self, mode: str, age_s: float = 0.0, grace_s: float = 0.0,
                jitter: float = 0.0) -> dict:
        return self._control._call("POST", "/age", {"mode": mode, "age_s": age_s,
                                                    "grace_s": grace_s, "jitter": jitter})

    def stop(self) -> None:
        """Kill it now (its open streams break), as a crash would."""
        self._control.stop()


def start_stream_backend(lab: Any, node: str, ip: str, **settings: Any) -> StreamBackendHandle:
    """Start a stream backend in `node` on `ip` and wait until both its ports listen and
    its control socket answers."""
    from lblab.ready import wait_answering
    from lblab.workloads.stream_backend import BackendConfig

    sock = lab.file(f"{node}-streams.sock")
    sock.unlink(missing_ok=True)
    cfg = BackendConfig(name=node, ip=ip, control_socket=str(sock), **settings)
    cfg_path = lab.file(f"{node}-streams.json")
    cfg_path.write_text(json.dumps(asdict(cfg)))
    proc = lab.spawn(node, [sys.executable, "-m", "lblab.workloads.stream_backend",
                            str(cfg_path)], name=f"streams-backend-{node}")
    for port in (cfg.grpc_port, cfg.ws_port):
        lab.wait_listening(node, port, proc=proc)
    wait_answering(sock)
    return StreamBackendHandle(lab, node, cfg, proc)


if __name__ == "__main__":
    main(sys.argv)
