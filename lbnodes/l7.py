"""The L7 node: HAProxy in a lab host, configured from a typed config and driven through
its runtime API (the stats socket), as an operator would.

The stats socket lives in the lab's folder with mode 0600, so it is reachable from the
controlling process without any network listener, and it disappears with the lab's folder
(also after a crash: `lblab clean` removes that folder).
"""

from __future__ import annotations

import csv
import io
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lblab.errors import LabError, UsageError
from lblab.ready import wait_answering, wait_until
from lbnodes.common import TEMPLATES, Backend

BALANCES = ("roundrobin", "static-rr", "leastconn", "first", "source", "random", "random(2)",
            "uri", "hdr(host)")
ON_ERRORS = ("", "fastinter", "fail-check", "sudden-death", "mark-down")
HTTP_BALANCES = ("uri", "hdr(host)")
MODES = ("http", "tcp")


@dataclass(frozen=True)
class Server(Backend):
    """A backend as HAProxy's `server` line sees it (HAProxy calls a backend a server)."""

    backup: bool = False
    """Used only while every non-backup server is down (e.g. another zone's servers)."""
    maxconn: int = 0
    """At most this many requests at the server at once (0: no limit); the rest wait in
    the backend's queue, which `max_queued` and `timeout queue` bound."""


@dataclass(frozen=True)
class L7Config:
    name: str
    bind_ip: str
    port: int
    servers: tuple[Server, ...]
    balance: str = "roundrobin"
    hash_type: str = ""
    """'consistent' or 'map-based' for hashed balances."""
    hash_balance_factor: int = 0
    """Bounded-load consistent hashing: no server above factor/100 x the average (>100)."""
    cookie: bool = False
    check: bool = False
    check_path: str = "/health"
    check_inter_ms: int = 500
    check_fall: int = 2
    check_rise: int = 2
    check_http: bool = True
    """With `check`: False makes the check a plain TCP connect (port open, L4) instead of
    `option httpchk GET check_path`."""
    check_fastinter_ms: int = 0
    """Interval between checks while a server is going down or up (0: `inter`)."""
    check_downinter_ms: int = 0
    """Interval between checks while a server is down (0: `inter`)."""
    agent_port: int = 0
    """With `check`: also `agent-check agent-port N`: the server's agent replies a line
    (up, down, drain, ready, maint, NN%) that sets its state or weight (0: no agent)."""
    agent_inter_ms: int = 0
    """Interval between agent checks (0: `inter`)."""
    observe_layer7: bool = False
    """Passive checks: HAProxy watches the responses of real traffic (`observe layer7`:
    500 and 502-504 are errors) and acts on `error_limit` consecutive ones."""
    error_limit: int = 0
    """Consecutive errors seen by `observe layer7` that trigger `on_error` (0: HAProxy's 10)."""
    on_error: str = ""
    """What `error_limit` errors do: fastinter, fail-check, sudden-death or mark-down
    (empty: HAProxy's fail-check)."""
    retries: int = 0
    retry_on: str = ""
    redispatch: bool = False
    keepalive_to_servers: bool = True
    maxconn: int = 4096
    timeout_connect_ms: int = 1000
    timeout_client_ms: int = 30000
    timeout_server_ms: int = 30000
    timeout_queue_ms: int = 0
    """How long a request may wait in HAProxy's queue before a 503 (0: HAProxy's default,
    the connect timeout)."""
    timeout_check_ms: int = 0
    """A health check's read timeout; its connect timeout is min(connect, inter) (0: unset,
    `inter` is the whole check's timeout)."""
    allbackups: bool = False
    """When the backups take over, use all of them rather than the first."""
    max_queued: int = 0
    """Admission control: refuse a request at once (503) when this many already wait in the
    backend's queue for a server under its maxconn (0: no bound but `timeout queue`)."""
    mode: str = "http"
    """`http` (a full proxy that sees requests) or `tcp` (it relays connections' bytes)."""
    log_socket: str = ""
    """A unix datagram socket to send one log line per request (http) or connection (tcp)
    to, with its timers (empty: no logging)."""
    log_format: str = ""
    """HAProxy's log-format for those lines (empty: `option httplog` / `option tcplog`)."""
    prometheus_socket: str = ""
    """A unix socket on which HAProxy's built-in Prometheus exporter answers GET /metrics
    (empty: none)."""
    tls_crt_list: str = ""
    """Terminate TLS on the bind: `ssl crt-list FILE` (one certificate per line, the first
    the default for clients without a matching SNI). "": plain HTTP."""
    tls_strict_sni: bool = False
    """Refuse a handshake whose SNI matches no certificate (`strict-sni`)."""
    server_tls_ca_file: str = ""
    """TLS to the servers, verified against this CA bundle (`ssl verify required ca-file`);
    health checks use TLS too. "": plain HTTP to the servers."""
    server_tls_crt: str = ""
    """The client certificate (PEM with key) shown to servers that require one (mTLS)."""
    server_tls_sni: str = ""
    """The name sent as SNI to the servers, by traffic (`sni str(...)`) and checks."""
    server_tls_reuse: bool = True
    """False: a full handshake for every server connection (`no-ssl-reuse`), so each one
    verifies the server's certificate instead of resuming an earlier session."""
    master_worker: bool = False
    """Run as a master process with workers (`master-worker`), so `L7Node.reload` hands the
    listeners to a new worker without closing them."""
    accept_invalid_http_request: bool = False
    """Lenient parsing (`option accept-invalid-http-request`): invalid characters in header
    names and the URI, an invalid version and a bad Host pass instead of a 400."""
    restrict_req_hdr_names: str = ""
    """`option http-restrict-req-hdr-names`: preserve, delete or reject request header names
    with characters other than letters, digits and '-' (empty: HAProxy's default)."""
    h1_case_adjust: tuple[str, ...] = ()
    """Header names sent to the servers with exactly this case (HAProxy lowercases names on
    output): global `h1-case-adjust` per name and `option h1-case-adjust-bogus-server`."""
    set_request_headers: tuple[tuple[str, str], ...] = ()
    """(name, value) set on every request forwarded (`http-request set-header`; the value
    may be a log-format, e.g. %[src]:%[src_port])."""
    stick_on: str = ""
    """Persistence in a stick table: `src` (the client's address) or `cookie:NAME` (the
    session cookie NAME the servers set: stored from each response, matched on requests).
    "": none."""
    peers: tuple[tuple[str, str, int], ...] = ()
    """(name, ip, port) of every HAProxy sharing the stick table, this node (`name`)
    included: a `peers` section that replicates its entries to the others. (): local only."""
    h2_port: int = 0
    """A second bind on this port that speaks only HTTP/2 over cleartext with prior
    knowledge (`proto h2`); 0: none. (The main bind also upgrades to h2 on the h2 preface.)"""

    def __post_init__(self) -> None:
        problems = []
        if not self.servers:
            problems.append("needs at least one server")
        if self.balance not in BALANCES:
            problems.append(f"balance {self.balance!r} is not one of {', '.join(BALANCES)}")
        if self.hash_type not in ("", "consistent", "map-based"):
            problems.append(f"hash_type {self.hash_type!r} is not consistent or map-based")
        if self.hash_balance_factor and (self.hash_balance_factor <= 100
                                         or self.hash_type != "consistent"):
            problems.append("hash_balance_factor needs hash_type consistent and a value > 100")
        if len({s.name for s in self.servers}) != len(self.servers):
            problems.append("server names must be unique")
        for s in self.servers:
            if not 0 <= s.weight <= 256:
                problems.append(f"server {s.name}: weight {s.weight} outside 0..256")
        if (self.agent_port or self.observe_layer7 or not self.check_http) and not self.check:
            problems.append("agent_port, observe_layer7 and check_http=False need check")
        if self.on_error not in ON_ERRORS:
            problems.append(f"on_error {self.on_error!r} is not one of "
                            f"{', '.join(e for e in ON_ERRORS if e)}")
        if (self.error_limit or self.on_error) and not self.observe_layer7:
            problems.append("error_limit and on_error need observe_layer7")
        if not 0 <= self.agent_port <= 65535:
            problems.append(f"agent_port {self.agent_port} outside 0..65535")
        if self.max_queued and not all(s.maxconn for s in self.servers):
            problems.append("max_queued needs maxconn on every server (no queue without)")
        if self.tls_strict_sni and not self.tls_crt_list:
            problems.append("tls_strict_sni needs tls_crt_list")
        if (self.server_tls_crt or self.server_tls_sni or not self.server_tls_reuse) \
                and not self.server_tls_ca_file:
            problems.append("server_tls_crt/sni/reuse need server_tls_ca_file (TLS to servers)")
        if self.mode not in MODES:
            problems.append(f"mode {self.mode!r} is not one of {', '.join(MODES)}")
        elif self.mode == "tcp":
            needs_http = [name for name, used in (
                ("cookie", self.cookie), ("max_queued", self.max_queued),
                ("retry_on", self.retry_on), ("keepalive_to_servers=False",
                                              not self.keepalive_to_servers),
                (f"balance {self.balance}", self.balance in HTTP_BALANCES)) if used]
            if needs_http:
                problems.append(f"mode tcp cannot use {', '.join(needs_http)} (http only)")
        if '"' in self.log_format or "\n" in self.log_format:
            problems.append("log_format must not contain double quotes or newlines")
        if self.log_format and not self.log_socket:
            problems.append("log_format needs log_socket")
        if self.restrict_req_hdr_names not in ("", "preserve", "delete", "reject"):
            problems.append(f"restrict_req_hdr_names {self.restrict_req_hdr_names!r} is not "
                            "preserve, delete or reject")
        if self.mode != "http" and (self.accept_invalid_http_request or self.h1_case_adjust
                                    or self.restrict_req_hdr_names or self.set_request_headers):
            problems.append("accept_invalid_http_request, restrict_req_hdr_names, "
                            "h1_case_adjust and set_request_headers need mode http")
        for name, value in (*((n, "") for n in self.h1_case_adjust), *self.set_request_headers):
            if not name or any(c in name for c in ' \t\r\n:"') or any(c in value for c in '\r\n"'):
                problems.append(f"header {name!r}: no spaces, colons or quotes in a name, no "
                                "newlines or quotes in a value")
        if self.stick_on and not (self.stick_on == "src" or (
                self.stick_on.startswith("cookie:") and self.stick_on[7:].isidentifier())):
            problems.append(f"stick_on {self.stick_on!r} is not src or cookie:NAME")
        if self.peers and (not self.stick_on or self.name not in [n for n, _, _ in self.peers]
                           or len({n for n, _, _ in self.peers}) != len(self.peers)):
            problems.append("peers need stick_on, unique names and this node among them")
        if self.h2_port and (self.h2_port == self.port or not 0 < self.h2_port < 65536
                             or self.tls_crt_list or self.mode != "http"):
            problems.append(f"h2_port {self.h2_port}: a port other than {self.port}, in "
                            "mode http, without TLS")
        if problems:
            raise UsageError(f"L7 node {self.name}: " + "; ".join(problems))


