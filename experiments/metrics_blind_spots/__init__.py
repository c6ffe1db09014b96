"""metrics-blind-spots: what L4 counters, averages, sampled traces and a closed-loop load
tool do not show, against every request's latency in HDR histograms.

Wiring (topologies/two_tier.py): c1 -> s1 -> l4 (nftables DNAT + conntrack, 10.0.0.1),
l7t (HAProxy mode tcp, 10.0.0.2), l7h (HAProxy mode http, 10.0.0.3) -> s2 -> b1..bB
(backends with fault knobs, constant service time, workers enough that nothing queues).
Ground truth: the open-loop client's record of every request (lblab.workloads.client) and
HAProxy's per-request log with its timers; the operator's views: the L4 node's counters,
HAProxy's stats socket and its Prometheus exporter.

Variants (one lab):
  l4-view               between t1 and t2 a share f of requests answers 500; the client
                        spreads one request per connection over the three LB nodes
  tail-regression       between t1 and t2 a share f of requests gets +delta (through l7h)
  sampling              a share (0.1 %..1 %) of requests gets +delta all run; a 1 % tracer
                        sample is drawn from the full record set, many times
  coordinated-omission  every backend is SIGSTOPped for S seconds mid-run while wrk (closed
                        loop, C connections) and the open-loop client both load l7h

Claims (claims.py) are predicted from the parameters: binomial shares, the mixture's p99 and
mean, HAProxy's moving average over 512 requests, the SLO seconds the averages hide, a
tracer sample's chance to hold the tail, and the closed/open-loop stall model (checked
against the wrk2 README's example in the unit tests).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lblab.driver import Experiment, LabPlan, Repetition, VariantPlan, VariantRun
from lblab.errors import LabError
from lblab.lab import Lab
from lblab.ready import wait_until
from lblab.workloads.client import ClientConfig
from lblab.workloads.handles import BackendHandle, run_client, start_backend
from lbnodes.l4 import Backend, L4Config, L4Node
from lbnodes.l7 import L7Config, L7Node, Server
from topologies.two_tier import ROLES, TwoTierTopo, backend_ip, lb_front_ip

from . import analysis, claims, nodes, plots
from .params import FAULT_OFF, FAULT_ON, PATHS, RESUME, STALL, Params, quick

BACKEND_PORT = 8080
WRK_LUA = Path(__file__).with_name("wrk_record.lua")
WARMUP_REQUESTS, WARMUP_RATE = 5 * 512, 800.0
"""Normal requests that bring HAProxy's 512-request averages within 1 % of normal."""
TIMEOUT_S = 2.0
"""The open-loop client's timeout outside coordinated-omission (nothing is that slow)."""


@dataclass
class Env:
    lab: Lab
    backends: list[BackendHandle]
    l4: L4Node
    l7: dict[str, L7Node]
    logs: dict[str, nodes.LogCollector]
    sizes: dict[str, int] = field(default_factory=dict)


def l7_config(p: Params, name: str, mode: str, log_socket: str, prom: str) -> L7Config:
    servers = tuple(Server(f"b{i}", backend_ip(i), BACKEND_PORT)
                    for i in range(1, p.backends + 1))
    return L7Config(name, lb_front_ip(PATHS.index(name) + 1), 80, servers, mode=mode,
                    maxconn=8192, log_socket=log_socket,
                    log_format=nodes.HTTP_LOG_FORMAT if mode == "http" else nodes.TCP_LOG_FORMAT,
                    prometheus_socket=prom)


