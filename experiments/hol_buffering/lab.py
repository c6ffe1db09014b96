"""hol-and-buffering's lab: topology, the running nodes, the loss, and each variant's load.

    c1 -> s1 -> l7   (HAProxy: :81 proto h2, :80 HTTP/1.1)                  -> s2 -> b1:8080
             -> l7s  (HAProxy, streaming; :81 proto h2 for slow-h2)          -> s2 -> b1:8081
             -> lbuf (the buffering tier, in its own memory cgroup)          -> s2 -> b1:8081
b1 runs the capacity-model backend (:8080, GET /bytes/N) and the slow sink (:8081).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from experiments.hol_buffering import model
from experiments.hol_buffering.bodies import BodiesConfig
from experiments.hol_buffering.params import LOSS_ON, SAMPLE_S, Params
from experiments.hol_buffering.uploads import UploadsConfig
from lblab.driver import LabPlan, VariantRun
from lblab.errors import LabError
from lblab.lab import Lab
from lblab.ready import wait_until
from lblab.workloads.h2_client import StreamsConfig
from lblab.workloads.handles import start_backend
from lbnodes.l7 import L7Config, L7Node, Server
from topologies.two_tier import ROLES, TwoTierTopo, backend_ip, lb_front_ip

from .memlimit import MemoryLimit

BACKEND_PORT = 8080
SINK_PORT = 8081
H2_PORT = 81
"""HAProxy's h2-only bind (proto h2): the h2 variants use it, the h1 variants port 80."""
LB_NAMES = ("l7", "l7s", "lbuf")
FRONT = {name: lb_front_ip(i) for i, name in enumerate(LB_NAMES, start=1)}
NFT_TABLE = "lblab_hol"
RTO_ONLY_SYSCTLS = {"net.ipv4.tcp_sack": "0", "net.ipv4.tcp_reordering": "127",
                    "net.ipv4.tcp_early_retrans": "0", "net.ipv4.tcp_recovery": "0"}
"""Per-namespace (l7's only): its connections negotiate no SACK, so RACK (which this kernel
keeps on whatever tcp_recovery says, and which needs SACK) cannot detect a loss; fast
retransmit needs 127 duplicate ACKs (never, at S x 3 segments a round); no tail loss probe.
Every lost segment then waits for the retransmission timeout."""


def lab_plan(p: Params) -> LabPlan:
    return LabPlan(TwoTierTopo(clients=1, lb_names=",".join(LB_NAMES), backends=1),
                   roles=ROLES)


def loss_ruleset(src: str, loss_pct: float, port: int = 80) -> str:
    """The client's input chain: count the proxy's packets, drop p of them at random."""
    threshold = round(loss_pct * 100)
    return (f"table inet {NFT_TABLE} {{\n"
            "\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n"
            f"\t\tip saddr {src} tcp sport {port} counter\n"
            f"\t\tip saddr {src} tcp sport {port} numgen random mod 10000 < {threshold} "
            "counter drop\n\t}\n}\n")


def nft_counters(listing: dict) -> tuple[int, int]:
    """(packets seen, packets dropped) from `nft -j list table inet lblab_hol`."""
    seen = dropped = 0
    for item in listing.get("nftables", []):
        rule = item.get("rule")
        if not rule:
            continue
        exprs = rule.get("expr", [])
        packets = next((e["counter"]["packets"] for e in exprs if "counter" in e), 0)
        if any("drop" in e for e in exprs):
            dropped = packets
        else:
            seen = packets
    return seen, dropped


