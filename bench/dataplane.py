"""The data-plane nodes' cost: the L4 node (nftables) against a plain namespace router, and
the L7 node (HAProxy) against the same backends reached without it.

    .venv/bin/python bench/dataplane.py [--seconds 5] [--rounds 3] [--connections 48]

One lab (no controller: both switches are standalone learning switches), the two-tier
topology: c1 -> s1 -> lb1 / lb2 -> s2 -> b1..b3, the clients routed to the backends' subnet via
lb1 and the backends back via lb1.

L4: one iperf3 TCP stream (bounded: `--seconds`) from c1 to an iperf3 server on b1, through
lb1, with lb1 in turn
  plain    no ruleset at all (ip_forward only, no conntrack): the reference,
  nat      the L4 node's DNAT + masquerade (c1 connects to the VIP 10.0.0.1:5201),
  router   the L4 node as a stateful router (conntrack, `ct state invalid` dropped),
  forward  the L4 node as a stateless forwarder.
Every round runs the four (in a rotated order, so drift over the run does not favour one),
lb1's conntrack table flushed before each. Reported: medians, and each mode's median over
plain's (goal >= 0.9).

L7: wrk (closed loop, `--threads` threads, `--connections` keep-alive connections, bounded
duration) from c1 against HAProxy on lb2 (round robin over b1..b3, keep-alive to them), and
against the same three backends directly (wrk's thread i connects to backend i, so the
connections split over them as HAProxy splits requests), through lb1 as the plain router.
Same threads, connections and duration, alternating. Reported: medians and HAProxy / direct.

The backends are lblab's own (asyncio, zero service time, 64 workers each), as the
experiments use them. Traffic stays between the lab's namespaces. Nothing global is changed.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import CpuTimes, header  # noqa: E402

from lblab.lab import Lab  # noqa: E402
from lblab.workloads.floods import check_target, iperf3  # noqa: E402
from lblab.workloads.handles import start_backend  # noqa: E402
from lbnodes.l4 import Backend, L4Config, L4Node  # noqa: E402
from lbnodes.l7 import L7Config, L7Node, Server  # noqa: E402
from topologies.two_tier import TwoTierTopo, backend_ip, lb_back_ip, lb_front_ip  # noqa: E402

IPERF_PORT = 5201
HTTP_PORT = 8080
VIP_PORT = 80
BACKENDS = 3
L4_MODES = ("plain", "nat", "router", "forward")

WRK_SPREAD = """-- wrk thread i connects to backend i (round robin over the list)
local targets = {%s}
local n = 0
function setup(thread)
  n = n + 1
  thread.addr = wrk.lookup(targets[(n - 1) %% #targets + 1], "%d")[1]
end
"""


def wrk_script(ips: list[str], port: int) -> str:
    return WRK_SPREAD % (", ".join(f'"{ip}"' for ip in ips), port)


def parse_wrk(out: str) -> dict:
    """Requests/s, and every error wrk counts (socket errors, non-2xx/3xx answers)."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rate is None:
        raise ValueError(f"no Requests/sec in wrk's output: {out.strip()[-300:]}")
    errors = {k: int(v) for k, v in re.findall(r"(connect|read|write|timeout) (\d+)", out)}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors["non_2xx_3xx"] = int(non2xx.group(1)) if non2xx else 0
    total = re.search(r"(\d+) requests in", out)
    return {"rps": float(rate.group(1)), "requests": int(total.group(1)) if total else None,
            "errors": errors}


def rotated(items: tuple[str, ...], k: int) -> list[str]:
    k %= len(items)
    return list(items[k:] + items[:k])


def set_l4_mode(lab: Lab, mode: str) -> None:
    """lb1 as `mode`: the L4 node's ruleset, or none at all (plain routing)."""
    pool = (Backend("b1", backend_ip(1), IPERF_PORT),)
    lab.run("lb1", ["nft", "delete", "table", "ip", "lblab_l4"], check=False)
    lab.run("lb1", ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    if mode != "plain":
        L4Node(lab, L4Config("lb1", lb_front_ip(1), IPERF_PORT, pool, mode=mode,
                             backend_ifname="lb1-eth1")).start()
    # conntrack is off in a namespace with no ct/NAT rule; when on, start each run empty
    lab.run("lb1", ["conntrack", "-F"], check=False)


def iperf_target(mode: str) -> str:
    return lb_front_ip(1) if mode == "nat" else backend_ip(1)


def l4_bench(lab: Lab, seconds: int, rounds: int) -> dict[str, list[float]]:
    got: dict[str, list[float]] = {m: [] for m in L4_MODES}
    for r in range(rounds):
        for mode in rotated(L4_MODES, r):
            set_l4_mode(lab, mode)
            cpu = CpuTimes()
            res = iperf3(lab, "b1", backend_ip(1), "c1", seconds=seconds, port=IPERF_PORT,
                         connect_ip=iperf_target(mode))
            busy = cpu.sample()["busy"]
            mbps = res["bits_per_second"] / 1e6
            got[mode].append(mbps)
            print(f"  round {r + 1} {mode:<8} {mbps:8.0f} Mbit/s  retransmits "
                  f"{res['retransmits']}  machine CPU {busy:.0%}", flush=True)
    set_l4_mode(lab, "plain")
    return got


def wrk(lab: Lab, url: str, seconds: int, threads: int, connections: int,
        script: Path | None) -> dict:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    argv += ["-s", str(script)] if script else []
    out = lab.run("c1", [*argv, url], timeout=seconds + 30)
    return parse_wrk(out)


def l7_bench(lab: Lab, seconds: int, rounds: int, threads: int,
             connections: int) -> dict[str, list[float]]:
    ips = [backend_ip(i) for i in range(1, BACKENDS + 1)]
    for ip in [*ips, lb_front_ip(2)]:
        check_target(lab, ip, "wrk target")
    script = lab.file("wrk-direct.lua")
    script.write_text(wrk_script(ips, HTTP_PORT))
    runs = {"direct": (f"http://{ips[0]}:{HTTP_PORT}/", script),
            "haproxy": (f"http://{lb_front_ip(2)}:{VIP_PORT}/", None)}
    got: dict[str, list[float]] = {k: [] for k in runs}
    wrk(lab, runs["haproxy"][0], 1, threads, connections, None)  # warm both paths
    wrk(lab, runs["direct"][0], 1, threads, connections, script)
    for r in range(rounds):
        for name in rotated(tuple(runs), r):
            url, scr = runs[name]
            cpu = CpuTimes()
            res = wrk(lab, url, seconds, threads, connections, scr)
            busy = cpu.sample()["busy"]
            got[name].append(res["rps"])
            errs = {k: v for k, v in res["errors"].items() if v}
            print(f"  round {r + 1} {name:<8} {res['rps']:8.0f} req/s  errors "
                  f"{errs or 'none'}  machine CPU {busy:.0%}", flush=True)
    return got


def table(got: dict[str, list[float]], ref: str, unit: str, goal: str) -> list[str]:
    base = statistics.median(got[ref])
    lines = [f"| path | runs ({unit}) | median ({unit}) | / {ref} |", "|---|---|---:|---:|"]
    for name, vals in got.items():
        med = statistics.median(vals)
        lines.append(f"| {name} | {', '.join(f'{v:,.0f}' for v in vals)} | {med:,.0f} | "
                     f"{med / base:.2f} |")
    lines.append(f"goal: {goal}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=5, help="each iperf3 / wrk run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=BACKENDS, help="wrk threads")
    ap.add_argument("--connections", type=int, default=48, help="wrk connections")
    ap.add_argument("--only", choices=("l4", "l7"), default=None)
    args = ap.parse_args()
    print(header("bench/dataplane.py"), flush=True)
    topo = TwoTierTopo(clients=1, lbs=2, backends=BACKENDS, client_gw=lb_front_ip(1),
                       backend_gw=lb_back_ip(1))
    t0 = time.monotonic()
    with Lab("bench-dataplane", topo) as lab:
        results = []
        if args.only in (None, "l4"):
            print(f"L4: iperf3 c1 -> b1 through lb1, {args.seconds} s per run", flush=True)
            got = l4_bench(lab, args.seconds, args.rounds)
            results += ["", *table(got, "plain", "Mbit/s", "every mode >= 0.9 x plain")]
        if args.only in (None, "l7"):
            for i in range(1, BACKENDS + 1):
                start_backend(lab, f"b{i}", backend_ip(i), port=HTTP_PORT, service_ms=0,
                              workers=64, service_dist="constant")
            servers = tuple(Server(f"b{i}", backend_ip(i), HTTP_PORT)
                            for i in range(1, BACKENDS + 1))
            L7Node(lab, L7Config("lb2", lb_front_ip(2), VIP_PORT, servers)).start()
            print(f"L7: wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, "
                  "HAProxy on lb2 vs the backends directly (via lb1, plain)", flush=True)
            got = l7_bench(lab, args.seconds, args.rounds, args.threads, args.connections)
            results += ["", *table(got, "direct", "req/s", "reported (HAProxy / direct)")]
    print("\n".join(results))
    print(f"\nwall time {time.monotonic() - t0:.0f} s; no global setting was changed")


if __name__ == "__main__":
    main()
