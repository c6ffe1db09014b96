"""tls-termination: certificate expiry, hot rotation vs reload vs restart, a failed rotation,
OCSP staples, SNI, and mTLS to backends whose CA rotates.

Wiring (topologies/two_tier.py): c1 (10.0.1.1) -> s1 -> l7 (HAProxy 2.6, master-worker,
`bind 10.0.0.1:443 ssl crt-list`) -> s2 -> b1..bB (HTTP backends on :8080; for the mtls
variants also TLS servers on :8443 that require a client certificate: an HAProxy each).
A private CA is made at run time (pki.py, `cryptography`) into the lab's folder; every
certificate has a serial chosen by the run, so each handshake's record says what was served.

c1 runs lblab.workloads.tls_client: an open-loop constant rate of new handshakes, each
verifying chain and host name, then one GET. Every variant gets a fresh HAProxy with the
variant's configuration and baseline certificates (prepare), and its event on the
variant's clock (measure):

  expiry          a certificate valid for lifetime_s is committed at install_at; later an
                  already expired one is committed (HAProxy checks no dates)
  rotate-runtime  set ssl cert + commit ssl cert of a new certificate under load
  bad-rotation    a certificate with a key that does not match it: commit refused, abort
  rotate-reload   a new certificate on disk, then a master-worker reload (master CLI)
  restart         a new certificate on disk, then stop and start
  sni             a.lab and b.lab on one address; a client without SNI that wants b.lab
  sni-strict      the same with strict-sni
  ocsp            a must-staple certificate; its staple goes stale, is refreshed with
                  `set ssl ocsp-response`, then a rotation without the .ocsp drops it
  mtls-ca         the backends' server certificates move to a new CA; HAProxy's ca-file
                  holds only the old one
  mtls-bundle     the same rotation with ca-file holding old and new CA
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lblab.driver import Experiment, LabPlan, Repetition, VariantPlan, VariantRun
from lblab.lab import Lab
from lblab.workloads.handles import BackendHandle, start_backend
from lblab.workloads.tls_client import TlsClientConfig, run_in_lab
from lbnodes.l7 import L7Config, L7Node, RuntimeAPI, Server
from topologies.two_tier import ROLES, TwoTierTopo, backend_ip, lb_front_ip

from . import analysis, claims, pki, plots
from .params import (
    BAD,
    CA_ROTATE,
    COMMIT_EXPIRED,
    INSTALL,
    NAMES,
    OCSP_HAPROXY_MARGIN_S,
    RELOAD,
    RESTART,
    ROTATE,
    ROTATE_NO_OCSP,
    SET_OCSP,
    Params,
    quick,
)
from .sidecar import TLS_PORT, Sidecar

BACKEND_PORT = 8080
FRONT_PORT = 443
BACKEND_NAME = "backend.lab"
LONG_S = 30 * 86400
"""Validity of every certificate that is not meant to expire during the run."""


@dataclass
class Env:
    lab: Lab
    ca: pki.CA
    backends: list[BackendHandle]
    sidecars: list[Sidecar] = field(default_factory=list)
    backend_cas: tuple[pki.CA, ...] = ()
    lb_client: pki.Leaf | None = None
    node: L7Node | None = None
    serial: int = 1000
    certs: dict[str, Any] = field(default_factory=dict)
    """What the variant's prepare made and its events did (the `tls` raw document)."""

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial

    def path(self, name: str) -> Path:
        return self.lab.file(f"tls-{name}")


def profiles(variant: str) -> list[dict]:
    """The client's handshake profiles in a variant (used in turn)."""
    a, b = NAMES
    if variant in ("sni", "sni-strict"):
        return [{"sni": a, "expect": a}, {"sni": b, "expect": b}, {"sni": "", "expect": b}]
    if variant == "ocsp":
        return [{"sni": a, "expect": a, "must_staple": True}, {"sni": a, "expect": a}]
    return [{"sni": a, "expect": a}]


