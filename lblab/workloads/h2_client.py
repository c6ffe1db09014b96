"""S concurrent streams in rounds: one HTTP/2 connection (mode h2) or S HTTP/1.1 keep-alive
connections (mode h1); per-stream completion times.

    python -m lblab.workloads.h2_client CONFIG.json

Each round sends S GETs at once (h2: S streams on the one connection, cleartext h2 with prior
knowledge; h1: one request on each of the S connections) and waits until every response has
ended; the next round starts after `gap_s`. A stream's completion time is from the round's
start to its last byte. Its `conn_bytes` is how many bytes the connection it came on had
delivered in this round when its last byte arrived: on a shared h2 connection, the bytes of
every stream that came before it; on its own connection, only its own.

Before measuring, the client opens its connections and runs one warm-up round, writes the
file `ready`, and waits for the file `go` (the caller installs the loss in between); t = 0 of
every record is the instant `go` was seen, written to `start_file` for the variant's clock.

Uses the `h2` library on a plain socket (h2 mode) and `h11` (h1 mode), with `selectors`:
the point is which bytes share a TCP connection, which a pooling client would hide.
"""

from __future__ import annotations

import csv
import json
import select
import selectors
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h11

from lblab.errors import LabError
from lblab.ready import wait_until
from lblab.results import atomic_write

FIELDS = ["round", "stream", "t_s", "completion_ms", "conn_bytes", "body_bytes", "status"]
SLOW_FIELDS = ["kind", "stream", "sent_s", "done_s", "completion_ms", "status"]
MODES = ("h2", "h1", "slow-h2", "slow-h1")

@dataclass
class StreamsConfig:
    host: str
    port: int = 80
    mode: str = "h2"
    """h2: one connection, S streams; h1: S connections, one request each per round."""
    streams: int = 16
    rounds: int = 50
    path: str = "/"
    gap_s: float = 0.02
    timeout_s: float = 10.0
    """A round that has not ended by then fails the run (bounded)."""
    records: str = "streams.csv"
    summary: str = "streams-summary.json"
    ready: str = "ready"
    go: str = "go"
    start_file: str = ""
    go_timeout_s: float = 30.0
    # -- mode slow-h2 / slow-h1: one slow upload, and siblings beside it ----------------
    upload_bytes: int = 0
    """The slow stream: a POST of this many bytes to `upload_path`."""
    upload_path: str = "/upload"
    upload_headers: dict = field(default_factory=dict)
    siblings: int = 0
    """GETs of `path` sent one every `sibling_every_s` from `sibling_start_s` on."""
    sibling_every_s: float = 0.1
    sibling_start_s: float = 0.3

class StreamsFailed(Exception):
    pass

def _wait_file(path: str, timeout: float) -> None:
    """The driver's go signal: polled finely, because every client starts its rounds on it."""
    try:
        wait_until(Path(path).exists, timeout=timeout, what=str(path), interval=0.002)
    except LabError as exc:
        raise StreamsFailed(str(exc)) from None

