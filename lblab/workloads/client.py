"""The open-loop load generator.

    python -m lblab.workloads.client CONFIG.json

Requests leave on a schedule (constant or Poisson arrivals) whether or not earlier ones have
answered, so a stalled server shows up as latency and timeouts instead of a politely slower
client (coordinated omission). Latency is measured from each request's *intended* send time.
Every attempt is one row of the records CSV; the summary JSON holds an HDR histogram of the
requests' latencies (hdrhistogram package) and the counts.
"""

from __future__ import annotations

import asyncio
import csv
import gc
import json
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hdrh.histogram import HdrHistogram

from lblab.workloads.http1 import ConnectFailed, Pool
from lblab.workloads.loop import run_loop
from lblab.workloads.retry import Policy, make_policy

RECORD_FIELDS = ["id", "attempt", "intended_s", "sent_s", "done_s", "latency_ms", "status",
                 "outcome", "backend", "peer", "target", "source", "sport"]
HIST_MAX_US = 120_000_000


@dataclass
class ClientConfig:
    targets: list[str]
    """URLs; requests go round-robin over them (e.g. several LB addresses)."""
    rate: float = 100.0
    duration_s: float = 10.0
    arrival: str = "poisson"
    timeout_s: float = 2.0
    keepalive: bool = True
    max_in_flight: int = 2000
    """Past this many unanswered requests new ones are recorded as `shed` and not sent."""
    retry: dict = field(default_factory=lambda: {"kind": "none"})
    seed: int = 0
    records: str = "records.csv"
    summary: str = "summary.json"
    local_addrs: list[str] = field(default_factory=list)
    """Source addresses to spread requests over (users behind NAT, say); empty: the default."""
    processes: int = 1
    """Worker processes sharing the schedule (request i goes to worker i mod P), as wrk's
    threads do: one Python process saturates a core at a few thousand requests/s."""
    start_at: float = 0.0
    """Wall-clock instant at which every worker starts its schedule (set by the parent)."""
    target_choice: str = "cycle"
    """How request i picks its target: "cycle" (targets[i mod len], the default) or
    "random" (uniform, drawn from the seed: no aliasing with a proxy's round robin)."""
    start_file: str = ""
    """Where the client writes the wall-clock time at which its schedule really started
    (t = 0 of every record): the origin of the run's timeline (lblab.timeline)."""


def schedule(cfg: ClientConfig) -> list[float]:
    """Intended send offsets (s) for the whole run: reproducible from the seed."""
    if cfg.arrival == "constant":
        # i / rate, not a running sum: the sum drifts and adds or drops a request at the end.
        return [i / cfg.rate for i in range(1, int(cfg.duration_s * cfg.rate + 1e-9))
                if i / cfg.rate < cfg.duration_s]
    rng = random.Random(cfg.seed)
    times, t = [], 0.0
    while True:
        t += rng.expovariate(cfg.rate)
        if t >= cfg.duration_s:
            return times
        times.append(t)


def target_picks(cfg: ClientConfig, n: int) -> list[int]:
    """The target index of each of the schedule's n requests (the same in every worker)."""
    k = len(cfg.targets)
    if cfg.target_choice == "cycle":
        return [i % k for i in range(n)]
    if cfg.target_choice != "random":
        raise ValueError(f"target_choice {cfg.target_choice!r}: use cycle or random")
    rng = random.Random(f"targets:{cfg.seed}")
    return [rng.randrange(k) for _ in range(n)]


def classify(status: int | None, error: BaseException | None) -> str:
    if error is not None:
        if isinstance(error, TimeoutError):
            return "timeout"
        if isinstance(error, ConnectFailed):
            return "connect"
        return "reset"
    assert status is not None
    return "ok" if status < 500 else "5xx"


