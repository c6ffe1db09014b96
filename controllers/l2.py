"""MAC learning as pure logic: what to install and where to send a packet.

The os-ken app hands each packet-in here and turns the returned decision into OpenFlow
messages, so this module is tested without a switch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FLOOD = -1


@dataclass(frozen=True)
class Decision:
    out_port: int
    """A port number, or FLOOD."""
    install: bool
    """True when the destination is known: install a flow so later packets skip us."""


@dataclass
class MacTable:
    """Per-switch MAC -> port tables."""

    tables: dict[int, dict[str, int]] = field(default_factory=dict)

    def packet_in(self, dpid: int, in_port: int, src: str, dst: str) -> Decision:
        table = self.tables.setdefault(dpid, {})
        if not _is_multicast(src):
            table[src] = in_port
        out = table.get(dst)
        if out is None or _is_multicast(dst):
            return Decision(FLOOD, install=False)
        return Decision(out, install=out != in_port)

    def forget(self, dpid: int) -> None:
        self.tables.pop(dpid, None)

    def to_json(self) -> dict:
        return {str(d): dict(t) for d, t in self.tables.items()}


def _is_multicast(mac: str) -> bool:
    return int(mac.split(":")[0], 16) & 1 == 1
