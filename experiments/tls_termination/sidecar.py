"""A backend's TLS server that requires a client certificate: an HAProxy in the backend's
host, answering every request itself (mTLS to backends is HAProxy-to-HAProxy here, as with
a sidecar proxy in front of an application). Its server certificate rotates at run time
through its own runtime API, as a backend team's automation would."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from lblab.errors import LabError
from lblab.ready import wait_answering
from lbnodes.l7 import RuntimeAPI

from . import pki

TLS_PORT = 8443
CONFIG = """# lblab tls-termination: {name}'s mTLS server (experiments/tls_termination/sidecar.py)
global
	stats socket {sock} mode 600 level admin

defaults
	mode http
	timeout connect 1s
	timeout client 5s
	timeout server 5s

frontend fe_{name}
	bind {ip}:{port} ssl crt {crt} verify required ca-file {client_ca}
	http-request return status 200 content-type text/plain string ok
"""


class Sidecar:
    def __init__(self, lab: Any, node: str, ip: str, leaf: pki.Leaf, client_ca: Path) -> None:
        self.lab, self.node, self.ip, self.leaf = lab, node, ip, leaf
        self.crt = lab.file(f"tls-{node}-server.pem")
        self.sock = lab.file(f"{node}-sidecar.sock")
        self.cfg = lab.file(f"{node}-sidecar.cfg")
        self.client_ca = client_ca
        self.api = RuntimeAPI(self.sock)

    def start(self) -> Sidecar:
        self.leaf.write(self.crt)
        self.cfg.write_text(CONFIG.format(name=self.node, sock=self.sock, ip=self.ip,
                                          port=TLS_PORT, crt=self.crt,
                                          client_ca=self.client_ca))
        check = subprocess.run(["haproxy", "-c", "-q", "-f", str(self.cfg)],
                               capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise LabError(f"haproxy rejected {self.cfg}: {check.stderr.strip()[:300]}")
        proc = self.lab.spawn(self.node, ["haproxy", "-db", "-f", str(self.cfg)],
                              name=f"sidecar-{self.node}")
        self.lab.on_teardown(lambda: self.sock.unlink(missing_ok=True))
        self.lab.wait_listening(self.node, TLS_PORT, proc=proc)
        wait_answering(self.sock)
        return self

    def rotate(self, leaf: pki.Leaf) -> None:
        """Serve `leaf` from now on (set ssl cert + commit ssl cert)."""
        self.api.set_ssl_cert(str(self.crt), leaf.pem())
        reply = self.api.commit_ssl_cert(str(self.crt))
        if "Success" not in reply:
            raise LabError(f"{self.node}: commit of serial {leaf.serial} refused: {reply}")
        self.leaf = leaf
