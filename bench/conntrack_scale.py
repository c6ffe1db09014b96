"""The note's conntrack example at its own scale: 100,000 new flows/s, each living 30 s, is
3 M conntrack slots (the note: 1.5 GB at 500 B a slot).

    .venv/bin/python bench/conntrack_scale.py [--flows 3000000] [--life 30] [--flooders 2]
                                              [--seconds 40] [--table 4194304]

A lab of its own, no switches: flooders f1..fN each on a veth straight into the L4 node `lb`
(lbnodes/l4.py in router mode: stateful forwarding, conntrack on), which forwards to a sink
host behind it. hping3 (lblab/workloads/floods.py) sends spoofed-source SYNs to the sink as
fast as it can, bounded in count (`--flows` over all flooders) and time (`--seconds`). The
sink has no route back to the spoofed sources, so nothing answers: every SYN is one new
SYN_SENT entry in lb's table, and lb's SYN_SENT timeout (a per-namespace sysctl, inside the
lab) is `--life` seconds, so each entry lives that long. If the machine sends the note's
rate or more, all `--flows` entries are held together at the end of the flood; if it cannot,
the table holds rate x life at most, and the output says where the machine stopped.

Global settings, changed for the flood only, saved and restored in a finally (and by the
lab's guardian after a crash, and `lblab clean`): nf_conntrack_max to `--table` (the limit
is global, the entries sit in lb's namespace), nf_conntrack_buckets to the same where
writable (a hash table sized for the entries, 8 B a bucket). lb's table is flushed before
they are restored.

Measured every `--interval` s: lb's entries (its /proc/net/stat/nf_conntrack, read from the
root namespace), its insert / drop / early_drop counters, the packets lb received and
forwarded, the kernel's nf_conntrack slab (/proc/slabinfo: active objects x object size, and
the slab pages), the machine's CPU (busy, softirq) and MemAvailable; at the peak also
`conntrack -C` in lb's namespace. Reported: the peak against `--flows` x the object size.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import CpuTimes, header  # noqa: E402
from mininet.topo import Topo  # noqa: E402

from lblab.errors import UsageError  # noqa: E402
from lblab.lab import Lab  # noqa: E402
from lblab.workloads.floods import MAX_FLOOD_PACKETS, syn_flood  # noqa: E402
from lbnodes.l4 import CT_SYSCTL, Backend, L4Config, L4Node, conntrack_object_size  # noqa: E402
from topologies.hosts import LabHost  # noqa: E402

CONNTRACK_MAX = CT_SYSCTL.format("max")
CONNTRACK_BUCKETS = CT_SYSCTL.format("buckets")
SINK_IP = "10.9.0.1"
SINK_NET = "10.9.0.0/24"
LB_SINK_IP = "10.9.0.254"
SINK_PORT = 80
BUCKET_BYTES = 8  # one hlist_nulls_head per bucket
GiB = 1 << 30


def flooder_ip(i: int) -> str:
    return f"10.8.{i}.1"


def lb_ip(i: int) -> str:
    return f"10.8.{i}.254"


class FloodTopo(Topo):
    """f1..fN -- lb -- sink, every link a veth between two namespaces (no switch)."""

    def build(self, flooders: int = 2) -> None:
        lb = self.addHost("lb", cls=LabHost, ip=f"{lb_ip(1)}/24", forward=True)
        for i in range(1, flooders + 1):
            f = self.addHost(f"f{i}", cls=LabHost, ip=f"{flooder_ip(i)}/24",
                             routes=[(SINK_NET, lb_ip(i))])
            self.addLink(f, lb, params2={"ip": f"{lb_ip(i)}/24"})
        sink = self.addHost("sink", ip=f"{SINK_IP}/24")  # no route back: nothing answers
        self.addLink(lb, sink, params1={"ip": f"{LB_SINK_IP}/24"})


# -- readers (pure parsers, then the files) -----------------------------------------------
def parse_ct_stat(text: str) -> dict[str, int]:
    """/proc/net/stat/nf_conntrack of one namespace: hex columns, one line per CPU. `entries`
    is the namespace's count (the same on every line); the others are summed over CPUs."""
    lines = text.split("\n")
    names = lines[0].split()
    rows = [[int(x, 16) for x in line.split()] for line in lines[1:] if line.strip()]
    out = {n: sum(r[i] for r in rows) for i, n in enumerate(names)}
    out["entries"] = rows[0][names.index("entries")] if rows else 0
    return out