class MetricsBlindSpots(Experiment):
    name = "metrics-blind-spots"
    title = "Metrics blind spots: L4 counters, averages, sampling and coordinated omission"
    summary = ("L4 counters miss an L7 error spike; averaged and sampled latency hide a tail "
               "regression the full HDR histogram shows; a closed-loop load tool hides a stall.")
    needs = ("root", "ovs_running", "haproxy", "wrk")
    Params = Params
    bring_up_s = 8.0

    quick = staticmethod(quick)

    def variants(self, p: Params) -> list[VariantPlan]:
        return [VariantPlan(name, p.end + 2) for name in p.variants]

    def lab(self, p: Params, key: str) -> LabPlan:
        return LabPlan(TwoTierTopo(clients=1, lb_names=",".join(PATHS), backends=p.backends),
                       roles=ROLES)

    def setup(self, lab: Lab, p: Params, rep: Repetition) -> Env:
        handles = [start_backend(lab, f"b{i}", backend_ip(i), port=BACKEND_PORT,
                                 workers=p.workers, queue_limit=p.workers,
                                 service_ms=p.service_ms, service_dist="constant",
                                 seed=rep.seed + i)
                   for i in range(1, p.backends + 1)]
        pool = tuple(Backend(f"b{i}", backend_ip(i), BACKEND_PORT)
                     for i in range(1, p.backends + 1))
        l4 = L4Node(lab, L4Config("l4", lb_front_ip(1), 80, pool,
                                  backend_ifname="l4-eth1")).start()
        nodes.install_view(lab, "l4")
        logs, l7 = {}, {}
        for name, mode in (("l7t", "tcp"), ("l7h", "http")):
            logs[name] = nodes.LogCollector(lab.file(f"{name}-log.sock"))
            lab.on_teardown(logs[name].close)
            l7[name] = L7Node(lab, l7_config(p, name, mode, str(logs[name].path),
                                              str(lab.file(f"{name}-prom.sock")))).start()
        env = Env(lab, handles, l4, l7, logs)
        env.sizes = calibrate_sizes(env)
        rep.snapshot("response-sizes", env.sizes)
        return env

    def prepare(self, env: Env, p: Params, v: VariantPlan) -> None:
        """No fault, nothing in flight; before tail-regression, l7h's moving averages are
        warmed with WARMUP_REQUESTS normal requests (5 x 512: within 1 % of the normal
        latency), as the rtime prediction assumes."""
        set_faults(env, added_ms=0.0, added_fraction=1.0, error_rate=0.0)
        if v.name == "sampling":
            set_faults(env, added_ms=p.delta_ms, added_fraction=p.tail_fraction)
        if v.name == "tail-regression":
            warm = ClientConfig(targets=[f"http://{lb_front_ip(3)}/"], rate=WARMUP_RATE,
                                duration_s=WARMUP_REQUESTS / WARMUP_RATE, arrival="constant",
                                timeout_s=TIMEOUT_S, keepalive=True, seed=1)
            run_client(env.lab, "c1", warm, env.lab.file("warmup"), "warmup", read=False)
        wait_until(lambda: all(h.stats()["capacity"]["busy"] == 0 for h in env.backends),
                   timeout=10, what="backends to finish the previous variant's requests")
        for log in env.logs.values():
            log.drain()

    def measure(self, env: Env, p: Params, v: VariantPlan, run: VariantRun) -> None:
        {"l4-view": measure_l4_view, "tail-regression": measure_tail,
         "sampling": measure_sampling,
         "coordinated-omission": measure_co}[v.name](env, p, run)

    analyse = staticmethod(analysis.analyse)
    notes = staticmethod(claims.notes)
    plot = staticmethod(plots.plot)
    claims = staticmethod(claims.claims)


# -- the faults and the probes ------------------------------------------------------------
def set_faults(env: Env, **knobs: Any) -> None:
    for h in env.backends:
        h.set_faults(**knobs)


def calibrate_sizes(env: Env) -> dict[str, int]:
    """The bytes HAProxy in tcp mode relays for one 200 and for one injected 500 (its log's
    %B): what an error changes in an L4 byte count."""
    sizes = {}
    for status, rate in (("500", 1.0), ("200", 0.0)):
        set_faults(env, error_rate=rate)
        env.lab.run("c1", [sys.executable, "-c", CURL_ONE, f"http://{lb_front_ip(2)}/"])
        lines = env.logs["l7t"].drain()
        rows = nodes.parse_log(lines, nodes.TCP_LOG_FIELDS, 0.0)
        if len(rows) != 1:
            raise LabError(f"calibration: expected one tcp log line, got {lines!r}")
        sizes[status] = rows[0]["bytes"]
    set_faults(env, error_rate=0.0)
    return sizes