def render(cfg: L7Config, stats_socket: str) -> str:
    return TEMPLATES.get_template("haproxy.cfg.j2").render(cfg=cfg, stats_socket=stats_socket)


class RuntimeAPI:
    """HAProxy's runtime API over its stats socket: one command per connection."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def command(self, line: str, timeout: float = 5.0) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.path))
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def show_stat(self) -> list[dict[str, str]]:
        text = self.command("show stat").lstrip("# ")
        return [row for row in csv.DictReader(io.StringIO(text)) if row.get("pxname")]

    def servers(self, backend: str) -> dict[str, dict[str, str]]:
        return {r["svname"]: r for r in self.show_stat()
                if r["pxname"] == backend and r["svname"] not in ("BACKEND", "FRONTEND")}

    def set_state(self, backend: str, server: str, state: str) -> None:
        if state not in ("ready", "drain", "maint"):
            raise UsageError(f"server state {state!r} is not ready, drain or maint")
        self._expect_empty(f"set server {backend}/{server} state {state}")

    def set_weight(self, backend: str, server: str, weight: int) -> None:
        self._expect_empty(f"set server {backend}/{server} weight {weight}")

    # -- certificates (HAProxy's transactions: set, then commit or abort) ---------------
    def set_ssl_cert(self, path: str, payload: str) -> str:
        """Stage new contents for a loaded certificate file (PEM, or base64 for its
        `.ocsp` / `.issuer` companions) in the open transaction."""
        return self._expect_reply(f"set ssl cert {path} <<\n{payload.strip()}\n",
                                  "Transaction")

    def commit_ssl_cert(self, path: str) -> str:
        """Apply the transaction; HAProxy's reply is returned (a refusal is not an error
        here: refusals are what some experiments measure)."""
        return self.command(f"commit ssl cert {path}").strip()

    def abort_ssl_cert(self, path: str) -> str:
        return self.command(f"abort ssl cert {path}").strip()

    def set_ssl_ocsp_response(self, der_base64: str) -> str:
        return self._expect_reply(f"set ssl ocsp-response <<\n{der_base64}\n", "OCSP")

    def show_ssl_cert(self, path: str = "") -> str:
        return self.command(f"show ssl cert {path}".strip()).strip()

    def _expect_reply(self, line: str, start: str) -> str:
        reply = self.command(line).strip()
        if not reply.startswith(start):
            raise LabError(f"haproxy runtime API: {line.splitlines()[0]!r}: {reply}")
        return reply

    def _expect_empty(self, line: str) -> None:
        reply = self.command(line).strip()
        if reply:
            raise LabError(f"haproxy runtime API: {line!r}: {reply}")


class L7Node:
    """HAProxy running in a lab host."""

    def __init__(self, lab: Any, cfg: L7Config) -> None:
        self.lab, self.cfg = lab, cfg
        self.socket = lab.file(f"{cfg.name}-haproxy.sock")
        self.config_path = lab.file(f"{cfg.name}-haproxy.cfg")
        self.api = RuntimeAPI(self.socket)
        self.backend = f"be_{cfg.name}"
        self.proc: subprocess.Popen | None = None
        self.master_socket = lab.file(f"{cfg.name}-haproxy-master.sock")
        """The master CLI (master_worker only): `show proc`, `reload`."""

    def config_text(self) -> str:
        """The HAProxy configuration this node runs (a node with a template of its own, as an
        experiment may have, overrides this and `listen_ports`)."""
        return render(self.cfg, str(self.socket))

    def listen_ports(self) -> tuple[int, ...]:
        """The ports that answer once this node is ready."""
        return (self.cfg.port,)

    def _write_config(self) -> None:
        self.config_path.write_text(self.config_text())
        check = subprocess.run(["haproxy", "-c", "-q", "-f", str(self.config_path)],
                               capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise LabError(f"haproxy rejected {self.config_path}: "
                           f"{(check.stderr or check.stdout).strip()[:300]}")

    def start(self, timeout: float = 15.0) -> L7Node:
        self._write_config()
        argv = ["haproxy", "-db", "-f", str(self.config_path)]
        if self.cfg.master_worker:
            argv += ["-S", f"{self.master_socket},mode,600"]
            self.lab.on_teardown(lambda: self.master_socket.unlink(missing_ok=True))
        self.proc = self.lab.spawn(self.cfg.name, argv, name=f"haproxy-{self.cfg.name}")
        self.lab.on_teardown(lambda: self.socket.unlink(missing_ok=True))
        for port in self.listen_ports():
            self.lab.wait_listening(self.cfg.name, port, proc=self.proc, timeout=timeout)
        wait_answering(self.socket, timeout)
        return self

    def stop(self) -> None:
        """Stop this HAProxy now (another config may take its place on the same node)."""
        if self.proc is not None:
            self.lab.stop_process(self.proc)
            self.proc = None
        self.socket.unlink(missing_ok=True)
        self.master_socket.unlink(missing_ok=True)

    def workers(self) -> list[int]:
        """PIDs of the current (not old) workers, from the master CLI's `show proc`."""
        # The master CLI keeps a connection open until told to quit.
        text = RuntimeAPI(self.master_socket).command("show proc; quit")
        pids, section = [], ""
        for line in text.splitlines():
            if line.startswith("#"):
                section = line
                continue
            parts = line.split()
            if len(parts) > 1 and parts[1] == "worker" and "old" not in section:
                pids.append(int(parts[0]))
        return pids

    def reload(self, cfg: L7Config | None = None, timeout: float = 15.0) -> list[int]:
        """Master-worker reload, as `systemctl reload haproxy` does: write (and check) the
        new config, ask the master to re-execute, and wait until a new worker serves; the
        old worker keeps its connections until they end. Returns the new workers' PIDs."""
        if not self.cfg.master_worker:
            raise LabError(f"L7 node {self.cfg.name}: reload needs master_worker")
        self.cfg = cfg or self.cfg
        self._write_config()
        before = set(self.workers())
        RuntimeAPI(self.master_socket).command("reload")
        found: list[int] = []

        def new_worker() -> bool:
            try:
                current = self.workers()
            except OSError:  # the master re-executes itself: its CLI is briefly away
                return False
            found[:] = [p for p in current if p not in before]
            return bool(found)

        wait_until(new_worker, timeout=timeout, what=f"a new {self.cfg.name} worker")
        return found

    def server_counters(self) -> dict[str, dict[str, int | str]]:
        """Per server: requests answered (by status class), sessions, status, weight."""
        keep = ("stot", "hrsp_2xx", "hrsp_4xx", "hrsp_5xx", "econ", "eresp", "wretr", "wredis",
                "qcur", "scur", "weight")
        rows = {}
        for name, row in self.api.servers(self.backend).items():
            rows[name] = {k: int(row[k]) if row.get(k, "").isdigit() else row.get(k, "")
                          for k in keep}
            rows[name]["status"] = row["status"]
        return rows
