"""metrics-blind-spots' lab side: what each LB node shows an operator, read as they would.

- The L4 node (lbnodes/l4.py, nftables DNAT + conntrack) gets a second, read-only table,
  `mbs_view`, whose counters are what an L4 dashboard has: SYNs from clients, SYN-ACKs
  from backends, resets, bytes each way. It sees connections and bytes, never a status.
- HAProxy logs one line per request (mode http) or per connection (mode tcp) to a unix
  datagram socket that `LogCollector` reads, with its timers (Tq Tw Tc Tr Ta, or Tw Tc Tt),
  the status, the bytes and the termination state.
- HAProxy's stats socket (`show stat`) and its built-in Prometheus exporter (a unix socket,
  GET /metrics) are sampled for the averages an operator graphs.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

from lblab.workloads.handles import _UnixHTTP

HTTP_LOG_FORMAT = "%Ts.%ms %ST %Tq %Tw %Tc %Tr %Ta %B %ts %ci:%cp"
TCP_LOG_FORMAT = "%Ts.%ms %Tw %Tc %Tt %B %ts %ci:%cp"
"""Accept time (epoch s.ms), timers (ms), bytes to the client, termination state, client."""
HTTP_LOG_FIELDS = ("accept_wall", "status", "tq_ms", "tw_ms", "tc_ms", "tr_ms", "ta_ms",
                   "bytes", "term", "client")
TCP_LOG_FIELDS = ("accept_wall", "tw_ms", "tc_ms", "tt_ms", "bytes", "term", "client")

VIEW_TABLE = "mbs_view"
VIEW_COUNTERS = ("syn", "synack", "rst_from_backend", "rst_from_client", "bytes_to_client",
                 "bytes_to_backend")


def view_ruleset(client_ifname: str) -> str:
    """The L4 node's read-only counters, after its own forward chain (priority filter + 10):
    every packet counted here was forwarded. `client_ifname` is its front interface."""
    return f"""table ip {VIEW_TABLE}
delete table ip {VIEW_TABLE}
table ip {VIEW_TABLE} {{
	counter syn {{ }}
	counter synack {{ }}
	counter rst_from_backend {{ }}
	counter rst_from_client {{ }}
	counter bytes_to_client {{ }}
	counter bytes_to_backend {{ }}
	chain forward {{
		type filter hook forward priority filter + 10; policy accept;
		tcp flags & (syn | ack) == syn counter name "syn"
		tcp flags & (syn | ack) == syn | ack counter name "synack"
		oifname "{client_ifname}" tcp flags & rst == rst counter name "rst_from_backend"
		iifname "{client_ifname}" tcp flags & rst == rst counter name "rst_from_client"
		oifname "{client_ifname}" counter name "bytes_to_client"
		iifname "{client_ifname}" counter name "bytes_to_backend"
	}}
}}
"""


def install_view(lab: Any, node: str) -> None:
    path = lab.file(f"{node}-{VIEW_TABLE}.nft")
    path.write_text(view_ruleset(f"{node}-eth0"))
    lab.run(node, ["nft", "-f", str(path)])
    lab.on_teardown(lambda: lab.run(node, ["nft", "delete", "table", "ip", VIEW_TABLE],
                                    check=False))


def read_view(lab: Any, node: str) -> dict[str, int]:
    """{"syn_packets": ..., "bytes_to_client_bytes": ...}: packets and bytes per counter."""
    out = lab.run(node, ["nft", "-j", "list", "counters", "table", "ip", VIEW_TABLE])
    row: dict[str, int] = {}
    for item in json.loads(out)["nftables"]:
        c = item.get("counter")
        if c and c["name"] in VIEW_COUNTERS:
            row[f"{c['name']}_packets"] = c["packets"]
            row[f"{c['name']}_bytes"] = c["bytes"]
    return row


class LogCollector:
    """A unix datagram socket HAProxy logs to; lines are kept with their arrival time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.unlink(missing_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"log-{path.name}",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._lines.append(data.decode(errors="replace").strip())

    def take(self) -> list[str]:
        """The lines received since the last take."""
        with self._lock:
            lines, self._lines = self._lines, []
        return lines

    def drain(self, quiet_s: float = 0.3, timeout: float = 5.0) -> list[str]:
        """Wait until no line has arrived for `quiet_s` (HAProxy logs a request as it ends),
        then take."""
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline:
            with self._lock:
                count = len(self._lines)
            if count == seen:
                break
            seen = count
            self._stop.wait(quiet_s)
        return self.take()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()
        self.path.unlink(missing_ok=True)


def parse_log(lines: list[str], fields: tuple[str, ...], origin_wall: float) -> list[dict]:
    """Log lines -> rows; `t` is the accept time on the variant's clock. Lines that are not
    one of ours (HAProxy's own notices) are skipped."""
    rows = []
    for line in lines:
        parts = line.split()
        if len(parts) != len(fields):
            continue
        row: dict[str, Any] = dict(zip(fields, parts, strict=True))
        try:
            wall = float(row["accept_wall"])
            for key in fields:
                if key.endswith("_ms") or key in ("status", "bytes"):
                    row[key] = int(row[key])
        except ValueError:
            continue
        row["t"] = round(wall - origin_wall, 3)
        del row["accept_wall"]
        rows.append(row)
    return rows


PROM_KEEP = ("haproxy_backend_response_time_average_seconds",
             "haproxy_backend_total_time_average_seconds",
             "haproxy_backend_max_response_time_seconds",
             "haproxy_backend_http_responses_total")


def scrape_prometheus(path: Path, backend: str) -> dict[str, float]:
    """GET /metrics from HAProxy's exporter: the backend's averages, maxima and responses
    by code, as {"response_time_average_seconds": ..., "http_responses_total_5xx": ...}."""
    conn = _UnixHTTP(str(path))
    try:
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
    finally:
        conn.close()
    out: dict[str, float] = {}
    for line in body.splitlines():
        if not line.startswith(PROM_KEEP) or f'proxy="{backend}"' not in line:
            continue
        name_labels, value = line.rsplit(" ", 1)
        name = name_labels.split("{", 1)[0].removeprefix("haproxy_backend_")
        if 'code="' in name_labels:
            name += "_" + name_labels.split('code="', 1)[1].split('"', 1)[0]
        out[name] = float(value)
    return out
