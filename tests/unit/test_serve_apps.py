"""A workload's servers stay up for as long as it runs, also once the garbage collector has
run: on uvloop (the workloads' loop) a site whose runner nothing refers to any more is
closed when the runner is collected."""

from __future__ import annotations

import asyncio
import gc

from aiohttp import web

from lblab.ready import free_loopback_port
from lblab.workloads.backend import serve_apps
from lblab.workloads.loop import run_loop


def test_the_control_socket_still_answers_after_a_garbage_collection(tmp_path):
    sock = str(tmp_path / "control.sock")

    def app(text: str) -> web.Application:
        async def answer(_request: web.Request) -> web.Response:
            return web.Response(text=text)

        a = web.Application()
        a.add_routes([web.get("/", answer)])
        return a

    async def get(path: str) -> bytes:
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        body = await reader.read()
        writer.close()
        return body

    async def main() -> tuple[bytes, bytes]:
        task = asyncio.create_task(serve_apps(app("data"), "127.0.0.1", free_loopback_port(),
                                              app("control"), sock))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if (tmp_path / "control.sock").exists():
                break
        first = await get(sock)
        gc.collect()
        await asyncio.sleep(0.05)
        try:
            second = await get(sock)
        except OSError as exc:
            second = repr(exc).encode()
        task.cancel()
        return first, second

    first, second = run_loop(main())
    assert first.endswith(b"control")
    assert second.endswith(b"control"), second
