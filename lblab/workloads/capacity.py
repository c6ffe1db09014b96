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


class CapacityModel:
    def __init__(self, workers: int, queue_limit: int) -> None:
        self.workers = workers
        self.queue_limit = queue_limit
        self._slots = asyncio.Semaphore(workers)
        self.stats = CapacityStats()

    async def serve(self, seconds: float) -> None:
        """Occupy one worker for `seconds`, after waiting in the queue if needed."""
        self.stats.arrived += 1
        if self.stats.busy >= self.workers and self.stats.queued >= self.queue_limit:
            self.stats.rejected += 1
            raise Overloaded
        self.stats.queued += 1
        try:
            await self._slots.acquire()
        finally:
            self.stats.queued -= 1
        self.stats.busy += 1
        try:
            await asyncio.sleep(seconds)
            self.stats.served += 1
        finally:
            self.stats.busy -= 1
            self._slots.release()
