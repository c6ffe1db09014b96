"""Maglev's lookup table (Eisenbud et al., NSDI 2016), with weights.

Each node gets a permutation of the M slots from two hashes of its name (offset, skip); nodes
take turns claiming their next preferred free slot until the table is full. A node of weight
w claims w slots per turn. M must be prime (so every skip generates a full permutation) and
well above the number of nodes (the paper uses M > 100 x N) for the shares to be even and a
membership change to move few slots.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


def next_prime(n: int) -> int:
    while not is_prime(n):
        n += 1
    return n


def table_size(nodes: int, factor: int = 100) -> int:
    """The smallest prime above factor x nodes (at least 7)."""
    return next_prime(max(7, factor * max(1, nodes) + 1))


def _h(name: str, salt: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), key=salt, digest_size=8).digest(),
                          "big")


def permutation(name: str, m: int) -> tuple[int, int]:
    """(offset, skip) of a node's preference list: slot_j = (offset + j * skip) mod m."""
    return _h(name, b"maglev-offset") % m, _h(name, b"maglev-skip") % (m - 1) + 1


def build(weights: Mapping[str, int], m: int) -> list[str]:
    """The lookup table: slot -> node name. Nodes with weight 0 get no slots."""
    if not is_prime(m):
        raise ValueError(f"Maglev table size {m} must be prime")
    live = {n: w for n, w in sorted(weights.items()) if w > 0}
    if not live:
        return []
    perms = {n: permutation(n, m) for n in live}
    nxt = dict.fromkeys(live, 0)
    table: list[str | None] = [None] * m
    filled = 0
    while filled < m:
        for name, weight in live.items():
            offset, skip = perms[name]
            for _ in range(weight):
                while True:
                    slot = (offset + nxt[name] * skip) % m
                    nxt[name] += 1
                    if table[slot] is None:
                        break
                table[slot] = name
                filled += 1
                if filled == m:
                    return table  # type: ignore[return-value]
    return table  # type: ignore[return-value]