class Env:
    """The running lab: backend and sink on b1, two HAProxies, and (per variant) the tier."""

    def __init__(self, lab: Lab, p: Params, seed: int) -> None:
        self.lab, self.p = lab, p
        start_backend(lab, "b1", backend_ip(1), port=BACKEND_PORT, workers=2 * p.streams,
                      queue_limit=4 * p.streams, service_ms=1.0, service_dist="constant",
                      seed=seed)
        self.sink = self._bodies("b1", BodiesConfig(
            "sink", backend_ip(1), SINK_PORT, read_bps=p.sink_mib_s * (1 << 20)))
        if p.rto_only:
            for key, value in RTO_ONLY_SYSCTLS.items():
                lab.run("l7", ["sysctl", "-q", "-w", f"{key}={value}"])
        self.h2lb = L7Node(lab, L7Config("l7", FRONT["l7"], 80,
                                         (Server("b1", backend_ip(1), BACKEND_PORT),),
                                         h2_port=H2_PORT)).start()
        # Connect timeout: a SYN the busy userspace switch drops is resent after 1 s, 3 s.
        self.uplb = L7Node(lab, L7Config("l7s", FRONT["l7s"], 80,
                                         (Server("b1", backend_ip(1), SINK_PORT),),
                                         timeout_connect_ms=3500, h2_port=H2_PORT)).start()
        self.sysctls = {k: lab.run("l7", ["sysctl", "-n", k]).strip() for k in RTO_ONLY_SYSCTLS}
        # the socket buffers HAProxy l7s and the sink may use (max of tcp_wmem / tcp_rmem)
        self.buffers = {node: {key: int(lab.run(node, ["sysctl", "-n", f"net.ipv4.{key}"])
                                        .split()[-1]) for key in ("tcp_wmem", "tcp_rmem")}
                        for node in ("l7s", "b1")}

    def _bodies(self, node: str, cfg: BodiesConfig, name: str = "") -> Any:
        path = self.lab.file(f"{name or node}-bodies.json")
        path.write_text(json.dumps(asdict(cfg)))
        proc = self.lab.spawn(node, [sys.executable, "-m", "experiments.hol_buffering.bodies",
                                     str(path)], name=name or f"bodies-{cfg.role}-{node}")
        self.lab.wait_listening(node, cfg.port, proc=proc)
        return proc

    # -- loss ------------------------------------------------------------------------------
    def measure_loss(self, mode: str, run: VariantRun, loss_pct: float) -> None:
        p, lab = self.p, self.lab
        tag = "streams"
        port = H2_PORT if mode == "h2" else 80
        cfg = StreamsConfig(host=FRONT["l7"], port=port, mode=mode, streams=p.streams,
                            rounds=p.rounds, path=f"/bytes/{p.response_bytes}",
                            gap_s=p.gap_ms / 1000,
                            timeout_s=max(10.0, 40 * model.RTO_MIN_MS / 1000),
                            records=str(run.dir / f"{tag}.csv"),
                            summary=str(run.dir / f"{tag}-summary.json"),
                            ready=str(lab.file(f"{run.plan.name}.ready")),
                            go=str(lab.file(f"{run.plan.name}.go")))
        for marker in (cfg.ready, cfg.go):
            Path(marker).unlink(missing_ok=True)
        tl = run.start_clock()
        cfg.start_file = str(tl.start_file)
        path = lab.file(f"{run.plan.name}-streams.json")
        path.write_text(json.dumps(asdict(cfg)))
        proc = lab.spawn("c1", [sys.executable, "-m", "lblab.workloads.h2_client", str(path)],
                         name=f"h2-client-{run.plan.name}")

        def ready() -> bool:
            if proc.poll() is not None:
                raise LabError(f"the stream client exited ({proc.returncode}) before ready")
            return Path(cfg.ready).exists()

        wait_until(ready, timeout=20, what="the stream client's warm-up round")
        before = self.proxy_tcp()
        lab.run("c1", ["nft", "-f", "-"], stdin=loss_ruleset(FRONT["l7"], loss_pct, port))
        try:
            Path(cfg.go).write_text("go")
            bound = p.rounds * (cfg.timeout_s / 4 + cfg.gap_s) + 30
            code = proc.wait(timeout=bound)
            listing = json.loads(lab.run("c1", ["nft", "-j", "list", "table", "inet",
                                                NFT_TABLE]))
        finally:
            lab.run("c1", ["nft", "delete", "table", "inet", NFT_TABLE], check=False)
        if code != 0:
            raise LabError(f"the stream client failed (exit {code}); see its log")
        after = self.proxy_tcp()
        run.write_doc("proxy-tcp", {k: after[k] - before.get(k, 0) for k in after})
        seen, dropped = nft_counters(listing)
        run.write_doc("loss", {"seen": seen, "dropped": dropped, "loss_pct": loss_pct,
                               "rule": loss_ruleset(FRONT["l7"], loss_pct, port),
                               "proxy_sysctls": self.sysctls, "event": LOSS_ON})
        run.write_doc("haproxy-frontend", _frontend_h2(self.h2lb))

    # -- slow stream -----------------------------------------------------------------------
    def measure_slow(self, mode: str, run: VariantRun) -> None:
        p, lab = self.p, self.lab
        cfg = StreamsConfig(host=FRONT["l7s"], port=H2_PORT if mode == "slow-h2" else 80,
                            mode=mode, path="/",
                            upload_bytes=int(p.slow_upload_mib * (1 << 20)),
                            upload_headers={"X-Pause-Ms": str(int(p.slow_pause_ms))},
                            siblings=p.siblings, sibling_every_s=p.sibling_every_s,
                            sibling_start_s=p.sibling_start_s,
                            timeout_s=p.slow_pause_ms / 1000 + 30,
                            records=str(run.dir / "slow.csv"),
                            summary=str(run.dir / "slow-summary.json"),
                            start_file=str(run.start_clock().start_file))
        path = lab.file(f"{run.plan.name}-slow.json")
        path.write_text(json.dumps(asdict(cfg)))
        proc = lab.spawn("c1", [sys.executable, "-m", "lblab.workloads.h2_client", str(path)],
                         name=f"h2-client-{run.plan.name}")
        code = proc.wait(timeout=cfg.timeout_s + 10)
        if code != 0:
            raise LabError(f"the slow-stream client failed (exit {code}); see its log")
        run.write_doc("slow", {"pause_s": p.slow_pause_ms / 1000, "buffers": self.buffers,
                               "bufsize": p.bufsize, "stream_window": model.H2_STREAM_WINDOW})
        run.write_doc("haproxy-frontend", _frontend_h2(self.uplb))

    def proxy_tcp(self) -> dict[str, int]:
        """The proxy namespace's TCP counters (Tcp and TcpExt of /proc/net/snmp and
        /proc/net/netstat): how its losses were recovered (RTO, fast retransmit, probes)."""
        out: dict[str, int] = {}
        for table in ("snmp", "netstat"):
            lines = self.lab.run("l7", ["cat", f"/proc/net/{table}"]).splitlines()
            for names, values in zip(lines[::2], lines[1::2], strict=False):
                prefix, _, keys = names.partition(":")
                if prefix not in ("Tcp", "TcpExt"):
                    continue
                for key, value in zip(keys.split(), values.partition(":")[2].split(),
                                      strict=False):
                    if value.lstrip("-").isdigit():
                        out[f"{prefix}.{key}"] = int(value)
        return out

    # -- buffering -------------------------------------------------------------------------
    def measure_uploads(self, kind: str, run: VariantRun) -> None:
        p = self.p
        if kind == "buffer-haproxy":
            self._uploads_through_haproxy(run)
            return
        tier = BodiesConfig("tier", FRONT["lbuf"], 80, upstream_ip=backend_ip(1),
                            upstream_port=SINK_PORT,
                            max_body=p.max_body if kind == "buffer-max-body" else 0,
                            max_inflight=p.conc_limit if kind == "buffer-conc-limit" else 0)
        limit = MemoryLimit(f"lblab-{self.lab.name}-{kind}")
        change = limit.record()
        # The lab owns the cgroup: removed when this variant ends, and by the guardian or
        # `lblab clean` after a crash; the result names it as a machine-wide change.
        with self.lab.cgroup(limit.dir, change):
            proc = self._bodies("lbuf", tier, name=f"tier-{kind}")
            limit.add(proc.pid)
            # One small upload at rest: the tier's code paths are paged in and charged.
            self._ramp(run, FRONT["lbuf"], "warmup", uploads=1, body=65536, clock=False)
            rest = limit.usage()
            limit.set_limit(rest + p.headroom_bytes)
            change.update(limit.record(rest + p.headroom_bytes))
            run.write_doc("memory-limit", {"version": limit.version, "rest_bytes": rest,
                                           "limit_bytes": limit.limit(),
                                           "headroom_bytes": p.headroom_bytes,
                                           "path": str(limit.dir)})

            def probe() -> dict:
                alive = proc.poll() is None
                try:
                    return {"usage_bytes": limit.usage(), "oom_kills": limit.oom_kills(),
                            "alive": alive}
                except OSError:
                    return {"usage_bytes": None, "oom_kills": None, "alive": alive}

            with run.sample(probe, SAMPLE_S, table="memory"):
                self._ramp(run, FRONT["lbuf"], "uploads")
            run.write_doc("tier", {"exit_code": proc.poll(), "oom_kills": limit.oom_kills(),
                                   "peak_bytes": _peak(limit)})
            if proc.poll() is None:
                self.lab.stop_process(proc)

    def _uploads_through_haproxy(self, run: VariantRun) -> None:
        lb = self.uplb
        pid = lb.proc.pid

        def probe() -> dict:
            info = _show_info(lb)
            return {"rss_bytes": _rss(pid), "pool_used_bytes": info.get("PoolUsed_bytes"),
                    "curr_conns": info.get("CurrConns")}

        run.write_doc("haproxy-before", probe())
        with run.sample(probe, SAMPLE_S, table="memory"):
            self._ramp(run, FRONT["l7s"], "uploads")
        run.write_doc("haproxy-after", probe())

    def _ramp(self, run: VariantRun, host: str, tag: str, *, uploads: int = 0,
              body: int = 0, clock: bool = True) -> None:
        p, lab = self.p, self.lab
        cfg = UploadsConfig(host=host, port=80, uploads=uploads or p.uploads,
                            every_s=p.every_s, body_bytes=body or p.body_bytes,
                            timeout_s=p.hold_s * (p.uploads + 2) + 10,
                            records=str(run.dir / f"{tag}.csv"))
        if clock:
            cfg.start_file = str(run.start_clock().start_file)
        path = lab.file(f"{run.plan.name}-{tag}.json")
        path.write_text(json.dumps(asdict(cfg)))
        proc = lab.spawn("c1", [sys.executable, "-m", "experiments.hol_buffering.uploads",
                                str(path)], name=f"uploads-{run.plan.name}-{tag}")
        code = proc.wait(timeout=cfg.timeout_s + cfg.uploads * cfg.every_s + 30)
        if code != 0:
            raise LabError(f"the upload client failed (exit {code}); see its log")


def _peak(limit: MemoryLimit) -> int | None:
    path = limit.dir / limit.files["peak"]
    return int(path.read_text()) if path.exists() else None


def _rss(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _show_info(lb: L7Node) -> dict[str, int]:
    out = {}
    for line in lb.api.command("show info").splitlines():
        key, sep, value = line.partition(": ")
        if sep and value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def _frontend_h2(lb: L7Node) -> dict:
    """HAProxy's own h2 counters on the frontend: proof the streams were HTTP/2."""
    for row in lb.api.show_stat():
        if row["svname"] == "FRONTEND":
            return {k: int(v) for k, v in row.items()
                    if k.startswith("h2_") and v.isdigit()} | {"req_tot": int(row["req_tot"]
                                                               or 0)}
    return {}
