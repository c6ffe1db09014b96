"""A backend's control socket as the samplers use it: /stats on one kept-alive connection,
opened again when it breaks."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from dataclasses import asdict

import pytest

from lblab.ready import wait_until
from lblab.workloads.backend import BackendConfig
from lblab.workloads.handles import BackendHandle


@pytest.fixture
def backend(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = BackendConfig(name="b1", ip="127.0.0.1", port=port, workers=2, service_ms=0,
                        control_socket=str(tmp_path / "b.sock"))
    (tmp_path / "b.json").write_text(json.dumps(asdict(cfg)))
    proc = subprocess.Popen([sys.executable, "-m", "lblab.workloads.backend",
                             str(tmp_path / "b.json")])
    try:
        wait_until((tmp_path / "b.sock").exists, timeout=10, what="the backend")
        yield BackendHandle(None, "b1", cfg)
    finally:
        proc.terminate()
        proc.wait()


def test_stats_reuse_one_connection_and_survive_its_loss(backend):
    first = backend.stats()
    conn = backend._stats_conn
    assert backend.stats()["capacity"] == first["capacity"]
    assert backend._stats_conn is conn  # kept alive
    conn.sock.shutdown(socket.SHUT_RDWR)  # as if the backend had closed it while idle
    assert "capacity" in backend.stats()
    assert backend._stats_conn is not conn
    assert backend.set_faults(service_ms=5)  # other calls still use a connection each
    assert "capacity" in backend.stats()