CURL_ONE = ("import sys, urllib.request, urllib.error\n"
            "try:\n    urllib.request.urlopen(sys.argv[1], timeout=5).read()\n"
            "except urllib.error.HTTPError as e:\n    e.read()\n")


def stat_row(node: L7Node, svname: str = "BACKEND") -> dict[str, str]:
    for row in node.api.show_stat():
        if row["pxname"] == node.backend and row["svname"] == svname:
            return row
    raise LabError(f"{node.cfg.name}: no {svname} row in show stat")


def _ints(row: dict[str, str], keys: tuple[str, ...], prefix: str) -> dict[str, int]:
    return {f"{prefix}{k}": int(row[k]) if row.get(k, "").isdigit() else 0 for k in keys}


HTTP_STAT_KEYS = ("stot", "hrsp_2xx", "hrsp_5xx", "econ", "eresp", "rtime", "ttime",
                  "rtime_max")
TCP_STAT_KEYS = ("stot", "econ", "eresp", "cli_abrt", "srv_abrt", "bout")


def probe_l4_view(env: Env) -> dict:
    row = nodes.read_view(env.lab, "l4")
    row.update(_ints(stat_row(env.l7["l7t"]), TCP_STAT_KEYS, "l7t_"))
    row.update(_ints(stat_row(env.l7["l7h"]), HTTP_STAT_KEYS, "l7h_"))
    return row


def probe_averages(env: Env) -> dict:
    node = env.l7["l7h"]
    row = _ints(stat_row(node), HTTP_STAT_KEYS, "")
    prom = nodes.scrape_prometheus(Path(node.cfg.prometheus_socket), node.backend)
    row["prom_rtime_ms"] = round(prom.get("response_time_average_seconds", 0.0) * 1000, 3)
    row["prom_ttime_ms"] = round(prom.get("total_time_average_seconds", 0.0) * 1000, 3)
    return row


def write_logs(env: Env, run: VariantRun, names: tuple[str, ...]) -> None:
    origin = run.timeline().origin
    if origin is None:
        raise LabError("the client never started its clock")
    for name in names:
        fields = nodes.HTTP_LOG_FIELDS if env.l7[name].cfg.mode == "http" \
            else nodes.TCP_LOG_FIELDS
        run.write_table(f"{name}-log", nodes.parse_log(env.logs[name].drain(), fields, origin))


def client_cfg(p: Params, targets: list[str], rate: float, keepalive: bool,
               timeout_s: float, seed: int) -> ClientConfig:
    return ClientConfig(targets=targets, rate=rate, duration_s=p.end, arrival="poisson",
                        timeout_s=timeout_s, keepalive=keepalive, seed=seed,
                        max_in_flight=4000)


# -- the variants -------------------------------------------------------------------------
def measure_l4_view(env: Env, p: Params, run: VariantRun) -> None:
    tl = run.timeline()
    tl.at(p.t1, FAULT_ON, lambda: set_faults(env, error_rate=p.error_fraction), slack_s=0.2)
    tl.at(p.t2, FAULT_OFF, lambda: set_faults(env, error_rate=0.0), slack_s=0.2)
    run.step(f"l4-view: {p.rate:g} req/s over l4, l7t, l7h; {p.error_fraction:.0%} answer "
             f"500 from {p.t1:g} to {p.t2:g} s")
    run.write_doc("counters-before", probe_l4_view(env))
    targets = [f"http://{lb_front_ip(i + 1)}/" for i in range(len(PATHS))]
    with run.sample(lambda: probe_l4_view(env), p.sample_s, table="counters"):
        run.client("c1", client_cfg(p, targets, p.rate, False, TIMEOUT_S, run.seed))
    write_logs(env, run, ("l7t", "l7h"))
    run.write_doc("counters-after", probe_l4_view(env))
    run.write_doc("conntrack", {"stats": env.l4.conntrack_stats(),
                                "states": env.l4.conntrack_states()})