class TlsTermination(Experiment):
    name = "tls-termination"
    title = "TLS termination: expiry, rotation, reload vs restart, OCSP, SNI, mTLS"
    summary = ("New TLS handshakes at a constant rate through HAProxy while its certificate "
               "expires, rotates at run time, by reload or by restart, fails to rotate, loses "
               "its OCSP staple, serves two names, and while the backends' CA rotates.")
    needs = ("root", "ovs_running", "haproxy")
    Params = Params
    bring_up_s = 8.0

    quick = staticmethod(quick)

    def variants(self, p: Params) -> list[VariantPlan]:
        return [VariantPlan(v, p.seconds(v) + 1.0, setting=profiles(v)) for v in p.variants]

    def lab(self, p: Params, key: str) -> LabPlan:
        return LabPlan(TwoTierTopo(clients=1, lb_names="l7", backends=p.backends), roles=ROLES)

    def setup(self, lab: Lab, p: Params, rep: Repetition) -> Env:
        now = time.time()
        ca = pki.CA.make("lblab run CA", 1, now)
        env = Env(lab, ca, [start_backend(lab, f"b{i}", backend_ip(i), port=BACKEND_PORT,
                                          workers=16, service_ms=1.0, seed=rep.seed + i)
                            for i in range(1, p.backends + 1)])
        env.path("ca.pem").write_bytes(ca.pem)
        if any(v.startswith("mtls") for v in p.variants):
            env.backend_cas = (pki.CA.make("lblab backend CA 1", 2, now),
                               pki.CA.make("lblab backend CA 2", 3, now))
            env.path("backend-ca-old.pem").write_bytes(env.backend_cas[0].pem)
            env.path("backend-ca-bundle.pem").write_bytes(
                env.backend_cas[0].pem + env.backend_cas[1].pem)
            env.lb_client = pki.issue(ca, env.next_serial(), ("l7.lab",), now - 60,
                                      now + LONG_S, client=True)
            env.lb_client.write(env.path("l7-client.pem"))
            for i in range(1, p.backends + 1):
                leaf = pki.issue(env.backend_cas[0], env.next_serial(), (BACKEND_NAME,),
                                 now - 60, now + LONG_S)
                env.sidecars.append(Sidecar(lab, f"b{i}", backend_ip(i), leaf,
                                            env.path("ca.pem")).start())
        rep.snapshot("pki", {"ca_serial": 1, "lifetime_long_s": LONG_S,
                             "key": "ECDSA P-256", "names": list(NAMES)})
        return env

    # -- prepare: a fresh HAProxy with the variant's config and baseline certificates ------
    def prepare(self, env: Env, p: Params, v: VariantPlan) -> None:
        if env.node is not None:
            env.node.stop()
            env.node = None
        now = time.time()
        env.certs = {"variant": v.name}
        must = v.name == "ocsp"
        crt_lines = []
        for name in NAMES:
            leaf = pki.issue(env.ca, env.next_serial(), (name,), now - 60, now + LONG_S,
                             must_staple=must and name == NAMES[0])
            path = leaf.write(env.path(f"{name}.pem"))
            env.certs[f"baseline_{name}"] = leaf.serial
            crt_lines.append(str(path))
            for companion in (".ocsp", ".issuer"):
                Path(f"{path}{companion}").unlink(missing_ok=True)
            if must and name == NAMES[0]:
                Path(f"{path}.ocsp").write_bytes(pki.ocsp_response(leaf, now - 60, now + 3600))
                Path(f"{path}.issuer").write_bytes(env.ca.pem)
                env.certs["must_staple_leaf"] = leaf
        env.path("crt.list").write_text("\n".join(crt_lines) + "\n")
        env.node = L7Node(env.lab, self.node_config(env, p, v)).start()

    def node_config(self, env: Env, p: Params, v: VariantPlan) -> L7Config:
        mtls = v.name.startswith("mtls")
        servers = tuple(Server(f"b{i}", backend_ip(i), TLS_PORT if mtls else BACKEND_PORT)
                        for i in range(1, p.backends + 1))
        tls: dict[str, Any] = {}
        if mtls:
            ca_file = "backend-ca-bundle.pem" if v.name == "mtls-bundle" else "backend-ca-old.pem"
            tls = {"server_tls_ca_file": str(env.path(ca_file)),
                   "server_tls_crt": str(env.path("l7-client.pem")),
                   "server_tls_sni": BACKEND_NAME, "server_tls_reuse": False,
                   "keepalive_to_servers": False, "check": True, "check_path": "/health",
                   "check_inter_ms": p.check_inter_ms, "check_fall": p.check_fall,
                   "timeout_check_ms": p.check_inter_ms}
        return L7Config("l7", lb_front_ip(1), FRONT_PORT, servers,
                        tls_crt_list=str(env.path("crt.list")),
                        tls_strict_sni=v.name == "sni-strict", master_worker=True, **tls)

    # -- measure --------------------------------------------------------------------------
    def measure(self, env: Env, p: Params, v: VariantPlan, run: VariantRun) -> None:
        node = env.node
        assert node is not None
        api = node.api
        a_path = str(env.path(f"{NAMES[0]}.pem"))
        certs = env.certs
        tl = run.timeline()

        def new_leaf(not_before: float, not_after: float, **kw: Any) -> pki.Leaf:
            return pki.issue(env.ca, env.next_serial(), (NAMES[0],), not_before, not_after,
                             **kw)

        def commit(what: str, leaf: pki.Leaf, pem: str | None = None) -> None:
            api.set_ssl_cert(a_path, pem or leaf.pem())
            reply = api.commit_ssl_cert(a_path)
            certs[what] = {"serial": leaf.serial, "not_after_wall": leaf.not_after,
                           "reply": reply}
            if "Success" not in reply:
                certs[what]["abort"] = api.abort_ssl_cert(a_path)

        if v.name == "expiry":
            def install() -> None:
                now = time.time()
                commit(INSTALL, new_leaf(now - 60, math.floor(now) + p.lifetime_s))

            def commit_expired() -> None:
                now = time.time()
                commit(COMMIT_EXPIRED, new_leaf(now - 600, now - 60))

            tl.at(p.install_at, INSTALL, install, slack_s=0.5)
            tl.at(p.commit_expired_at, COMMIT_EXPIRED, commit_expired, slack_s=0.5)
        elif v.name == "rotate-runtime":
            tl.at(p.event_at, ROTATE, lambda: commit(ROTATE, new_leaf(time.time() - 60,
                                                                      time.time() + LONG_S)),
                  slack_s=0.5)
        elif v.name == "bad-rotation":
            def bad() -> None:
                leaf, other = (new_leaf(time.time() - 60, time.time() + LONG_S)
                               for _ in range(2))
                commit(BAD, leaf, leaf.pem(key=other.key))

            tl.at(p.event_at, BAD, bad, slack_s=0.5)
        elif v.name in ("rotate-reload", "restart"):
            def on_disk(what: str) -> None:
                leaf = new_leaf(time.time() - 60, time.time() + LONG_S)
                leaf.write(Path(a_path))
                certs[what] = {"serial": leaf.serial}

            def reload() -> None:
                on_disk(RELOAD)
                certs[RELOAD]["workers"] = node.reload()

            def restart() -> None:
                on_disk(RESTART)
                t0 = time.time()
                node.stop()
                stopped = time.time()
                node.start()
                certs[RESTART].update(stop_wall=t0, stopped_wall=stopped,
                                      listening_wall=time.time())

            event = RELOAD if v.name == "rotate-reload" else RESTART
            tl.at(p.event_at, event, reload if event == RELOAD else restart, slack_s=0.5)
        elif v.name == "ocsp":
            self._ocsp_events(env, p, tl, api, a_path, new_leaf)
        elif v.name.startswith("mtls"):
            def rotate_ca() -> None:
                now = time.time()
                for sc in env.sidecars:
                    sc.rotate(pki.issue(env.backend_cas[1], env.next_serial(),
                                        (BACKEND_NAME,), now - 60, now + LONG_S))
                certs[CA_ROTATE] = {"serials": [sc.leaf.serial for sc in env.sidecars]}

            tl.at(p.event_at, CA_ROTATE, rotate_ca, slack_s=0.5)

        cfg = TlsClientConfig(host=lb_front_ip(1), port=FRONT_PORT, rate=p.rate,
                              duration_s=p.seconds(v.name), ca_file=str(env.path("ca.pem")),
                              profiles=v.setting, timeout_s=p.timeout_s,
                              threads=p.client_threads)
        run.step(f"{v.name}: {p.rate:g} handshakes/s for {cfg.duration_s:g} s")
        sampling = (run.sample(lambda: server_probe(node), 0.05, table="servers")
                    if v.name.startswith("mtls") else contextlib.nullcontext())
        with sampling:
            cfg.start_file = str(run.start_clock().start_file)
            run_in_lab(env.lab, "c1", cfg, run.dir, "tls")
        certs.pop("must_staple_leaf", None)
        run.write_doc("tls", certs)
        run.write_doc("haproxy-certs", {"show_ssl_cert": api.show_ssl_cert(a_path)})
        if v.name.startswith("mtls"):
            for sc in env.sidecars:  # back to the old CA for the next mtls variant
                sc.rotate(pki.issue(env.backend_cas[0], env.next_serial(), (BACKEND_NAME,),
                                    time.time() - 60, time.time() + LONG_S))

    def _ocsp_events(self, env: Env, p: Params, tl: Any, api: RuntimeAPI, a_path: str,
                     new_leaf: Any) -> None:
        certs = env.certs
        leaf: pki.Leaf = certs["must_staple_leaf"]

        def short() -> None:
            now = time.time()
            stale = math.floor(now) + p.ocsp_fresh_s
            api.set_ssl_ocsp_response(pki.b64(pki.ocsp_response(
                leaf, now - 60, stale + OCSP_HAPROXY_MARGIN_S)))
            certs["ocsp-short"] = {"stale_wall": stale,
                                   "next_update_wall": stale + OCSP_HAPROXY_MARGIN_S}

        def refresh() -> None:
            now = time.time()
            certs[SET_OCSP] = {"reply": api.set_ssl_ocsp_response(pki.b64(pki.ocsp_response(
                leaf, now - 60, now + 3600)))}

        def rotate() -> None:
            new = new_leaf(time.time() - 60, time.time() + LONG_S, must_staple=True)
            api.set_ssl_cert(a_path, new.pem())
            certs[ROTATE_NO_OCSP] = {"serial": new.serial,
                                     "reply": api.commit_ssl_cert(a_path)}

        tl.at(0.2, "ocsp-short", short, slack_s=0.3)
        tl.at(p.ocsp_fresh_s + 1.5, SET_OCSP, refresh, slack_s=0.3)
        tl.at(p.ocsp_fresh_s + 2.5, ROTATE_NO_OCSP, rotate, slack_s=0.3)

    analyse = staticmethod(analysis.analyse)
    notes = staticmethod(claims.notes)
    plot = staticmethod(plots.plot)
    claims = staticmethod(claims.claims)


def server_probe(node: L7Node) -> dict:
    """Each server's state and last check status, as HAProxy's stats socket says."""
    out: dict[str, Any] = {}
    for name, row in node.api.servers(node.backend).items():
        out[f"{name}_status"] = row.get("status", "")
        out[f"{name}_check"] = row.get("check_status", "")
    return out


EXPERIMENT = TlsTermination()