def parse_slab(text: str, name: str = "nf_conntrack") -> dict[str, int] | None:
    """One cache's line of /proc/slabinfo: objects, object size and the bytes of its slabs."""
    for line in text.splitlines():
        cols = line.split()
        if cols and cols[0] == name:
            active, total, objsize, _per_slab, pages_per_slab = map(int, cols[1:6])
            num_slabs = int(cols[cols.index("slabdata") + 2])
            return {"active_objs": active, "num_objs": total, "objsize": objsize,
                    "slab_bytes": num_slabs * pages_per_slab * 4096}
    return None


def parse_net_dev(text: str) -> dict[str, tuple[int, int]]:
    """/proc/net/dev: interface -> (rx packets, tx packets)."""
    out = {}
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        cols = rest.split()
        if len(cols) >= 10:
            out[name.strip()] = (int(cols[1]), int(cols[9]))
    return out


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise OSError("no MemAvailable in /proc/meminfo")


def memory_problem(table: int, objsize: int) -> str | None:
    """Refuse a table that, full, would take more than a third of the available memory."""
    need = table * objsize + table * BUCKET_BYTES
    avail = mem_available()
    if 3 * need > avail:
        return (f"a full table of {table:,} entries takes {need / GiB:.2f} GiB; only "
                f"{avail / GiB:.1f} GiB available (want 3x)")
    return None


def writable(path: str) -> bool:
    import os

    try:
        return bool(os.stat(path).st_mode & 0o200) and os.access(path, os.W_OK)
    except OSError:
        return False