class Client:
    """One worker's share of the schedule. Rows are kept as tuples and formatted only when
    written: at thousands of requests a second the per-row work is what the client's CPU goes
    to, and that CPU is taken from the stack under test. For the same reason a request is not
    a task: it is a `_Request` moved along by callbacks (the pool's answer, a retry's timer),
    and latencies go into the HDR histogram after the schedule, not on its path."""

    def __init__(self, cfg: ClientConfig, part: tuple[int, int] = (0, 1)) -> None:
        self.cfg = cfg
        self.part = part
        self.policy: Policy = make_policy(cfg.retry, cfg.seed)
        self.rows: list[tuple] = []
        self.hist = HdrHistogram(1, HIST_MAX_US, 3)
        self.counts: dict[str, int] = {}
        self.in_flight = 0
        self.t0 = 0.0
        self.started_wall: float | None = None
        self._latencies_us: list[int] = []
        self._unfinished = 0
        self._all_done: asyncio.Future | None = None

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def run(self) -> None:
        sources = self.cfg.local_addrs or [""]
        pools = {(t, s): Pool(t, s, self.cfg.keepalive)
                 for t in self.cfg.targets for s in sources}
        loop = asyncio.get_running_loop()
        try:
            offsets = schedule(self.cfg)
            k, parts = self.part
            targets, local = self.cfg.targets, self.cfg.local_addrs
            picks = target_picks(self.cfg, len(offsets))
            # What the run allocated so far lives to its end: out of the collector's sight,
            # so that full collections (tens of ms with a big heap) do not stall the schedule.
            gc.collect()
            gc.freeze()
            wait = self.cfg.start_at - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.t0 = t0 = time.monotonic()
            self.started_wall = time.time()
            if self.cfg.start_file and self.part[0] == 0:
                _announce_start(Path(self.cfg.start_file), self.started_wall)
            self._all_done = loop.create_future()
            self._unfinished = 1  # the schedule itself, until its last request has left
            monotonic, sleep = time.monotonic, asyncio.sleep
            for i in range(k, len(offsets), parts):
                offset = offsets[i]
                delay = offset - (monotonic() - t0)
                if delay > 0:
                    await sleep(delay)
                target = targets[picks[i]]
                source = local[i % len(local)] if local else ""
                self._unfinished += 1
                _Request(self, pools[target, source], i, offset, target, source).begin()
            self._finished_one()
            await self._all_done
        finally:
            for pool in pools.values():
                pool.close()
            gc.unfreeze()
            record = self.hist.record_value
            for us in self._latencies_us:
                record(us)
            self._latencies_us = []

    def _finished_one(self) -> None:
        self._unfinished -= 1
        if self._unfinished == 0 and not self._all_done.done():
            self._all_done.set_result(None)

    def _finish(self, outcome: str, done: float | None, intended: float) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if outcome == "ok":
            self._latencies_us.append(max(1, int((done - intended) * 1e6)))
        self._finished_one()

    def _record_values(self) -> list[list]:
        """The rows as the CSV holds them (RECORD_FIELDS order), in (id, attempt) order."""
        return [[rid, attempt, round(intended, 6),
                 "" if sent is None else round(sent, 6),
                 "" if done is None else round(done, 6),
                 "" if done is None else round((done - intended) * 1000, 3),
                 status or "", outcome, backend, peer, target, source, sport or ""]
                for (rid, attempt, intended, sent, done, status, outcome, backend, peer,
                     target, source, sport) in sorted(self.rows, key=lambda r: (r[0], r[1]))]

    def records(self) -> list[dict]:
        """The rows as the CSV holds them, in (id, attempt) order."""
        return [dict(zip(RECORD_FIELDS, values, strict=True))
                for values in self._record_values()]

    def write(self, records: list[dict] | None = None) -> None:
        """Write the records CSV (this client's rows, or `records` when merging workers)
        and the summary JSON beside it."""
        with open(self.cfg.records, "w", newline="") as f:
            if records is None:  # straight from the tuples: no dict per row
                values = self._record_values()
                writer = csv.writer(f)
                writer.writerow(RECORD_FIELDS)
                writer.writerows(values)
                attempts = len(values)
            else:
                writer = csv.DictWriter(f, fieldnames=RECORD_FIELDS)
                writer.writeheader()
                writer.writerows(records)
                attempts = len(records)
        summary = {
            "config": asdict(self.cfg), "counts": self.counts,
            "started_wall": self.started_wall,
            "requests": sum(self.counts.values()), "attempts": attempts,
            "latency_ms": {f"p{q:g}": self.hist.get_value_at_percentile(q) / 1000
                           for q in (50, 90, 99, 99.9)} if self.hist.total_count else {},
            "hdr": self.hist.encode().decode() if self.hist.total_count else "",
            "policy_events": [{"t": round(t, 4), "state": state, "failures": failures}
                              for t, state, failures in getattr(self.policy, "transitions", [])],
        }
        # Beside its own name: workers' summaries (s.json.part0, s.json.part1) must not share
        # a temporary file, as with_suffix(".tmp") would make them do.
        tmp = Path(f"{self.cfg.summary}.tmp")
        tmp.write_text(json.dumps(summary, indent=1))
        tmp.replace(self.cfg.summary)


