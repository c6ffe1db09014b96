"""A ramp of concurrent uploads: upload k (0-based) starts at k x `every_s`, each a POST of
`body_bytes` on its own HTTP/1.1 connection; none ends before the upstream has read it.

    python -m experiments.hol_buffering.uploads CONFIG.json

t = 0 is the ramp's start, written to `start_file` (the variant's clock). One row per
upload: when it started, when its last byte was handed to the kernel, when it ended, the
status, and the outcome: ok (any HTTP answer), reset (the connection broke: the server died
holding it), refused (nothing listens any more), timeout.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lblab.results import atomic_write
from lblab.workloads.loop import run_loop

FIELDS = ["upload", "start_s", "sent_s", "done_s", "status", "outcome", "error"]
CHUNK = 65536


@dataclass
class UploadsConfig:
    host: str
    port: int
    uploads: int = 5
    every_s: float = 0.25
    body_bytes: int = 8 << 20
    timeout_s: float = 30.0
    records: str = "uploads.csv"
    start_file: str = ""


async def upload(cfg: UploadsConfig, k: int, t0: float, payload: memoryview) -> dict:
    await asyncio.sleep(max(0.0, t0 + k * cfg.every_s - time.time()))  # the ramp's schedule
    row = {"upload": k, "start_s": round(time.time() - t0, 4), "sent_s": None,
           "done_s": None, "status": None, "outcome": "", "error": ""}
    writer = None
    try:
        async with asyncio.timeout(cfg.timeout_s):
            reader, writer = await asyncio.open_connection(cfg.host, cfg.port)
            writer.write(f"POST /upload HTTP/1.1\r\nHost: {cfg.host}\r\nContent-Length: "
                         f"{cfg.body_bytes}\r\nConnection: close\r\n\r\n".encode())
            for at in range(0, cfg.body_bytes, CHUNK):
                writer.write(payload[at:at + CHUNK])
                await writer.drain()
            row["sent_s"] = round(time.time() - t0, 4)
            line = await reader.readline()
            if not line:
                raise ConnectionResetError("closed before an answer")
            row["status"] = int(line.split()[1])
            await reader.read()
            row["outcome"] = "ok"
    except ConnectionRefusedError as exc:
        row["outcome"], row["error"] = "refused", str(exc)
    except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
        # an early 413/503 answer closes the connection while we still send: read it
        row["outcome"], row["error"] = "reset", f"{type(exc).__name__}: {exc}"
        row.update(await _early_answer(reader if writer else None))
    except TimeoutError:
        row["outcome"], row["error"] = "timeout", f"no answer in {cfg.timeout_s:g} s"
    finally:
        if writer is not None:
            writer.close()
    row["done_s"] = round(time.time() - t0, 4)
    return row


async def _early_answer(reader: asyncio.StreamReader | None) -> dict:
    """A server that refuses a body answers and closes before reading it: the answer may
    already be in our receive buffer when the send fails."""
    if reader is None:
        return {}
    try:
        line = await asyncio.wait_for(reader.readline(), 1.0)
    except (ConnectionError, OSError, TimeoutError, asyncio.IncompleteReadError):
        return {}
    if line.startswith(b"HTTP/"):
        return {"status": int(line.split()[1]), "outcome": "ok", "error": ""}
    return {}


async def ramp(cfg: UploadsConfig) -> list[dict]:
    payload = memoryview(b"x" * cfg.body_bytes)
    t0 = time.time() + 0.05
    if cfg.start_file:
        atomic_write(Path(cfg.start_file), repr(t0))
    return list(await asyncio.gather(*(upload(cfg, k, t0, payload)
                                       for k in range(cfg.uploads))))


def main(argv: list[str]) -> None:
    with open(argv[1]) as f:
        cfg = UploadsConfig(**json.load(f))
    rows = run_loop(ramp(cfg))
    with open(cfg.records, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main(sys.argv)
