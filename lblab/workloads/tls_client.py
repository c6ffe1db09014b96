"""An open-loop client of new TLS handshakes that verifies what it is served.

    python -m lblab.workloads.tls_client CONFIG.json

Every scheduled instant opens a new TCP connection and a full TLS handshake (no session
resumption), verifying the chain against `ca_file` and the host name against the profile's
expected name (the stdlib's rule: a DNS name of the subjectAltName, exactly), then sends one
`GET /` and reads the status line. Handshake i uses profile i mod len(profiles): the name it
sends as SNI ("" sends none), the name it expects, whether it requires a stapled OCSP
response (must-staple: a missing, unparsable, not-good or stale staple fails the handshake).
pyOpenSSL is used rather than `ssl` because only OpenSSL's status callback sees staples.

One row per handshake: intended and actual start (s on the run's clock), handshake time,
outcome (ok, refused, timeout, reset, handshake_failed, verify:<why>, hostname, no_staple,
http_<status>), the leaf's serial number, whether a staple came, the HTTP status. The start
file gets the wall-clock instant of t = 0 (lblab.timeline). Threads do the blocking I/O;
a handshake that finds no free thread starts late, and `start_s - intended_s` shows it.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import select
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509 import ocsp
from OpenSSL import SSL

_EPOCH = dt.datetime(1970, 1, 1)
FIELDS = ["id", "profile", "intended_s", "start_s", "handshake_ms", "done_s", "outcome",
          "serial", "staple", "status", "detail"]
VERIFY_ERRORS = {9: "not_yet_valid", 10: "expired", 2: "unknown_issuer", 18: "unknown_issuer",
                 19: "unknown_issuer", 20: "unknown_issuer", 21: "unknown_issuer"}
"""OpenSSL X509_V_ERR_* codes the experiments provoke, by name."""


@dataclass
class TlsClientConfig:
    host: str
    port: int = 443
    rate: float = 50.0
    duration_s: float = 10.0
    ca_file: str = ""
    profiles: list[dict] = field(default_factory=lambda: [{"sni": "", "expect": ""}])
    """Each: sni (sent, "" for none), expect (the name verified), must_staple (bool)."""
    timeout_s: float = 1.0
    threads: int = 32
    records: str = "tls-records.csv"
    summary: str = "tls-summary.json"
    start_file: str = ""

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.duration_s <= 0 or not self.profiles:
            raise ValueError("tls client: rate, duration_s and profiles must be positive")


def schedule(cfg: TlsClientConfig) -> list[float]:
    """Constant-rate intended start offsets (s): i / rate, no drift."""
    return [i / cfg.rate for i in range(int(cfg.duration_s * cfg.rate + 1e-9))]


class _Seen:
    """What the callbacks of one connection saw."""

    def __init__(self) -> None:
        self.serial: int | None = None
        self.verify_error: int | None = None
        self.staple: bool = False
        self.staple_ok: bool = False


def _verify(conn: SSL.Connection, cert: Any, errno: int, depth: int, ok: int) -> bool:
    seen: _Seen = conn.get_app_data()
    if depth == 0:
        seen.serial = cert.get_serial_number()
    if not ok and seen.verify_error is None:
        seen.verify_error = errno
    return bool(ok)


def staple_good(der: bytes, now: float) -> bool:
    """A stapled response that says 'good' and is not past its nextUpdate."""
    try:
        resp = ocsp.load_der_ocsp_response(der)
    except ValueError:
        return False
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return False
    nxt = resp.next_update
    return (resp.certificate_status == ocsp.OCSPCertStatus.GOOD
            and (nxt is None or (nxt - _EPOCH).total_seconds() > now))


def _ocsp(must: bool) -> Any:
    def callback(conn: SSL.Connection, der: bytes, _data: Any) -> bool:
        seen: _Seen = conn.get_app_data()
        seen.staple = bool(der)
        seen.staple_ok = bool(der) and staple_good(der, time.time())
        return seen.staple_ok or not must

    return callback


def context(ca_file: str, must_staple: bool) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.load_verify_locations(ca_file)
    ctx.set_verify(SSL.VERIFY_PEER, _verify)
    ctx.set_ocsp_client_callback(_ocsp(must_staple))
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    return ctx


def _wait(conn: SSL.Connection, op: Any, deadline: float) -> Any:
    """Run a pyOpenSSL operation on a non-blocking socket until it completes or times out."""
    while True:
        try:
            return op()
        except (SSL.WantReadError, SSL.WantWriteError) as want:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError from None
            r, w = ([conn], []) if isinstance(want, SSL.WantReadError) else ([], [conn])
            select.select(r, w, [], left)


def names_of(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.DNSName)


def handshake(cfg: TlsClientConfig, ctx: SSL.Context, profile: dict) -> dict:
    """One new connection, handshake, verification and request: the row's result fields."""
    seen = _Seen()
    deadline = time.monotonic() + cfg.timeout_s
    started = time.monotonic()
    out: dict[str, Any] = {"outcome": "", "detail": "", "status": None}
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    conn = None
    try:
        try:
            sock.connect((cfg.host, cfg.port))
        except BlockingIOError:
            _, w, _ = select.select([], [sock], [], cfg.timeout_s)
            if not w:
                raise TimeoutError from None
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, "connect") from None
        conn = SSL.Connection(ctx, sock)
        conn.set_app_data(seen)
        conn.set_connect_state()
        if profile.get("sni"):
            conn.set_tlsext_host_name(profile["sni"].encode())
        conn.request_ocsp()
        _wait(conn, conn.do_handshake, deadline)
        out["handshake_ms"] = round((time.monotonic() - started) * 1000, 3)
        cert = conn.get_peer_certificate().to_cryptography()
        seen.serial = cert.serial_number
        if profile.get("expect") and profile["expect"] not in names_of(cert):
            out["outcome"] = "hostname"
            out["detail"] = ",".join(names_of(cert))
            return out
        host = profile.get("expect") or cfg.host
        _wait(conn, lambda: conn.sendall(
            f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()), deadline)
        head = b""
        while b"\r\n" not in head:
            chunk = _wait(conn, lambda: conn.recv(4096), deadline)
            if not chunk:
                break
            head += chunk
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else None
        out["status"] = status
        out["outcome"] = "ok" if status == 200 else f"http_{status}"
    except TimeoutError:
        out["outcome"] = "timeout"
    except ConnectionRefusedError:
        out["outcome"] = "refused"
    except SSL.ZeroReturnError:
        out["outcome"] = "reset"
    except (SSL.SysCallError, ConnectionResetError, BrokenPipeError) as exc:
        out["outcome"] = "reset"
        out["detail"] = str(exc)[:80]
    except SSL.Error as exc:
        if seen.verify_error is not None:
            out["outcome"] = "verify:" + VERIFY_ERRORS.get(seen.verify_error,
                                                           str(seen.verify_error))
        elif profile.get("must_staple") and not seen.staple_ok:
            out["outcome"] = "no_staple"
        else:
            out["outcome"] = "handshake_failed"
        out["detail"] = str(exc)[:120]
    except OSError as exc:
        out["outcome"] = "refused" if exc.errno == 111 else "reset"
        out["detail"] = str(exc)[:80]
    finally:
        out.setdefault("handshake_ms", None)
        out["serial"] = seen.serial
        out["staple"] = seen.staple
        if conn is not None:
            try:
                conn.shutdown()
            except SSL.Error:
                pass
        sock.close()
    return out


