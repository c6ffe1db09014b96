"""The probe effect: the same workload with every sampler on, then off, in alternating rounds.

    flock /tmp/lblab-lab.lock .venv/bin/python bench/probe_effect.py [--rounds 8] [--seconds 10]

The smoke lab (c1 -> HAProxy `l7` and the nftables L4 node `l4` -> three backends) carries an
open-loop client built like az-failover's: Poisson arrivals, a new connection per request,
backends with exponential service times; requests alternate between the L7 and the L4 VIP,
so HAProxy, the backends and a conntrack table all carry the load. In an *on* round every
sampler the experiments use runs beside it, in this (the driver's) process, each in its own
thread at the interval an experiment declares:

  backends   each backend's /stats over its control socket, every 0.02 s (retry-storm)
  haproxy    HAProxy `show stat` over the runtime API, every 0.05 s (health-truthiness)
  links      every switch port's counters over netlink, every 0.2 s (az-failover)
  conntrack  the L4 node's entry count every 0.25 s and its entries by TCP state (conntrack
             -L) every 0.5 s (conntrack-exhaustion)

*Off* rounds run the same client with none of them. Rounds go on, off, off, on, on, ... (ABBA,
so a drift over the run weighs on both alike), after one warm-up round that is not counted.
Reported per round: the client's p50/p99 latency (requests intended after the first second),
its p99 send lag, the backends' throughput (requests served per second, from /stats read
before and after the round) and the driver process's CPU; then the ratio on/off of the
medians. Goal: p99 within 5 %.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from lblab.counters import link_stats
from lblab.sampler import Sampler
from lblab.workloads.client import ClientConfig
from lblab.workloads.handles import run_client
from lbnodes.smoke import smoke_lab

WARMUP_S = 1.0


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def samplers(smoke) -> list[tuple[str, float, object]]:
    """(name, interval, probe) for every sampler of an *on* round."""
    backends, l7, l4 = smoke.backends, smoke.l7, smoke.l4
    ports = [i.name for sw in smoke.lab.net.switches for i in sw.intfList() if i.name != "lo"]

    def backends_probe() -> dict:
        caps = [h.stats()["capacity"] for h in backends]
        return {k: sum(c[k] for c in caps) for k in ("arrived", "rejected", "busy", "queued")}

    def haproxy_probe() -> dict:
        return {f"{name}.{key}": row.get(key, "")
                for name, row in l7.api.servers(l7.backend).items()
                for key in ("status", "scur", "stot", "hrsp_5xx", "qcur")}

    def links_probe() -> dict:
        return {f"{n}.{k}": v for n, s in link_stats(ports).items()
                for k, v in s.items() if k in ("rx_bytes", "tx_bytes")}

    return [("backends", 0.02, backends_probe), ("haproxy", 0.05, haproxy_probe),
            ("links", 0.2, links_probe),
            ("conntrack-count", 0.25, lambda: {"entries": l4.conntrack_count()}),
            ("conntrack-states", 0.5, l4.conntrack_states)]


def served(smoke) -> int:
    return sum(h.stats()["capacity"]["served"] for h in smoke.backends)


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def one_round(smoke, args, folder: Path, k: int, on: bool) -> dict:
    cfg = ClientConfig(targets=[smoke.l7_url, smoke.l4_url], rate=args.rate,
                       duration_s=args.seconds, arrival="poisson", timeout_s=2.0,
                       keepalive=False, seed=k)
    before, c0, t0 = served(smoke), cpu_s(), time.monotonic()
    with ExitStack() as stack:
        running = [(name, stack.enter_context(Sampler(probe, interval)))
                   for name, interval, probe in (samplers(smoke) if on else [])]
        records, summary = run_client(smoke.lab, "c1", cfg, folder, f"round{k}")
    wall, cpu = time.monotonic() - t0, cpu_s() - c0
    after = served(smoke)
    kept = [r for r in records if float(r["intended_s"]) >= WARMUP_S]
    lat = [float(r["latency_ms"]) for r in kept if r["outcome"] == "ok"]
    lag = [(float(r["sent_s"]) - float(r["intended_s"])) * 1000 for r in kept if r["sent_s"]]
    return {"round": k, "on": on, "requests": len(records),
            "ok": summary["counts"].get("ok", 0), "p50": pct(lat, 0.5), "p99": pct(lat, 0.99),
            "lag99": pct(lag, 0.99), "served_per_s": (after - before) / wall,
            "driver_cpu": cpu / wall,
            "samples": sum(len(s.rows) for _, s in running),
            "probe_errors": sum(len(s.errors) for _, s in running),
            "probe_ms": {name: round(statistics.mean(r["probe_ms"] for r in s.rows), 2)
                         for name, s in running if s.rows}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8, help="counted rounds (ABBA order)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=300.0, help="client requests/s")
    ap.add_argument("--service-ms", type=float, default=10.0)
    args = ap.parse_args()
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    folder = Path(tempfile.mkdtemp(prefix="lblab-bench-probe-"))
    rows = []
    with smoke_lab("bench-probe", service_ms=args.service_ms, workers=8,
                   service_dist="exponential") as smoke:
        one_round(smoke, args, folder, 0, True)  # warm-up, not counted
        for k in range(1, args.rounds + 1):
            on = (k - 1) % 4 in (0, 3)
            row = one_round(smoke, args, folder, k, on)
            rows.append(row)
            print(f"round {k} {'on ' if on else 'off'}: p50 {row['p50']:.2f} ms  p99 "
                  f"{row['p99']:.2f} ms  lag99 {row['lag99']:.2f} ms  served "
                  f"{row['served_per_s']:.1f}/s  ok {row['ok']}/{row['requests']}  driver cpu "
                  f"{row['driver_cpu']:.3f}  samples {row['samples']} "
                  f"(errors {row['probe_errors']}) {row['probe_ms']}", flush=True)
    print("\n| | on (median) | off (median) | on / off |\n|---|---:|---:|---:|")
    for key, label in (("p50", "client p50 (ms)"), ("p99", "client p99 (ms)"),
                       ("served_per_s", "backends served (req/s)"),
                       ("driver_cpu", "driver process CPU (cores)")):
        on_v = statistics.median(r[key] for r in rows if r["on"])
        off_v = statistics.median(r[key] for r in rows if not r["on"])
        print(f"| {label} | {on_v:.3f} | {off_v:.3f} | {on_v / off_v:.3f} |")
    print(f"records in {folder}")


if __name__ == "__main__":
    main()
