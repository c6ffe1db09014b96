"""A raw HTTP/1.x client: exact bytes on a TCP connection, and what came back.

    python -m lblab.workloads.raw_http CONFIG.json

CONFIG: {"jobs": [{"target", "host", "port", "case", "data_b64"}], "idle_s", "max_s",
"concurrency", "out"}. Each job opens its own connection, sends the case's bytes as they are
(no library rewrites them) and reads until the peer closes, nothing more arrives for `idle_s`
or `max_s` passes. Jobs run concurrently (at most `concurrency` at once), so a corpus costs
about one idle timeout per target, not one per case. The results (JSON list, one per job, in
job order): the local port (what a proxy reports as its client's port), bytes sent and
received, whether the peer closed, and the responses `parse_responses` found.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time

KEEP_BYTES = 16384


def parse_responses(data: bytes) -> tuple[list[dict], int]:
    """HTTP/1.x responses in `data`, in order: status, reason, lower-cased header names and
    values, body (latin-1); and how many bytes followed them that were not a response (an
    HTTP/0.9 answer, a truncated response). Bodies are framed by chunked coding, then
    Content-Length, else run to the end of the data."""
    out: list[dict] = []
    pos = 0
    while pos < len(data):
        if not data.startswith(b"HTTP/", pos):
            break
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            break
        head = data[pos:end].decode("latin-1").split("\r\n")
        parts = head[0].split(" ", 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError):
            break
        headers = [[n.strip().lower(), v.strip()] for n, _, v in
                   (line.partition(":") for line in head[1:])]
        names = dict(headers)
        pos = end + 4
        if "chunked" in names.get("transfer-encoding", "").lower():
            body = b""
            while True:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    return out, len(data) - pos
                size = int(data[pos:eol].split(b";")[0] or b"0", 16)
                pos = eol + 2
                if size == 0:
                    pos = data.find(b"\r\n", pos) + 2 if data.find(b"\r\n", pos) >= 0 else len(data)
                    break
                body += data[pos:pos + size]
                pos += size + 2
        elif "content-length" in names:
            n = int(names["content-length"])
            body, pos = data[pos:pos + n], pos + n
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            body, pos = data[pos:], len(data)
        out.append({"status": status, "reason": parts[2] if len(parts) > 2 else "",
                    "headers": headers, "body": body.decode("latin-1")})
    return out, len(data) - pos


async def run_job(job: dict, idle_s: float, max_s: float) -> dict:
    data = base64.b64decode(job["data_b64"])
    result = {"target": job["target"], "case": job["case"], "local_port": None,
              "sent": 0, "received": 0, "closed": False, "error": ""}
    got = b""
    started = time.monotonic()
    writer = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(job["host"], job["port"]), timeout=max_s)
        result["local_port"] = writer.get_extra_info("sockname")[1]
        writer.write(data)
        await writer.drain()
        result["sent"] = len(data)
        while True:
            left = max_s - (time.monotonic() - started)
            if left <= 0:
                break
            try:
                chunk = await asyncio.wait_for(reader.read(65536), timeout=min(idle_s, left))
            except TimeoutError:
                break
            if not chunk:
                result["closed"] = True
                break
            got += chunk
    except OSError as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["closed"] = True
    finally:
        if writer is not None:
            writer.close()
    responses, trailing = parse_responses(got)
    result.update(received=len(got), responses=responses, trailing_bytes=trailing,
                  trailing=got[len(got) - trailing:][:KEEP_BYTES].decode("latin-1"),
                  seconds=round(time.monotonic() - started, 3))
    return result


async def run_all(cfg: dict) -> list[dict]:
    gate = asyncio.Semaphore(cfg.get("concurrency", 64))

    async def one(job: dict) -> dict:
        async with gate:
            return await run_job(job, cfg["idle_s"], cfg["max_s"])

    return await asyncio.gather(*(one(j) for j in cfg["jobs"]))


def main(argv: list[str]) -> None:
    with open(argv[1]) as f:
        cfg = json.load(f)
    results = asyncio.run(run_all(cfg))
    tmp = cfg["out"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f)
    import os

    os.replace(tmp, cfg["out"])


if __name__ == "__main__":
    main(sys.argv)
