"""The control plane's fault endpoint, shared by every lblab server with fault knobs."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from lblab.workloads.backend import Faults, update_faults


def test_a_bad_knob_is_a_400_naming_it_and_a_good_one_is_applied():
    faults = Faults()

    async def scenario() -> tuple:
        app = web.Application()
        app.add_routes([web.post("/faults", lambda req: update_faults(req, faults))])
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            bad = await client.post("/faults", json={"no_such_knob": 1})
            bad_body = await bad.json()
            good = await client.post("/faults", json={"error_rate": 0.25})
            return bad.status, bad_body, good.status, await good.json()

    bad_status, bad_body, good_status, good_body = asyncio.run(scenario())
    assert bad_status == 400 and "no_such_knob" in bad_body["error"]
    assert good_status == 200 and good_body["error_rate"] == 0.25 and faults.error_rate == 0.25
