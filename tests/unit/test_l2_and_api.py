from __future__ import annotations

import io
import json

from controllers.api import ApiError, make_wsgi
from controllers.l2 import FLOOD, MacTable

A, B, BCAST = "00:00:00:00:00:0a", "00:00:00:00:00:0b", "ff:ff:ff:ff:ff:ff"


def test_unknown_destination_floods_without_a_flow():
    d = MacTable().packet_in(1, 1, A, B)
    assert d.out_port == FLOOD and not d.install


def test_learned_destination_installs_a_flow_to_its_port():
    t = MacTable()
    t.packet_in(1, 2, B, A)
    d = t.packet_in(1, 1, A, B)
    assert d.out_port == 2 and d.install


def test_broadcast_always_floods_and_is_never_learned_as_source():
    t = MacTable()
    assert t.packet_in(1, 1, A, BCAST).out_port == FLOOD
    t.packet_in(1, 3, BCAST, A)
    assert BCAST not in t.tables[1]


def test_tables_are_per_switch_and_forgotten_on_reconnect():
    t = MacTable()
    t.packet_in(1, 2, B, A)
    assert t.packet_in(2, 1, A, B).out_port == FLOOD
    t.forget(1)
    assert t.packet_in(1, 1, A, B).out_port == FLOOD


def call(app, method, path, body=None):
    raw = json.dumps(body).encode() if body is not None else b""
    seen = {}
    out = app({"REQUEST_METHOD": method, "PATH_INFO": path, "CONTENT_LENGTH": str(len(raw)),
               "wsgi.input": io.BytesIO(raw)}, lambda status, headers: seen.update(s=status))
    return int(seen["s"].split()[0]), json.loads(b"".join(out))


def test_api_routes_errors_and_logs_exceptions():
    errors = []

    def boom(_):
        raise RuntimeError("bad")

    def refuse(_):
        raise ApiError(400, "no such node")

    app = make_wsgi({("GET", "/state"): lambda b: {"ok": 1}, ("POST", "/boom"): boom,
                     ("POST", "/refuse"): refuse}, errors.append)
    assert call(app, "GET", "/state") == (200, {"ok": 1})
    assert call(app, "GET", "/nothing")[0] == 404
    assert call(app, "POST", "/state")[0] == 405
    assert call(app, "POST", "/refuse", {}) == (400, {"error": "no such node"})
    assert call(app, "POST", "/boom", {})[0] == 500 and len(errors) == 1
