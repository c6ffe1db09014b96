"""stream-pinning's HAProxy: gRPC over HTTP/2 end to end and WebSocket, one backend each,
with standby servers that wait in maintenance for the scale-out (`set server ... state
ready` through the runtime API).

Its own template (haproxy.cfg.j2 beside this file) rather than the shared L7 node's: two
frontends, h2 at the front and `proto h2` to the servers, `http-reuse never` (a client
connection's streams never share a server connection with another client's, so a server's
connection age is its client's). It is driven like lbnodes.l7.L7Node (same runtime API).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

from lblab.errors import UsageError
from lbnodes.l7 import L7Node, Server

TEMPLATE = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent),
                              undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True).get_template("haproxy.cfg.j2")


@dataclass(frozen=True)
class StreamLBConfig:
    name: str
    bind_ip: str
    port: int
    """gRPC (h2c) frontend."""
    ws_port: int
    servers: tuple[Server, ...]
    grpc_port: int
    """The servers' gRPC port."""
    ws_backend_port: int
    standby: tuple[str, ...] = ()
    """Servers that start in maintenance (the scale-out's new backends)."""
    balance: str = "roundrobin"
    retries: int = 3
    check_inter_ms: int = 200
    check_fall: int = 2
    check_rise: int = 1
    idle_timeout_ms: int = 30000
    master_worker: bool = False
    """Always False here: L7Node starts a master-worker HAProxy only when asked."""

    def __post_init__(self) -> None:
        names = [s.name for s in self.servers]
        unknown = [n for n in self.standby if n not in names]
        if unknown or len(set(names)) != len(names):
            raise UsageError(f"stream LB {self.name}: standby {unknown} not among the servers "
                             "or server names repeat")
        if self.balance not in ("roundrobin", "leastconn", "random"):
            raise UsageError(f"stream LB {self.name}: balance {self.balance!r}")


def render(cfg: StreamLBConfig, stats_socket: str) -> str:
    return TEMPLATE.render(cfg=cfg, stats_socket=stats_socket)


class StreamLB(L7Node):
    """HAProxy with stream-pinning's config; `backend` is the gRPC one, `ws_backend` the
    WebSocket one."""

    def __init__(self, lab, cfg: StreamLBConfig) -> None:  # noqa: ANN001 - a lblab Lab
        super().__init__(lab, cfg)  # type: ignore[arg-type]
        self.ws_backend = f"be_{cfg.name}_ws"

    def config_text(self) -> str:
        return render(self.cfg, str(self.socket))

    def listen_ports(self) -> tuple[int, ...]:
        return (self.cfg.port, self.cfg.ws_port)

    def set_servers(self, ready: list[str], maint: list[str]) -> None:
        """Both backends: `ready` servers in service, `maint` ones in maintenance."""
        for backend in (self.backend, self.ws_backend):
            for name in ready:
                self.api.set_state(backend, name, "ready")
            for name in maint:
                self.api.set_state(backend, name, "maint")

    def sessions(self) -> dict[str, int]:
        """HAProxy's current sessions (`scur`) per gRPC server and per WebSocket server."""
        out = {}
        for row in self.api.show_stat():
            if row["svname"] in ("FRONTEND", "BACKEND"):
                continue
            prefix = "ws_" if row["pxname"] == self.ws_backend else ""
            if row["pxname"] in (self.backend, self.ws_backend):
                out[f"{prefix}{row['svname']}"] = int(row["scur"] or 0)
                out[f"{prefix}{row['svname']}_stot"] = int(row["stot"] or 0)
        return out
