"""Users with their own cookie jars: sessions that fill a shopping cart.

    python -m lblab.workloads.users CONFIG.json

`users` slots run side by side, each a sequence of sessions. A session is one aiohttp
ClientSession with its own CookieJar (so the LB's affinity cookie and the backend's `sid`
live with the user who got them, as in a browser); it lives for an exponential time of mean
`tau_s` (0: the whole run), and every request adds an item to its cart (`POST /cart`). Its
next request is due an exponential think time after the previous one was due (so a user's
rate is kept even when a reply is slow); slot i's think times have mean `think_s / w_i`, the
activity weights `activity(users, alpha, seed)` (all 1 for alpha = 0, else Pareto(alpha)
normalised to mean 1: a few users send most requests). When its lifetime is over, and for
every session still open when the run ends, the user checks out with a `GET /cart`.

Each reply reports the cart (its items), so a user sees a lost cart: fewer items than the
adds it had confirmed. Every request is one row of the records CSV; t = 0 is the instant the
schedule really started, written to `start_file` (lblab.timeline).
"""

from __future__ import annotations

import asyncio
import csv
import json
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lblab.workloads.client import _announce_start

RECORD_FIELDS = ["session", "slot", "seq", "kind", "sent_s", "done_s", "latency_ms", "status",
                 "outcome", "backend", "via", "items", "confirmed", "lost"]
"""`backend` and `via` are the reply's X-Backend and X-Peer: which backend answered, and
the address it was reached from (the LB node's, behind a proxy)."""
SESSION_IDS = 100_000
"""Session ids are slot x SESSION_IDS + the slot's session number."""


@dataclass
class UsersConfig:
    url: str
    users: int = 200
    duration_s: float = 10.0
    think_s: float = 1.0
    tau_s: float = 0.0
    alpha: float = 0.0
    timeout_s: float = 2.0
    seed: int = 0
    records: str = "users.csv"
    summary: str = "users-summary.json"
    start_file: str = ""


def activity(users: int, alpha: float, seed: int) -> list[float]:
    """Each slot's activity weight (mean 1): 1 for alpha = 0, else Pareto(alpha) draws
    normalised to mean 1, from the seed (so a claim can simulate the same users)."""
    if alpha <= 0:
        return [1.0] * users
    rng = random.Random(f"activity:{seed}")
    draws = [rng.paretovariate(alpha) for _ in range(users)]
    mean = sum(draws) / users
    return [d / mean for d in draws]


def slot_rng(seed: int, slot: int) -> random.Random:
    return random.Random(f"slot:{seed}:{slot}")


def cart_lost(items: int | None, confirmed: int, adding: bool) -> bool:
    """A reply shows a lost cart when it holds fewer items than the adds already confirmed
    (plus the one this request made). A failed add may or may not have landed, so more items
    than confirmed is not a loss."""
    return items is not None and items < confirmed + (1 if adding else 0)


