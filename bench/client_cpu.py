"""What a request costs the open-loop client in CPU, next to what it costs wrk: no lab needed.

    .venv/bin/python bench/client_cpu.py [--seconds 4] [--rounds 3]

A single-threaded HAProxy on loopback answers every GET itself (`http-request return`, with
the X-Backend and X-Peer headers the client keeps), so the server is cheap and the same for
both. wrk (1 thread, 32 keep-alive connections, closed loop) and then the lblab client (one
process, constant arrivals, keep-alive, then a connection per request) each run as a child
process; the CPU each used (user + system, from wait4) is divided by the requests it made
(the client's start-up, measured once with a single request, is subtracted; writing its
records is not).
The client's rate is fixed (--rate, --close-rate) below what this machine sustains, so the
figure is its cost per request, not a saturation point. On loopback the kernel's TCP work for
both ends lands partly on the sender: the figures are for comparing, not absolute.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from lblab.workloads.client import ClientConfig

HAPROXY_CFG = """global
  nbthread 1
defaults
  mode http
  timeout client 10s
  timeout server 10s
  timeout connect 2s
frontend bench
  bind 127.0.0.1:{port}
  http-request return status 200 content-type text/plain string ok \
    hdr X-Backend b1 hdr X-Peer 127.0.0.1
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_child(argv: list[str]) -> tuple[str, float]:
    """Run a child to its end: (stdout, CPU seconds it used)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode})")
    return out, usage.ru_utime + usage.ru_stime


def wrk(url: str, seconds: int) -> tuple[float, float]:
    out, cpu = run_child(["wrk", "-t1", "-c32", f"-d{seconds}s", url])
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return requests / seconds, cpu / requests * 1e6


def client(url: str, rate: float, seconds: float, keepalive: bool, folder: Path,
           tag: str, fixed_s: float = 0.0) -> tuple[float, float, float]:
    """(share answered ok, CPU us per request beyond `fixed_s`, send lag p99 in ms)."""
    cfg = ClientConfig(targets=[url], rate=rate, duration_s=seconds, arrival="constant",
                       timeout_s=5, keepalive=keepalive, records=str(folder / f"{tag}.csv"),
                       summary=str(folder / f"{tag}.json"))
    path = folder / f"{tag}-config.json"
    path.write_text(json.dumps(asdict(cfg)))
    _, cpu = run_child([sys.executable, "-m", "lblab.workloads.client", str(path)])
    with open(cfg.records, newline="") as f:
        rows = list(csv.DictReader(f))
    ok = sum(r["outcome"] == "ok" for r in rows)
    lags = sorted(float(r["sent_s"]) - float(r["intended_s"]) for r in rows if r["sent_s"])
    lag99 = lags[int(0.99 * (len(lags) - 1))] * 1000 if lags else float("nan")
    return ok / len(rows), (cpu - fixed_s) / len(rows) * 1e6, lag99


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=float, default=4000.0, help="keep-alive client rate")
    ap.add_argument("--close-rate", type=float, default=1500.0,
                    help="client rate with a connection per request")
    args = ap.parse_args()
    print(f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    folder = Path(tempfile.mkdtemp(prefix="lblab-bench-cpu-"))
    port = free_port()
    (folder / "haproxy.cfg").write_text(HAPROXY_CFG.format(port=port))
    server = subprocess.Popen(["haproxy", "-db", "-f", str(folder / "haproxy.cfg")],
                              stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("haproxy did not start")
            time.sleep(0.05)
        # What a run costs before and after its schedule (start-up, imports): one request.
        _, us, _ = client(url, 10, 0.2, True, folder, "fixed")
        fixed = us / 1e6
        print(f"client start-up and exit: {fixed * 1000:.0f} ms CPU (subtracted below)")
        for k in range(args.rounds):
            rate, wrk_us = wrk(url, args.seconds)
            print(f"round {k + 1}: wrk {rate:,.0f} req/s, {wrk_us:.1f} us CPU per request",
                  flush=True)
            for keepalive, r in ((True, args.rate), (False, args.close_rate)):
                ok, us, lag99 = client(url, r, args.seconds, keepalive, folder,
                                       f"r{k}-{'keep' if keepalive else 'close'}", fixed)
                print(f"  client {'keep-alive' if keepalive else 'close':10s} at {r:,.0f} "
                      f"req/s: {us:.1f} us CPU per request ({us / wrk_us:.2f} x wrk), "
                      f"ok {ok:.3f}, send lag p99 {lag99:.1f} ms", flush=True)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