def measure_tail(env: Env, p: Params, run: VariantRun) -> None:
    tl = run.timeline()
    tl.at(p.t1, FAULT_ON, lambda: set_faults(env, added_ms=p.delta_ms,
                                             added_fraction=p.slow_fraction), slack_s=0.2)
    tl.at(p.t2, FAULT_OFF, lambda: set_faults(env, added_ms=0.0, added_fraction=1.0),
          slack_s=0.2)
    run.step(f"tail-regression: {p.slow_fraction:.0%} of requests +{p.delta_ms:g} ms from "
             f"{p.t1:g} to {p.t2:g} s")
    with run.sample(lambda: probe_averages(env), p.sample_s, table="averages"):
        run.client("c1", client_cfg(p, [f"http://{lb_front_ip(3)}/"], p.rate, True,
                                    TIMEOUT_S, run.seed))
    write_logs(env, run, ("l7h",))


def measure_sampling(env: Env, p: Params, run: VariantRun) -> None:
    run.step(f"sampling: {p.tail_fraction:.2%} of requests +{p.delta_ms:g} ms all run")
    run.timeline()  # no fault; the client's start is still the clock logs are put on
    run.client("c1", client_cfg(p, [f"http://{lb_front_ip(3)}/"], p.rate, True, TIMEOUT_S,
                                run.seed))
    write_logs(env, run, ("l7h",))


def measure_co(env: Env, p: Params, run: VariantRun) -> None:
    """wrk and the open-loop client load l7h together; one stall hits both."""
    tl = run.timeline()
    pids = [h.proc.pid for h in env.backends if h.proc is not None]

    def send(sig: int) -> None:
        for pid in pids:
            os.kill(pid, sig)

    tl.at(p.stall_at, STALL, lambda: send(signal.SIGSTOP), slack_s=0.1)
    tl.at(p.stall_at + p.stall_s, RESUME, lambda: send(signal.SIGCONT), slack_s=0.1)
    run.step(f"coordinated-omission: wrk -c{p.connections} and {p.co_rate:g} req/s open "
             f"loop; every backend stopped {p.stall_s:g} s at {p.stall_at:g} s")
    out = run.dir / "wrk-raw.json"
    out.unlink(missing_ok=True)
    failure: list[BaseException] = []

    def open_loop() -> None:
        try:
            run.client("c1", client_cfg(p, [f"http://{lb_front_ip(3)}/"], p.co_rate, True,
                                        p.stall_s + 3, run.seed))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the measuring thread
            failure.append(exc)

    worker = threading.Thread(target=open_loop, name="open-loop")
    worker.start()
    wrk = None
    try:
        wait_until(lambda: tl.origin is not None or not worker.is_alive(), timeout=30,
                   what="the open-loop client to start its schedule")
        seconds = max(1, round(p.end))
        wrk = env.lab.spawn("c1", [
            "wrk", f"-t{p.connections}", f"-c{p.connections}", f"-d{seconds}s",
            f"--timeout={round(p.stall_s + 5)}s", "-s", str(WRK_LUA),
            f"http://{lb_front_ip(3)}/"], name="wrk", env={"MBS_WRK_OUT": str(out)})
        launched = time.time()
        code = wrk.wait(timeout=seconds + 30)
        if code != 0 or not out.exists():
            raise LabError(f"wrk exited {code} without its record (see logs/wrk.log)")
    finally:
        send(signal.SIGCONT)  # never leave a backend stopped
        if wrk is not None and wrk.poll() is None:
            env.lab.stop_process(wrk)
        worker.join(timeout=p.end + p.stall_s + 60)
    if failure:
        raise failure[0]
    raw = json.loads(out.read_text())
    origin = tl.origin
    assert origin is not None
    rows = [{"thread": i, "sent_s": round(sent - origin, 6), "latency_ms": lat,
             "status": status}
            for i, thread in enumerate(raw.pop("threads")) for sent, lat, status in thread]
    run.write_table("wrk-records", rows)
    run.write_doc("wrk-summary", {**raw, "launched_s": round(launched - origin, 3),
                                  "connections": p.connections})
    out.unlink()
    write_logs(env, run, ("l7h",))


EXPERIMENT = MetricsBlindSpots()