class Sampler(threading.Thread):
    def __init__(self, lb_pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.lb_pid, self.interval = lb_pid, interval
        self.rows: list[dict] = []
        self.stop = threading.Event()
        self.t0 = time.monotonic()

    def read(self, cpu: CpuTimes) -> dict:
        stat = parse_ct_stat(Path(f"/proc/{self.lb_pid}/net/stat/nf_conntrack").read_text())
        dev = parse_net_dev(Path(f"/proc/{self.lb_pid}/net/dev").read_text())
        slab = parse_slab(Path("/proc/slabinfo").read_text()) or {}
        return {"t": time.monotonic() - self.t0, "entries": stat["entries"],
                "insert": stat.get("insert", 0), "drop": stat.get("drop", 0),
                "early_drop": stat.get("early_drop", 0),
                "insert_failed": stat.get("insert_failed", 0), "dev": dev,
                **slab, "mem_available": mem_available(), **cpu.sample()}

    def run(self) -> None:
        cpu = CpuTimes()
        while not self.stop.is_set():
            self.rows.append(self.read(cpu))
            self.stop.wait(self.interval)
        self.rows.append(self.read(cpu))


def rates(rows: list[dict], flooders: int) -> list[dict]:
    """Per interval: packets/s lb received from the flooders and forwarded to the sink, and
    how fast its table grew (new entries/s until the first ones expire, `--life` s in)."""
    out = []
    front = [f"lb-eth{i}" for i in range(flooders)]
    back = f"lb-eth{flooders}"
    for a, b in zip(rows, rows[1:], strict=False):
        dt = b["t"] - a["t"] or 1e-9
        rx = sum(b["dev"].get(n, (0, 0))[0] - a["dev"].get(n, (0, 0))[0] for n in front)
        fwd = b["dev"].get(back, (0, 0))[1] - a["dev"].get(back, (0, 0))[1]
        out.append({"t": b["t"], "rx_pps": rx / dt, "fwd_pps": fwd / dt,
                    "growth_per_s": (b["entries"] - a["entries"]) / dt,
                    "entries": b["entries"], "busy": b["busy"], "softirq": b["softirq"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flows", type=int, default=3_000_000, help="SYNs over all flooders")
    ap.add_argument("--life", type=int, default=30, help="SYN_SENT timeout in lb (s)")
    ap.add_argument("--flooders", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=40, help="each flood's time bound")
    ap.add_argument("--table", type=int, default=1 << 22, help="nf_conntrack_max meanwhile")
    ap.add_argument("--interval", type=float, default=1.0)
    args = ap.parse_args()
    per_flooder = -(-args.flows // args.flooders)
    if per_flooder > MAX_FLOOD_PACKETS or args.table < args.flows:
        raise UsageError(f"--flows / --flooders must be <= {MAX_FLOOD_PACKETS:,} and "
                         "--table >= --flows")
    print(header("bench/conntrack_scale.py"), flush=True)
    objsize = conntrack_object_size() or 0
    print(f"the note: {args.flows:,} flows x 500 B = {args.flows * 500 / 1e9:.2f} GB; this "
          f"kernel's nf_conntrack object: {objsize} B, so {args.flows:,} x {objsize} = "
          f"{args.flows * objsize / GiB:.2f} GiB", flush=True)
    with Lab("bench-conntrack", FloodTopo(flooders=args.flooders)) as lab:
        if not lab.caps.conntrack_max_writable:
            raise UsageError("nf_conntrack_max is not writable here (root in the initial "
                             "network namespace only)")
        lb = L4Node(lab, L4Config("lb", LB_SINK_IP, SINK_PORT,
                                  (Backend("sink", SINK_IP, SINK_PORT),), mode="router",
                                  backend_ifname=f"lb-eth{args.flooders}",
                                  ct_timeouts={"tcp_timeout_syn_sent": args.life})).start()
        for key in ("all", "default", *(f"lb-eth{i}" for i in range(args.flooders + 1))):
            lab.run("lb", ["sysctl", "-q", "-w", f"net.ipv4.conf.{key}.rp_filter=0"])
        life = lab.run("lb", ["cat", CT_SYSCTL.format("tcp_timeout_syn_sent")]).strip()
        print(f"lb: SYN_SENT timeout {life} s (its namespace only)", flush=True)
        lb.flush_conntrack()
        changes = []
        table = str(args.table)
        with contextlib.ExitStack() as restore:  # unwinds last in, first out
            old = restore.enter_context(lab.global_sysctl(
                CONNTRACK_MAX, table, check=lambda: memory_problem(args.table, objsize)))
            changes.append((CONNTRACK_MAX, old, table))
            if writable(CONNTRACK_BUCKETS):
                old = restore.enter_context(lab.global_sysctl(CONNTRACK_BUCKETS, table))
                changes.append((CONNTRACK_BUCKETS, old, table))
            else:
                print(f"{CONNTRACK_BUCKETS} is not writable here: left as it is", flush=True)
            # first on the way out: empty lb's table, so no restore rehashes millions
            restore.callback(lb.flush_conntrack)
            for path, old, new in changes:
                print(f"global: {path} {old} -> {new} (restored after the flood)", flush=True)
            peak = flood(lab, args, per_flooder)
        for path, old, _ in changes:
            now = Path(path).read_text().strip()
            print(f"restored: {path} = {now} ({'as before' if now == old else 'NOT ' + old})")
    report(args, objsize, *peak)


def flood(lab: Lab, args: argparse.Namespace, per_flooder: int) -> tuple:
    sampler = Sampler(lab.host("lb").pid, args.interval)
    slab0 = parse_slab(Path("/proc/slabinfo").read_text()) or {}
    sampler.start()
    results: dict[str, object] = {}

    def one(i: int) -> None:
        try:
            results[f"f{i}"] = syn_flood(lab, f"f{i}", SINK_IP, SINK_PORT, count=per_flooder,
                                         seconds=args.seconds, spoof_sources=True)
        except Exception as exc:  # noqa: BLE001 - reported below
            results[f"f{i}"] = exc

    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(1, args.flooders + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent_s = time.monotonic() - t0
    cli_count = lab.run("lb", ["conntrack", "-C"]).strip()
    time.sleep(args.interval)
    sampler.stop.set()
    sampler.join()
    sent = 0
    for name, res in sorted(results.items()):
        if isinstance(res, Exception):
            raise res
        why = ("its count" if res.stopped_by_count else
               "its time bound" if res.stopped_by_bound else "hping3 exiting")
        print(f"{name}: {res.sent:,} SYNs sent, stopped by {why}")
        sent += res.sent or 0
    return (sampler.rows, rates(sampler.rows, args.flooders), slab0, sent_s, int(cli_count),
            sent)


def report(args: argparse.Namespace, objsize: int, rows: list[dict], per_s: list[dict],
           slab0: dict, sent_s: float, cli_count: int, sent: int) -> None:
    print(f"\n{'t s':>5} {'rx pps':>9} {'fwd pps':>9} {'growth/s':>9} {'entries':>10} "
          f"{'CPU':>5} {'softirq':>7}")
    for r in per_s:
        print(f"{r['t']:5.1f} {r['rx_pps']:9,.0f} {r['fwd_pps']:9,.0f} {r['growth_per_s']:9,.0f} "
              f"{r['entries']:10,} {r['busy']:5.0%} {r['softirq']:7.0%}")
    top = max(rows, key=lambda r: r["entries"])
    first, last = rows[0], rows[-1]
    front = [f"lb-eth{i}" for i in range(args.flooders)]
    received = sum(last["dev"].get(n, (0, 0))[0] - first["dev"].get(n, (0, 0))[0]
                   for n in front)
    inserted = last["insert"] - first["insert"]  # 0 where the kernel no longer counts it
    top_rx = max((x["rx_pps"] for x in per_s), default=0)
    busy_rows = [r for r in per_s if r["rx_pps"] > 0.1 * top_rx]
    rate = received / sent_s
    slab_objs = top.get("active_objs", 0) - slab0.get("active_objs", 0)
    print(f"\nflood: {sent:,} SYNs sent, {received:,} received by lb in {sent_s:.1f} s "
          f"({rate:,.0f}/s; the note: 100,000/s), inserts counted {inserted:,}, drops "
          f"{last['drop'] - first['drop']}, early drops "
          f"{last['early_drop'] - first['early_drop']}")
    if busy_rows:
        print(f"while flooding: machine CPU median "
              f"{statistics.median(r['busy'] for r in busy_rows):.0%}, softirq median "
              f"{statistics.median(r['softirq'] for r in busy_rows):.0%}")
    want = args.flows * objsize
    print(f"peak held: {top['entries']:,} entries at t = {top['t']:.1f} s (conntrack -C at the "
          f"end of the flood: {cli_count:,}); target {args.flows:,} "
          f"({top['entries'] / args.flows:.0%})")
    print(f"slab nf_conntrack at the peak: {top.get('active_objs', 0):,} objects "
          f"(+{slab_objs:,}) x {objsize} B = {top.get('active_objs', 0) * objsize / GiB:.3f} "
          f"GiB, {top.get('slab_bytes', 0) / GiB:.3f} GiB of slab pages; "
          f"{args.flows:,} x {objsize} B = {want / GiB:.3f} GiB; hash buckets "
          f"{args.table:,} x {BUCKET_BYTES} B = {args.table * BUCKET_BYTES / 2**20:.0f} MiB")
    print(f"MemAvailable: {first['mem_available'] / GiB:.2f} GiB before, "
          f"{min(r['mem_available'] for r in rows) / GiB:.2f} GiB at the lowest")
    if rate * args.life < args.flows:
        print(f"this machine stops at {rate:,.0f} new flows/s (what bound it: the CPU, drop "
              f"and growth figures above), so {args.life} s of it hold "
              f"~{rate * args.life:,.0f} entries, not {args.flows:,}")


if __name__ == "__main__":
    main()
