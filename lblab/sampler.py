"""Timestamped samples taken on an interval in a background thread, and machine CPU use.

A sampler calls `probe()` every `interval_s` and keeps `{"t": seconds since start, **row}`;
the experiment writes the rows as a CSV series. CPU use is sampled beside them so a result
shows whether the 2-core machine, rather than the model under test, was the limit.
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

    def __enter__(self) -> Sampler:
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        last = cpu_busy_ticks()
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                row = self.probe()
            except Exception as exc:  # noqa: BLE001 - keep sampling, report at the end
                self.errors.append(repr(exc))
                row = None
            now = cpu_busy_ticks()
            busy = (now[0] - last[0]) / max(1, now[1] - last[1])
            last = now
            if row is not None:
                self.rows.append({"t": round(started - self.t0, 3), **row,
                                  "cpu_busy": round(busy, 3)})
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))


def counter_at(samples: list[dict], key: str, t: float) -> float:
    """A cumulative counter sampled as `samples[i][key]` at `samples[i]["t"]`, read at time
    t by linear interpolation; it is 0 at t = 0 (samples before 0 are ignored) and holds its
    last value after the last sample."""
    pts = [(0.0, 0.0)] + [(s["t"], float(s[key])) for s in samples if s["t"] >= 0]
    for (ta, a), (tb, b) in zip(pts, pts[1:], strict=False):
        if ta <= t <= tb:
            return a + (b - a) * ((t - ta) / (tb - ta) if tb > ta else 0)
    return pts[-1][1]


def counter_delta(samples: list[dict], key: str, lo: float, hi: float) -> float:
    """How much a sampled cumulative counter grew over [lo, hi] (see counter_at)."""
    return counter_at(samples, key, hi) - counter_at(samples, key, lo)