class H2Streams:
    """One HTTP/2 connection; a round is S concurrent streams on it."""

    def __init__(self, cfg: StreamsConfig) -> None:
        self.cfg = cfg
        self.sock = socket.create_connection((cfg.host, cfg.port), timeout=cfg.timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        # Open the connection's window wide, so only the per-stream windows (64 KiB) bound
        # what is in flight; every stream's response is far below that.
        self.conn.increment_flow_control_window(2 ** 30)
        self.sock.sendall(self.conn.data_to_send())

    def round(self, number: int, t0: float) -> list[dict]:
        cfg = self.cfg
        started = time.monotonic()
        wall = time.time()
        ids = []
        for _ in range(cfg.streams):
            sid = self.conn.get_next_available_stream_id()
            self.conn.send_headers(sid, [(":method", "GET"), (":path", cfg.path),
                                         (":scheme", "http"),
                                         (":authority", f"{cfg.host}:{cfg.port}")],
                                   end_stream=True)
            ids.append(sid)
        self.sock.sendall(self.conn.data_to_send())
        index = {sid: k for k, sid in enumerate(ids)}
        status: dict[int, int] = {}
        body: dict[int, int] = dict.fromkeys(ids, 0)
        rows: dict[int, dict] = {}
        delivered = 0
        deadline = started + cfg.timeout_s
        while len(rows) < len(ids):
            self.sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise StreamsFailed(f"h2 round {number}: {len(ids) - len(rows)} streams "
                                    f"unfinished after {cfg.timeout_s:g} s") from None
            if not data:
                raise StreamsFailed(f"h2 round {number}: the connection closed")
            now = time.monotonic()
            for event in self.conn.receive_data(data):
                # Every byte of this read arrived at `now`: the offset of the read's end
                # is the bytes the connection delivered up to the stream's last byte.
                offset = delivered + len(data)
                if isinstance(event, h2.events.ResponseReceived):
                    status[event.stream_id] = int(dict(event.headers).get(":status", 0))
                elif isinstance(event, h2.events.DataReceived):
                    body[event.stream_id] = body.get(event.stream_id, 0) + len(event.data)
                    self.conn.acknowledge_received_data(event.flow_controlled_length,
                                                        event.stream_id)
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id in index:
                    sid = event.stream_id
                    rows[sid] = _row(number, index[sid], wall - t0, now - started, offset,
                                     body[sid], status.get(sid, 0))
                elif isinstance(event, h2.events.StreamReset) and event.stream_id in index:
                    raise StreamsFailed(f"h2 round {number}: stream {event.stream_id} reset "
                                        f"({event.error_code})")
                elif isinstance(event, h2.events.ConnectionTerminated):
                    raise StreamsFailed(f"h2 round {number}: GOAWAY ({event.error_code})")
            delivered += len(data)
            pending = self.conn.data_to_send()
            if pending:
                self.sock.sendall(pending)
        return [rows[sid] for sid in ids]

    def close(self) -> None:
        self.sock.close()

class H1Streams:
    """S HTTP/1.1 keep-alive connections; a round is one request on each."""

    def __init__(self, cfg: StreamsConfig) -> None:
        self.cfg = cfg
        self.socks = []
        for _ in range(cfg.streams):
            s = socket.create_connection((cfg.host, cfg.port), timeout=cfg.timeout_s)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            self.socks.append(s)
        self.sel = selectors.DefaultSelector()
        for k, s in enumerate(self.socks):
            self.sel.register(s, selectors.EVENT_READ, k)

    def round(self, number: int, t0: float) -> list[dict]:
        cfg = self.cfg
        parsers = [h11.Connection(h11.CLIENT) for _ in self.socks]
        started = time.monotonic()
        wall = time.time()
        for s, p in zip(self.socks, parsers, strict=True):
            data = p.send(h11.Request(method="GET", target=cfg.path,
                                      headers=[("Host", f"{cfg.host}:{cfg.port}")]))
            data += p.send(h11.EndOfMessage())
            s.sendall(data)
        status = [0] * len(self.socks)
        body = [0] * len(self.socks)
        delivered = [0] * len(self.socks)
        rows: dict[int, dict] = {}
        deadline = started + cfg.timeout_s
        while len(rows) < len(self.socks):
            ready = self.sel.select(timeout=max(0.001, deadline - time.monotonic()))
            if not ready and time.monotonic() >= deadline:
                raise StreamsFailed(f"h1 round {number}: {len(self.socks) - len(rows)} "
                                    f"responses unfinished after {cfg.timeout_s:g} s")
            now = time.monotonic()
            for key, _ in ready:
                k = key.data
                data = self.socks[k].recv(65536)
                if not data:
                    raise StreamsFailed(f"h1 round {number}: connection {k} closed")
                delivered[k] += len(data)
                p = parsers[k]
                p.receive_data(data)
                while (event := p.next_event()) is not h11.NEED_DATA:
                    if isinstance(event, h11.Response):
                        status[k] = event.status_code
                    elif isinstance(event, h11.Data):
                        body[k] += len(event.data)
                    elif isinstance(event, h11.EndOfMessage):
                        rows[k] = _row(number, k, wall - t0, now - started, delivered[k],
                                       body[k], status[k])
                        break
                    elif event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                        break
        return [rows[k] for k in range(len(self.socks))]

    def close(self) -> None:
        for s in self.socks:
            s.close()

def _headers(cfg: StreamsConfig, method: str, path: str, extra: dict) -> list:
    return [(":method", method), (":path", path), (":scheme", "http"),
            (":authority", f"{cfg.host}:{cfg.port}"),
            *((k.lower(), str(v)) for k, v in extra.items())]


def slow_h2(cfg: StreamsConfig, t0: float) -> list[dict]:
    """One connection: stream 1 uploads `upload_bytes` as flow control allows; siblings are
    sent on schedule on the same connection. Non-blocking, so a sibling's HEADERS never wait
    in this client behind more than the upload's flow-control window (65,535 bytes)."""
    sock = socket.create_connection((cfg.host, cfg.port), timeout=cfg.timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    conn.increment_flow_control_window(2 ** 30)
    sock.setblocking(False)
    out = bytearray(conn.data_to_send())
    up = conn.get_next_available_stream_id()
    conn.send_headers(up, _headers(cfg, "POST", cfg.upload_path,
                                   {"content-length": cfg.upload_bytes,
                                    **cfg.upload_headers}))
    rows = {up: {"kind": "upload", "stream": 0, "sent_s": round(time.time() - t0, 4)}}
    left = cfg.upload_bytes
    chunk = b"x" * 16384
    due = [t0 + cfg.sibling_start_s + k * cfg.sibling_every_s for k in range(cfg.siblings)]
    done: set[int] = set()
    deadline = time.monotonic() + cfg.timeout_s
    while len(done) < len(rows) or due:
        if time.monotonic() > deadline:
            raise StreamsFailed(f"slow-h2: {len(rows) - len(done)} streams unfinished after "
                                f"{cfg.timeout_s:g} s")
        now = time.time()
        while due and due[0] <= now:
            due.pop(0)
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, _headers(cfg, "GET", cfg.path, {}), end_stream=True)
            rows[sid] = {"kind": "sibling", "stream": len(rows), "sent_s": round(now - t0, 4)}
        while left and len(out) < 16384:
            room = min(left, conn.local_flow_control_window(up), conn.max_outbound_frame_size)
            if room <= 0:
                break
            left -= room
            conn.send_data(up, chunk[:room] if room <= len(chunk) else b"x" * room,
                           end_stream=not left)
            out += conn.data_to_send()
        out += conn.data_to_send()
        wait = max(0.0005, min((due[0] - time.time()) if due else 0.05, 0.05))
        ready_r, ready_w, _ = select.select([sock], [sock] if out else [], [], wait)
        if ready_w and out:
            try:
                del out[:sock.send(out)]
            except BlockingIOError:
                pass
        if not ready_r:
            continue
        data = sock.recv(65536)
        if not data:
            raise StreamsFailed("slow-h2: the connection closed")
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                rows[event.stream_id]["status"] = int(dict(event.headers).get(":status", 0))
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                row = rows[event.stream_id]
                row["done_s"] = round(time.time() - t0, 4)
                row["completion_ms"] = round((row["done_s"] - row["sent_s"]) * 1000, 3)
                done.add(event.stream_id)
            elif isinstance(event, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                raise StreamsFailed(f"slow-h2: {type(event).__name__} "
                                    f"({getattr(event, 'error_code', '')})")
    sock.close()
    return list(rows.values())


def _h1_request(cfg: StreamsConfig, method: str, path: str, body: int, headers: dict,
                row: dict, t0: float) -> None:
    with socket.create_connection((cfg.host, cfg.port), timeout=cfg.timeout_s) as s:
        p = h11.Connection(h11.CLIENT)
        hdrs = [("Host", f"{cfg.host}:{cfg.port}"), *((k, str(v)) for k, v in headers.items())]
        if body:
            hdrs.append(("Content-Length", str(body)))
        s.sendall(p.send(h11.Request(method=method, target=path, headers=hdrs)))
        chunk = b"x" * 65536
        for at in range(0, body, len(chunk)):
            s.sendall(p.send(h11.Data(data=chunk[:min(len(chunk), body - at)])))
        s.sendall(p.send(h11.EndOfMessage()))
        while True:
            event = p.next_event()
            if event is h11.NEED_DATA:
                data = s.recv(65536)
                if not data:
                    raise StreamsFailed(f"slow-h1: {path}: closed before the answer ended")
                p.receive_data(data)
            elif isinstance(event, h11.Response):
                row["status"] = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                break
    row["done_s"] = round(time.time() - t0, 4)
    row["completion_ms"] = round((row["done_s"] - row["sent_s"]) * 1000, 3)


def slow_h1(cfg: StreamsConfig, t0: float) -> list[dict]:
    """The same on HTTP/1.1: the upload on its own connection, each sibling on its own."""
    rows: list[dict] = []
    errors: list[str] = []

    def run_one(method: str, path: str, body: int, headers: dict, row: dict) -> None:
        try:
            _h1_request(cfg, method, path, body, headers, row, t0)
        except (OSError, StreamsFailed, h11.ProtocolError) as exc:
            errors.append(f"{row['kind']} {row['stream']}: {exc}")

    threads = []
    for k in range(cfg.siblings + 1):
        if k:
            at = t0 + cfg.sibling_start_s + (k - 1) * cfg.sibling_every_s
            time.sleep(max(0.0, at - time.time()))  # the siblings' schedule
        row = {"kind": "sibling" if k else "upload", "stream": k,
               "sent_s": round(time.time() - t0, 4)}
        rows.append(row)
        args = (("GET", cfg.path, 0, {}) if k else
                ("POST", cfg.upload_path, cfg.upload_bytes, cfg.upload_headers))
        thread = threading.Thread(target=run_one, args=(*args, row), daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(cfg.timeout_s)
    if errors or any(t.is_alive() for t in threads):
        raise StreamsFailed(f"slow-h1: {errors[0] if errors else 'a request did not end'}")
    return rows


def _row(number: int, stream: int, t_s: float, seconds: float, conn_bytes: int,
         body_bytes: int, status: int) -> dict:
    return {"round": number, "stream": stream, "t_s": round(t_s, 4),
            "completion_ms": round(seconds * 1000, 3), "conn_bytes": conn_bytes,
            "body_bytes": body_bytes, "status": status}

def run_slow(cfg: StreamsConfig) -> dict:
    t0 = time.time()
    if cfg.start_file:
        atomic_write(Path(cfg.start_file), repr(t0))
    rows = (slow_h2 if cfg.mode == "slow-h2" else slow_h1)(cfg, t0)
    with open(cfg.records, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SLOW_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    summary = {"mode": cfg.mode, "origin_wall": t0, "records": len(rows)}
    atomic_write(Path(cfg.summary), json.dumps(summary))
    return summary


def run(cfg: StreamsConfig) -> dict:
    if cfg.mode not in MODES:
        raise StreamsFailed(f"mode {cfg.mode!r} is not one of {', '.join(MODES)}")
    if cfg.mode.startswith("slow-"):
        return run_slow(cfg)
    client = H2Streams(cfg) if cfg.mode == "h2" else H1Streams(cfg)
    try:
        client.round(-1, time.time())  # warm-up: connections and backend pools are open
        atomic_write(Path(cfg.ready), repr(time.time()))
        _wait_file(cfg.go, cfg.go_timeout_s)
        t0 = time.time()
        if cfg.start_file:
            atomic_write(Path(cfg.start_file), repr(t0))
        rows: list[dict] = []
        for number in range(cfg.rounds):
            rows += client.round(number, t0)
            if cfg.gap_s:
                time.sleep(cfg.gap_s)  # the schedule's spacing between rounds, not a wait
        ended = time.time()
    finally:
        client.close()
    with open(cfg.records, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    summary = {"mode": cfg.mode, "streams": cfg.streams, "rounds": cfg.rounds,
               "origin_wall": t0, "duration_s": round(ended - t0, 3), "records": len(rows)}
    atomic_write(Path(cfg.summary), json.dumps(summary))
    return summary

def main(argv: list[str]) -> None:
    with open(argv[1]) as f:
        cfg = StreamsConfig(**json.load(f))
    try:
        run(cfg)
    except StreamsFailed as exc:
        print(f"h2_client: {exc}", file=sys.stderr)
        sys.exit(1)

if __name__ == "__main__":
    main(sys.argv)