class Users:
    def __init__(self, cfg: UsersConfig) -> None:
        self.cfg = cfg
        self.weights = activity(cfg.users, cfg.alpha, cfg.seed)
        self.rows: list[tuple] = []
        self.t0 = 0.0

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def run(self) -> None:
        self.t0 = time.monotonic()
        if self.cfg.start_file:
            _announce_start(Path(self.cfg.start_file), time.time())
        await asyncio.gather(*(self.slot(i) for i in range(self.cfg.users)))

    async def slot(self, i: int) -> None:
        import aiohttp

        cfg, rng = self.cfg, slot_rng(self.cfg.seed, i)
        mean_think = cfg.think_s / self.weights[i]
        due = rng.uniform(0, mean_think)  # the users' first requests spread over a think
        k = 0
        while due < cfg.duration_s:
            lifetime = rng.expovariate(1 / cfg.tau_s) if cfg.tau_s > 0 else float("inf")
            ends = due + lifetime
            sid = i * SESSION_IDS + k
            jar = aiohttp.CookieJar(unsafe=True)  # the LB's address is an IP, not a name
            timeout = aiohttp.ClientTimeout(total=cfg.timeout_s)
            async with aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as http:
                confirmed, seq = 0, 0
                while due < min(ends, cfg.duration_s):
                    delay = due - self.now()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    ok = await self.request(http, sid, i, seq, "add", confirmed)
                    confirmed += ok
                    seq += 1
                    due += rng.expovariate(1 / mean_think)
                kind = "checkout" if ends <= cfg.duration_s else "final"
                delay = min(ends, cfg.duration_s) - self.now()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self.request(http, sid, i, seq, kind, confirmed)
            due = ends  # the next session starts as this one checks out
            k += 1

    async def request(self, http: Any, sid: int, slot: int, seq: int, kind: str,
                      confirmed: int) -> bool:
        import aiohttp

        adding = kind == "add"
        sent = self.now()
        status, backend, via, items, outcome = None, "", "", None, "ok"
        try:
            method = http.post if adding else http.get
            async with method(self.cfg.url, data=f"item{seq}" if adding else None) as resp:
                status, backend = resp.status, resp.headers.get("X-Backend", "")
                via = resp.headers.get("X-Peer", "")
                body = await resp.read()
                if status < 500:
                    items = len(json.loads(body)["items"])
                else:
                    outcome = "5xx"
        except TimeoutError:
            outcome = "timeout"
        except (aiohttp.ClientError, OSError, ValueError, KeyError):
            outcome = "error"
        done = self.now()
        self.rows.append((sid, slot, seq, kind, round(sent, 6), round(done, 6),
                          round((done - sent) * 1000, 3), status or "", outcome, backend, via,
                          "" if items is None else items, confirmed,
                          cart_lost(items, confirmed, adding)))
        return outcome == "ok" and adding

    def write(self) -> None:
        with open(self.cfg.records, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(RECORD_FIELDS)
            writer.writerows(sorted(self.rows, key=lambda r: (r[0], r[2])))
        counts: dict[str, int] = {}
        for r in self.rows:
            counts[r[8]] = counts.get(r[8], 0) + 1  # outcome
        summary = {"config": asdict(self.cfg), "requests": len(self.rows), "counts": counts,
                   "sessions": len({r[0] for r in self.rows}),
                   "weights": [round(w, 6) for w in self.weights]}
        tmp = Path(f"{self.cfg.summary}.tmp")
        tmp.write_text(json.dumps(summary, indent=1))
        tmp.replace(self.cfg.summary)


def run_users(lab: Any, node: str, cfg: UsersConfig, out_dir: Path, tag: str = "users") -> dict:
    """Run the users in `node` to completion, their records into `TAG-records.csv` and their
    summary into `TAG-summary.json` in out_dir; returns the summary. Bounded in time; the
    URL's host must be an address inside the lab."""
    from urllib.parse import urlsplit

    from lblab.errors import LabError
    from lblab.workloads.floods import check_target

    check_target(lab, urlsplit(cfg.url).hostname or cfg.url, f"users' target {cfg.url}")
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg.records = str(out_dir / f"{tag}-records.csv")
    cfg.summary = str(out_dir / f"{tag}-summary.json")
    cfg_path = lab.file(f"users-{tag}.json")
    cfg_path.write_text(json.dumps(asdict(cfg)))
    proc = lab.spawn(node, [sys.executable, "-m", "lblab.workloads.users", str(cfg_path)],
                     name=f"users-{tag}")
    bound = cfg.duration_s + 2 * cfg.timeout_s + 30
    try:
        code = proc.wait(timeout=bound)
    except subprocess.TimeoutExpired:
        lab.stop_process(proc)
        raise LabError(f"users {tag} in {node} outlived their bound of {bound:.0f} s") from None
    if code != 0 or not Path(cfg.summary).exists():
        raise LabError(f"users {tag} in {node} failed (exit {code}); see its log")
    return json.loads(Path(cfg.summary).read_text())


def main(argv: list[str]) -> None:
    from lblab.workloads.loop import run_loop

    with open(argv[1]) as f:
        users = Users(UsersConfig(**json.load(f)))
    try:
        run_loop(users.run())
    finally:
        users.write()


if __name__ == "__main__":
    main(sys.argv)
