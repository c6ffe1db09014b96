"""The open-loop client's highest sustained rate against wrk, on the same HAProxy + backends.

    .venv/bin/python bench/client_rate.py [--seconds 5]

The smoke lab (HAProxy in front of three backends with zero service time and 64 workers) is
brought up once. wrk runs first (closed loop, 1 thread, 32 connections, keep-alive) and gives
the requests/s the stack can serve. The lblab client then runs at rising rates (keep-alive,
x1.25 each step, then `--refine` bisection steps); a rate is *sustained* when every request
completes with a record and an answer, and the client keeps its schedule (99th percentile of
send lag under 20 ms). Reported: the highest sustained rate and
its ratio to wrk. Goal: >= 0.5.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import statistics
import tempfile
from pathlib import Path

from lblab.workloads.client import ClientConfig
from lblab.workloads.handles import run_client
from lbnodes.smoke import smoke_lab

LAG_P99_MS = 20.0


def wrk_rate(smoke, seconds: int) -> float:
    out = smoke.lab.run("c1", ["wrk", "-t1", "-c32", f"-d{seconds}s", smoke.l7_url],
                        timeout=seconds + 30)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def sustained(smoke, rate: float, seconds: float, folder: Path,
              processes: int) -> tuple[bool, float, int]:
    cfg = ClientConfig(targets=[smoke.l7_url], rate=rate, duration_s=seconds,
                       arrival="constant", timeout_s=5, keepalive=True, processes=processes)
    records, summary = run_client(smoke.lab, "c1", cfg, folder, f"r{int(rate)}")
    lags = sorted((float(r["sent_s"]) - float(r["intended_s"])) * 1000 for r in records
                  if r["sent_s"])
    lag99 = lags[int(0.99 * (len(lags) - 1))] if lags else float("inf")
    ok = summary["counts"].get("ok", 0)
    complete = ok == summary["requests"] == len(records)
    return complete and lag99 < LAG_P99_MS, lag99, ok


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--processes", type=int, default=1, help="client worker processes")
    ap.add_argument("--refine", type=int, default=2,
                    help="bisection steps after the first unsustained rate")
    args = ap.parse_args()
    print(f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="lblab-bench-"))
    with smoke_lab("bench-client", service_ms=0, workers=64,
                   service_dist="constant") as smoke:
        wrk = statistics.median(wrk_rate(smoke, args.seconds) for _ in range(2))
        print(f"wrk: {wrk:.0f} req/s", flush=True)
        def attempt(rate: float) -> bool:
            ok, lag99, done = sustained(smoke, rate, args.seconds, folder, args.processes)
            print(f"client at {rate:.0f} req/s: {'sustained' if ok else 'not sustained'} "
                  f"(send lag p99 {lag99:.1f} ms, {done} ok)", flush=True)
            return ok

        best, rate = 0.0, 100.0
        while rate < wrk * 1.5 and attempt(rate):
            best, rate = rate, rate * 1.25
        failed = rate
        for _ in range(args.refine):  # bisect between the last sustained and the first failed
            mid = (best + failed) / 2
            if attempt(mid):
                best = mid
            else:
                failed = mid
    print(f"highest sustained open-loop rate with {args.processes} client process(es): "
          f"{best:.0f} req/s; ratio to wrk {best / wrk:.2f}")
    with open(folder / "records-note.csv", "w", newline="") as f:
        csv.writer(f).writerow(["records in", str(folder)])


if __name__ == "__main__":
    main()
