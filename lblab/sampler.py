"""Timestamped samples taken on an interval in a background thread, and machine CPU use.

A sampler calls `probe()` every `interval_s` and keeps `{"t": seconds since start, "wall":
the wall-clock time the probe started, **row, "probe_ms": how long the probe took}` (a
sample is a reading spread over probe_ms, not an instant); the driver puts the rows on the
variant's clock (lblab.timeline) and writes them as a raw table. CPU use is sampled beside
them so a result shows whether the 2-core machine, rather than the model under test, was the
limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def cpu_busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class Sampler:
    def __init__(self, probe: Callable[[], dict], interval_s: float = 0.5) -> None:
        self.probe, self.interval_s = probe, interval_s
        self.rows: list[dict] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.t0 = 0.0
        self.wall0 = 0.0

    def __enter__(self) -> Sampler:
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        last = cpu_busy_ticks()
        while not self._stop.is_set():
            started, wall = time.monotonic(), time.time()
            try:
                row = self.probe()
            except Exception as exc:  # noqa: BLE001 - keep sampling, report at the end
                self.errors.append(repr(exc))
                row = None
            now = cpu_busy_ticks()
            busy = (now[0] - last[0]) / max(1, now[1] - last[1])
            last = now
            if row is not None:
                row["probe_ms"] = round((time.monotonic() - started) * 1000, 2)
                self.rows.append({"t": round(started - self.t0, 3), "wall": wall, **row,
                                  "cpu_busy": round(busy, 3)})
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))
