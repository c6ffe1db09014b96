"""Readiness on real sockets: a unix socket's file exists before anything listens on it."""

from __future__ import annotations

import socket

from lblab.ready import unix_answers


def test_a_unix_socket_answers_only_once_its_server_listens(tmp_path):
    path = tmp_path / "control.sock"
    assert not unix_answers(path)  # no file
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        assert path.exists() and not unix_answers(path), "bound, not listening: refused"
        server.listen(1)
        assert unix_answers(path)
