"""header-normalization: a corpus of ambiguous requests through strict and lenient HAProxy
to backends with different HTTP/1.1 parsers.

Wiring (topologies/two_tier.py): c1 -> s1 -> lb1..lbK (one HAProxy each) -> s2 -> b1..bK,
backend i running parser i (lblab/workloads/parsers.py: h11, httptools/llhttp, http.server,
aiohttp's pure-Python parser) on port 8080; lb_i forwards only to b_i, so each chain is one
proxy and one parser. HAProxy stamps every request it forwards with `x-lblab-client:
IP:PORT` (its client's address) and closes the server connection after each response, so a
request a backend reads without the stamp is one the proxy never forwarded as one.

The raw client (lblab/workloads/raw_http.py) sends each case's exact bytes on its own
connection to every component at once and records what came back.

Variants (one lab):
  direct           each backend alone (the client in lb1, which has a leg on the back side)
  strict           HAProxy 2.6 as configured by default
  lenient          + option accept-invalid-http-request
  case-adjust      strict + h1-case-adjust for the names legacy cases rely on, and
                   option h1-case-adjust-bogus-server
  restrict-delete  strict + option http-restrict-req-hdr-names delete
  restrict-reject  strict + option http-restrict-req-hdr-names reject

Claims (claims.py): strict HAProxy does what RFC 9112/9110 require for every case marked
reject or normalise (exceptions named); no desync through strict HAProxy, for each backend;
lenient parsing relaxes exactly the framing cases whose only defect is a character it
documents relaxing (computed from the bytes: a header name with a non-token character is
forwarded as an unknown field and the request framed by the rest); HAProxy lowercases the
names legacy backends compare and h1-case-adjust restores them; http-restrict-req-hdr-names
deletes / rejects exactly the names the corpus's bytes say it should.
"""

from __future__ import annotations

import base64
import json
import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lblab.driver import Experiment, LabPlan, Repetition, VariantPlan, VariantRun
from lblab.errors import LabError
from lblab.lab import Lab
from lblab.ready import wait_until
from lblab.workloads.floods import check_target
from lblab.workloads.parsers import STAMP
from lbnodes.l7 import L7Config, L7Node, Server
from topologies.two_tier import ROLES, TwoTierTopo, backend_ip, client_ip, lb_front_ip

from . import analysis, claims, corpus, plots
from .params import Params, proxy_setting, quick

BACKEND_PORT = 8080
CONCURRENCY = 64


@dataclass
class ParserBackend:
    kind: str
    node: str
    ip: str
    log: Path
    proc: Any = None


@dataclass
class Env:
    lab: Lab
    cases: list[corpus.Case]
    backends: list[ParserBackend]
    proxies: list[L7Node] = field(default_factory=list)


def start_parser(lab: Lab, node: str, ip: str, kind: str) -> ParserBackend:
    log = lab.file(f"{node}-parsed.jsonl")
    log.unlink(missing_ok=True)
    cfg = lab.file(f"{node}-parser.json")
    cfg.write_text(json.dumps({"kind": kind, "ip": ip, "port": BACKEND_PORT, "log": str(log)}))
    proc = lab.spawn(node, [sys.executable, "-m", "lblab.workloads.parsers", str(cfg)],
                     name=f"parser-{kind}", env={"AIOHTTP_NO_EXTENSIONS": "1"})
    lab.wait_listening(node, BACKEND_PORT, proc=proc)
    return ParserBackend(kind, node, ip, log, proc)


def _connections_open(log: Path, offset: int) -> int:
    with open(log, "rb") as f:
        f.seek(offset)
        rows = analysis.load_json_rows(f.read().decode())
    opened = {r["conn"] for r in rows if r.get("event") == "open"}
    closed = {r["conn"] for r in rows if r.get("event") == "close"}
    return len(opened - closed)


