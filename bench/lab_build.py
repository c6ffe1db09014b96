"""Lab up + down against the raw Mininet API building the same network.

    .venv/bin/python bench/lab_build.py [--hosts 10,50,100] [--rounds 3]

Both build one userspace-datapath OVS switch (standalone, no controller) with N hosts, start
it and stop it. The lab also records every resource in its state file, labels the bridge, turns
offloads off on each host interface and checks for leftovers at the end: the ratio is what
that bookkeeping costs. Goal: lab / raw <= 1.3.
"""

from __future__ import annotations

import argparse
import statistics
import time

from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import OVSSwitch
from mininet.topo import SingleSwitchTopo

from lblab.lab import Lab


def raw(n: int) -> float:
    t0 = time.monotonic()
    net = Mininet(topo=SingleSwitchTopo(k=n), controller=None, autoSetMacs=False,
                  switch=lambda name, **p: OVSSwitch(name, datapath="user",
                                                     failMode="standalone", **p))
    net.start()
    net.stop()
    return time.monotonic() - t0


def lab(n: int) -> float:
    t0 = time.monotonic()
    with Lab("bench-build", SingleSwitchTopo(k=n)):
        pass
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", default="10,50,100")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    setLogLevel("error")
    print(f"{'hosts':>5} {'raw s':>8} {'lab s':>8} {'lab/raw':>8}")
    for n in (int(x) for x in args.hosts.split(",")):
        r = statistics.median(raw(n) for _ in range(args.rounds))
        lb = statistics.median(lab(n) for _ in range(args.rounds))
        print(f"{n:>5} {r:>8.2f} {lb:>8.2f} {lb / r:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
