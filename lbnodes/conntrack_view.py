"""A namespace's conntrack table as the kernel itself shows it, read from outside.

`/proc/PID/net/` is the network namespace of process PID, so the driver reads a node's
table (`nf_conntrack`, one line an entry) and its per-CPU statistics (`stat/nf_conntrack`,
whose first column is the namespace's entry count) straight from the kernel: no shell round
trip into the node, no `conntrack` process started for every sample. Samplers read the
entries by state every 0.5 s, and starting `conntrack -L` in the node each time cost 57-163
ms a probe (bench/README.md, the probe effect).

The files exist when the kernel has CONFIG_NF_CONNTRACK_PROCFS; `available` says so, and the
L4 node falls back on the conntrack tool where they do not.
"""

from __future__ import annotations

from pathlib import Path


def _table(pid: int) -> Path:
    return Path(f"/proc/{pid}/net/nf_conntrack")


def _stat(pid: int) -> Path:
    return Path(f"/proc/{pid}/net/stat/nf_conntrack")


def available(pid: int) -> bool:
    return _table(pid).exists() and _stat(pid).exists()


def tcp_states(pid: int) -> dict[str, int]:
    """TCP entries per state (ESTABLISHED, TIME_WAIT, ...), IPv4 and IPv6 alike.

    A line reads `ipv4 2 tcp 6 TIMEOUT STATE src=...`: the state is the sixth column."""
    states: dict[str, int] = {}
    with _table(pid).open("rb") as f:
        for line in f:
            cols = line.split(None, 6)
            if len(cols) > 6 and cols[2] == b"tcp":
                state = cols[5].decode()
                states[state] = states.get(state, 0) + 1
    return states


def entry_count(pid: int) -> int:
    """The namespace's entry count (nf_conntrack_count), from the first CPU's row (every row
    repeats it), in hex."""
    with _stat(pid).open() as f:
        f.readline()  # the header
        return int(f.readline().split()[0], 16)
