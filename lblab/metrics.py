"""The one place where raw rows become numbers: percentiles, windows, bins, counter deltas.

Every experiment reduces its raw data with these, so "p99" or "requests in the slowdown"
means the same thing everywhere:

- Latency percentiles go through an HDR histogram (hdrhistogram, 3 significant digits, 1 us
  to 120 s), the same one the client's summary uses, so a p99 computed from the records
  equals the client's own. `quantile` (nearest rank) is for everything that is not a latency.
- A request is the last attempt recorded for its id (`requests`); windows select rows by the
  request's *intended* send time, the open-loop clock, unless told otherwise.
- Counters sampled as cumulative values are read by linear interpolation (`counter_at`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hdrh.histogram import HdrHistogram

HIST_MAX_US = 120_000_000


def quantile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank quantile (q in [0, 1]): the smallest value with at least q of the
    values at or below it. None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_histogram(latencies_ms: Iterable[float]) -> HdrHistogram:
    hist = HdrHistogram(1, HIST_MAX_US, 3)
    for ms in latencies_ms:
        hist.record_value(min(HIST_MAX_US, max(1, int(ms * 1000))))
    return hist


def latency_percentiles(latencies_ms: Iterable[float],
                        percentiles: Sequence[float] = (50, 90, 99, 99.9)) -> dict[str, float]:
    """{"p50": ms, ...} from an HDR histogram of the values; empty when there are none."""
    hist = latency_histogram(latencies_ms)
    if not hist.total_count:
        return {}
    return {f"p{p:g}": hist.get_value_at_percentile(p) / 1000 for p in percentiles}


def latency_p(latencies_ms: Iterable[float], percentile: float) -> float | None:
    """One latency percentile (e.g. 99) in ms, or None when there are no values."""
    return latency_percentiles(latencies_ms, (percentile,)).get(f"p{percentile:g}")


def requests(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One row per request: its last recorded attempt (records are per attempt)."""
    last: dict[Any, Mapping[str, Any]] = {}
    for r in records:
        prior = last.get(r["id"])
        if prior is None or r["attempt"] >= prior["attempt"]:
            last[r["id"]] = r
    return list(last.values())


def window(rows: Iterable[Mapping[str, Any]], lo: float, hi: float,
           key: str = "intended_s") -> list[Mapping[str, Any]]:
    """The rows whose `key` lies in [lo, hi)."""
    return [r for r in rows if r.get(key) is not None and lo <= r[key] < hi]


def ok_latencies(rows: Iterable[Mapping[str, Any]]) -> list[float]:
    return [r["latency_ms"] for r in rows if r["outcome"] == "ok"]


def share(rows: Sequence[Mapping[str, Any]], predicate: Any) -> float | None:
    """The fraction of rows for which predicate(row) is true; None for no rows."""
    return sum(bool(predicate(r)) for r in rows) / len(rows) if rows else None


def bins(end: float, width: float) -> list[tuple[float, float]]:
    """[lo, hi) intervals of `width` covering [0, end)."""
    return [(i * width, min(end, (i + 1) * width)) for i in range(math.ceil(end / width - 1e-9))]


def per_bin(rows: Iterable[Mapping[str, Any]], end: float, width: float,
            key: str = "intended_s") -> list[list[Mapping[str, Any]]]:
    """The rows of each bin of `bins(end, width)` by `key` (rows past `end` are dropped)."""
    out: list[list[Mapping[str, Any]]] = [[] for _ in bins(end, width)]
    for r in rows:
        t = r.get(key)
        if t is not None and 0 <= t < end:
            out[min(len(out) - 1, int(t // width))].append(r)
    return out


def counter_at(samples: Sequence[Mapping[str, Any]], key: str, t: float) -> float:
    """A cumulative counter sampled as `samples[i][key]` at `samples[i]["t"]`, read at time
    t by linear interpolation; it is 0 at t <= 0 (samples before 0 are ignored) and holds its
    last value after the last sample."""
    if t <= 0:
        return 0.0
    pts = [(0.0, 0.0)] + [(s["t"], float(s[key])) for s in samples if s["t"] >= 0]
    for (ta, a), (tb, b) in zip(pts, pts[1:], strict=False):
        if ta <= t <= tb:
            return a + (b - a) * ((t - ta) / (tb - ta) if tb > ta else 0)
    return pts[-1][1]


def counter_delta(samples: Sequence[Mapping[str, Any]], key: str, lo: float,
                  hi: float) -> float:
    """How much a sampled cumulative counter grew over [lo, hi] (see counter_at)."""
    return counter_at(samples, key, hi) - counter_at(samples, key, lo)


def jain(values: Sequence[float]) -> float:
    """Jain's fairness index: 1 when all equal, 1/n when one takes everything."""
    total, squares = sum(values), sum(v * v for v in values)
    return total * total / (len(values) * squares) if squares else 1.0
