"""Lab up + down against the raw Mininet API building the same network.

    .venv/bin/python bench/lab_build.py [--hosts 10,50,100,200] [--rounds 3] [--profile N]

Both build one userspace-datapath OVS switch (standalone, no controller) with N hosts, start
it and stop it. The lab also records every resource in its state file, labels the bridge, turns
offloads off on each host interface and checks for leftovers at the end: the ratio is what
that bookkeeping costs. Goal: lab / raw <= 1.15. Raw and lab rounds alternate, so drift over
the run falls on both. `--profile N` instead profiles one lab of N hosts (cProfile) and prints
where its time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import OVSSwitch
from mininet.topo import SingleSwitchTopo

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import header  # noqa: E402

from lblab.lab import Lab  # noqa: E402


def raw(n: int) -> tuple[float, float]:
    """(up, down) seconds."""
    t0 = time.monotonic()
    net = Mininet(topo=SingleSwitchTopo(k=n), controller=None, autoSetMacs=False,
                  switch=lambda name, **p: OVSSwitch(name, datapath="user",
                                                     failMode="standalone", **p))
    net.start()
    t1 = time.monotonic()
    net.stop()
    return t1 - t0, time.monotonic() - t1


def lab(n: int) -> tuple[float, float]:
    """(up, down) seconds; down ends when the lab has checked that nothing is left."""
    t0 = time.monotonic()
    with Lab("bench-build", SingleSwitchTopo(k=n)):
        t1 = time.monotonic()
    return t1 - t0, time.monotonic() - t1


def profile(n: int) -> None:
    prof = cProfile.Profile()
    prof.enable()
    up, down = lab(n)
    prof.disable()
    print(f"one lab of {n} hosts: up {up:.2f} s, down {down:.2f} s; by cumulative time:")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", default="10,50,100,200")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="profile one lab of N hosts instead")
    args = ap.parse_args()
    setLogLevel("error")
    print(header("bench/lab_build.py"), flush=True)
    if args.profile:
        profile(args.profile)
        return
    print(f"{'hosts':>5} {'raw s':>7} {'lab s':>7} {'lab/raw':>7}  {'up raw':>7} {'up lab':>7}"
          f" {'ratio':>6}  {'down raw':>8} {'down lab':>8} {'ratio':>6}")
    for n in (int(x) for x in args.hosts.split(",")):
        raws, labs = [], []
        for _ in range(args.rounds):
            raws.append(raw(n))
            labs.append(lab(n))

        def med(rounds: list[tuple[float, float]], i: int | None) -> float:
            return statistics.median(sum(r) if i is None else r[i] for r in rounds)

        r, lb = med(raws, None), med(labs, None)
        ru, lu, rd, ld = med(raws, 0), med(labs, 0), med(raws, 1), med(labs, 1)
        each = "raw " + ", ".join(f"{sum(x):.2f}" for x in raws) + "; lab " \
            + ", ".join(f"{sum(x):.2f}" for x in labs)
        print(f"{n:>5} {r:>7.2f} {lb:>7.2f} {lb / r:>7.2f}  {ru:>7.2f} {lu:>7.2f} {lu / ru:>6.2f}"
              f"  {rd:>8.2f} {ld:>8.2f} {ld / rd:>6.2f}   ({each})", flush=True)


if __name__ == "__main__":
    main()