def run(cfg: TlsClientConfig) -> dict:
    contexts = [context(cfg.ca_file, bool(p.get("must_staple"))) for p in cfg.profiles]
    offsets = schedule(cfg)
    rows: list[dict] = []
    lock = threading.Lock()
    t0 = time.monotonic()
    wall0 = time.time()
    if cfg.start_file:
        tmp = Path(f"{cfg.start_file}.tmp")
        tmp.write_text(repr(wall0))
        tmp.replace(cfg.start_file)

    def one(i: int, intended: float) -> None:
        k = i % len(cfg.profiles)
        start = time.monotonic() - t0
        res = handshake(cfg, contexts[k], cfg.profiles[k])
        row = {"id": i, "profile": k, "intended_s": round(intended, 4),
               "start_s": round(start, 4), "done_s": round(time.monotonic() - t0, 4), **res}
        with lock:
            rows.append(row)

    with ThreadPoolExecutor(cfg.threads) as pool:
        for i, offset in enumerate(offsets):
            delay = offset - (time.monotonic() - t0)
            if delay > 0:
                time.sleep(delay)  # the open-loop schedule itself, not a readiness wait
            pool.submit(one, i, offset)
    rows.sort(key=lambda r: r["id"])
    outcomes: dict[str, int] = {}
    for r in rows:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    late = [r["start_s"] - r["intended_s"] for r in rows]
    return {"origin_wall": wall0, "handshakes": len(rows), "outcomes": outcomes,
            "max_start_late_s": round(max(late), 4) if late else None, "rows": rows}


def run_in_lab(lab: Any, node: str, cfg: TlsClientConfig, out_dir: Path, tag: str) -> dict:
    """Run the client in `node` to completion: records into `TAG-records.csv`, summary into
    `TAG-summary.json` in out_dir; returns the summary. Bounded by its schedule."""
    import subprocess
    from dataclasses import asdict

    from lblab.errors import LabError
    from lblab.workloads.floods import check_target

    check_target(lab, cfg.host, f"tls client target {cfg.host}")
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg.records = str(out_dir / f"{tag}-records.csv")
    cfg.summary = str(out_dir / f"{tag}-summary.json")
    cfg_path = lab.file(f"tls-client-{tag}.json")
    cfg_path.write_text(json.dumps(asdict(cfg)))
    proc = lab.spawn(node, [sys.executable, "-m", "lblab.workloads.tls_client", str(cfg_path)],
                     name=f"tls-client-{tag}")
    bound = cfg.duration_s + cfg.timeout_s + 30
    try:
        code = proc.wait(timeout=bound)
    except subprocess.TimeoutExpired:
        lab.stop_process(proc)
        raise LabError(f"tls client {tag} in {node} outlived its bound of {bound:.0f} s") \
            from None
    if code != 0 or not Path(cfg.summary).exists():
        raise LabError(f"tls client {tag} in {node} failed (exit {code}); see its log")
    return json.loads(Path(cfg.summary).read_text())


def main(argv: list[str]) -> int:
    cfg = TlsClientConfig(**json.loads(Path(argv[1]).read_text()))
    result = run(cfg)
    rows = result.pop("rows")
    tmp = Path(f"{cfg.records}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows({k: ("" if r.get(k) is None else r.get(k)) for k in FIELDS}
                         for r in rows)
    tmp.replace(cfg.records)
    Path(cfg.summary).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
