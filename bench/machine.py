"""What every benchmark prints first: when, on what, and how busy the machine was.

A benchmark's ratios are only honest on a quiet machine, so the load average before the run is
part of its output (and of the README table it goes into).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path


def debian_version() -> str:
    try:
        return "Debian " + Path("/etc/debian_version").read_text().strip()
    except OSError:
        return platform.system()


def header(what: str) -> str:
    """One line: the benchmark, the date, the OS, kernel, cores and the load averages."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{what}: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; {debian_version()}, kernel "
            f"{platform.release()}, {os.cpu_count()} cores; load average before: {load}")


class CpuTimes:
    """Machine CPU use between two reads of /proc/stat: busy, softirq and iowait fractions."""

    def __init__(self) -> None:
        self.last = self._read()

    @staticmethod
    def _read() -> list[int]:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:]]

    def sample(self) -> dict[str, float]:
        now = self._read()
        d = [b - a for a, b in zip(self.last, now, strict=True)]
        self.last = now
        total = sum(d) or 1
        # user nice system idle iowait irq softirq steal ...
        idle = d[3] + d[4]
        return {"busy": 1 - idle / total, "softirq": d[6] / total, "system": d[2] / total,
                "user": (d[0] + d[1]) / total}
