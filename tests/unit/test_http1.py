"""The lean HTTP/1.1 client against real servers on loopback: what it reads from a response,
when it reuses a connection, and how each way of failing is reported."""

from __future__ import annotations

import asyncio
import csv
import json
import socket

import pytest

from lblab.workloads.client import Client, ClientConfig
from lblab.workloads.http1 import ConnectFailed, Pool

OK = (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Backend: b2\r\nX-Peer: 10.0.0.1:4242\r\n"
      b"\r\nhello")


async def serve(reply, connections: list, close_after: bool = False) -> asyncio.Server:
    """A server that answers every request on a connection with `reply(n)` (n counts the
    requests on that connection); None closes the connection instead of answering, and so
    does every answer when `close_after`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        n = 0
        try:
            while (await reader.readuntil(b"\r\n\r\n")):
                n += 1
                answer = reply(n)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def url_of(server: asyncio.Server, path: str = "/") -> str:
    return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}{path}"


def run(coro):
    return asyncio.run(coro)


def test_reads_status_and_backend_headers_and_reuses_the_connection():
    async def scenario():
        conns: list = []
        server = await serve(lambda n: OK, conns)
        pool = Pool(url_of(server))
        answers = [await pool.get(1.0) for _ in range(3)]
        pool.close()
        server.close()
        return answers, len(conns)

    answers, opened = run(scenario())
    assert answers == [(200, "b2", "10.0.0.1:4242")] * 3
    assert opened == 1


def test_connection_close_from_the_server_is_honoured():
    reply = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
             b"Connection: close\r\n\r\n")

    async def scenario():
        conns: list = []
        server = await serve(lambda n: reply, conns)
        pool = Pool(url_of(server))
        answers = [(await pool.get(1.0))[0] for _ in range(2)]
        server.close()
        return answers, len(conns)

    assert run(scenario()) == ([503, 503], 2)


def test_chunked_body_is_read_to_its_end():
    reply = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Backend: b1\r\n\r\n"
             b"3\r\nabc\r\n0\r\n\r\n")

    async def scenario():
        server = await serve(lambda n: reply, [])
        pool = Pool(url_of(server))
        answers = [await pool.get(1.0) for _ in range(2)]
        server.close()
        return answers

    assert run(scenario()) == [(200, "b1", "")] * 2


def test_without_keepalive_every_request_opens_a_connection():
    async def scenario():
        conns: list = []
        server = await serve(lambda n: OK, conns)
        pool = Pool(url_of(server), keepalive=False)
        for _ in range(3):
            await pool.get(1.0)
        server.close()
        return len(conns)

    assert run(scenario()) == 3


def test_silence_is_a_timeout():
    async def scenario():
        server = await serve(lambda n: b"", [])
        pool = Pool(url_of(server))
        with pytest.raises(TimeoutError):
            await pool.get(0.1)
        server.close()

    run(scenario())


def test_refused_connection_is_a_connect_failure():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the request: nothing listens

    async def scenario():
        with pytest.raises(ConnectFailed):
            await Pool(f"http://127.0.0.1:{port}/").get(1.0)

    run(scenario())


@pytest.mark.parametrize("reply", [None, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhal",
                                   b"this is not http\r\n\r\n"])
def test_connection_ending_before_a_whole_response_is_a_reset(reply):
    async def scenario():
        server = await serve(lambda n: reply, [], close_after=True)
        with pytest.raises(ConnectionResetError):
            await Pool(url_of(server)).get(1.0)
        server.close()

    run(scenario())


def test_only_http_urls_are_accepted():
    async def scenario():
        with pytest.raises(ValueError, match="only http://"):
            Pool("https://example.test/")

    run(scenario())


def run_client_against(reply, tmp_path, **settings) -> tuple[list[dict], dict]:
    """Run a Client (constant arrivals) against `serve(reply)`: (records, summary)."""

    async def scenario():
        server = await serve(reply, [])
        client = Client(ClientConfig(targets=[url_of(server)], arrival="constant",
                                     records=str(tmp_path / "r.csv"),
                                     summary=str(tmp_path / "s.json"), **settings))
        await client.run()
        server.close()
        client.write()

    run(scenario())
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    return rows, json.loads((tmp_path / "s.json").read_text())


def test_client_records_each_outcome(tmp_path):
    """Every second request the server sees gets a 503: the records hold one row per request
    with its status, outcome and backend, and the summary counts them."""
    seen = [0]

    def reply(_):
        seen[0] += 1
        return OK if seen[0] % 2 else OK.replace(b"200 OK", b"503 No")

    rows, summary = run_client_against(reply, tmp_path, rate=200, duration_s=0.2)
    assert [int(r["id"]) for r in rows] == list(range(39))
    assert {(r["status"], r["outcome"], r["backend"]) for r in rows} == {
        ("200", "ok", "b2"), ("503", "5xx", "b2")}
    assert summary["counts"] == {"ok": 20, "5xx": 19}


def test_worker_processes_merge_into_one_complete_record(tmp_path):
    """Two worker processes share the schedule against a real backend on loopback: one
    records file and one summary, every scheduled request in it exactly once."""
    import subprocess
    import sys
    from dataclasses import asdict

    from lblab.ready import wait_until
    from lblab.workloads.backend import BackendConfig

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend_cfg = tmp_path / "b.json"
    backend_cfg.write_text(json.dumps(asdict(BackendConfig(
        name="b1", ip="127.0.0.1", port=port, workers=16, service_ms=0,
        control_socket=str(tmp_path / "b.sock")))))
    backend = subprocess.Popen([sys.executable, "-m", "lblab.workloads.backend",
                                str(backend_cfg)])
    try:
        wait_until((tmp_path / "b.sock").exists, timeout=10, what="the backend")
        cfg = ClientConfig(targets=[f"http://127.0.0.1:{port}/"], rate=400, duration_s=1,
                           arrival="constant", processes=2, records=str(tmp_path / "r.csv"),
                           summary=str(tmp_path / "s.json"))
        (tmp_path / "c.json").write_text(json.dumps(asdict(cfg)))
        subprocess.run([sys.executable, "-m", "lblab.workloads.client",
                        str(tmp_path / "c.json")], check=True, timeout=30)
    finally:
        backend.terminate()
        backend.wait()
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert sorted(int(r["id"]) for r in rows) == list(range(399))
    assert json.loads((tmp_path / "s.json").read_text())["counts"] == {"ok": 399}
    assert not [p.name for p in tmp_path.iterdir() if ".part" in p.name or ".tmp" in p.name]


def test_each_attempt_knows_its_local_port_as_the_server_sees_it():
    async def scenario():
        conns: list = []
        server = await serve(lambda n: OK, conns)
        pools = [Pool(url_of(server), keepalive=False), Pool(url_of(server), "127.0.0.1")]
        metas = []
        for pool in pools:
            for _ in range(2):
                meta: dict = {}
                await pool.get(1.0, meta)
                metas.append(meta)
            pool.close()
        server.close()
        return metas, [w.get_extra_info("peername")[1] for w in conns]

    metas, peer_ports = run(scenario())
    # keepalive off: two connections; keep-alive with a bound source: one, reused
    assert [m["sport"] for m in metas] == [peer_ports[0], peer_ports[1], peer_ports[2],
                                           peer_ports[2]]


def test_a_refused_attempt_still_records_its_port():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now: the connect is refused

    async def scenario():
        meta: dict = {}
        with pytest.raises(ConnectFailed):
            await Pool(f"http://127.0.0.1:{port}/").get(1.0, meta)
        return meta

    assert run(scenario())["sport"] > 0


def test_client_retries_a_silent_server_on_rows_of_their_own(tmp_path):
    """Each attempt of a retried request is a row: both time out, the request counts once."""

    rows, summary = run_client_against(lambda n: b"", tmp_path, rate=20, duration_s=0.1,
                                       timeout_s=0.05, retry={"kind": "naive", "retries": 1})
    assert [(r["id"], r["attempt"], r["outcome"]) for r in rows] == [
        ("0", "0", "timeout"), ("0", "1", "timeout")]
    assert all(float(r["done_s"]) - float(r["sent_s"]) >= 0.045 for r in rows)
    assert summary["counts"] == {"timeout": 1}


def test_a_retry_budget_holds_when_many_failures_arrive_together(tmp_path):
    """Every answer is a 503, held so that answers reach the client in bursts: a retry
    budget of 10 % of the window's requests is never exceeded, because a retry counts against
    the budget in the same step that allowed it, not one loop turn later (when the other
    failures of the burst have been allowed against the same count)."""

    async def burst_503(reader, writer):
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await asyncio.sleep(0.02 - asyncio.get_running_loop().time() % 0.02)
                writer.write(OK.replace(b"200 OK", b"503 No"))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def scenario():
        server = await asyncio.start_server(burst_503, "127.0.0.1", 0)
        client = Client(ClientConfig(
            targets=[url_of(server)], arrival="constant", rate=1000, duration_s=0.5,
            records=str(tmp_path / "r.csv"), summary=str(tmp_path / "s.json"),
            retry={"kind": "budget", "ratio": 0.1, "window_s": 10, "retries": 3}))
        await client.run()
        server.close()
        client.write()

    run(scenario())
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    firsts = [float(r["sent_s"]) for r in rows if r["attempt"] == "0"]
    retries = sorted(float(r["sent_s"]) for r in rows if r["attempt"] != "0")
    assert retries, "the budget allowed no retry at all"
    over = [(s, n + 1) for n, s in enumerate(retries)
            if n + 1 > 0.1 * sum(1 for f in firsts if f <= s) + 1e-9]
    assert not over, f"retries sent over the budget (time, retries so far): {over[:5]}"
