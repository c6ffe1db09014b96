"""A backend's capacity: W workers, a service-time distribution, a bounded queue.

Service is simulated with `asyncio.sleep`, so a backend's capacity is W / mean service time
whatever else the CPU is doing: overload in an experiment comes from this model, not from
the 2-core machine running out of cycles. A request that finds all workers busy and the queue
full is refused at once (the caller answers 503).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass


class Overloaded(Exception):
    pass


def service_time(dist: str, mean_s: float, rng: random.Random) -> float:
    if mean_s <= 0:
        return 0.0
    if dist == "constant":
        return mean_s
    if dist == "exponential":
        return rng.expovariate(1.0 / mean_s)
    if dist == "lognormal":
        # sigma 0.5: a moderate tail; mu chosen so that the mean is mean_s.
        sigma = 0.5
        return rng.lognormvariate(math.log(mean_s) - sigma * sigma / 2, sigma)
    raise ValueError(f"unknown service-time distribution {dist!r}")


@dataclass
class CapacityStats:
    arrived: int = 0
    served: int = 0
    rejected: int = 0
    busy: int = 0
    queued: int = 0
    busy_s: float = 0.0
    """Worker-seconds spent serving, in-progress service included up to the moment the
    stats were read: its change over a window / (window x workers) is the utilization,
    exactly, where sampling `busy` would only estimate it."""


class CapacityModel:
    def __init__(self, workers: int, queue_limit: int) -> None:
        self.workers = workers
        self.queue_limit = queue_limit
        self._slots = asyncio.Semaphore(workers)
        self._stats = CapacityStats()
        self._started_sum = 0.0
        """Sum of the start times of the services in progress."""

    @property
    def stats(self) -> CapacityStats:
        """The counters now (busy_s brought up to this instant)."""
        now = time.monotonic()
        s = self._stats
        return CapacityStats(s.arrived, s.served, s.rejected, s.busy, s.queued,
                             s.busy_s + s.busy * now - self._started_sum)

    async def serve(self, seconds: float) -> None:
        """Occupy one worker for `seconds`, after waiting in the queue if needed."""
        stats = self._stats
        stats.arrived += 1
        if stats.busy >= self.workers and stats.queued >= self.queue_limit:
            stats.rejected += 1
            raise Overloaded
        stats.queued += 1
        try:
            await self._slots.acquire()
        finally:
            stats.queued -= 1
        started = time.monotonic()
        stats.busy += 1
        self._started_sum += started
        try:
            await asyncio.sleep(seconds)
            stats.served += 1
        finally:
            stats.busy -= 1
            self._started_sum -= started
            stats.busy_s += time.monotonic() - started
            self._slots.release()
