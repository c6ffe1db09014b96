"""Predictions from the parameters alone: Little's law on conntrack entries.

An entry lives as long as its connection is open, then TIME_WAIT more. So the table holds
new connections/s x (open time + TIME_WAIT) entries (Little's law).

Keep-alive, from how the lab's client and backend behave: the client sends request i at
i / rate from source i mod S (lblab.workloads.client) and keeps one pool of connections per
(target, source), reusing an idle connection before it opens one (lblab.workloads.http1);
the backend closes a connection after its k-th response (`max_requests_per_conn`, as nginx's
`keepalive_requests`). With one target, a pool gets a request every s = S / rate seconds.
When a response (mean service time m) comes back before the next request is due, each pool
holds one connection at a time, so a connection carries requests at t, t + s, ...,
t + (k - 1) s and closes when the k-th is answered: it is open (k - 1) s + m, and connections
open at rate / k. Open connections = rate / k x ((k - 1) s + m) = S (k - 1) / k + rate m / k.
That assumption fails when a response outlives the spacing: with exponential service time
(the backend's default) that happens with probability exp(-s / m) per request, and then a
second connection opens in the pool; the result states that probability, and the notes
say so when it is above `OVERLAP_LIMIT`.
"""

from __future__ import annotations

import math

from experiments.conntrack_exhaustion.params import (
    NOTE_BYTES,
    NOTE_RATE,
    NOTE_TIMEOUT_S,
    Params,
    targets,
    timeout_s,
)
from lblab.workloads.client import ClientConfig, schedule

OVERLAP_LIMIT = 0.01
"""Above this probability of a response outliving the request spacing, one connection per
pool is no longer the behaviour the open-connection model describes."""


def occupancy(rate: float, hold_s: float) -> float:
    """Little's law: entries = arrivals per second x seconds each is held."""
    return rate * hold_s


def request_spacing_s(rate: float, sources: int, n_targets: int = 1) -> float:
    """Seconds between the requests one pool (target, source) gets: request i goes to target
    i mod T and source i mod S, so a pool gets every lcm(T, S)-th request."""
    return math.lcm(sources, n_targets) / rate


def overlap_probability(spacing_s: float, service_s: float) -> float:
    """P(an exponential service time of mean `service_s` outlives `spacing_s`)."""
    return math.exp(-spacing_s / service_s) if service_s > 0 else 0.0


def connection_lifetime_s(k: int, spacing_s: float, service_s: float) -> float:
    """How long a keep-alive connection is open: k requests `spacing_s` apart, closed when the
    k-th is answered."""
    return (k - 1) * spacing_s + service_s


def keepalive_open(rate: float, k: int, sources: int, service_s: float) -> float:
    """Connections open at any moment in keep-alive: rate / k x lifetime."""
    spacing = request_spacing_s(rate, sources)
    return occupancy(rate / k, connection_lifetime_s(k, spacing, service_s))


def predicted_entries(p: Params, variant: str) -> float:
    """Steady conntrack entries (the busiest node's for spread), from the parameters."""
    tw = timeout_s(p, variant)
    if variant == "keep-alive":
        k = p.keepalive_requests
        return occupancy(p.rate / k, tw) + keepalive_open(p.rate, k, p.client_addresses,
                                                          p.service_ms / 1000)
    return occupancy(p.rate / targets(p, variant), tw)


def keepalive_model(p: Params) -> dict:
    """The keep-alive model's numbers, as the result shows them."""
    k, service = p.keepalive_requests, p.service_ms / 1000
    spacing = request_spacing_s(p.rate, p.client_addresses)
    return {"spacing_s": spacing, "lifetime_s": connection_lifetime_s(k, spacing, service),
            "new_connections_per_s": p.rate / k,
            "open_connections": keepalive_open(p.rate, k, p.client_addresses, service),
            "open_share": keepalive_open(p.rate, k, p.client_addresses, service)
            / p.client_addresses,
            "overlap_probability": overlap_probability(spacing, service),
            "entries": predicted_entries(p, "keep-alive")}


def offered(rate: float, duration_s: float) -> int:
    """How many requests the client's constant schedule sends in `duration_s`."""
    return len(schedule(ClientConfig(targets=[""], rate=rate, duration_s=duration_s,
                                     arrival="constant")))


def admission_bound(rate: float, offered: int, table: int, hold_s: float,
                    window_s: float) -> float:
    """The most connections a table of `table` slots can admit within `window_s`, when each
    holds its slot for at least `hold_s` after admission and `rate` arrive per second
    (`offered` in all).

    The connections admitted in any `hold_s` interval all hold slots at its end, so
    A(t) <= table + A(t - hold), and A(t) <= min(offered, rate x t). A closed form such as
    table x (1 + (window - hold) / hold) is not a bound: it treats the table as filled at
    once, but at a constant rate it fills over table / rate seconds and the first slots free
    again in that same order, up to 2 x table by 2 x hold.
    """
    if window_s <= 0:
        return 0.0
    return min(offered, rate * window_s,
               table + admission_bound(rate, offered, table, hold_s, window_s - hold_s))


def client_sources(p: Params) -> list[str]:
    """The churning client's source addresses, beside c1's own in its /16.

    Why several: Linux picks a connection's source port a small random even step after the
    last one (2-16 here), so one address wraps its 28,232 ephemeral ports every ~3,100
    connections. Below rate x TIME_WAIT that means new connections reuse the 5-tuples of
    TIME_WAIT entries, which conntrack replaces in place: the table then holds fewer entries
    than Little's law says, and a full table admits connections without a free slot. Many
    sources, as real clients are, keep every 5-tuple new within TIME_WAIT."""
    return [f"10.0.5.{k}" for k in range(1, p.client_addresses + 1)]


def note_example(objsize: int | None) -> dict:
    """The note's 100,000 new flows/s x 30 s, at its 500 B and at this kernel's size."""
    slots = NOTE_RATE * NOTE_TIMEOUT_S
    return {"slots": slots, "note_gb": slots * NOTE_BYTES / 1e9,
            "kernel_gb": slots * objsize / 1e9 if objsize else None}