class HeaderNormalization(Experiment):
    name = "header-normalization"
    title = "Header normalization: strict and lenient HAProxy over four HTTP/1.1 parsers"
    summary = ("A corpus of ambiguous requests (duplicate Content-Length, CL + TE, "
               "Transfer-Encoding obfuscations, duplicate Host, bare LF, NUL, obs-fold...) "
               "sent as exact bytes through strict and lenient HAProxy to h11, llhttp, "
               "http.server and aiohttp: who rejects, who normalises, who desyncs.")
    needs = ("root", "ovs_running", "haproxy")
    Params = Params
    bring_up_s = 8.0

    quick = staticmethod(quick)

    def variants(self, p: Params) -> list[VariantPlan]:
        # Every case at once: about one read timeout per batch of CONCURRENCY connections,
        # plus HAProxy's restart and the backends' closing.
        n = len(corpus.load(p.corpus)) * len(p.backends)
        seconds = p.idle_s * math.ceil(n / CONCURRENCY) + 1.5
        return [VariantPlan(v, round(seconds, 1), setting=v) for v in p.variants]

    def lab(self, p: Params, key: str) -> LabPlan:
        k = len(p.backends)
        return LabPlan(TwoTierTopo(clients=1, lbs=k, backends=k), roles=ROLES)

    def setup(self, lab: Lab, p: Params, rep: Repetition) -> Env:
        cases = corpus.load(p.corpus)
        rep.snapshot("corpus", [{**c.to_json(), "data_b64": base64.b64encode(c.data).decode()}
                                for c in cases])
        backends = [start_parser(lab, f"b{i}", backend_ip(i), kind)
                    for i, kind in enumerate(p.backends, start=1)]
        return Env(lab, cases, backends)

    def prepare(self, env: Env, p: Params, v: VariantPlan) -> None:
        """The variant's HAProxy in front of each backend (none for direct)."""
        for node in env.proxies:
            node.stop()
        env.proxies = []
        setting = proxy_setting(v.name, env.cases)
        if setting is None:
            return
        for i, b in enumerate(env.backends, start=1):
            cfg = L7Config(f"lb{i}", lb_front_ip(i), 80, (Server(b.node, b.ip, BACKEND_PORT),),
                           keepalive_to_servers=False, timeout_client_ms=int(p.max_s * 2000),
                           set_request_headers=((STAMP, "%[src]:%[src_port]"),), **setting)
            env.proxies.append(L7Node(env.lab, cfg).start())

    def measure(self, env: Env, p: Params, v: VariantPlan, run: VariantRun) -> None:
        lab = env.lab
        proxied = proxy_setting(v.name, env.cases) is not None
        node = "c1" if proxied else "lb1"
        offsets = {b.kind: b.log.stat().st_size if b.log.exists() else 0 for b in env.backends}
        jobs = []
        for i, b in enumerate(env.backends, start=1):
            host, port = (lb_front_ip(i), 80) if proxied else (b.ip, BACKEND_PORT)
            check_target(lab, host, f"raw client target {host}")
            jobs += [{"target": b.kind, "host": host, "port": port, "case": c.name,
                      "data_b64": base64.b64encode(c.data).decode()} for c in env.cases]
        out = run.dir / "client.json"
        cfg_path = lab.file(f"raw-client-{v.name}.json")
        cfg_path.write_text(json.dumps({"jobs": jobs, "idle_s": p.idle_s, "max_s": p.max_s,
                                        "concurrency": CONCURRENCY, "out": str(out)}))
        run.step(f"{v.name}: {len(env.cases)} cases x {len(env.backends)} components")
        proc = lab.spawn(node, [sys.executable, "-m", "lblab.workloads.raw_http",
                                str(cfg_path)], name=f"raw-client-{v.name}")
        bound = p.max_s * math.ceil(len(jobs) / CONCURRENCY) + 30
        try:
            code = proc.wait(timeout=bound)
        except subprocess.TimeoutExpired:
            lab.stop_process(proc)
            raise LabError(f"raw client outlived its bound of {bound:.0f} s") from None
        if code != 0 or not out.exists():
            raise LabError(f"raw client in {node} failed (exit {code}); see its log")
        for b in env.backends:
            wait_until(lambda b=b: _connections_open(b.log, offsets[b.kind]) == 0,
                       timeout=p.max_s + 15,
                       what=f"{b.kind} to close every connection of the corpus")
        rows = []
        for b in env.backends:
            with open(b.log, "rb") as f:
                f.seek(offsets[b.kind])
                rows += analysis.load_json_rows(f.read().decode())
        run.write_doc("backend-log", rows)
        run.write_doc("setting", {"proxy": proxied, "client_ip": client_ip(1),
                                  "backends": list(p.backends),
                                  "haproxy": proxy_setting(v.name, env.cases)})
        if proxied:
            run.write_doc("haproxy-frontends", {
                n.cfg.name: {k: r.get(k) for k in ("req_tot", "ereq", "hrsp_2xx", "hrsp_4xx",
                                                    "hrsp_5xx", "dreq", "stot")}
                for n in env.proxies for r in n.api.show_stat()
                if r["svname"] == "FRONTEND"})

    analyse = staticmethod(analysis.analyse)
    notes = staticmethod(claims.notes)
    plot = staticmethod(plots.plot)
    claims = staticmethod(claims.claims)


EXPERIMENT = HeaderNormalization()