class _Request:
    """One scheduled request and its attempts, moved along by callbacks: the same steps,
    in the same order, as a coroutine that awaits each attempt and sleeps between them."""

    __slots__ = ("client", "pool", "rid", "intended", "target", "source", "attempt", "sent",
                 "sport")

    def __init__(self, client: Client, pool: Pool, rid: int, intended: float, target: str,
                 source: str) -> None:
        self.client, self.pool, self.rid, self.intended = client, pool, rid, intended
        self.target, self.source = target, source
        self.attempt = 0
        self.sent = 0.0
        self.sport: int | None = None

    def begin(self) -> None:
        c = self.client
        if c.in_flight >= c.cfg.max_in_flight or not c.policy.allow(c.now()):
            outcome = "shed" if c.in_flight >= c.cfg.max_in_flight else "breaker_open"
            c.rows.append((self.rid, 0, self.intended, None, None, None, outcome, "", "",
                           self.target, self.source, None))
            c._finish(outcome, None, self.intended)
            return
        c.in_flight += 1
        self._send()

    def _send(self) -> None:
        c = self.client
        self.sent = sent = time.monotonic() - c.t0
        c.policy.on_attempt(self.attempt, sent)
        self.sport = self.pool.start(c.cfg.timeout_s, self._answered)

    def _answered(self, status: int | None, backend: str, peer: str,
                  error: BaseException | None) -> None:
        c = self.client
        done = time.monotonic() - c.t0
        outcome = classify(status, error)
        c.policy.on_outcome(outcome == "ok", done)
        c.rows.append((self.rid, self.attempt, self.intended, self.sent, done, status, outcome,
                       backend, peer, self.target, self.source, self.sport))
        if outcome == "ok":
            self._end(outcome, done)
            return
        delay = c.policy.next_delay(self.attempt, outcome, c.now())
        if delay is None:
            self._end(outcome, done)
        elif delay:
            self.pool.loop.call_later(delay, self._retry)
        else:
            # At once, in this step: the retry counts against a budget (on_attempt) in the
            # step that allowed it. A turn of the loop in between would let every other
            # failure answered in the same turn be allowed against the same count.
            self._retry()

    def _retry(self) -> None:
        c = self.client
        self.attempt += 1
        if not c.policy.allow(c.now()):
            self._end("breaker_open", None)
            return
        self._send()

    def _end(self, outcome: str, done: float | None) -> None:
        c = self.client
        c.in_flight -= 1
        c._finish(outcome, done if done is not None else c.now(), self.intended)



def _announce_start(path: Path, wall: float) -> None:
    tmp = Path(f"{path}.tmp")
    tmp.write_text(repr(wall))
    tmp.replace(path)


def _part_paths(cfg: ClientConfig, k: int) -> tuple[str, str]:
    return f"{cfg.records}.part{k}", f"{cfg.summary}.part{k}"


def merge(cfg: ClientConfig) -> None:
    """Join the workers' records and summaries (counts add, HDR histograms add)."""
    rows: list[dict] = []
    counts: dict[str, int] = {}
    hist = HdrHistogram(1, HIST_MAX_US, 3)
    starts: list[float] = []
    for k in range(cfg.processes):
        records, summary = _part_paths(cfg, k)
        with open(records, newline="") as f:
            rows += list(csv.DictReader(f))
        part = json.loads(Path(summary).read_text())
        for key, n in part["counts"].items():
            counts[key] = counts.get(key, 0) + n
        if part.get("started_wall"):
            starts.append(part["started_wall"])
        if part["hdr"]:
            hist.add(HdrHistogram.decode(part["hdr"]))
        Path(records).unlink()
        Path(summary).unlink()
    merged = Client(cfg)
    merged.counts, merged.hist = counts, hist
    merged.started_wall = min(starts) if starts else None
    merged.write(sorted(rows, key=lambda r: (int(r["id"]), int(r["attempt"]))))


def main(argv: list[str]) -> None:
    with open(argv[1]) as f:
        cfg = ClientConfig(**json.load(f))
    if len(argv) > 2:  # a worker: CONFIG k P
        k, parts = int(argv[2]), int(argv[3])
        cfg.records, cfg.summary = _part_paths(cfg, k)
        client = Client(cfg, (k, parts))
    elif cfg.processes > 1:
        cfg.start_at = time.time() + 0.5 + 0.1 * cfg.processes
        Path(argv[1]).write_text(json.dumps(asdict(cfg)))
        workers = [subprocess.Popen([sys.executable, "-m", "lblab.workloads.client", argv[1],
                                     str(k), str(cfg.processes)])
                   for k in range(cfg.processes)]
        codes = [w.wait() for w in workers]
        if any(codes):
            sys.exit(f"client workers failed: exit codes {codes}")
        merge(cfg)
        return
    else:
        client = Client(cfg)
    try:
        run_loop(client.run())
    finally:
        client.write()


if __name__ == "__main__":
    main(sys.argv)
